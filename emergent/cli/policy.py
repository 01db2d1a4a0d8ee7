"""``emergent policy``: the permission matrix, thresholds, overrides, pause and suspension.

Every change is made by the OS user running the command (``ws.principal``, a human) and written
to the audit trail before it takes effect; ``explain`` diagnoses what a principal would get.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


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
        home: str = HOME) -> None:
    """Add a rule: SUBJECT (agent:x, service:x, human:x, role:y, *; globs allowed) × TOOL pattern → allow|ask|deny."""
    with workstation(home) as ws:
        rule = ws.autonomy.add_rule(subject, tool, effect, resource=resource, side_effects=side_effects,
                                    min_cost=min_cost, max_cost=max_cost, note=note or None, by=ws.principal)
        typer.echo(rule.describe())


@app.command()
def remove(rule_id: str, home: str = HOME) -> None:
    """Remove a rule by id."""
    with workstation(home) as ws:
        ws.autonomy.remove_rule(rule_id, by=ws.principal)
        typer.echo(f"removed {rule_id}")


@app.command("import")
def import_(path: Path, replace: bool = typer.Option(False, help="drop existing rules first"), home: str = HOME) -> None:
    """Load rules (and defaults, thresholds, require_isolation) from YAML."""
    with workstation(home) as ws:
        n = ws.autonomy.import_yaml(path.read_text("utf-8"), replace=replace, by=ws.principal)
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
def explain(principal: str = typer.Argument(..., metavar="KEY", help="a principal key: agent:NAME, service:NAME, "
                                                                   "human:NAME"),
            tool: str = typer.Argument(...),
            side_effect: str = typer.Option(None, help="default: the tool's own level"),
            resource: str = typer.Option(""), cost: float = typer.Option(0.0),
            confidence: float = typer.Option(None, help="0..1; counts only for agents (missing: 0)"),
            network: bool = typer.Option(None, help="default: whether the tool reaches the network"),
            home: str = HOME) -> None:
    """Which decision the principal KEY would get for TOOL, and which rule won (a diagnosis: roles
    are the ones granted in this workspace; nothing runs and nothing is granted)."""
    from emergent.errors import UsageError

    with workstation(home) as ws:
        level, net = side_effect, network
        try:
            spec = ws.tools.resolve(tool)
        except UsageError:  # unknown or disabled here: explain the name as given
            spec = None
        if level is None:
            level = spec.side_effect.value if spec is not None else "read"
        if net is None:
            net = bool(spec is not None and spec.network)
        d = ws.autonomy.explain(principal, tool.partition("@")[0], side_effect=level, resource=resource, cost=cost,
                                confidence=confidence, network=net)
        typer.echo(json.dumps({"principal": principal, "tool": tool, "side_effect": level, "effect": d.effect,
                               "source": d.source, "rule": d.rule_id, "reason": d.reason}))


@app.command()
def threshold(level: str, value: float, home: str = HOME) -> None:
    """Set the confidence an action of LEVEL needs to run without asking."""
    with workstation(home) as ws:
        ws.autonomy.set_threshold(level, value, by=ws.principal)


@app.command()
def pause(reason: str = typer.Option("paused from the CLI"), home: str = HOME) -> None:
    """Pause autonomy: every non-read action by agents is refused until `resume`."""
    with workstation(home) as ws:
        ws.autonomy.pause(by=ws.principal, reason=reason)
        typer.echo("autonomy paused")


@app.command()
def resume(home: str = HOME) -> None:
    """Lift the global pause."""
    with workstation(home) as ws:
        ws.autonomy.resume(by=ws.principal)
        typer.echo("autonomy resumed")


@app.command()
def suspend(agent: str, reason: str = typer.Option("suspended from the CLI"), home: str = HOME) -> None:
    """Suspend one agent: its non-read actions are refused."""
    with workstation(home) as ws:
        ws.autonomy.suspend(agent, by=ws.principal, reason=reason)
        typer.echo(f"{agent} suspended")


@app.command()
def unsuspend(agent: str, home: str = HOME) -> None:
    """Lift the suspension of one agent (or service)."""
    with workstation(home) as ws:
        ws.autonomy.unsuspend(agent, by=ws.principal)
        typer.echo(f"{agent} unsuspended")


@app.command()
def override(subject: str, tool: str, effect: str, reason: str = typer.Option(...),
             resource: str = typer.Option("*"), ttl: float = typer.Option(None, help="seconds it lasts"),
             home: str = HOME) -> None:
    """A human's decision that beats the matrix (optionally for TTL seconds)."""
    with workstation(home) as ws:
        typer.echo(ws.autonomy.override(subject, tool, effect, resource=resource, ttl=ttl, by=ws.principal,
                                        reason=reason))


@app.command("clear-override")
def clear_override(override_id: str, home: str = HOME) -> None:
    """Remove an override by id (`emergent policy status` lists them)."""
    with workstation(home) as ws:
        ws.autonomy.clear_override(override_id, by=ws.principal)
        typer.echo(f"cleared {override_id}")


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
