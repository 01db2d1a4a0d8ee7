"""``emergent agents``: list, tasks, messages, votes, conflicts (read), decide (a person settles
what the agents escalated) and work (a worker for the tasks awarded on the bus).

The views read ``ws.agents`` (emergent.agents) and print the rows the ``AgentMonitor`` widget
shows: the agents with their cards, the tasks and their states, the messages on the bus, the votes
with their tally and dissent, the conflicts resolved. Registering, submitting, delegating and
voting are done from Python or a notebook, as a principal ``ws.principals`` issued; ``decide``
acts as you (``ws.principal``), the person at the keyboard.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)

JSON = typer.Option(False, "--json", help="print the rows as one JSON list (every field)")
#: the columns a terminal shows (``--json`` has every field)
COLUMNS: dict[str, tuple[str, ...]] = {
    "agents": ("agent", "principal", "skills", "tools", "tasks"),
    "tasks": ("task", "state", "agent", "text", "bids", "by", "updated", "result"),
    "messages": ("at", "stream", "from", "type", "content"),
    "votes": ("vote", "question", "method", "status", "winner", "tally", "dissent", "approval"),
    "conflicts": ("resolution", "rule", "status", "winner", "proposals", "approval")}


@app.command("list")
def list_(as_json: bool = JSON, home: str = HOME) -> None:
    """Agents with their cards: skills, the tools the policy lets them use, their tasks by state."""
    from emergent.ui.agent_rows import agent_rows

    with workstation(home) as ws:
        rows = agent_rows(ws.agents)
    _show(rows, "agents", as_json, empty="no agents yet: ws.agents.register(name, skills=[...], by=ws.principal)")


@app.command()
def tasks(state: str = typer.Option(None, "--state", help="submitted|working|input-required|completed|failed|canceled"),
          limit: int = typer.Option(50, min=1, help="at most this many, newest first"),
          as_json: bool = JSON, home: str = HOME) -> None:
    """Tasks with their state, the agent holding each, the bids it won with, its answer or error."""
    from emergent.ui.agent_rows import task_rows

    with workstation(home) as ws:
        rows = task_rows(ws.agents, state=state, limit=limit)
    _show(rows, "tasks", as_json, empty=f"no {state} tasks" if state else "no tasks yet")


@app.command()
def messages(stream: str = typer.Option(None, "--stream", help="one stream (tasks, contract-net, votes, proposals)"),
             limit: int = typer.Option(50, min=1, help="at most this many, newest first"),
             as_json: bool = JSON, home: str = HOME) -> None:
    """Recent messages on the agents' bus: when, stream, sender (its principal), type, content."""
    from emergent.ui.agent_rows import message_rows

    with workstation(home) as ws:
        rows = message_rows(ws.agents, stream=stream, limit=limit)
        bus = ws.agents.bus.name
    empty = "no messages on the bus"
    if bus == "memory":  # an in-process bus: another process's messages are not here (their audit entries are)
        empty += (" of this process: the in-process bus keeps its messages in the process that sent them; "
                  "EMERGENT_AGENT_BUS=redis keeps them in Redis Streams (every message is in the audit trail: "
                  "emergent audit tail)")
    _show(rows, "messages", as_json, empty=empty)


@app.command()
def votes(limit: int = typer.Option(20, min=1, help="at most this many, newest first"),
          as_json: bool = JSON, home: str = HOME) -> None:
    """Votes: question, method, status, winner, tally, dissent, and the approval a vote without quorum waits on."""
    from emergent.ui.agent_rows import vote_rows

    with workstation(home) as ws:
        rows = vote_rows(ws.agents, limit=limit)
    _show(rows, "votes", as_json, empty="no votes yet")


@app.command()
def conflicts(limit: int = typer.Option(20, min=1, help="at most this many, newest first"),
              as_json: bool = JSON, home: str = HOME) -> None:
    """Conflicting proposals resolved: the rule, the winner, the proposals, the approval of an escalation."""
    from emergent.ui.agent_rows import resolution_rows

    with workstation(home) as ws:
        rows = resolution_rows(ws.agents, limit=limit)
    _show(rows, "conflicts", as_json, empty="no conflicts resolved yet")


@app.command()
def decide(item: str = typer.Argument(..., help="the id of an escalated vote or conflict resolution"),
           choice: str = typer.Argument(..., help="a vote's option, or the agent whose proposal wins"),
           reason: str = typer.Option("", help="why (recorded in the audit trail)"), home: str = HOME) -> None:
    """Settle a vote or a conflict the agents escalated to a person, as yourself."""
    from emergent.errors import NotFoundError

    with workstation(home) as ws:
        try:
            v = ws.agents.decide_vote(item, choice, by=ws.principal, reason=reason)
            typer.echo(f"vote {v.id} [{v.status}]: {v.explanation}")
            return
        except NotFoundError:
            pass  # not a vote: a conflict resolution then (its own NotFoundError names both)
        try:
            r = ws.agents.decide_conflict(item, choice, by=ws.principal, reason=reason)
        except NotFoundError:
            raise NotFoundError(f"no vote or conflict resolution {item!r}",
                                hint="emergent agents votes / emergent agents conflicts list them") from None
        typer.echo(f"resolution {r.id} [{r.status}]: {r.explanation}")


@app.command()
def work(once: bool = typer.Option(False, "--once", help="handle what is waiting now, then exit"),
         block_ms: int = typer.Option(1000, "--block-ms", min=0, max=1000,
                                      help="how long one read of the bus waits for a message (ms)"),
         home: str = HOME) -> None:
    """Run a worker: take the tasks awarded on the bus (other processes' too, on the Redis bus) and
    run each as its agent; what a dead worker left unacknowledged is claimed after a while, and
    acknowledged history past its retention is trimmed. Ctrl-C (or SIGTERM) stops it after the
    message in hand (a second Ctrl-C interrupts at once; a task cut short stays ``working`` until
    its lease runs out, then another worker takes it over)."""
    import signal
    import threading

    stop = threading.Event()

    def _stop(signum: int, _frame: Any) -> None:
        if stop.is_set():  # the second time: now
            raise KeyboardInterrupt
        stop.set()

    handled = 0
    with workstation(home) as ws:
        agents = ws.agents
        previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            if agents.bus.name == "memory":
                typer.echo("note: the in-process bus sees only this process's messages; "
                           "EMERGENT_AGENT_BUS=redis shares tasks between processes", err=True)
            typer.echo(f"worker {agents.consumer} on the {agents.bus.name} bus" + (" (once)" if once else ""))
            while not stop.is_set():
                n = agents.work(block_ms=block_ms, claim=True if once else None)
                handled += n
                if n:
                    typer.echo(f"handled {n} message(s)")
                if once:
                    break
        finally:
            for s, h in previous.items():
                signal.signal(s, h)
        if stop.is_set():
            typer.echo("stopped")
        typer.echo(f"{handled} message(s) handled, {agents.handled} task(s) run")


def _show(rows: list[dict[str, Any]], kind: str, as_json: bool, *, empty: str) -> None:
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console()
    if not rows:
        console.print(Text(empty, style="italic"))
        return
    table = Table(*COLUMNS[kind])
    for row in rows:
        table.add_row(*(Text(_cell(row.get(c))) for c in COLUMNS[kind]))  # Text: a value is never read as markup
    console.print(table)


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, list | tuple):
        return f"{len(value)} (--json lists them)" if len(value) > 8 else (", ".join(str(v) for v in value) or "-")
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    text = str(value)
    return text if len(text) <= 200 else text[:199] + "…"
