"""``MemoryStats``: memory analytics in a notebook — totals, three plots and the tables behind them.

``MemoryStats(ws.memory)`` reads :meth:`Memory.stats` and renders the
counts by tier and kind, the strength histogram and the latency percentiles as one matplotlib
figure inside an :class:`ipywidgets.Output`, with the frames as tables below. "Refresh" reads the
statistics again. It only reads through the memory service.
"""

from __future__ import annotations

import html
import io
from typing import Any

import ipywidgets as widgets
import polars as pl

from emergent.clock import iso

_TIERS = ("stm", "ltm", "archive")
_KIND_COLOURS = {"episodic": "#4c72b0", "semantic": "#55a868", "procedural": "#c44e52"}
_TIER_COLOURS = {"stm": "#dd8452", "ltm": "#4c72b0", "archive": "#8c8c8c"}


def render_png(report: Any, *, dpi: int = 80) -> bytes:
    """The three panels of ``report`` (a MemoryStatsReport) as a PNG (Agg, no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(12, 3.4), dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    ax_counts, ax_strength, ax_latency = fig.subplots(1, 3)
    _plot_counts(ax_counts, report.counts)
    _plot_strength(ax_strength, report.strength)
    _plot_latency(ax_latency, report.latency)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _plot_counts(ax: Any, counts: pl.DataFrame) -> None:
    bottom = [0] * len(_TIERS)
    for kind, colour in _KIND_COLOURS.items():
        sub = counts.filter(pl.col("kind") == kind).group_by("tier").agg(pl.col("n").sum())
        values = dict(sub.iter_rows())
        heights = [int(values.get(t, 0)) for t in _TIERS]
        ax.bar(_TIERS, heights, bottom=bottom, color=colour, label=kind)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    ax.set_title("memories by tier and kind")
    ax.set_ylabel("count")
    ax.legend(fontsize=8, frameon=False)


def _plot_strength(ax: Any, strength: pl.DataFrame) -> None:
    width = 0.1 / 3
    for i, tier in enumerate(_TIERS):
        sub = strength.filter(pl.col("tier") == tier).sort("lo")
        xs = [lo + (i + 0.5) * width for lo in sub["lo"].to_list()]
        ax.bar(xs, sub["n"].to_list(), width=width, color=_TIER_COLOURS[tier], label=tier)
    ax.set_title("strength (retention now)")
    ax.set_xlabel("retention")
    ax.set_xlim(0, 1)
    ax.legend(fontsize=8, frameon=False)


def _plot_latency(ax: Any, latency: pl.DataFrame) -> None:
    if latency.height == 0:
        ax.text(0.5, 0.5, "no operations yet", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return
    ops = latency["op"].to_list()
    ys = list(range(len(ops)))
    ax.barh([y + 0.2 for y in ys], latency["p50_ms"].to_list(), height=0.4, label="p50", color="#4c72b0")
    ax.barh([y - 0.2 for y in ys], latency["p95_ms"].to_list(), height=0.4, label="p95", color="#dd8452")
    ax.set_yticks(ys, ops)
    ax.set_xlabel("ms")
    ax.set_title("latency of recent operations")
    ax.legend(fontsize=8, frameon=False)


def _table(frame: pl.DataFrame, title: str, limit: int = 10) -> str:
    if frame.height == 0:
        return f"<p><b>{html.escape(title)}</b>: none</p>"
    cols = frame.columns
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>" for row in frame.head(limit).iter_rows()
    )
    more = f"<tr><td colspan={len(cols)}>… {frame.height - limit} more</td></tr>" if frame.height > limit else ""
    return f"<div><b>{html.escape(title)}</b><table class='emergent-table'><tr>{head}</tr>{rows}{more}</table></div>"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape("" if value is None else str(value))


class MemoryStats(widgets.VBox):
    """``MemoryStats(ws.memory)`` in a notebook cell; ``refresh()`` reads the statistics again."""

    def __init__(self, memory: Any, *, dpi: int = 80) -> None:
        if not callable(getattr(memory, "stats", None)):
            from emergent.errors import UsageError

            raise UsageError(f"MemoryStats reads a memory service, not a {type(memory).__name__}",
                             hint="pass ws.memory")
        self.memory = memory
        self.dpi = dpi
        self.report: Any = None
        self.title = widgets.HTML("<b>Memory statistics</b>")
        self.totals = widgets.HTML()
        self.plot = widgets.Output()
        self.tables = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", tooltip="read the statistics again")
        self.refresh_button.on_click(lambda _b: self.refresh())
        super().__init__([widgets.HBox([self.title, self.refresh_button]), self.totals, self.plot, self.tables])
        self.add_class("emergent-memory-stats")
        self.refresh()

    def refresh(self) -> None:
        from IPython.display import Image

        self.report = report = self.memory.stats()
        t = report.totals
        hit = "-" if t["recall_hit_rate"] is None else f"{t['recall_hit_rate']:.0%} of {t['recalls']}"
        self.totals.value = (
            f"<span class='emergent-totals'>{t['stm']} short-term &middot; {t['ltm']} long-term &middot; "
            f"{t['archive']} archived &middot; {t['scopes']} scope(s) &middot; mean strength "
            f"{t['mean_strength']:.2f} &middot; recall hit rate {hit} &middot; as of {iso(report.at)}</span>"
        )
        self.plot.outputs = ()
        self.plot.append_display_data(Image(data=render_png(report, dpi=self.dpi), format="png"))
        self.tables.value = "".join([
            _table(report.by_kind, "by kind"), _table(report.by_scope, "by scope"),
            _table(report.latency, "latency (ms)"), _table(report.hits, "hit rate"),
        ])
