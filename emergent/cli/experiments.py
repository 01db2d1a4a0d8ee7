"""``emergent experiments``: config versions (list, set, rollback) and experiments (list, show, decide,
approve, reject). Every command acts as the OS user running it (``ws.principal``)."""

from __future__ import annotations

import json

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


def _echo(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.command()
def config(namespace: str = typer.Argument("memory"), home: str = HOME) -> None:
    """The versions of NAMESPACE's config; the current one is marked with *."""
    with workstation(home) as ws:
        reg = ws.experiments.registry
        cur = reg.current(namespace).id
        for v in reg.versions(namespace):
            typer.echo(f"{'*' if v.id == cur else ' '} {v.id:<16} by {v.created_by:<24} {v.note or ''}")


@app.command("set")
def set_(namespace: str, changes: str = typer.Argument(..., help='JSON, e.g. \'{"w_text": 0.5}\''),
         note: str = typer.Option(None), current: bool = typer.Option(False, "--current", help="make it current"),
         home: str = HOME) -> None:
    """Create a new version of NAMESPACE with CHANGES over the current one."""
    from emergent.errors import ValidationError

    try:
        parsed = json.loads(changes)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"changes are not JSON: {exc}", hint='quote it: \'{"w_text": 0.5}\'') from None
    with workstation(home) as ws:
        reg = ws.experiments.registry
        v = reg.create(namespace, changes=parsed, principal=ws.principal, note=note)
        if current:
            reg.make_current(v.id, by=ws.principal, reason=note)
        typer.echo(v.id)


@app.command()
def rollback(namespace: str, to: str = typer.Option(None, help="a version id; default: the previous current"),
             reason: str = typer.Option(None), home: str = HOME) -> None:
    """Make the previous current version of NAMESPACE (or --to) current again (audited)."""
    with workstation(home) as ws:
        typer.echo(ws.experiments.registry.rollback(namespace, to, by=ws.principal, reason=reason).id)


@app.command("list")
def list_(status: str = typer.Option(None), home: str = HOME) -> None:
    """Experiments, newest first."""
    with workstation(home) as ws:
        for e in ws.experiments.list(status):
            typer.echo(f"{e['id']}  {e['status']:<16} {e['control_version']} vs {e['candidate_version']}  {e['name']}")


@app.command()
def show(experiment_id: str, home: str = HOME) -> None:
    """One experiment with its analysis."""
    with workstation(home) as ws:
        _echo(ws.experiments.get(experiment_id))


@app.command()
def decide(experiment_id: str, home: str = HOME) -> None:
    """Analyse a running experiment and act on it (adopt through the gate, roll back, or inconclusive)."""
    with workstation(home) as ws:
        _echo(ws.experiments.decide(experiment_id, by=ws.principal))


@app.command()
def approve(experiment_id: str, reason: str = typer.Option("approved"), home: str = HOME) -> None:
    """Approve an adoption that is waiting for a human (it is carried out at once)."""
    with workstation(home) as ws:
        _echo(ws.experiments.approve(experiment_id, by=ws.principal, reason=reason))


@app.command()
def reject(experiment_id: str, reason: str = typer.Option(..., help="why (recorded in the audit trail)"),
           home: str = HOME) -> None:
    """Refuse an adoption that is waiting for a human (the current config stays)."""
    with workstation(home) as ws:
        _echo(ws.experiments.reject(experiment_id, by=ws.principal, reason=reason))
