"""``emergent policy``: the permission matrix, thresholds, overrides, pause and suspension."""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)
BY = typer.Option(f"user:{os.environ.get('USER', 'local')}", help="who makes the change")


@app.command("list")
def list_(home: str = HOME) -> None:
    """List the rules."""
    with workstation(home) as ws:
        for r in ws.autonomy.rules():
            typer.echo(r.describe())


@app.command()
def add(subject: str, tool: str, effect: str, resource: str = typer.Option("*"),
        side_effects: str = typer.Option(None, help="comma list: read,write,external,destructive"),
        min_cost: float = typer.Option(None), max_cost: float = typer.Option(None), note: str = typer.Option(""),
        by: str = BY, home: str = HOME) -> None:
    """Add a rule: SUBJECT (agent:x, role:y, user:z, *) × TOOL pattern → allow|ask|deny."""
    with workstation(home) as ws:
        rule = ws.autonomy.add_rule(subject, tool, effect, resource=resource, side_effects=side_effects,
                                    min_cost=min_cost, max_cost=max_cost, note=note or None, by=by)
        typer.echo(rule.describe())


@app.command()
def remove(rule_id: str, by: str = BY, home: str = HOME) -> None:
    """Remove a rule by id."""
    with workstation(home) as ws:
        ws.autonomy.remove_rule(rule_id, by=by)
        typer.echo(f"removed {rule_id}")


@app.command("import")
def import_(path: Path, replace: bool = typer.Option(False, help="drop existing rules first"), by: str = BY,
            home: str = HOME) -> None:
    """Load rules (and defaults, thresholds, require_isolation) from YAML."""
    with workstation(home) as ws:
        n = ws.autonomy.import_yaml(path.read_text("utf-8"), replace=replace, by=by)
        typer.echo(f"imported {n} rules")


@app.command()
def export(path: Path = typer.Argument(None), home: str = HOME) -> None:
    """Write the policy as YAML (to PATH or stdout)."""
    with workstation(home) as ws:
        text = ws.autonomy.export_yaml()
    if path is None:
        typer.echo(text)
    else:
        path.write_text(text, "utf-8")


@app.command()
def explain(actor: str, tool: str, side_effect: str = typer.Option(None, help="default: the tool's own level"),
            resource: str = typer.Option(""), cost: float = typer.Option(0.0), roles: str = typer.Option(""),
            confidence: float = typer.Option(None), home: str = HOME) -> None:
    """Which decision ACTOR gets for TOOL, and which rule won."""
    with workstation(home) as ws:
        level = side_effect
        if level is None:
            try:
                level = ws.tools.resolve(tool).side_effect.value
            except Exception:
                level = "read"
        d = ws.autonomy.explain(actor, tool.partition("@")[0], side_effect=level, resource=resource, cost=cost,
                                roles=[r for r in roles.split(",") if r], confidence=confidence)
        typer.echo(json.dumps({"effect": d.effect, "source": d.source, "rule": d.rule_id, "reason": d.reason}))


@app.command()
def threshold(level: str, value: float, by: str = BY, home: str = HOME) -> None:
    """Set the confidence an action of LEVEL needs to run without asking."""
    with workstation(home) as ws:
        ws.autonomy.set_threshold(level, value, by=by)


@app.command()
def pause(reason: str = typer.Option("paused from the CLI"), by: str = BY, home: str = HOME) -> None:
    """Pause autonomy: every non-read action by agents is refused until `resume`."""
    with workstation(home) as ws:
        ws.autonomy.pause(by=by, reason=reason)
        typer.echo("autonomy paused")


@app.command()
def resume(by: str = BY, home: str = HOME) -> None:
    """Lift the global pause."""
    with workstation(home) as ws:
        ws.autonomy.resume(by=by)
        typer.echo("autonomy resumed")


@app.command()
def suspend(agent: str, reason: str = typer.Option("suspended from the CLI"), by: str = BY,
            home: str = HOME) -> None:
    """Suspend one agent: its non-read actions are refused."""
    with workstation(home) as ws:
        ws.autonomy.suspend(agent, by=by, reason=reason)
        typer.echo(f"{agent} suspended")


@app.command()
def unsuspend(agent: str, by: str = BY, home: str = HOME) -> None:
    with workstation(home) as ws:
        ws.autonomy.unsuspend(agent, by=by)
        typer.echo(f"{agent} unsuspended")


@app.command()
def override(subject: str, tool: str, effect: str, reason: str = typer.Option(...),
             resource: str = typer.Option("*"), ttl: float = typer.Option(None, help="seconds it lasts"),
             by: str = BY, home: str = HOME) -> None:
    """A human's decision that beats the matrix (optionally for TTL seconds)."""
    with workstation(home) as ws:
        typer.echo(ws.autonomy.override(subject, tool, effect, resource=resource, ttl=ttl, by=by, reason=reason))


@app.command()
def status(home: str = HOME) -> None:
    """Pause switch, suspensions, overrides, thresholds and the number of rules."""
    with workstation(home) as ws:
        a = ws.autonomy
        snap = a.snapshot()
        typer.echo(json.dumps({"paused": snap.paused, "suspended": snap.suspended, "overrides": a.overrides(),
                               "thresholds": snap.thresholds, "defaults": snap.matrix.defaults,
                               "require_isolation": snap.require_isolation, "rules": len(snap.matrix)},
                              indent=2, default=str))
