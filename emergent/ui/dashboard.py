"""``Dashboard``: the workstation at a glance — memory, pending approvals, recent tool calls, jobs,
workflow runs, agents and the assistant's last runs — each section with a button that opens its panel.

The dashboard is built from narrow callables (each returns plain data: a dict of figures or a
list of row dicts) and panel factories (each returns a widget); :meth:`Dashboard.of` picks them
from a Workstation, and nothing else here touches one. Reading is lazy and each section fails
alone: a store that is down shows its error in its section, the others still show.

``html()`` (also ``_repr_html_``) is static HTML: it needs no widgets and imports nothing heavy.
``widget()`` adds the buttons; a panel (``ApprovalsInbox``, ``JobsPanel``, ``MemoryStats``,
``ToolMarketplace``, ``WorkflowRuns``, ``AgentMonitor``, ``Chat``) is imported and built only when its button is clicked.
``_repr_mimebundle_`` offers both: a front-end with widgets shows the buttons, one without shows
the HTML.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    import ipywidgets as widgets

    from emergent.workstation import Workstation

Reader = Callable[[], Any]
Factory = Callable[[], Any]


@dataclass(frozen=True)
class Section:
    key: str  # "memory", "approvals", "tools", "jobs", "workflows", "assistant"
    title: str
    read: Reader | None  # -> dict (figures) or list[dict] (rows, newest first)
    panel: Factory | None  # -> the widget its button opens
    open_hint: str  # how to open the panel from code (shown in the static HTML)
    empty: str = "none"


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _when(t: Any) -> str:
    if not isinstance(t, int | float) or not t:
        return "-" if t in (None, "") else str(t)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t))


def _cell(key: str, value: Any) -> str:
    if key in ("at", "created", "next run", "started") and isinstance(value, int | float):
        return _esc(_when(value))
    if isinstance(value, float):
        return f"{value:.3g}"
    text = "" if value is None else str(value)
    return _esc(text if len(text) <= 120 else text[:119] + "…")


def render_section(section: Section, data: Any, error: BaseException | None = None, limit: int = 8) -> str:
    """One section's body as HTML: figures as a line, rows as a table, an error as an error."""
    if error is not None:
        msg = getattr(error, "message", None) or str(error) or type(error).__name__
        return f"<div class='emergent-dash-error' style='color:#cf222e'>{_esc(msg)}</div>"
    if isinstance(data, dict):
        return ("<div class='emergent-dash-figures'>"
                + " &middot; ".join(f"<b>{_cell(k, v)}</b> {_esc(k)}" for k, v in data.items()) + "</div>")
    rows = list(data or [])
    if not rows:
        return f"<div style='color:#57606a'><i>{_esc(section.empty)}</i></div>"
    cols = list(rows[0])
    head = "".join(f"<th style='text-align:left'>{_esc(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c, r.get(c))}</td>" for c in cols) + "</tr>" for r in rows[:limit])
    more = f"<div style='color:#57606a'>… {len(rows) - limit} more</div>" if len(rows) > limit else ""
    return f"<table class='emergent-dash-table' style='font-size:12px'><tr>{head}</tr>{body}</table>{more}"


def workflow_rows(workflows: Any, limit: int) -> list[dict[str, Any]]:
    """The latest workflow runs as dashboard rows: state, steps done (completed or skipped) of all."""
    out = []
    for r in workflows.runs(limit=limit):
        done = sum(1 for s in r.steps if s.status in ("completed", "skipped"))
        out.append({"run": r.id, "workflow": r.workflow, "status": r.status, "steps": f"{done}/{len(r.steps)}",
                    "started": r.created_at, "error": r.error or ""})
    return out


class Dashboard:
    """``Dashboard(memory=..., approvals=..., tool_calls=..., jobs=..., runs=..., panels={...})``: each
    reader a callable returning a dict of figures or a list of row dicts; each panel a callable
    returning the widget its section's button opens. ``Dashboard.of(ws)`` wires a Workstation."""

    TITLES = {"memory": "Memory", "approvals": "Pending approvals", "tools": "Recent tool calls",
              "jobs": "Jobs", "workflows": "Workflow runs", "agents": "Agents",
              "assistant": "Assistant: last runs"}
    EMPTY = {"approvals": "nothing waits for approval", "tools": "no tool calls yet",
             "jobs": "no jobs yet: ws.jobs.add(name, notebook, schedule=...)",
             "workflows": "no workflow runs yet: ws.workflows.run(spec_or_template, inputs, principal=ws.principal)",
             "agents": "no agents yet: ws.agents.register(name, skills=[...], by=ws.principal)",
             "assistant": "no runs yet: ask with %ask QUESTION or ws.chat()"}
    HINTS = {"memory": "MemoryStats(ws.memory)", "approvals": "ApprovalsInbox(ws.autonomy, by=ws.principal, tools=ws.tools)",
             "tools": "ToolMarketplace(ws.tools, principal=ws.principal)", "jobs": "JobsPanel(ws.jobs, principal=ws.principal)",
             "workflows": "WorkflowRuns(ws.workflows, principal=ws.principal)", "agents": "ws.agents.monitor()",
             "assistant": "Chat(ws.assistant(), principal=ws.principal)"}

    def __init__(self, *, memory: Reader | None = None, approvals: Reader | None = None,
                 tool_calls: Reader | None = None, jobs: Reader | None = None, runs: Reader | None = None,
                 workflows: Reader | None = None, agents: Reader | None = None, panels: dict[str, Factory] | None = None,
                 title: str = "Emergent workstation") -> None:
        panels = panels or {}
        readers = {"memory": memory, "approvals": approvals, "tools": tool_calls, "jobs": jobs, "workflows": workflows,
                   "agents": agents, "assistant": runs}
        self.title = title
        self.sections = [Section(k, self.TITLES[k], r, panels.get(k), self.HINTS[k], self.EMPTY.get(k, "none"))
                         for k, r in readers.items() if r is not None or k in panels]
        self._widget: Any = None

    # ------------------------------------------------------------------ data
    def read(self) -> dict[str, tuple[Any, BaseException | None]]:
        """Every section's data (or the error reading it raised), by key."""
        out: dict[str, tuple[Any, BaseException | None]] = {}
        for s in self.sections:
            if s.read is None:
                out[s.key] = (None, None)
                continue
            try:
                out[s.key] = (s.read(), None)
            except Exception as exc:  # one section that fails never hides the others
                out[s.key] = (None, exc)
        return out

    # ------------------------------------------------------------------ static HTML
    def html(self, data: dict[str, tuple[Any, BaseException | None]] | None = None) -> str:
        data = self.read() if data is None else data
        parts = [f"<div class='emergent-dashboard'><h3 style='margin:4px 0'>{_esc(self.title)}</h3>"]
        for s in self.sections:
            value, error = data[s.key]
            body = render_section(s, value, error) if s.read is not None else ""
            parts.append(f"<div class='emergent-dash-section' data-section='{s.key}' style='margin:6px 0'>"
                         f"<b>{_esc(s.title)}</b> <span style='color:#57606a;font-size:11px'>open: "
                         f"<code>{_esc(s.open_hint)}</code></span>{body}</div>")
        parts.append("</div>")
        return "".join(parts)

    def _repr_html_(self) -> str:
        return self.html()

    def text(self, data: dict[str, tuple[Any, BaseException | None]] | None = None) -> str:
        data = self.read() if data is None else data
        lines = [self.title]
        for s in self.sections:
            value, error = data[s.key]
            if error is not None:
                lines.append(f"{s.title}: error: {getattr(error, 'message', None) or error}")
            elif isinstance(value, dict):
                lines.append(f"{s.title}: " + ", ".join(f"{v} {k}" for k, v in value.items()))
            elif s.read is not None:
                lines.append(f"{s.title}: {len(value or [])}")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    # ------------------------------------------------------------------ widget
    def widget(self, data: dict[str, tuple[Any, BaseException | None]] | None = None) -> widgets.VBox:
        """The dashboard with an **Open** button per section (the panel shows below) and **Refresh**."""
        import ipywidgets as widgets

        self.bodies: dict[str, widgets.HTML] = {}
        self.buttons: dict[str, widgets.Button] = {}
        self.panel_area = widgets.VBox()
        self.panel_title = widgets.HTML()
        self.opened: Any = None
        rows = []
        for s in self.sections:
            body = self.bodies[s.key] = widgets.HTML()
            head: list[Any] = [widgets.HTML(f"<b>{_esc(s.title)}</b>")]
            if s.panel is not None:
                b = self.buttons[s.key] = widgets.Button(description="Open", icon="external-link",
                                                         tooltip=f"open {s.open_hint}",
                                                         layout=widgets.Layout(width="auto"))
                b.add_class(f"emergent-dash-open-{s.key}")
                b.on_click(lambda _b, key=s.key: self.open(key))
                head.append(b)
            box = widgets.VBox([widgets.HBox(head), body])
            box.add_class("emergent-dash-section")
            rows.append(box)
        refresh = widgets.Button(description="Refresh", icon="refresh", layout=widgets.Layout(width="auto"))
        refresh.on_click(lambda _b: self.refresh())
        self._widget = widgets.VBox([widgets.HBox([widgets.HTML(f"<h3 style='margin:4px 0'>{_esc(self.title)}</h3>"),
                                                   refresh]), *rows, self.panel_title, self.panel_area])
        self._widget.add_class("emergent-dashboard")
        self.refresh(data)
        return self._widget

    def refresh(self, data: dict[str, tuple[Any, BaseException | None]] | None = None) -> None:
        data = self.read() if data is None else data
        for s in self.sections:
            if s.key in getattr(self, "bodies", {}):
                value, error = data[s.key]
                self.bodies[s.key].value = render_section(s, value, error) if s.read is not None else ""

    def open(self, key: str) -> Any:
        """Open section ``key``'s panel below the dashboard (built now, on first use); returns it."""
        import ipywidgets as widgets

        section = next(s for s in self.sections if s.key == key)
        if self._widget is None:
            self.widget()
        try:
            panel = section.panel() if section.panel is not None else None
        except Exception as exc:  # shown where the panel would be
            msg = getattr(exc, "message", None) or str(exc)
            self.panel_title.value = f"<b>{_esc(section.title)}</b>"
            self.panel_area.children = (widgets.HTML(f"<span style='color:#cf222e'>{_esc(msg)}</span>"),)
            return None
        self.opened = panel
        self.panel_title.value = f"<b>{_esc(section.title)}</b> <code style='font-size:11px'>{_esc(section.open_hint)}</code>"
        self.panel_area.children = (panel,) if panel is not None else ()
        return panel

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        data = self.read()
        bundle = dict(self.widget(data)._repr_mimebundle_(include=include, exclude=exclude) or {})
        bundle["text/html"] = self.html(data)
        bundle["text/plain"] = self.text(data)
        return bundle

    # ------------------------------------------------------------------ wiring
    @classmethod
    def of(cls, ws: Workstation, *, limit: int = 8) -> Dashboard:
        """The dashboard of ``ws``: its services read as plain data, its panels as factories."""

        def memory() -> dict[str, Any]:
            mem = ws.memory
            return {"long-term memories": mem.ltm.count(), "short-term items": mem.stm.health().get("items")}

        def approvals() -> list[dict[str, Any]]:
            return [{"id": a.id, "tool": a.tool, "requester": a.actor, "created": a.created_at, "reason": a.reason}
                    for a in ws.autonomy.approvals.list("pending")]

        def tool_calls() -> list[dict[str, Any]]:
            return [{"at": r["at"], "tool": r["tool"], "actor": r["actor"], "outcome": r["outcome"],
                     "ms": r["latency_ms"]} for r in ws.tools.telemetry.rows(limit=limit)]

        def jobs() -> list[dict[str, Any]]:
            return [{"job": j.name, "schedule": j.spec.schedule or "on demand",
                     "state": "paused" if j.paused else ("running" if j.lease_owner else "active"),
                     "next run": None if j.paused else j.next_run_at} for j in ws.jobs.list()]

        def workflows() -> list[dict[str, Any]]:
            return workflow_rows(ws.workflows, limit)

        def agents() -> list[dict[str, Any]]:
            from emergent.ui.agent_rows import dashboard_rows

            return dashboard_rows(ws.agents)

        def runs() -> list[dict[str, Any]]:
            from emergent.errors import PrincipalError

            try:
                ws.principals.agent("assistant")
            except PrincipalError:
                return []  # no assistant yet: showing the dashboard never creates one
            out = []
            for r in ws.assistant().runs(limit=limit):
                out.append({"run": r.run_id, "question": r.question, "status": r.status,
                            "mode": r.mode, "answer": (r.answer or "").replace("\n", " ")[:100],
                            "waits on": r.pending_approval or ""})
            return out

        return cls(memory=memory, approvals=approvals, tool_calls=tool_calls, jobs=jobs, runs=runs,
                   workflows=workflows, agents=agents, panels=_panels(ws, limit),
                   title=f"Emergent workstation · {ws.path}")


def _panels(ws: Workstation, limit: int) -> dict[str, Factory]:
    """Each section's panel as a factory: imported and built only when its button is clicked."""

    def memory() -> Any:
        from emergent.ui.memory_stats import MemoryStats

        return MemoryStats(ws.memory)

    def approvals() -> Any:
        from emergent.ui.approvals import ApprovalsInbox

        return ApprovalsInbox(ws.autonomy, by=ws.principal, tools=ws.tools)

    def tools() -> Any:
        from emergent.ui.marketplace import ToolMarketplace

        return ToolMarketplace(ws.tools, principal=ws.principal)

    def jobs() -> Any:
        from emergent.ui.jobs_panel import JobsPanel

        return JobsPanel(ws.jobs, principal=ws.principal)

    def workflows() -> Any:
        from emergent.ui.workflows import WorkflowRuns

        return WorkflowRuns(ws.workflows, limit=limit * 2, principal=ws.principal)

    def agents() -> Any:
        from emergent.ui.agents import AgentMonitor

        return AgentMonitor(ws.agents)

    def chat() -> Any:
        from emergent.ui.chat import Chat

        return Chat(ws.assistant(), principal=ws.principal)

    return {"memory": memory, "approvals": approvals, "tools": tools, "jobs": jobs, "workflows": workflows,
            "agents": agents, "assistant": chat}
