"""``emergent agents``: list, tasks, messages, votes.

Read-only views of ``ws.agents`` (emergent.agents): the agents with their cards, the tasks and
their states, the messages on the bus, the votes with their tally and dissent. Acting (register,
submit, delegate, vote) is done from Python or a notebook, as a principal ``ws.principals`` issued.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


def _print(table: Any) -> None:
    from rich.console import Console

    Console().print(table)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """Agents with their cards: skills, the tools policy lets them use, and their tasks."""
    from emergent.ui.agents import agent_rows

    with workstation(home) as ws:
        rows = agent_rows(ws.agents)
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    _print(_table(rows, empty="no agents yet: ws.agents.register(name, skills=[...], by=ws.principal)"))


@app.command()
def tasks(state: str = typer.Option(None, "--state", help="submitted|working|input-required|completed|failed|canceled"),
          limit: int = typer.Option(50, help="at most this many, newest first"),
          as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """Tasks with their state, the agent that holds them and how they were awarded."""
    from emergent.ui.agents import task_rows

    with workstation(home) as ws:
        rows = task_rows(ws.agents, state=state, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    _print(_table(rows, empty="no tasks yet"))


@app.command()
def messages(limit: int = typer.Option(50, help="at most this many, newest first"),
             as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """Recent messages on the agents' bus: stream, sender, kind and text."""
    from emergent.ui.agents import message_rows

    with workstation(home) as ws:
        rows = message_rows(ws.agents, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    _print(_table(rows, empty="no messages yet"))


@app.command()
def votes(limit: int = typer.Option(20, help="at most this many, newest first"),
          as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """Votes: question, method, tally, outcome, dissent, and the approval a vote without quorum waits on."""
    from emergent.ui.agents import vote_rows

    with workstation(home) as ws:
        rows = vote_rows(ws.agents, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, default=str))
        return
    _print(_table(rows, empty="no votes yet"))


def _table(rows: list[dict[str, Any]], *, empty: str) -> Any:
    from rich.table import Table
    from rich.text import Text

    if not rows:
        return Text(empty, style="italic")
    table = Table(*rows[0].keys())
    for row in rows:
        table.add_row(*(Text(_cell(v)) for v in row.values()))  # Text: values are never read as markup
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}: {v}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)
