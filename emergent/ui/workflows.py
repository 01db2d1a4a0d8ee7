"""``WorkflowRuns``: the workflow runs of a workspace and the selected run's DAG, drawn as SVG and
coloured by each step's state, with a legend and a Refresh button. It reads through ``ws.workflows``
only (``runs()``, ``get(run_id)`` and the run's ``dag()``).

The drawing is plain SVG inside an HTML output: it needs no JavaScript library, no network and no
front-end extension, so it shows the same in JupyterLab, in a saved notebook and in a static export.
The layout is networkx's topological generations: a step's column is the length of the longest path
to it, so every edge points right; inside a column steps are ordered by the mean row of their
predecessors (one barycentre pass: fewer crossings, no layout engine to install).
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets

#: step (and run) states and their colours; a state not listed is drawn grey
STATE_COLOURS: dict[str, str] = {
    "pending": "#d0d7de", "running": "#0969da", "completed": "#1a7f37", "failed": "#cf222e",
    "skipped": "#afb8c1", "waiting_approval": "#bf8700", "cancelled": "#6e7781", "compensated": "#8250df",
    "paused": "#bc4c00",
}
_TEXT_ON = {"pending": "#24292f", "skipped": "#24292f"}
NODE_W, NODE_H, GAP_X, GAP_Y, PAD = 150, 34, 60, 16, 12
#: a DAG larger than this is summarised (counts by state) instead of drawn: thousands of boxes tell nothing
MAX_DRAWN = 400


@dataclass(frozen=True)
class Node:
    key: str
    status: str
    label: str
    tip: str


def _field(obj: Any, *names: str, default: Any = None) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return default


def _status(value: Any) -> str:
    return str(getattr(value, "value", value) or "pending")


def _node(raw: Any) -> Node:
    if isinstance(raw, str):
        return Node(raw, "pending", raw, raw)
    key = str(_field(raw, "key", "id", "step_id"))
    status = _status(_field(raw, "status", "state"))
    kind = _field(raw, "kind", default="")
    label = str(_field(raw, "label", default=key))
    tip = [f"{key}: {status}" + (f" ({kind})" if kind else "")]
    attempt = _field(raw, "attempt")
    if attempt and attempt > 1:
        tip.append(f"attempt {attempt}")
    if _field(raw, "error"):
        tip.append(str(_field(raw, "error")))
    if _field(raw, "approval_id"):
        tip.append(f"waits on approval {_field(raw, 'approval_id')}")
    return Node(key, status, label, "\n".join(tip))


def _edge(raw: Any) -> tuple[str, str]:
    if isinstance(raw, Mapping):
        return str(raw.get("source", raw.get("from"))), str(raw.get("target", raw.get("to")))
    a, b = raw
    return str(a), str(b)


def layout(keys: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, tuple[int, int]]:
    """(column, row) of every node: columns are topological generations, rows ordered by the mean
    row of each node's predecessors. A cyclic graph (never a valid workflow) falls back to one column."""
    import networkx as nx

    g = nx.DiGraph()
    g.add_nodes_from(keys)
    g.add_edges_from((a, b) for a, b in edges if a in g and b in g)
    try:
        generations = [list(gen) for gen in nx.topological_generations(g)]
    except nx.NetworkXUnfeasible:
        generations = [list(keys)]
    order = {k: i for i, k in enumerate(keys)}
    pos: dict[str, tuple[int, int]] = {}
    for col, gen in enumerate(generations):
        def weight(k: str) -> tuple[float, int]:
            rows = [pos[p][1] for p in g.predecessors(k) if p in pos]
            return (sum(rows) / len(rows) if rows else -1.0, order.get(k, 0))

        for row, key in enumerate(sorted(gen, key=weight)):
            pos[key] = (col, row)
    return pos


def _short(text: str, n: int = 20) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def legend_svg(states: Iterable[str]) -> str:
    """A one-line legend of the given states' colours."""
    parts, x = [], 0
    for s in states:
        colour = STATE_COLOURS.get(s, "#8c959f")
        parts.append(f"<rect x='{x}' y='2' width='12' height='12' rx='2' fill='{colour}'/>"
                     f"<text x='{x + 16}' y='12' font-size='11' fill='#24292f'>{html.escape(s)}</text>")
        x += 24 + 7 * len(s)
    return (f"<svg class='emergent-wf-legend' xmlns='http://www.w3.org/2000/svg' width='{max(x, 1)}' height='16' "
            f"font-family='sans-serif'>{''.join(parts)}</svg>")


def dag_svg(nodes: Sequence[Any], edges: Iterable[Any], *, title: str | None = None) -> str:
    """The DAG ``(nodes, edges)`` as an SVG document: a box per node coloured by its state (hover for
    the state, attempt and error), an arrow per edge, left to right. ``nodes`` are step states (objects
    or dicts with ``key``/``id``, ``status``, optionally ``kind``, ``attempt``, ``error``) or keys;
    ``edges`` are ``(source, target)`` pairs or ``{"source", "target"}`` dicts."""
    ns = [_node(n) for n in nodes]
    es = [_edge(e) for e in edges]
    if not ns:
        return "<div class='emergent-wf-dag'><i>no steps</i></div>"
    if len(ns) > MAX_DRAWN:
        counts: dict[str, int] = {}
        for n in ns:
            counts[n.status] = counts.get(n.status, 0) + 1
        summary = ", ".join(f"{v} {html.escape(k)}" for k, v in sorted(counts.items()))
        return (f"<div class='emergent-wf-dag'><i>{len(ns)} steps (too many to draw; at most {MAX_DRAWN}): "
                f"{summary}</i></div>")
    pos = layout([n.key for n in ns], es)
    cols = max(c for c, _ in pos.values()) + 1
    rows = max(r for _, r in pos.values()) + 1
    width = PAD * 2 + cols * NODE_W + (cols - 1) * GAP_X
    height = PAD * 2 + rows * NODE_H + (rows - 1) * GAP_Y

    def xy(key: str) -> tuple[int, int]:
        c, r = pos[key]
        return PAD + c * (NODE_W + GAP_X), PAD + r * (NODE_H + GAP_Y)

    arrows = []
    for a, b in es:
        if a not in pos or b not in pos:
            continue
        (x1, y1), (x2, y2) = xy(a), xy(b)
        sx, sy, tx, ty = x1 + NODE_W, y1 + NODE_H // 2, x2, y2 + NODE_H // 2
        mid = (sx + tx) / 2
        arrows.append(f"<path class='emergent-wf-edge' data-edge='{html.escape(a)}->{html.escape(b)}' "
                      f"d='M{sx},{sy} C{mid},{sy} {mid},{ty} {tx - 2},{ty}' fill='none' stroke='#8c959f' "
                      f"stroke-width='1.2' marker-end='url(#emergent-wf-arrow)'/>")
    boxes = []
    for n in ns:
        x, y = xy(n.key)
        fill = STATE_COLOURS.get(n.status, "#8c959f")
        ink = _TEXT_ON.get(n.status, "#ffffff")
        boxes.append(f"<g class='emergent-wf-node' data-key='{html.escape(n.key)}' data-status='{html.escape(n.status)}'>"
                     f"<title>{html.escape(n.tip)}</title>"
                     f"<rect x='{x}' y='{y}' width='{NODE_W}' height='{NODE_H}' rx='6' fill='{fill}' stroke='#57606a' "
                     f"stroke-width='0.6'/><text x='{x + NODE_W // 2}' y='{y + 14}' text-anchor='middle' font-size='12' "
                     f"fill='{ink}'>{html.escape(_short(n.label))}</text><text x='{x + NODE_W // 2}' y='{y + 27}' "
                     f"text-anchor='middle' font-size='10' fill='{ink}'>{html.escape(n.status)}</text></g>")
    head = f"<div style='font-weight:bold;margin:2px 0'>{html.escape(title)}</div>" if title else ""
    present = [s for s in STATE_COLOURS if any(n.status == s for n in ns)]
    present += sorted({n.status for n in ns} - set(present))
    return (f"<div class='emergent-wf-dag'>{head}<svg xmlns='http://www.w3.org/2000/svg' width='{width}' "
            f"height='{height}' viewBox='0 0 {width} {height}' font-family='sans-serif'>"
            "<defs><marker id='emergent-wf-arrow' viewBox='0 0 10 10' refX='9' refY='5' markerWidth='7' "
            "markerHeight='7' orient='auto-start-reverse'><path d='M0,0 L10,5 L0,10 z' fill='#8c959f'/></marker></defs>"
            f"{''.join(arrows)}{''.join(boxes)}</svg><div>{legend_svg(present)}</div></div>")


def _when(t: Any) -> str:
    if isinstance(t, int | float) and t:
        return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))
    return "-" if not t else str(t)


def _cut(text: Any, n: int = 100) -> str:
    s = "" if text is None else str(text)
    return html.escape(s if len(s) <= n else s[: n - 1] + "…")


def run_label(run: Any) -> str:
    """One line for a run in the list: id, workflow, status, when it was created."""
    return (f"{_field(run, 'id')} · {_field(run, 'workflow')} · {_status(_field(run, 'status'))} · "
            f"{_when(_field(run, 'created_at'))}")


def steps_table(run: Any) -> str:
    """The run's steps as an HTML table (state coloured, errors shown whole on demand)."""
    rows = []
    for s in _field(run, "steps", default=[]) or []:
        status = _status(_field(s, "status"))
        err = _field(s, "error")
        err_html = "" if not err else (_cut(err) if len(str(err)) <= 100 else
                                       f"<details><summary>{_cut(err)}</summary><pre style='white-space:pre-wrap'>"
                                       f"{html.escape(str(err))}</pre></details>")
        rows.append(f"<tr><td><code>{html.escape(str(_field(s, 'key')))}</code></td><td>{_cut(_field(s, 'kind'))}</td>"
                    f"<td style='color:{STATE_COLOURS.get(status, '#24292f')}'>{html.escape(status)}</td>"
                    f"<td>{_field(s, 'attempt', default=0)}</td><td>{err_html}</td></tr>")
    if not rows:
        return "<i>no steps recorded yet</i>"
    return ("<table class='emergent-wf-steps' style='font-size:12px'><tr><th>step</th><th>kind</th><th>state</th>"
            f"<th>attempt</th><th>error</th></tr>{''.join(rows)}</table>")


def run_html(run: Any) -> str:
    """A run's header (workflow, state, principal, error), its DAG and its steps."""
    status = _status(_field(run, "status"))
    dag = run.dag() if hasattr(run, "dag") else ([], [])
    error = _field(run, "error")
    head = (f"<div><b>{html.escape(str(_field(run, 'workflow')))}</b> <code>{html.escape(str(_field(run, 'id')))}</code> "
            f"<span class='emergent-wf-status' style='color:{STATE_COLOURS.get(status, '#24292f')}'>{html.escape(status)}"
            f"</span> · by {_cut(_field(run, 'principal'))} · started {_when(_field(run, 'created_at'))}</div>")
    if error:
        head += f"<div style='color:#cf222e'>{_cut(error, 300)}</div>"
    return head + dag_svg(*dag) + steps_table(run)


class WorkflowRuns(widgets.VBox):
    """``WorkflowRuns(ws.workflows)`` in a notebook cell: recent runs (pick one) and the picked run's
    DAG coloured by state, its steps and errors. ``refresh()`` re-reads; ``select(run_id)`` shows a run.

    With ``principal=ws.principal`` it also has Pause, Resume and Cancel buttons for the selected run,
    acting as that principal (audited; resume runs in a background thread); without one it only shows."""

    def __init__(self, workflows: Any, *, limit: int = 20, run_id: str | None = None, principal: Any = None) -> None:
        self.workflows = workflows
        self.limit = limit
        self.principal = principal
        self.title = widgets.HTML("<b>Workflow runs</b>")
        self.runs_list = widgets.Select(options=[], rows=6, layout=widgets.Layout(width="auto", min_width="420px"))
        self.detail = widgets.HTML()
        self.message = widgets.HTML()
        auto = widgets.Layout(width="auto")
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", layout=auto)
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.buttons = {name: widgets.Button(description=name.capitalize(), icon=icon, layout=auto)
                        for name, icon in (("pause", "pause"), ("resume", "play"), ("cancel", "stop"))}
        for name, button in self.buttons.items():
            button.on_click(lambda _b, n=name: self.act(n))
        self._threads: list[threading.Thread] = []
        self.runs_list.observe(self._picked, names="value")
        controls = list(self.buttons.values()) if principal is not None else []
        super().__init__([widgets.HBox([self.title, self.refresh_button, *controls, self.message]), self.runs_list,
                          self.detail])
        self.add_class("emergent-workflow-runs")
        self.refresh(run_id)

    def act(self, what: str, *, wait: bool = False) -> None:
        """Pause, resume or cancel the selected run as the panel's principal; the outcome shows in the panel."""
        run_id = self.runs_list.value
        if self.principal is None or not run_id:
            self.message.value = "<i>nothing to act on (no principal, or no run selected)</i>"
            return

        def work() -> None:
            try:
                if what == "resume":
                    self.workflows.resume(run_id, principal=self.principal)
                else:
                    getattr(self.workflows, what)(run_id, by=self.principal)
                self.message.value = f"{html.escape(what)}: <code>{html.escape(run_id)}</code>"
            except Exception as exc:  # shown in the panel: a click must not fail silently
                self.message.value = f"<span style='color:#cf222e'>{_cut(getattr(exc, 'message', None) or exc, 300)}</span>"
            self.refresh()

        if what != "resume":
            work()
            return
        self.message.value = f"resuming <code>{html.escape(run_id)}</code>…"
        thread = threading.Thread(target=work, name=f"workflow-runs-{run_id}", daemon=True)
        self._threads.append(thread)
        thread.start()
        if wait:
            thread.join()

    def refresh(self, run_id: str | None = None) -> None:
        """Re-read the runs; keep (or pick ``run_id``, else the newest) the selected run and redraw it."""
        try:
            runs = list(self.workflows.runs(limit=self.limit))
        except Exception as exc:  # shown in the panel: a store that is down must not break the notebook
            self.message.value = f"<span style='color:#cf222e'>{_cut(getattr(exc, 'message', None) or exc, 300)}</span>"
            self._read_failed = True
            return
        if getattr(self, "_read_failed", False):  # the store is back: its error goes (an action's message stays)
            self.message.value, self._read_failed = "", False
        wanted = run_id or self.runs_list.value
        options = [(run_label(r), str(_field(r, "id"))) for r in runs]
        ids = [v for _, v in options]
        if wanted and wanted not in ids:
            try:
                extra = self.workflows.get(wanted)
                options.insert(0, (run_label(extra), wanted))
                ids.insert(0, wanted)
            except Exception:  # a run id that does not exist: show the newest instead
                wanted = None
        self.runs_list.unobserve(self._picked, names="value")
        self.runs_list.options = options
        self.runs_list.value = wanted if wanted in ids else (ids[0] if ids else None)
        self.runs_list.observe(self._picked, names="value")
        self._draw(self.runs_list.value)

    def select(self, run_id: str) -> None:
        """Show run ``run_id``."""
        self.refresh(run_id)

    def _picked(self, change: dict[str, Any]) -> None:
        self._draw(change["new"])

    def _draw(self, run_id: str | None) -> None:
        if not run_id:
            self.detail.value = "<i>no workflow runs yet: ws.workflows.run(spec, inputs, principal=ws.principal)</i>"
            return
        try:
            self.detail.value = run_html(self.workflows.get(run_id))
        except Exception as exc:  # shown in place of the run
            self.detail.value = f"<span style='color:#cf222e'>{_cut(getattr(exc, 'message', None) or exc, 300)}</span>"

    @property
    def svg(self) -> str:
        """The HTML (with its SVG) of the selected run, as shown."""
        return str(self.detail.value)
