"""Prometheus metrics: one registry per app (never the process-global default registry).

Two kinds:
- measured in this process as requests pass (:class:`HttpMetrics`): latency histograms by route
  template, method and status; requests in progress; rate-limited requests;
- read from the services at scrape time (:class:`WorkspaceCollector`) through the callables of
  :class:`Sources` (the surface wires them to its services' public read methods): tool calls by
  outcome, job runs, approvals pending, memory sizes, store readiness, the audit trail. These are
  facts of the *workspace*: every instance sharing it reports the same figures (aggregate them
  with ``max``, not ``sum``).

A source that fails is left out of that scrape and counted in ``emergent_metrics_source_errors_total``;
the scrape itself never fails.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

#: seconds; dense around the 200 ms response target
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0)
UNMATCHED = "<unmatched>"  # the route label of a request no route matched (bounded cardinality)

#: every metric name this package exports (the alert rules' test checks their expressions against it)
EXPORTED: frozenset[str] = frozenset({
    "emergent_http_requests_total", "emergent_http_request_duration_seconds",
    "emergent_http_requests_in_progress", "emergent_http_rate_limited_total",
    "emergent_tool_calls_total", "emergent_job_runs_total", "emergent_job_runs_failed_total",
    "emergent_approvals_pending", "emergent_approvals_pending_oldest_age_seconds",
    "emergent_memory_ltm_rows", "emergent_memory_stm_items",
    "emergent_store_up", "emergent_store_check_duration_seconds",
    "emergent_audit_entries", "emergent_audit_verify_ok", "emergent_audit_verify_failures_total",
    "emergent_audit_verify_last_run_timestamp_seconds",
    "emergent_metrics_source_errors_total", "emergent_info",
    # the process collector's
    "process_resident_memory_bytes", "process_virtual_memory_bytes", "process_cpu_seconds_total",
    "process_open_fds", "process_max_fds", "process_start_time_seconds",
})


class HttpMetrics:
    """What the API's middleware measures per request."""

    def __init__(self, registry: CollectorRegistry) -> None:
        labels = ("method", "route", "status")
        self.requests = Counter("emergent_http_requests", "HTTP requests answered", labels, registry=registry)
        self.duration = Histogram("emergent_http_request_duration_seconds",
                                  "Time from the request to the response's status line (a stream's first "
                                  "event, not its end)", labels, buckets=LATENCY_BUCKETS, registry=registry)
        self.in_progress = Gauge("emergent_http_requests_in_progress", "HTTP requests being answered",
                                 registry=registry)
        self.rate_limited = Counter("emergent_http_rate_limited", "Requests refused by the rate limit (429)",
                                    ("method", "route"), registry=registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        code = str(status)
        self.requests.labels(method, route, code).inc()
        self.duration.labels(method, route, code).observe(seconds)
        if status == 429:
            self.rate_limited.labels(method, route).inc()


@dataclass
class StoreStatus:
    ok: bool
    detail: str
    seconds: float


@dataclass
class AuditStatus:
    """The latest verification of the audit chain in this process (None fields: not run yet)."""

    ok: bool | None = None
    failures: int = 0
    last_run: float | None = None


@dataclass
class Sources:
    """Callables the collector reads at scrape time (each may be None: that metric is not exported).

    - ``tool_window(since)``: rows ``{tool, calls, failures, circuit_open, timeouts}`` of the calls
      finished at or after ``since`` (emergent.tools.telemetry.Telemetry.window);
    - ``job_totals(since)``: rows ``{job, runs, failed}`` of the runs started at or after ``since``
      (emergent.jobs.service.JobService.run_totals);
    - ``approvals_pending()``: the creation times of the pending approval requests;
    - ``ltm_rows()`` / ``stm_items()``: long-term rows, short-term items (None: the backend does not say);
    - ``stores()``: readiness of each store; ``audit_entries()``: the chain's length;
      ``audit_status()``: the latest verification;
    - ``now()``: the services' clock (the telemetry's times are on it).
    """

    now: Callable[[], float] = time.time
    tool_window: Callable[[float], list[dict[str, Any]]] | None = None
    job_totals: Callable[[float], list[dict[str, Any]]] | None = None
    approvals_pending: Callable[[], Sequence[float]] | None = None
    ltm_rows: Callable[[], int] | None = None
    stm_items: Callable[[], int | None] | None = None
    stores: Callable[[], Mapping[str, StoreStatus]] | None = None
    audit_entries: Callable[[], int] | None = None
    audit_status: Callable[[], AuditStatus] | None = None
    info: Mapping[str, str] | None = None


class CumulativeTotals:
    """Monotonic totals from a read of the rows *since* a time, without rescanning the whole table at
    every scrape: rows older than ``settle_s`` are summed once into a base; each scrape reads only
    the rows after the base's mark (one query; two when the mark advances, at most once per
    ``settle_s``). A row written later than ``settle_s`` after its time is missed (telemetry is
    flushed within a second)."""

    def __init__(self, read: Callable[[float], dict[tuple[str, ...], float]], now: Callable[[], float],
                 settle_s: float) -> None:
        self.read, self.now, self.settle_s = read, now, settle_s
        self.base: dict[tuple[str, ...], float] = {}
        self.mark: float | None = None
        self._lock = threading.Lock()

    def totals(self) -> dict[tuple[str, ...], float]:
        with self._lock:
            now = self.now()
            if self.mark is None or now - self.settle_s >= self.mark + self.settle_s:
                new_mark = now - self.settle_s
                older = self.read(0.0 if self.mark is None else self.mark)
                recent = self.read(new_mark)
                self.base = _add(self.base, _sub(older, recent))
                self.mark = new_mark
            else:
                recent = self.read(self.mark)
            return _add(self.base, recent)


def _add(a: dict[tuple[str, ...], float], b: dict[tuple[str, ...], float]) -> dict[tuple[str, ...], float]:
    out = dict(a)
    for k, v in b.items():
        out[k] = out.get(k, 0.0) + v
    return out


def _sub(a: dict[tuple[str, ...], float], b: dict[tuple[str, ...], float]) -> dict[tuple[str, ...], float]:
    return {k: v - b.get(k, 0.0) for k, v in a.items() if v - b.get(k, 0.0)}


def tool_outcomes(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], float]:
    """``Telemetry.window`` rows → counts by (tool, outcome): ok, timeout, circuit_open, failed (every
    other outcome that is not ok: an error, a denial, an invalid call, an approval pending)."""
    out: dict[tuple[str, ...], float] = {}
    for r in rows:
        failures, timeouts, circuit = int(r["failures"]), int(r["timeouts"]), int(r["circuit_open"])
        parts = {"ok": int(r["calls"]) - failures, "timeout": timeouts, "circuit_open": circuit,
                 "failed": failures - timeouts - circuit}
        for outcome, n in parts.items():
            if n:
                out[(str(r["tool"]), outcome)] = float(n)
    return out


def job_outcomes(rows: Iterable[Mapping[str, Any]]) -> dict[tuple[str, ...], float]:
    """``JobService.run_totals`` rows → counts by (job, "runs") and (job, "failed")."""
    out: dict[tuple[str, ...], float] = {}
    for r in rows:
        out[(str(r["job"]), "runs")] = float(r["runs"])
        if int(r["failed"]):
            out[(str(r["job"]), "failed")] = float(r["failed"])
    return out


class _Call:
    """One source's call on its thread: its metrics, or its error, once done."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.value: list[Metric] = []
        self.error: BaseException | None = None

    @classmethod
    def failed(cls, error: BaseException) -> _Call:
        call = cls()
        call.error = error
        call.done.set()
        return call

    def run(self, ctx: contextvars.Context, fn: Callable[[], list[Metric]]) -> None:
        try:
            self.value = list(ctx.run(fn))
        except BaseException as exc:
            self.error = exc
        finally:
            self.done.set()

    def result(self, deadline: float) -> list[Metric]:
        if not self.done.wait(max(0.0, deadline - time.monotonic())):
            raise TimeoutError("no answer in time")
        if self.error is not None:
            raise self.error
        return self.value


class WorkspaceCollector(Collector):
    """Reads :class:`Sources` at each scrape."""

    TOOL_SETTLE_S = 120.0
    JOB_SETTLE_S = 86_400.0  # a run's failure is known when it ends: a day covers the longest notebook

    def __init__(self, sources: Sources, errors: Counter, *, source_timeout_s: float = 2.5) -> None:
        self.sources = sources
        self.errors = errors
        self.source_timeout_s = source_timeout_s
        self._running: dict[str, _Call] = {}
        tw, jt = sources.tool_window, sources.job_totals
        self._tools = (CumulativeTotals(lambda since: tool_outcomes(tw(since)), sources.now, self.TOOL_SETTLE_S)
                       if tw else None)
        self._jobs = (CumulativeTotals(lambda since: job_outcomes(jt(since)), sources.now, self.JOB_SETTLE_S)
                      if jt else None)

    def describe(self) -> list[Metric]:
        return []  # collected at scrape time only: registering must not read the services

    def collect(self) -> Iterator[Metric]:
        s = self.sources
        if s.info:
            info = GaugeMetricFamily("emergent_info", "The serving process", labels=sorted(s.info))
            info.add_metric([s.info[k] for k in sorted(s.info)], 1.0)
            yield info
        sources: list[tuple[str, Callable[[], list[Metric]]]] = [
            ("tools", self._tool_metrics), ("jobs", self._job_metrics), ("approvals", self._approval_metrics),
            ("memory", self._memory_metrics), ("stores", self._store_metrics), ("audit", self._audit_metrics)]
        started = [(name, self._start(name, fn)) for name, fn in sources]  # all at once, one deadline
        deadline = time.monotonic() + self.source_timeout_s
        for name, call in started:
            try:
                yield from call.result(deadline)
            except Exception as exc:  # one failing source must not fail the scrape
                log.warning("metrics source %s failed: %s: %s", name, type(exc).__name__, exc)
                self.errors.labels(name).inc()
        yield from self.errors.collect()  # last: this scrape's failures are in it

    def _start(self, source: str, fn: Callable[[], list[Metric]]) -> _Call:
        """``fn()`` on a thread of its own: a store that hangs costs a scrape ``source_timeout_s`` once,
        and is not asked again while the earlier call still hangs."""
        previous = self._running.get(source)
        if previous is not None and not previous.done.is_set():
            return _Call.failed(TimeoutError(f"still waiting on the call of an earlier scrape "
                                              f"(over {self.source_timeout_s:g} s)"))
        call = self._running[source] = _Call()
        ctx = contextvars.copy_context()  # the scrape's trace and request id go with it
        threading.Thread(target=call.run, args=(ctx, fn), name=f"metrics-{source}", daemon=True).start()
        return call

    def _tool_metrics(self) -> list[Metric]:
        if self._tools is None:
            return []
        m = CounterMetricFamily("emergent_tool_calls", "Tool calls in the workspace by tool and outcome "
                                "(ok, failed, timeout, circuit_open)", labels=["tool", "outcome"])
        for (tool, outcome), n in sorted(self._tools.totals().items()):
            m.add_metric([tool, outcome], n)
        return [m]

    def _job_metrics(self) -> list[Metric]:
        if self._jobs is None:
            return []
        runs = CounterMetricFamily("emergent_job_runs", "Job runs started in the workspace", labels=["job"])
        failed = CounterMetricFamily("emergent_job_runs_failed", "Job runs that failed", labels=["job"])
        for (job, what), n in sorted(self._jobs.totals().items()):
            (runs if what == "runs" else failed).add_metric([job], n)
        return [runs, failed]

    def _approval_metrics(self) -> list[Metric]:
        if self.sources.approvals_pending is None:
            return []
        created = list(self.sources.approvals_pending())
        now = self.sources.now()
        return [GaugeMetricFamily("emergent_approvals_pending", "Approval requests waiting for a human",
                                  value=len(created)),
                GaugeMetricFamily("emergent_approvals_pending_oldest_age_seconds",
                                  "How long the oldest pending approval request has waited (0: none)",
                                  value=max(0.0, now - min(created)) if created else 0.0)]

    def _memory_metrics(self) -> list[Metric]:
        out: list[Metric] = []
        if self.sources.ltm_rows is not None:
            out.append(GaugeMetricFamily("emergent_memory_ltm_rows", "Rows of long-term memory",
                                         value=self.sources.ltm_rows()))
        items = self.sources.stm_items() if self.sources.stm_items is not None else None
        if items is not None:
            out.append(GaugeMetricFamily("emergent_memory_stm_items", "Items in short-term memory", value=items))
        return out

    def _store_metrics(self) -> list[Metric]:
        if self.sources.stores is None:
            return []
        up = GaugeMetricFamily("emergent_store_up", "1 when the store answered the readiness check in time",
                               labels=["store"])
        took = GaugeMetricFamily("emergent_store_check_duration_seconds", "How long the store's check took",
                                 labels=["store"])
        for name, st in sorted(self.sources.stores().items()):
            up.add_metric([name], 1.0 if st.ok else 0.0)
            took.add_metric([name], st.seconds)
        return [up, took]

    def _audit_metrics(self) -> list[Metric]:
        out: list[Metric] = []
        if self.sources.audit_entries is not None:
            out.append(GaugeMetricFamily("emergent_audit_entries", "Entries in the audit chain",
                                         value=self.sources.audit_entries()))
        if self.sources.audit_status is not None:
            st = self.sources.audit_status()
            out.append(CounterMetricFamily("emergent_audit_verify_failures",
                                           "Verifications of the audit chain that found it broken",
                                           value=st.failures))
            if st.ok is not None:
                out.append(GaugeMetricFamily("emergent_audit_verify_ok",
                                             "1 when the latest verification found the chain intact",
                                             value=1.0 if st.ok else 0.0))
            if st.last_run is not None:
                out.append(GaugeMetricFamily("emergent_audit_verify_last_run_timestamp_seconds",
                                             "When the chain was last verified (Unix time)", value=st.last_run))
        return out


class Metrics:
    """The registry of one app: its request metrics, the workspace's figures, the process's."""

    def __init__(self, sources: Sources | None = None, *, process: bool = True) -> None:
        from prometheus_client import ProcessCollector

        self.registry = CollectorRegistry(auto_describe=False)
        self.http = HttpMetrics(self.registry)
        self.source_errors = Counter("emergent_metrics_source_errors",
                                     "Scrapes in which a source of workspace metrics failed", ("source",),
                                     registry=None)  # exported by the collector, after its sources
        if process:
            ProcessCollector(registry=self.registry)
        self.collector = WorkspaceCollector(sources or Sources(), self.source_errors)
        self.registry.register(self.collector)

    def exposition(self) -> bytes:
        """The text exposition format (``text/plain; version=0.0.4``)."""
        return generate_latest(self.registry)
