"""``emergent retention``: policies, set, remove, purge, erase, report, schedule.

Every command acts as the OS user running it (``ws.principal``, a human): setting or removing a
policy and erasing are a human's decisions. The scheduled purge (``emergent retention schedule``)
runs as ``service:scheduler``."""

from __future__ import annotations

import json
from typing import Any

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


def _out(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@app.command()
def policies(as_json: bool = typer.Option(False, "--json", help="print JSON"), home: str = HOME) -> None:
    """List the retention policies in force (kind, scope, days kept after a memory is learned)."""
    with workstation(home) as ws:
        found = [p.as_dict() for p in ws.retention.policies()]
    if as_json:
        _out(found)
        return
    if not found:
        typer.echo("no retention policy: every memory is kept until it is forgotten or erased")
    for p in found:
        typer.echo(f"{p['kind']:<11} {p['scope']:<30} {p['max_age_days']:g} days  (set by {p['created_by']} "
                   f"{p['created']}){'  ' + p['note'] if p['note'] else ''}")


@app.command("set")
def set_(kind: str = typer.Argument(..., help="episodic, semantic, procedural or '*'"),
         scope: str = typer.Argument(..., help="agent[/user[/session]] or '*'"),
         days: float = typer.Argument(..., help="days a memory is kept after it was learned"),
         note: str = typer.Option(None, "--note", help="why (shown in the compliance report)"),
         home: str = HOME) -> None:
    """Keep memories of KIND in SCOPE for DAYS (replaces that kind and scope's policy)."""
    with workstation(home) as ws:
        _out(ws.retention.set_policy(kind, scope, days, by=ws.principal, note=note).as_dict())


@app.command()
def remove(kind: str, scope: str, home: str = HOME) -> None:
    """Remove the policy of KIND in SCOPE (its memories are then kept)."""
    with workstation(home) as ws:
        _out(ws.retention.remove_policy(kind, scope, by=ws.principal).as_dict())


@app.command()
def purge(dry_run: bool = typer.Option(False, "--dry-run", help="list what would go, change nothing"),
          history_days: float = typer.Option(7.0, "--history-days", help="keep table versions younger than this"),
          home: str = HOME) -> None:
    """Erase every memory its governing policy says has expired (what the scheduled job does)."""
    with workstation(home) as ws:
        report = ws.retention.purge(by=ws.principal, dry_run=dry_run, history_days=history_days)
    out = report.as_dict()
    out["ids"] = out["ids"][:50] + (["..."] if len(out["ids"]) > 50 else [])
    _out(out)


@app.command()
def erase(reason: str = typer.Option(..., "--reason", help="why (kept in the ledger and the audit trail)"),
          ids: list[str] = typer.Option(None, "--id", help="a memory id (repeat for more)"),
          user: str = typer.Option(None, "--user", help="every memory of this user, in every agent"),
          scope: str = typer.Option(None, "--scope", help="agent/user[/session]"),
          dry_run: bool = typer.Option(False, "--dry-run", help="list what would go, change nothing"),
          yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
          home: str = HOME) -> None:
    """Right to erasure: remove memories everywhere (short- and long-term memory, the archive, older
    table versions, every hot index) and mark the backups that may hold them. One selector."""
    with workstation(home) as ws:
        kwargs: dict[str, Any] = {"ids": ids or None, "user": user, "scope": scope}
        preview = ws.retention.erase(by=ws.principal, reason=reason, dry_run=True, **kwargs)
        if dry_run:
            _out(preview.as_dict())
            return
        if not yes:
            typer.confirm(f"erase {preview.count} memories ({preview.by_tier}) for good? point-in-time history "
                          "of long-term memory restarts now", abort=True)
        _out(ws.retention.erase(by=ws.principal, reason=reason, **kwargs).as_dict())


@app.command()
def finish(home: str = HOME) -> None:
    """Run again the erasures and purges a kill (or a crash) stopped half-way; a rewind is refused until
    they have finished. Only when none is running in another process."""
    with workstation(home) as ws:
        done = ws.retention.finish_interrupted(by=ws.principal)
        _out({"finished": [r.as_dict() for r in done]})


@app.command()
def report(since_days: float = typer.Option(30.0, "--since-days", help="the period the report covers"),
           timeout_s: float = typer.Option(600.0, "--timeout", help="seconds the notebook may run"),
           home: str = HOME) -> None:
    """Run the compliance report as a job (defined on first use) and keep its HTML; prints the paths."""
    from pathlib import Path

    from emergent.errors import OperationalError
    from emergent.security.retention import REPORT_JOB, export_html, job_notebook

    with workstation(home) as ws:
        _define(ws, REPORT_JOB, str(job_notebook(REPORT_JOB)), timeout_s=timeout_s)
        run = ws.jobs.run(REPORT_JOB, {"since_days": since_days}, principal=ws.principal)
    if run.status.value != "succeeded" or not run.output_path:
        raise OperationalError(f"the compliance report failed: {run.error}",
                               hint=f"see the executed notebook {run.output_path}")
    html = export_html(Path(run.output_path))  # the whole notebook, its last cell included
    _out({"run": run.id, "notebook": run.output_path, "html": str(html), "outputs": run.outputs})


@app.command()
def schedule(cron: str = typer.Option("30 3 * * *", "--cron", help="when the purge runs (UTC cron)"),
             history_days: float = typer.Option(7.0, "--history-days", help="keep table versions younger than this"),
             home: str = HOME) -> None:
    """Define (or redefine) the scheduled purge job ``retention_purge`` (run by `emergent scheduler run`
    as service:scheduler)."""
    from emergent.security.retention import PURGE_JOB, job_notebook

    with workstation(home) as ws:
        state = _define(ws, PURGE_JOB, str(job_notebook(PURGE_JOB)), schedule=cron,
                        parameters={"history_days": history_days}, replace=True)
    _out({"job": PURGE_JOB, "schedule": cron, "next_run_at": state.next_run_at})


def _define(ws: Any, name: str, notebook: str, *, replace: bool = False, **fields: Any) -> Any:
    from emergent.errors import UsageError

    if not replace:
        try:
            return ws.jobs.get(name)
        except UsageError:
            pass
    return ws.jobs.add(name, notebook, principal=ws.principal, replace=replace, **fields)
