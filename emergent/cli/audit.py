"""``emergent audit``: verify the hash chain, export it, show recent entries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


@app.command()
def verify(jsonl: Path = typer.Option(None, help="verify an exported JSON-lines copy instead of the database"),
           as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """Check every entry's hash and link; exit 1 naming the first edited, inserted or deleted entry."""
    from emergent.audit import verify_jsonl

    if jsonl is not None:
        with jsonl.open(encoding="utf-8") as fh:
            report = verify_jsonl(iter(fh))
    else:
        with workstation(home) as ws:
            report = ws.autonomy.audit.verify()
    if as_json:
        typer.echo(json.dumps({"ok": report.ok, "entries": report.entries, "head": report.head,
                               "problems": report.problems}))
    else:
        typer.echo(report.summary())
        for pos, what in report.problems[1:10]:
            typer.echo(f"  entry {pos}: {what}")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def export(out: Path = typer.Option(None, "--out", "-o", help="file to write (default: stdout)"),
           home: str = HOME) -> None:
    """Export the whole chain as JSON lines (with hashes, so the copy can be verified)."""
    with workstation(home) as ws:
        if out is None:
            n = ws.autonomy.audit.export_jsonl(sys.stdout)
        else:
            with out.open("w", encoding="utf-8") as fh:
                n = ws.autonomy.audit.export_jsonl(fh)
            typer.echo(f"exported {n} entries to {out}", err=True)


@app.command()
def tail(n: int = typer.Option(20, "-n"), kind: str = typer.Option(None), home: str = HOME) -> None:
    """Show the last N entries."""
    with workstation(home) as ws:
        entries = ws.autonomy.audit.entries(kind=kind)[-n:]
        for e in entries:
            typer.echo(json.dumps({"seq": e.seq, "at": e.at, "kind": e.kind, "actor": e.actor, "data": e.data},
                                  default=str))
