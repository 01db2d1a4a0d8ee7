"""``emergent approvals``: list, show, approve, reject, expire."""

from __future__ import annotations

import json
import os

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)
BY = typer.Option(f"user:{os.environ.get('USER', 'local')}", help="who decides")


@app.command("list")
def list_(status: str = typer.Option("pending", help="pending|approved|rejected|expired|all"),
          as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """List approval requests."""
    from rich.console import Console
    from rich.table import Table

    with workstation(home) as ws:
        items = ws.autonomy.approvals.list(None if status == "all" else status)
        if as_json:
            typer.echo(json.dumps([a.to_dict() for a in items], default=str))
            return
        table = Table("id", "status", "actor", "tool", "resource", "reason")
        for a in items:
            table.add_row(a.id, a.status, a.actor, a.tool, a.resource or "", a.reason[:60])
        Console().print(table)


@app.command()
def show(approval_id: str, home: str = HOME) -> None:
    """Show one request with its arguments."""
    with workstation(home) as ws:
        typer.echo(json.dumps(ws.autonomy.approvals.get(approval_id).to_dict(), indent=2, default=str))


@app.command()
def approve(approval_id: str, reason: str = typer.Option("", help="why"), by: str = BY, home: str = HOME) -> None:
    """Approve a pending request (the waiting call resumes)."""
    with workstation(home) as ws:
        a = ws.autonomy.approvals.approve(approval_id, by=by, reason=reason)
        typer.echo(f"{a.id} {a.status} by {a.decided_by}")


@app.command()
def reject(approval_id: str, reason: str = typer.Option(..., help="why (recorded in the audit trail)"),
           by: str = BY, home: str = HOME) -> None:
    """Reject a pending request (the waiting call fails with the reason)."""
    with workstation(home) as ws:
        a = ws.autonomy.approvals.reject(approval_id, by=by, reason=reason)
        typer.echo(f"{a.id} {a.status} by {a.decided_by}")


@app.command()
def expire(home: str = HOME) -> None:
    """Auto-reject every pending request past its expiry."""
    with workstation(home) as ws:
        typer.echo(f"expired {ws.autonomy.approvals.expire_due()}")
