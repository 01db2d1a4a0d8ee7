"""``emergent audit``: verify the hash chain (against its anchored head and a head you wrote down),
print the current head, export the chain, show recent entries."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


@app.command()
def verify(jsonl: Path = typer.Option(None, help="verify an exported JSON-lines copy instead of the database"),
           head: str = typer.Option(None, "--head", help="a head hash you wrote down earlier (`emergent audit "
                                                          "head`): it must still be in the chain"),
           as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """Check every entry's hash and link, the anchored head and (--head) a head you knew; exit 1
    naming the first edited, inserted or deleted entry, or the truncation."""
    from emergent.audit import verify_jsonl

    if jsonl is not None:
        with jsonl.open(encoding="utf-8") as fh:
            report = verify_jsonl(iter(fh))
        if head is not None and head != report.head and not _in_jsonl(jsonl, head):
            report.problems.append((report.entries, f"the head you gave ({head[:16]}) is not in the copy: "
                                                    "entries were deleted or the chain was rewritten"))
            report.ok = False
    else:
        with workstation(home) as ws:
            report = ws.audit.verify(head=head)
    if as_json:
        typer.echo(json.dumps({"ok": report.ok, "entries": report.entries, "head": report.head,
                               "anchored": report.anchored, "problems": report.problems}))
    else:
        typer.echo(report.summary())
        for pos, what in report.problems[1:10]:
            typer.echo(f"  entry {pos}: {what}")
    if not report.ok:
        raise typer.Exit(1)


def _in_jsonl(path: Path, head: str) -> bool:
    with path.open(encoding="utf-8") as fh:
        return any(json.loads(line).get("hash") == head for line in fh if line.strip())


@app.command("head")
def head_(as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """Print the current head (the newest entry's hash): write it down, then later
    `emergent audit verify --head HASH` proves no entry up to it was deleted or rewritten."""
    with workstation(home) as ws:
        row = ws.audit.head()
    if row is None:
        typer.echo("the audit trail is empty", err=True)
        raise typer.Exit(1)
    if as_json:
        typer.echo(json.dumps({"seq": row.seq, "hash": row.hash}))
    else:
        typer.echo(row.hash)
        typer.echo(f"(entry {row.seq}; keep this hash somewhere outside the workspace)", err=True)


@app.command()
def anchor(home: str = HOME) -> None:
    """Anchor the current head again (after moving the workspace or its database here): only when
    you trust the chain as it is — `emergent audit verify` first."""
    with workstation(home) as ws:
        head = ws.audit.reanchor(ws.principal)
    typer.echo(f"anchored entry {head.seq}: {head.hash}" if head else "the audit trail is empty")


@app.command()
def export(out: Path = typer.Option(None, "--out", "-o", help="file to write (default: stdout)"),
           home: str = HOME) -> None:
    """Export the whole chain as JSON lines (with hashes, so the copy can be verified)."""
    with workstation(home) as ws:
        if out is None:
            n = ws.audit.export_jsonl(sys.stdout)
        else:
            with out.open("w", encoding="utf-8") as fh:
                n = ws.audit.export_jsonl(fh)
            typer.echo(f"exported {n} entries to {out}", err=True)


@app.command()
def tail(n: int = typer.Option(20, "-n"), kind: str = typer.Option(None), home: str = HOME) -> None:
    """Show the last N entries."""
    with workstation(home) as ws:
        entries = ws.audit.entries(kind=kind)[-n:]
        for e in entries:
            typer.echo(json.dumps({"seq": e.seq, "at": e.at, "kind": e.kind, "actor": e.actor, "data": e.data},
                                  default=str))
