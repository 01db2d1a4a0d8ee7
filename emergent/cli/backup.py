"""``emergent backup``: create, list, verify and restore archives of a workspace's memory."""

from __future__ import annotations

import json

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


@app.command()
def create(note: str = typer.Option(None, help="a note stored in the catalogue"), home: str = HOME) -> None:
    """Archive LanceDB tables, the SQL database and short-term memory under <workspace>/backups."""
    from emergent.memory import backup

    with workstation(home) as ws:
        info = backup.create(ws, note)
        typer.echo(f"created backup {info.id}: {info.memories} memories, {_size(info.size_bytes)} at {info.path}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """List catalogued backups, newest first."""
    from rich.console import Console
    from rich.table import Table

    from emergent.memory import backup

    with workstation(home) as ws:
        items = backup.list_backups(ws)
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
    from emergent.memory import backup

    with workstation(home) as ws:
        manifest = backup.verify(ws, backup_id)
    files = len(manifest["files"])
    typer.echo(f"backup {backup_id} is intact: {files + 1} files match their sha256, counts {manifest['counts']}")


@app.command()
def restore(backup_id: str, yes: bool = typer.Option(False, "--yes", "-y", help="do not ask for confirmation"),
            home: str = HOME) -> None:
    """Verify BACKUP_ID, then replace the workspace's memory with it (the catalogue is kept)."""
    from emergent.memory import backup

    with workstation(home) as ws:
        info = backup.get(ws, backup_id)
        if not yes:
            typer.confirm(f"replace the memory of {ws.path} with backup {info.id} ({info.memories} memories)?",
                          abort=True)
        report = backup.restore(ws, backup_id)
        typer.echo(json.dumps(report.as_dict(), indent=2))


@app.command()
def rewind(at: str = typer.Option(None, help="point in time: ISO timestamp (UTC if no zone) or epoch"),
           version: int = typer.Option(None, help="a LanceDB version of the memories table"),
           show: bool = typer.Option(False, "--versions", help="list the versions and exit"),
           home: str = HOME) -> None:
    """Point-in-time restore of long-term memory from LanceDB table versions (no archive needed)."""
    from emergent.errors import ValidationError
    from emergent.memory import backup

    with workstation(home) as ws:
        if show:
            typer.echo(json.dumps(backup.ltm_versions(ws.memory), indent=1))
            return
        if (at is None) == (version is None):
            raise ValidationError("give exactly one of --at and --version", hint="list them with --versions")
        if version is not None:
            ws.memory.flush()
            ws.memory.ltm.restore_version(version)
            typer.echo(f"long-term memory restored to version {version}")
            return
        when: float | str = float(at) if at.replace(".", "", 1).isdigit() else at
        done = backup.restore_ltm_at(ws.memory, when)
        typer.echo(f"long-term memory restored to {json.dumps(done)}")
