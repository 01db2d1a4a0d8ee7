"""``AgentMonitor``: the agents of a workspace at a glance — each agent with its card (skills, the
tools policy lets it use) and its tasks counted by state, the tasks and their states (who holds
each and by which rule it was awarded), the recent messages on the bus, and the votes with their
tally, outcome, dissent and the approval a vote without quorum waits on.

It reads ``ws.agents`` only (``ws.agents.monitor()`` or ``AgentMonitor(ws.agents)``) and never acts:
registering, delegating and voting happen in code, as a principal ``ws.principals`` issued.
**Refresh** re-reads; **Poll** re-reads every few seconds from a background thread until switched
off (or the widget closed). The row builders (``agent_rows``, ``task_rows``, ``message_rows``,
``vote_rows``) return plain dicts: ``emergent agents`` prints the same rows as tables.
"""

from __future__ import annotations

import html
import threading
import time
from collections import Counter
from typing import Any

import ipywidgets as widgets

TASK_STATES = ("submitted", "working", "input-required", "completed", "failed", "canceled")
_STATE_COLOUR = {"submitted": "#57606a", "working": "#0969da", "input-required": "#9a6700",
                 "completed": "#1a7f37", "failed": "#cf222e", "canceled": "#6e7781"}


# ---------------------------------------------------------------------- rows (plain data)
def _value(x: Any) -> Any:
    """An enum's value, anything else as it is."""
    return getattr(x, "value", x)


def _short(text: Any, n: int = 80) -> str:
    s = "" if text is None else " ".join(str(text).split())
    return s if len(s) <= n else s[: n - 1] + "…"


def _when(t: Any) -> str:
    if not isinstance(t, int | float) or not t:
        return "-" if t in (None, "") else str(t)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "Z"


def agent_rows(agents: Any) -> list[dict[str, Any]]:
    """One row per agent: its card, and its tasks counted by state (``completed 2, working 1``)."""
    counts: dict[str, Counter[str]] = {}
    for t in agents.tasks(limit=10_000):
        if t.agent:
            counts.setdefault(t.agent, Counter())[str(_value(t.state))] += 1
    rows = []
    for c in agents.cards():
        n = counts.get(c.name, Counter())
        rows.append({"agent": c.name, "principal": c.principal, "skills": list(c.skills), "tools": list(c.tools),
                     "tasks": {s: n[s] for s in TASK_STATES if n[s]}, "description": _short(c.description, 60)})
    return rows


def task_rows(agents: Any, *, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Tasks, newest first: state, the agent holding it, how it was awarded, and its result or error."""
    rows = []
    for t in agents.tasks(state=state, limit=limit):
        rows.append({"task": t.id, "state": str(_value(t.state)), "agent": t.agent or "-", "text": _short(t.text, 60),
                     "award": _short(t.rule, 60), "by": t.by, "updated": _when(t.updated_at),
                     "result": _short(t.error or t.result, 60)})
    return rows


def message_rows(agents: Any, *, limit: int = 50) -> list[dict[str, Any]]:
    """Bus messages, newest first: when, stream, sender (the principal that published it), kind, text."""
    rows = []
    for m in agents.messages(limit=limit):
        body = m.message if isinstance(m.message, dict) else {}
        kind = body.get("kind") or body.get("type") or "-"
        text = body.get("text") or {k: v for k, v in body.items() if k not in ("kind", "type")}
        rows.append({"at": _when(m.at), "stream": m.stream, "from": m.principal, "kind": kind,
                     "text": _short(text, 80)})
    return rows


def vote_rows(agents: Any, *, limit: int = 20) -> list[dict[str, Any]]:
    """Votes, newest first: question, method, tally, outcome (or "no quorum"), dissent, approval."""
    rows = []
    for v in agents.votes(limit=limit):
        rows.append({"vote": v.id, "question": _short(v.question, 60), "method": v.method,
                     "tally": dict(v.tally), "outcome": v.outcome or ("no quorum" if not v.quorum_met else "-"),
                     "dissent": [f"{d.voter}: {d.choice}" for d in v.dissent],
                     "approval": v.approval_id or "-"})
    return rows


# ---------------------------------------------------------------------- HTML
def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, list | tuple):
        return html.escape(", ".join(str(v) for v in value)) or "-"
    if isinstance(value, dict):
        return html.escape(", ".join(f"{k} {v}" for k, v in value.items())) or "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return html.escape(str(value))


def _state(value: str) -> str:
    colour = _STATE_COLOUR.get(value, "#000")
    return f"<span class='emergent-task-state' data-state='{html.escape(value)}' style='color:{colour}'>" \
           f"{html.escape(value)}</span>"


def rows_html(rows: list[dict[str, Any]], *, empty: str, css: str) -> str:
    """Rows as an HTML table (every value escaped; a task's state coloured), or ``empty`` in italics."""
    if not rows:
        return f"<div style='color:#57606a'><i>{html.escape(empty)}</i></div>"
    cols = list(rows[0])
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_state(r[c]) if c == 'state' else _cell(r[c])}</td>" for c in cols)
                   + "</tr>" for r in rows)
    return f"<table class='{css}' style='font-size:12px'><tr>{head}</tr>{body}</table>"


# ---------------------------------------------------------------------- widget
class AgentMonitor(widgets.VBox):
    """``AgentMonitor(ws.agents)`` (or ``ws.agents.monitor()``): agents, tasks, messages and votes.

    ``refresh()`` re-reads the service; ``poll(seconds)`` re-reads on a background thread until
    ``poll(None)`` or ``close()``. Read-only: nothing here acts on the agents."""

    SECTIONS = ("agents", "tasks", "messages", "votes")
    TITLES = {"agents": "Agents", "tasks": "Tasks", "messages": "Recent messages", "votes": "Votes"}
    EMPTY = {"agents": "no agents yet: ws.agents.register(name, skills=[...], by=ws.principal)",
             "tasks": "no tasks yet: ws.agents.submit(text, skills=[...], by=ws.principal)",
             "messages": "no messages yet", "votes": "no votes yet"}

    def __init__(self, agents: Any, *, limit: int = 20, poll_s: float | None = None) -> None:
        self.agents = agents
        self.limit = limit
        self.bodies = {key: widgets.HTML() for key in self.SECTIONS}
        self.counts = widgets.HTML()
        self.message = widgets.HTML()
        self.refresh_button = widgets.Button(description="Refresh", icon="refresh", layout=widgets.Layout(width="auto"))
        self.refresh_button.on_click(lambda _b: self.refresh())
        self.poll_toggle = widgets.ToggleButton(value=False, description="Poll", icon="clock-o",
                                                tooltip="re-read every few seconds", layout=widgets.Layout(width="auto"))
        self.poll_seconds = widgets.BoundedFloatText(value=poll_s or 5.0, min=0.5, max=3600.0, step=0.5,
                                                     description="every (s)", layout=widgets.Layout(width="160px"))
        self.poll_toggle.observe(lambda ch: self._toggled(bool(ch["new"])), names="value")
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self.rows: dict[str, list[dict[str, Any]]] = {}
        sections = []
        for key in self.SECTIONS:
            box = widgets.VBox([widgets.HTML(f"<b>{self.TITLES[key]}</b>"), self.bodies[key]])
            box.add_class(f"emergent-agents-{key}")
            sections.append(box)
        super().__init__([widgets.HBox([widgets.HTML("<h3 style='margin:4px 0'>Agents</h3>"), self.refresh_button,
                                        self.poll_toggle, self.poll_seconds, self.counts]),
                          *sections, self.message])
        self.add_class("emergent-agent-monitor")
        self.refresh()
        if poll_s:
            self.poll(poll_s)

    # ------------------------------------------------------------------ data
    def read(self) -> dict[str, list[dict[str, Any]]]:
        """Every section's rows, read from the service now."""
        return {"agents": agent_rows(self.agents), "tasks": task_rows(self.agents, limit=self.limit),
                "messages": message_rows(self.agents, limit=self.limit),
                "votes": vote_rows(self.agents, limit=self.limit)}

    def refresh(self) -> None:
        """Re-read the service and redraw; an error reading it is shown, the last view kept."""
        try:
            self.rows = self.read()
        except Exception as exc:  # shown in the widget: a refresh (or a poll) must not fail silently
            msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.message.value = f"<span style='color:#cf222e'>{html.escape(msg)}</span>"
            return
        for key in self.SECTIONS:
            self.bodies[key].value = rows_html(self.rows[key], empty=self.EMPTY[key], css=f"emergent-agents-{key}-table")
        states = Counter(r["state"] for r in self.rows["tasks"])
        self.counts.value = (f"<span style='color:#57606a'>{len(self.rows['agents'])} agents · "
                             + " · ".join(f"{n} {s}" for s, n in states.items()) + f" · read {_when(time.time())}</span>")
        self.message.value = ""

    def html(self) -> str:
        """The monitor as static HTML (what a front-end without widgets shows)."""
        rows = self.rows or self.read()
        parts = ["<div class='emergent-agent-monitor'><h3 style='margin:4px 0'>Agents</h3>"]
        for key in self.SECTIONS:
            parts.append(f"<div><b>{self.TITLES[key]}</b>"
                         f"{rows_html(rows[key], empty=self.EMPTY[key], css=f'emergent-agents-{key}-table')}</div>")
        return "".join(parts) + "</div>"

    # ------------------------------------------------------------------ polling
    def poll(self, seconds: float | None) -> None:
        """Re-read every ``seconds`` on a daemon thread (the **Poll** switch on); ``None`` stops it."""
        if seconds:
            self.poll_seconds.value = seconds
            if self.poll_toggle.value:
                self._run_poller(seconds)  # already on: restart at the new interval
            self.poll_toggle.value = True  # the switch's observer starts the thread
        else:
            self.poll_toggle.value = False
            self._run_poller(None)

    def _toggled(self, on: bool) -> None:
        self._run_poller(self.poll_seconds.value if on else None)

    def _run_poller(self, seconds: float | None) -> None:
        self._stop.set()
        if self._poller is not None:
            if self._poller is not threading.current_thread():
                self._poller.join(timeout=5)
            self._poller = None
        if not seconds:
            return
        self._stop = stop = threading.Event()

        def loop() -> None:
            while not stop.wait(seconds):
                self.refresh()

        self._poller = threading.Thread(target=loop, name="agent-monitor-poll", daemon=True)
        self._poller.start()

    @property
    def polling(self) -> bool:
        return self._poller is not None and self._poller.is_alive()

    def close(self) -> None:
        self.poll(None)
        super().close()
