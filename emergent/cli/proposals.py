"""``emergent proposals``: analyze, generate, list, show, approve, reject, rank, metrics.

Approving and rejecting act as the OS user running the command (``ws.principal``); ``generate``
acts as the self-improvement agent, so its proposals go through the gate like the cycle's."""

from __future__ import annotations

import json

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


def _echo(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2, default=str))


@app.command()
def analyze(home: str = HOME) -> None:
    """Run the analyzers and print the signals with their evidence (nothing is written)."""
    with workstation(home) as ws:
        signals, skipped = ws.proposals.analyze()
        _echo({"signals": [s.as_dict() for s in signals], "skipped": skipped})


@app.command()
def generate(submit: bool = typer.Option(True, help="submit to the autonomy gate"), home: str = HOME) -> None:
    """Turn the current signals into proposals (deduplicated against open ones)."""
    with workstation(home) as ws:
        for p in ws.proposals.generate(submit=submit, principal=ws.self_improvement_agent()):
            typer.echo(f"{p['id']}  {p['status']:<10} {'(existing) ' if p.get('deduplicated') else ''}{p['title']}")


@app.command("list")
def list_(status: str = typer.Option(None, help="draft|pending|approved|rejected|experimenting|adopted|rolled_back"),
          home: str = HOME) -> None:
    """List proposals, newest first."""
    from rich.console import Console
    from rich.table import Table

    with workstation(home) as ws:
        table = Table("id", "status", "kind", "risk", "conf", "strategy", "title")
        for p in ws.proposals.list(status):
            table.add_row(p["id"], p["status"], p["kind"], p["risk"], f"{p['confidence']:.2f}", p["strategy"],
                          p["title"][:70])
        Console().print(table)


@app.command()
def show(proposal_id: str, home: str = HOME) -> None:
    """One proposal with its evidence, impact, diff and history."""
    with workstation(home) as ws:
        p = ws.proposals.get(proposal_id)
        diff = p.pop("diff")
        _echo({**p, "events": ws.proposals.events(proposal_id)})
        if diff:
            typer.echo(diff)


@app.command()
def approve(proposal_id: str, reason: str = typer.Option(""), home: str = HOME) -> None:
    """Approve a pending proposal."""
    with workstation(home) as ws:
        typer.echo(ws.proposals.approve(proposal_id, by=ws.principal, reason=reason)["status"])


@app.command()
def reject(proposal_id: str, reason: str = typer.Option(..., help="why (the preference model learns from it)"),
           home: str = HOME) -> None:
    """Reject a pending proposal, with a reason."""
    with workstation(home) as ws:
        typer.echo(ws.proposals.reject(proposal_id, by=ws.principal, reason=reason)["status"])


@app.command()
def rank(home: str = HOME) -> None:
    """Pending proposals ranked by the learned approval probability, and the model's calibration."""
    with workstation(home) as ws:
        items = ws.proposals.rank()
        for p in items:
            score = f"{p['score']:.2f}" if p.get("score") is not None else "  - "
            typer.echo(f"{score}  {p['id']}  {p['title']}")
        try:
            _echo(ws.proposals.preferences().report)
        except Exception as exc:  # too few decisions: say so
            typer.echo(f"(no preference model yet: {exc})")


@app.command()
def metrics(home: str = HOME) -> None:
    """Proposals per week, approval rate, counts by status and strategy."""
    with workstation(home) as ws:
        _echo(ws.proposals.metrics())
