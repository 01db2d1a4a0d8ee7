"""``AgentMonitor``: the agents of a workspace at a glance — each agent with its card (skills, the
tools policy lets it use) and its tasks counted by state, the tasks and their states (the bids,
who won by which rule), the recent messages on the bus, the votes with their tally, outcome,
dissent and the approval a vote without quorum waits on, and the conflicts resolved and why.

It reads ``ws.agents`` only (``ws.agents.monitor()`` or ``AgentMonitor(ws.agents)``) and never acts:
registering, delegating and voting happen in code, as a principal ``ws.principals`` issued.
**Refresh** re-reads; **Poll** re-reads every few seconds from a background thread until switched
off (or the widget closed). The rows come from :mod:`emergent.ui.agent_rows` (plain dicts, no
widgets): ``emergent agents`` prints the same rows, the dashboard's agents section shows them too.
"""

from __future__ import annotations

import html
import threading
import time
from collections import Counter
from typing import Any

import ipywidgets as widgets

from emergent.ui.agent_rows import (
    agent_rows,
    message_rows,
    resolution_rows,
    rows_html,
    task_rows,
    utc_when,
    vote_rows,
)

__all__ = ["AgentMonitor", "agent_rows", "message_rows", "resolution_rows", "rows_html", "task_rows", "vote_rows"]


# ---------------------------------------------------------------------- widget
class AgentMonitor(widgets.VBox):
    """``AgentMonitor(ws.agents)`` (or ``ws.agents.monitor()``): agents, tasks, messages, votes and
    conflict resolutions, each a table read from the service.

    ``refresh()`` re-reads it; ``poll(seconds)`` re-reads on a background thread until ``poll(None)``
    or ``close()``. Read-only: nothing here acts on the agents."""

    SECTIONS = ("agents", "tasks", "messages", "votes", "conflicts")
    TITLES = {"agents": "Agents", "tasks": "Tasks", "messages": "Recent messages", "votes": "Votes",
              "conflicts": "Conflicts"}
    EMPTY = {"agents": "no agents yet: ws.agents.register(name, skills=[...], by=ws.principal)",
             "tasks": "no tasks yet: ws.agents.submit(text, skills=[...], by=ws.principal)",
             "messages": "no messages on the bus yet", "votes": "no votes yet: ws.agents.vote(question, options, ...)",
             "conflicts": "no conflicts resolved yet: ws.agents.resolve(proposals, rule=..., by=...)"}
    #: the columns the widget shows (the rows hold more: ``emergent agents ... --json``)
    COLUMNS: dict[str, tuple[str, ...]] = {
        "agents": ("agent", "skills", "tools", "tasks", "description"),
        "tasks": ("task", "state", "agent", "text", "bids", "award", "by", "updated", "result"),
        "messages": ("at", "stream", "from", "type", "content"),
        "votes": ("question", "method", "status", "winner", "tally", "dissent", "approval", "explanation"),
        "conflicts": ("rule", "status", "winner", "proposals", "approval", "explanation")}

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
                "votes": vote_rows(self.agents, limit=self.limit),
                "conflicts": resolution_rows(self.agents, limit=self.limit)}

    def _section(self, key: str, rows: dict[str, list[dict[str, Any]]]) -> str:
        return rows_html(rows[key], empty=self.EMPTY[key], css=f"emergent-agents-{key}-table", columns=self.COLUMNS[key])

    def refresh(self) -> None:
        """Re-read the service and redraw; an error reading it is shown and the last view kept."""
        try:
            rows = self.read()
        except Exception as exc:  # shown in the widget: a refresh (or a poll) must not fail silently
            msg = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            self.message.value = f"<span class='emergent-agents-error' style='color:#cf222e'>{html.escape(msg)}</span>"
            return
        self.rows = rows
        for key in self.SECTIONS:
            self.bodies[key].value = self._section(key, rows)
        states = Counter(r["state"] for r in rows["tasks"])
        figures = [f"{len(rows['agents'])} agents", *(f"{n} {s}" for s, n in states.items()),
                   f"read {utc_when(time.time())}"]
        self.counts.value = f"<span style='color:#57606a'>{html.escape(' · '.join(figures))}</span>"
        self.message.value = ""

    def html(self) -> str:
        """The monitor as static HTML (what a front-end without widgets shows)."""
        rows = self.rows or self.read()
        parts = ["<div class='emergent-agent-monitor'><h3 style='margin:4px 0'>Agents</h3>"]
        parts += [f"<div><b>{self.TITLES[k]}</b>{self._section(k, rows)}</div>" for k in self.SECTIONS]
        return "".join(parts) + "</div>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        bundle = dict(super()._repr_mimebundle_(include=include, exclude=exclude) or {})
        if self.rows:  # what was last read; a front-end with widgets shows the live widget instead
            bundle["text/html"] = self.html()
        return bundle

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
