"""``PerfDashboard``: the REST API's performance in a notebook — latency by endpoint, request rate,
errors, memory sizes — read from the app's metrics registry or a running server's ``/metrics``.

``PerfDashboard.from_app(app)`` reads the registry of an app in this process;
``PerfDashboard.from_url("http://127.0.0.1:8765")`` scrapes a server. Each refresh takes a snapshot;
rates and the latency percentiles are over the interval since the previous one (the first shows the
totals since the server started). p50/p95 are estimated from the histogram buckets as Prometheus'
``histogram_quantile`` does; a p95 over the 200 ms target is shown in red.
"""

from __future__ import annotations

import html
import io
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

TARGET_S = 0.2  # the response-time target of the roadmap


@dataclass
class Endpoint:
    method: str
    route: str
    requests: float = 0.0
    errors: float = 0.0  # status >= 500
    rejected: float = 0.0  # 4xx
    seconds: float = 0.0
    buckets: dict[float, float] = field(default_factory=dict)  # upper bound → cumulative count


@dataclass
class Snapshot:
    """One scrape, parsed."""

    at: float
    endpoints: dict[tuple[str, str], Endpoint]
    gauges: dict[str, float]  # unlabelled gauges: memory sizes, approvals, process memory...
    rate_limited: float = 0.0

    @classmethod
    def parse(cls, text: str, at: float | None = None) -> Snapshot:
        from prometheus_client.parser import text_string_to_metric_families

        endpoints: dict[tuple[str, str], Endpoint] = {}
        gauges: dict[str, float] = {}
        limited = 0.0

        def ep(labels: dict[str, str]) -> Endpoint:
            key = (labels.get("method", ""), labels.get("route", ""))
            if key not in endpoints:
                endpoints[key] = Endpoint(*key)
            return endpoints[key]

        for family in text_string_to_metric_families(text):
            for s in family.samples:
                if s.name == "emergent_http_request_duration_seconds_bucket":
                    e, le = ep(s.labels), float(s.labels["le"])
                    e.buckets[le] = e.buckets.get(le, 0.0) + s.value
                elif s.name == "emergent_http_request_duration_seconds_count":
                    e, status = ep(s.labels), s.labels.get("status", "")
                    e.requests += s.value
                    if status.startswith("5"):
                        e.errors += s.value
                    elif status.startswith("4"):
                        e.rejected += s.value
                elif s.name == "emergent_http_request_duration_seconds_sum":
                    ep(s.labels).seconds += s.value
                elif s.name == "emergent_http_rate_limited_total":
                    limited += s.value
                elif not s.labels and family.type == "gauge":
                    gauges[s.name] = s.value
        return cls(time.time() if at is None else at, endpoints, gauges, limited)

    def since(self, before: Snapshot | None) -> list[Row]:
        """One row per endpoint: what happened between ``before`` (None: since the start) and this one."""
        span = (self.at - before.at) if before is not None else None
        rows = []
        for key, now in sorted(self.endpoints.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            old = before.endpoints.get(key) if before is not None else None
            n = now.requests - (old.requests if old else 0.0)
            buckets = {le: c - (old.buckets.get(le, 0.0) if old else 0.0) for le, c in now.buckets.items()}
            rows.append(Row(now.method, now.route, n, (n / span) if span else None,
                            now.errors - (old.errors if old else 0.0), now.rejected - (old.rejected if old else 0.0),
                            (now.seconds - (old.seconds if old else 0.0)) / n if n else None,
                            quantile(0.5, buckets), quantile(0.95, buckets)))
        return rows


@dataclass
class Row:
    method: str
    route: str
    requests: float
    per_s: float | None
    errors: float
    rejected: float
    mean_s: float | None
    p50_s: float | None
    p95_s: float | None


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """``histogram_quantile(q, ...)`` over cumulative ``buckets`` (upper bound → count); None when empty."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for le in bounds:
        count = buckets[le]
        if count >= rank:
            if math.isinf(le):
                return lower  # the largest finite bound: all we know
            if count == below:
                return le
            return lower + (le - lower) * (rank - below) / (count - below)
        lower, below = le, count
    return lower


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.1f}"


_GAUGES = (("emergent_memory_stm_items", "short-term items"), ("emergent_memory_ltm_rows", "long-term rows"),
           ("emergent_approvals_pending", "approvals pending"), ("emergent_http_requests_in_progress", "in progress"),
           ("process_resident_memory_bytes", "RSS (MB)"))


def render_png(rows: list[Row], gauges: dict[str, float], *, dpi: int = 80) -> bytes:
    """p95 and p50 by endpoint against the 200 ms target, requests by endpoint, and the memory sizes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, max(2.6, 0.32 * len(rows) + 1.2)), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax_lat, ax_req, ax_mem = fig.subplots(1, 3, width_ratios=(3, 2, 2))
    labels = [f"{r.method} {r.route}" for r in rows]
    ys = list(range(len(rows)))
    p95 = [(r.p95_s or 0.0) * 1000 for r in rows]
    ax_lat.barh(ys, p95, color=["#c44e52" if v > TARGET_S * 1000 else "#4c72b0" for v in p95], label="p95")
    ax_lat.scatter([(r.p50_s or 0.0) * 1000 for r in rows], ys, color="black", s=12, zorder=3, label="p50")
    ax_lat.axvline(TARGET_S * 1000, color="#c44e52", linestyle="--", linewidth=1)
    ax_lat.set_yticks(ys, labels, fontsize=8)
    ax_lat.invert_yaxis()
    ax_lat.set_xlabel("ms")
    ax_lat.set_title("latency by endpoint (target 200 ms)")
    ax_lat.legend(fontsize=8, frameon=False)
    ok = [r.requests - r.errors - r.rejected for r in rows]
    ax_req.barh(ys, ok, color="#55a868", label="2xx/3xx")
    ax_req.barh(ys, [r.rejected for r in rows], left=ok, color="#dd8452", label="4xx")
    ax_req.barh(ys, [r.errors for r in rows], left=[a + r.rejected for a, r in zip(ok, rows, strict=True)],
                color="#c44e52", label="5xx")
    ax_req.set_yticks(ys, [""] * len(ys))
    ax_req.invert_yaxis()
    ax_req.set_title("requests")
    ax_req.legend(fontsize=8, frameon=False)
    mem = [(label, gauges[name]) for name, label in _GAUGES[:2] if name in gauges]
    ax_mem.bar([m[0] for m in mem], [m[1] for m in mem], color=["#dd8452", "#4c72b0"][: len(mem)])
    ax_mem.set_title("memory sizes")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


class PerfDashboard:
    """Latency by endpoint, request rate, errors and memory sizes of a REST API app or server."""

    def __init__(self, read: Callable[[], str], *, source: str = "") -> None:
        self._read = read
        self.source = source
        self.previous: Snapshot | None = None
        self.current: Snapshot | None = None
        self.error: str | None = None
        self._widget: Any = None

    @classmethod
    def from_app(cls, app: Any) -> PerfDashboard:
        """The app's own registry (``app.state.monitor``), in this process."""
        metrics = app.state.monitor.metrics
        return cls(lambda: metrics.exposition().decode(), source="this process")

    @classmethod
    def from_url(cls, url: str, *, timeout_s: float = 5.0) -> PerfDashboard:
        """A running server: ``url`` is its base (``/metrics`` is added) or the metrics URL itself."""
        import httpx

        target = url if url.rstrip("/").endswith("/metrics") else url.rstrip("/") + "/metrics"

        def read() -> str:
            r = httpx.get(target, timeout=timeout_s)
            r.raise_for_status()
            return r.text

        return cls(read, source=target)

    def snapshot(self) -> list[Row]:
        """Scrape now; the rows since the previous scrape (since the start, the first time)."""
        try:
            snap = Snapshot.parse(self._read())
        except Exception as exc:  # an unreachable server is shown, not raised, in a notebook
            self.error = f"{type(exc).__name__}: {exc}"
            return self.rows()
        self.error = None
        self.previous, self.current = self.current, snap
        return self.rows()

    def rows(self) -> list[Row]:
        return self.current.since(self.previous) if self.current is not None else []

    def html(self) -> str:
        if self.current is None and self.error is None:
            self.snapshot()
        rows = self.rows()
        head = ("<tr><th>endpoint</th><th>requests</th><th>req/s</th><th>5xx</th><th>4xx</th><th>mean ms</th>"
                "<th>p50 ms</th><th>p95 ms</th></tr>")
        body = []
        for r in rows:
            red = ' style="color:#c44e52;font-weight:bold"' if (r.p95_s or 0.0) > TARGET_S else ""
            body.append(f"<tr><td><code>{html.escape(r.method)} {html.escape(r.route)}</code></td>"
                        f"<td>{r.requests:.0f}</td><td>{'—' if r.per_s is None else f'{r.per_s:.2f}'}</td>"
                        f"<td>{r.errors:.0f}</td><td>{r.rejected:.0f}</td><td>{_ms(r.mean_s)}</td>"
                        f"<td>{_ms(r.p50_s)}</td><td{red}>{_ms(r.p95_s)}</td></tr>")
        gauges = self.current.gauges if self.current else {}
        facts = [f"{label}: {gauges[name] / 1e6:.0f}" if name == "process_resident_memory_bytes"
                 else f"{label}: {gauges[name]:.0f}" for name, label in _GAUGES if name in gauges]
        if self.current is not None:
            facts.append(f"rate-limited: {self.current.rate_limited:.0f}")
        window = ("since the server started" if self.previous is None or self.current is None
                  else f"over the last {self.current.at - self.previous.at:.1f} s")
        error = f'<p style="color:#c44e52">{html.escape(self.error)}</p>' if self.error else ""
        return (f"<div><b>API performance</b> <small>{html.escape(self.source)}, {window}</small>{error}"
                f"<p>{html.escape(' · '.join(facts))}</p><table>{head}{''.join(body)}</table></div>")

    def _repr_html_(self) -> str:
        return self.html()

    def png(self) -> bytes:
        return render_png(self.rows(), self.current.gauges if self.current else {})

    def widget(self) -> Any:
        """An ipywidgets VBox: the table, the plots and a Refresh button."""
        import ipywidgets as widgets

        if self.current is None:
            self.snapshot()
        table = widgets.HTML(self.html())
        image = widgets.Image(value=self.png(), format="png")
        button = widgets.Button(description="Refresh", icon="refresh")

        def refresh(_: Any = None) -> None:
            self.snapshot()
            table.value = self.html()
            image.value = self.png()

        button.on_click(refresh)
        self._widget = widgets.VBox([button, table, image])
        self._widget.refresh = refresh
        return self._widget

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle: dict[str, Any] = self.widget()._repr_mimebundle_(include=include, exclude=exclude)
        bundle["text/html"] = self.html()
        return bundle
