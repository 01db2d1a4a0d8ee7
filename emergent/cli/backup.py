"""``emergent backup``: create, list, verify and restore archives of a workspace; rewind long-term memory.

Every command acts as the OS user running it (``ws.principal``) and is recorded in the audit trail.
A restore keeps the audit chain and the governance state as they are now (``--governance`` restores
the policy, pause, suspensions, overrides, principals and approvals from the backup too).

When the workspace's database is lost (deleted or emptied while the rest of the workspace is
there, which opening it refuses), ``list`` shows the archives in ``backups/`` and ``restore``
takes the database from the backup, governance state included (there is none left to keep)."""

from __future__ import annotations

import json
from typing import Any

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


def _working(what: str) -> Any:
    """A spinner on stderr while long work runs (only in a terminal; scripts see nothing)."""
    import contextlib
    import sys

    if not sys.stderr.isatty():
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(what, spinner="dots")


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@app.command()
def create(note: str = typer.Option(None, help="a note stored in the catalogue"), home: str = HOME) -> None:
    """Archive LanceDB tables, the SQL database and short-term memory under <workspace>/backups."""
    with workstation(home) as ws:
        with _working("archiving the workspace (LanceDB, SQL, short-term memory)..."):
            info = ws.backup(note, by=ws.principal)
        typer.echo(f"created backup {info.id}: {info.memories} memories, {_size(info.size_bytes)} at {info.path}")


def _database_lost(ws: Any) -> bool:
    """True when the workspace's database vanished or was emptied (opening it is refused)."""
    from emergent.errors import StoreCorruptError

    try:
        _ = ws.sql
    except StoreCorruptError as exc:
        if getattr(exc, "evidence", None):
            return True
        raise
    return False


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """List catalogued backups, newest first."""
    from rich.console import Console
    from rich.table import Table

    from emergent.workspace import backup

    with workstation(home) as ws:
        if _database_lost(ws):
            typer.secho(f"note: the database of {ws.path} is lost; these are the archives in its backups/ folder",
                        err=True)
            items = backup.list_archives(ws.path)
        else:
            items = ws.backups()
    if as_json:
        typer.echo(json.dumps([b.as_dict() for b in items], indent=2))
        return
    if not items:
        typer.echo("no backups yet: create one with `emergent backup create`")
        return
    table = Table("id", "created", "memories", "size", "note")
    for b in items:
        table.add_row(b.id, b.as_dict()["created"], str(b.memories), _size(b.size_bytes), b.note or "")
    Console().print(table)


@app.command()
def verify(backup_id: str, home: str = HOME) -> None:
    """Recompute every checksum of BACKUP_ID (exit 2 with the problems when one differs)."""
    with workstation(home) as ws, _working(f"verifying {backup_id} (every member's sha256)..."):
        manifest = ws.verify_backup(backup_id, by=ws.principal)
    files = len(manifest["files"])
    typer.echo(f"backup {backup_id} is intact: {files + 1} files match their sha256, counts {manifest['counts']}")


@app.command()
def restore(backup_id: str, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
            governance: bool = typer.Option(False, "--governance", help="also restore the policy, pause, "
                                            "suspensions, overrides, principals and approvals from the backup"),
            repurge: bool = typer.Option(False, "--repurge", help="a backup that holds memories erased since it "
                                         "was taken: remove them from it before it goes live (refused without)"),
            home: str = HOME) -> None:
    """Verify BACKUP_ID, then replace the workspace's data with it (catalogue, audit chain and,
    without --governance, the governance state are kept as they are now)."""
    from contextlib import ExitStack

    from emergent.workspace import backup
    from emergent.workspace.integrity import allow_new_database

    with workstation(home) as ws, ExitStack() as stack:
        lost = _database_lost(ws)
        if lost:  # the restore replaces the database: open a new one to restore into
            stack.enter_context(allow_new_database(ws.path))
            governance = True
            typer.secho(f"note: the database of {ws.path} is lost: it is taken from the backup, governance state "
                        "included (there is none left to keep)", err=True)
        info = backup.get(ws.path, ws.sql, backup_id)
        if not yes:
            what = "data and governance state" if governance else "data"
            typer.confirm(f"replace the {what} of {ws.path} with backup {info.id} ({info.memories} memories)?",
                          abort=True)
        with _working(f"verifying and restoring {backup_id}..."):
            report = ws.restore(backup_id, by=ws.principal, governance=governance, repurge=repurge)
        typer.echo(json.dumps(report.as_dict(), indent=2))


@app.command()
def rewind(at: str = typer.Option(None, help="point in time: ISO timestamp (UTC if no zone) or epoch"),
           version: int = typer.Option(None, help="a LanceDB version of the memories table"),
           show: bool = typer.Option(False, "--versions", help="list the versions and exit"),
           home: str = HOME) -> None:
    """Point-in-time restore of long-term memory from LanceDB table versions (no archive needed; audited)."""
    from emergent.errors import ValidationError
    from emergent.memory.pitr import ltm_versions

    with workstation(home) as ws:
        if show:
            typer.echo(json.dumps(ltm_versions(ws.memory), indent=1))
            return
        if (at is None) == (version is None):
            raise ValidationError("give exactly one of --at and --version", hint="list them with --versions")
        when: float | str | None = None if at is None else float(at) if at.replace(".", "", 1).isdigit() else at
        done = ws.memory.rewind(when, version=version, principal=ws.principal)
        typer.echo(f"long-term memory restored to {json.dumps(done)}")
