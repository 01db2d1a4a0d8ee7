"""The agents' surfaces as plain data: the rows ``AgentMonitor`` (emergent.ui.agents), ``emergent
agents`` and the dashboard show, and those rows as HTML. No widgets here: the CLI and the
dashboard's static HTML use it without the ``jupyter`` extra."""

from __future__ import annotations

import html
import time
from collections import Counter
from typing import Any

from emergent.agents.card import TASK_STATES

_STATE_COLOUR = {"submitted": "#57606a", "working": "#0969da", "input-required": "#9a6700",
                 "completed": "#1a7f37", "failed": "#cf222e", "canceled": "#6e7781"}


# ---------------------------------------------------------------------- rows (plain data)
def utc_when(t: Any) -> str:
    if not isinstance(t, int | float) or not t:
        return "-" if t in (None, "") else str(t)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(t)) + "Z"


def _message_time(message_id: str) -> float | None:
    """When a bus message was published: its id is ``<milliseconds>-<sequence>`` on both buses."""
    head = str(message_id).split("-", 1)[0]
    return int(head) / 1000 if head.isdigit() else None


def _task_counts(agents: Any) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {}
    for t in agents.tasks(limit=10_000):
        if t.assignee:
            counts.setdefault(t.assignee, Counter())[t.state] += 1
    return counts


def agent_rows(agents: Any) -> list[dict[str, Any]]:
    """One row per agent: its card (skills, the tools policy lets it use) and its tasks by state."""
    counts = _task_counts(agents)
    rows = []
    for c in agents.cards():
        n = counts.get(c.name, Counter())
        rows.append({"agent": c.name, "principal": c.principal, "skills": list(c.skills), "tools": list(c.tools),
                     "tasks": {s: n[s] for s in TASK_STATES if n[s]}, "description": c.description})
    return rows


def dashboard_rows(agents: Any) -> list[dict[str, Any]]:
    """The dashboard's agents section: name, skills, tasks by state. Cheap:
    the cards are read without their tools (listing them opens each agent's assistant)."""
    counts = _task_counts(agents)
    rows = []
    for c in agents.cards(tools=False):
        n = counts.get(c.name, Counter())
        rows.append({"agent": c.name, "skills": ", ".join(c.skills),
                     "tasks": ", ".join(f"{n[s]} {s}" for s in TASK_STATES if n[s]) or "none"})
    return rows


def task_rows(agents: Any, *, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Tasks, newest first: state, the agent holding it, the bids and the award, its answer or error."""
    rows = []
    for t in agents.tasks(state=state, limit=limit):
        bids = [f"{b['agent']} {float(b['score']):.3f}" for b in t.bids]
        rows.append({"task": t.id, "state": t.state, "agent": t.assignee, "text": t.text, "skills": list(t.skills),
                     "bids": bids, "award": t.award, "by": t.delegated_by or t.submitted_by,
                     "approval": t.approval_id, "updated": utc_when(t.updated_at),
                     "result": t.error if t.state != "completed" and t.error else t.answer})
    return rows


def message_rows(agents: Any, *, stream: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
    """Bus messages, newest first: when, stream, sender (the principal the bus stamped), type, content."""
    rows = []
    for m in reversed(agents.messages(stream, limit=limit)):
        body = dict(m.body) if isinstance(m.body, dict) else {"body": m.body}
        kind = body.pop("type", None)
        rows.append({"id": m.id, "at": utc_when(_message_time(m.id)), "stream": m.stream, "from": m.sender,
                     "type": kind, "content": body})
    return rows


def vote_rows(agents: Any, *, limit: int = 20) -> list[dict[str, Any]]:
    """Votes, newest first: question, method, status, winner, tally, dissent, the approval it escalated to."""
    rows = []
    for v in agents.votes(limit=limit):
        rows.append({"vote": v.id, "question": v.question, "method": v.method + (f" (quorum {v.quorum:g})"
                                                                                  if v.quorum is not None else ""),
                     "status": v.status, "winner": v.winner, "tally": {o: f"{n:g}" for o, n in v.tally.items()},
                     "dissent": [f"{d.voter} → {d.choice}" + (f" ({d.reason})" if d.reason else "") for d in v.dissent],
                     "approval": v.approval_id, "decided by": v.decided_by, "explanation": v.explanation})
    return rows


def resolution_rows(agents: Any, *, limit: int = 20) -> list[dict[str, Any]]:
    """Conflict resolutions, newest first: the rule, the status, the winning proposal and why."""
    rows = []
    for r in agents.resolutions(limit=limit):
        rows.append({"resolution": r.id, "rule": r.rule, "status": r.status,
                     "winner": f"{r.winner.agent}: {r.winner.proposal}" if r.winner else None,
                     "proposals": [f"{p.agent}: {p.proposal}" for p in r.proposals], "approval": r.approval_id,
                     "explanation": r.explanation})
    return rows


# ---------------------------------------------------------------------- HTML
_FOLD = 120  # longer values are folded behind their start (<details>), never cut


def _text(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k} {v}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _cell(value: Any) -> str:
    """A value as escaped HTML: a long one folded behind its first words, a long list behind its count."""
    text = _text(value)
    if len(text) <= _FOLD:
        return html.escape(text)
    head = f"{len(value)} items: {text[:60]}…" if isinstance(value, list | tuple) else text[:_FOLD - 3] + "…"
    return (f"<details><summary>{html.escape(head)}</summary>"
            f"<div style='white-space:pre-wrap;max-width:60em'>{html.escape(text)}</div></details>")


def _state(value: str) -> str:
    colour = _STATE_COLOUR.get(value, "#000")
    return (f"<span class='emergent-task-state' data-state='{html.escape(value)}' style='color:{colour}'>"
            f"{html.escape(value)}</span>")


def rows_html(rows: list[dict[str, Any]], *, empty: str, css: str, columns: tuple[str, ...] | None = None) -> str:
    """Rows as an HTML table (every value escaped; a task's state coloured), or ``empty`` in italics."""
    if not rows:
        return f"<div style='color:#57606a'><i>{html.escape(empty)}</i></div>"
    cols = [c for c in (columns or tuple(rows[0])) if c in rows[0]]
    head = "".join(f"<th style='text-align:left'>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{_state(r[c]) if c == 'state' else _cell(r[c])}</td>" for c in cols)
                   + "</tr>" for r in rows)
    return f"<table class='{css}' style='font-size:12px'><tr>{head}</tr>{body}</table>"
