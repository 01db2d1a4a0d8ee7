"""``emergent approvals``: list, show, approve (and run), reject, expire.

You decide as the OS user running the command (``ws.principal``); the command takes no name to
decide as. An approval is bound to the digest of exactly what will run (tool version, arguments,
the bytes of the files it reads or runs) and runs once: ``approve ID --run`` approves and runs it
here, ``emergent tools resume ID`` runs an approved one later.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from emergent.agents.card import choice_hint
from emergent.cli._common import HOME, workstation
from emergent.errors import EmergentError

app = typer.Typer(no_args_is_help=True)
STATUSES = ("pending", "approved", "rejected", "expired", "consumed")
def view(a: Any) -> dict[str, Any]:
    """An approval as the CLI shows it: who asked, for which tool, bound to which digest and files."""
    d = a.to_dict()
    out = {"id": d.pop("id"), "status": d.pop("status"), "requester": d.pop("actor"), "tool": d.pop("tool"),
           "digest": d.pop("digest"), "files": d.pop("files") or {}}
    out.update(d)
    hint = choice_hint(a)
    if hint:
        out["hint"] = hint
    return out


@app.command("list")
def list_(status: str = typer.Option("pending", help=f"{'|'.join(STATUSES)}|all"),
          as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """List approval requests: requester, tool, the digest and the files each is bound to."""
    from rich.console import Console
    from rich.table import Column, Table

    from emergent.errors import ValidationError

    if status != "all" and status not in STATUSES:
        raise ValidationError(f"--status {status!r} is unknown", hint=f"use one of {', '.join(STATUSES)} or all")
    with workstation(home) as ws:
        items = ws.autonomy.approvals.list(None if status == "all" else status)
    if as_json:
        typer.echo(json.dumps([view(a) for a in items], default=str))
        return
    table = Table(Column("id", no_wrap=True), "status", "requester", "tool", Column("digest", no_wrap=True),
                  Column("files (sha256)", no_wrap=True), "reason")
    for a in items:
        files = "\n".join(f"{p} → {h[:12]}" for p, h in sorted((a.files or {}).items())) or "-"
        hint = choice_hint(a)
        table.add_row(a.id, a.status, a.actor, a.tool, (a.digest or "")[:12], files,
                      hint if hint else a.reason[:60])
    Console().print(table)


@app.command()
def show(approval_id: str, home: str = HOME) -> None:
    """Show one request: requester, tool, digest, files (path → sha256), arguments and decision."""
    with workstation(home) as ws:
        typer.echo(json.dumps(view(ws.autonomy.approvals.get(approval_id)), indent=2, default=str))


@app.command()
def approve(approval_id: str, reason: str = typer.Option("", help="why (recorded in the audit trail)"),
            run: bool = typer.Option(False, "--run", help="then run the approved call here and print its result"),
            home: str = HOME) -> None:
    """Approve a pending request as yourself (a waiting call resumes; --run runs it now, once)."""
    from emergent.errors import UsageError

    with workstation(home) as ws:
        hint = choice_hint(ws.autonomy.approvals.get(approval_id))
        if hint:  # approving it here would record no choice: the vote or conflict would stay undecided
            raise UsageError(hint, approval=approval_id)
        a = ws.autonomy.approvals.approve(approval_id, by=ws.principal, reason=reason)
        typer.echo(f"{a.id} approved by {a.decided_by}")  # (a call waiting elsewhere may have run it already)
        if _resume_assistant(ws, approval_id):  # the assistant's run made the call (once): --run has nothing left
            return
        if run:
            result = ws.tools.resume(approval_id)
            typer.echo(json.dumps(result, indent=2, default=str))


@app.command()
def reject(approval_id: str, reason: str = typer.Option(..., help="why (recorded in the audit trail)"),
           home: str = HOME) -> None:
    """Reject a pending request as yourself (the waiting call fails with the reason)."""
    with workstation(home) as ws:
        a = ws.autonomy.approvals.reject(approval_id, by=ws.principal, reason=reason)
        typer.echo(f"{a.id} rejected by {a.decided_by}")
        _resume_assistant(ws, approval_id)


def _resume_assistant(ws: Any, approval_id: str) -> bool:
    """An assistant run waiting on this approval continues now; prints its status and answer."""
    waiting = getattr(ws, "assistants_waiting_on", None)
    found = waiting(approval_id) if waiting is not None else None
    if found is None:
        return False
    bot, run_id = found
    try:
        r = bot.resume(run_id)
    except EmergentError as exc:  # the decision stands; the run continues wherever it is resumed next
        typer.echo(f"assistant run {run_id} did not continue here: {exc.message}"
                   + (f" (hint: {exc.hint})" if exc.hint else "")
                   + "; it continues with ws.assistant().resume_decided() or in its chat")
        return True
    why = f" ({r.stop_reason})" if r.stop_reason not in (None, "answered") else ""
    typer.echo(f"assistant {bot.spec.name} run {r.run_id}: {r.status}{why} · mode {r.mode}")
    if r.answer:
        typer.echo(r.answer)
    if r.pending_approval:
        tool = (r.pending_tool or {}).get("tool", "?")
        typer.echo(f"it now waits for approval {r.pending_approval} ({tool}): "
                   f"emergent approvals approve {r.pending_approval}")
    return True


@app.command()
def expire(home: str = HOME) -> None:
    """Auto-reject every pending request past its expiry."""
    with workstation(home) as ws:
        typer.echo(f"expired {ws.autonomy.approvals.expire_due()}")
