"""``emergent memory``: remember, recall, forget, consolidate, stats, reembed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


@app.command()
def remember(text: str, kind: str = "episodic", importance: float = 0.5, scope: str = typer.Option(None),
             ltm: bool = typer.Option(False, help="write straight to long-term memory"), home: str = HOME) -> None:
    """Remember TEXT (short-term memory unless --ltm)."""
    with workstation(home) as ws:
        rec = ws.memory.remember(text, kind=kind, importance=importance, scope=scope, tier="ltm" if ltm else "stm")
        typer.echo(rec.id)


def _items(path: Path, fmt: str) -> list[Any]:
    from emergent.errors import ValidationError

    if not path.is_file():
        raise ValidationError(f"{path} is not a file", hint="give the path of a text, markdown or JSON-lines file")
    text = path.read_text("utf-8", errors="strict") if path.stat().st_size < 512 * 2**20 else None
    if text is None:
        raise ValidationError(f"{path} is larger than 512 MiB", hint="split it into smaller files")
    fmt = ("jsonl" if path.suffix in (".jsonl", ".ndjson") else "paragraphs") if fmt == "auto" else fmt
    if fmt == "lines":
        return [ln.strip() for ln in text.splitlines() if ln.strip()]
    if fmt == "paragraphs":
        return [p.strip() for p in text.split("\n\n") if p.strip()]
    if fmt == "jsonl":
        out = []
        for i, ln in enumerate(text.splitlines(), 1):
            if not ln.strip():
                continue
            try:
                out.append(json.loads(ln))
            except json.JSONDecodeError as exc:
                raise ValidationError(f"{path}:{i} is not JSON: {exc.msg}",
                                      hint="one JSON object (or string) per line") from None
        return out
    raise ValidationError(f"unknown format {fmt!r}", hint="use auto, lines, paragraphs or jsonl")


@app.command()
def ingest(path: Path = typer.Argument(..., help="a text/markdown file (one memory per paragraph), or JSON lines"),
           fmt: str = typer.Option("auto", "--format", help="auto | lines | paragraphs | jsonl"),
           kind: str = "semantic", importance: float = 0.5, scope: str = typer.Option(None),
           batch: int = typer.Option(512, min=1, help="memories embedded and committed together"),
           home: str = HOME) -> None:
    """Ingest a file into long-term memory, with a progress bar; prints how many were stored."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from emergent.errors import EmergentError

    items = _items(path, fmt)
    done = 0
    with workstation(home) as ws, Progress(TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(),
                                           TimeRemainingColumn(), transient=True) as bar:
        task = bar.add_task("ingest", total=len(items))
        for start in range(0, len(items), batch):
            try:
                done += len(ws.memory.ingest(items[start:start + batch], kind=kind, importance=importance,
                                             scope=scope))
            except EmergentError as exc:
                exc.message = f"{exc.message} (items {start + 1}-{start + batch} of {path}; {done} stored before)"
                raise
            bar.update(task, completed=done)
    typer.echo(f"stored {done} memories from {path}")


@app.command()
def recall(query: str, k: int = 10, scope: str = typer.Option(None), as_json: bool = typer.Option(False, "--json"),
           home: str = HOME) -> None:
    """Recall the K memories that best answer QUERY."""
    from rich.console import Console
    from rich.table import Table

    with workstation(home) as ws:
        hits = ws.memory.recall(query, k=k, scope=scope)
        if as_json:
            typer.echo(json.dumps([{**h.record.public(), "score": h.score} for h in hits], default=str))
            return
        table = Table("score", "id", "tier", "kind", "text")
        for h in hits:
            table.add_row(f"{h.score:.3f}", h.record.id, h.record.tier.value, h.record.kind.value, h.text[:100])
        Console().print(table)


@app.command()
def forget(memory_id: str, scope: str = typer.Option(None), home: str = HOME) -> None:
    """Forget one memory by id (within SCOPE)."""
    with workstation(home) as ws:
        typer.echo(f"forgot {ws.memory.forget(memory_id, scope=scope, principal=ws.principal)}")


@app.command()
def consolidate(home: str = HOME) -> None:
    """Promote, deduplicate and archive (the same as Memory.consolidate())."""
    with workstation(home) as ws:
        report = ws.memory.consolidate(principal=ws.principal)
        typer.echo(json.dumps(report.as_dict(), indent=2))


@app.command()
def stats(home: str = HOME) -> None:
    """Counts, strength histogram, hit rate and latencies."""
    with workstation(home) as ws:
        typer.echo(ws.memory.stats().summary())


@app.command()
def reembed(embedder: str = typer.Option(..., help="the new embedder id, e.g. minilm"), home: str = HOME) -> None:
    """Re-embed every long-term memory with EMBEDDER and make it the workspace's model."""
    from emergent.memory.reembed import reembed as run
    from emergent.workspace.audited import recorded

    with workstation(home) as ws:  # who re-embeds, recorded before the tables are rewritten
        audit, who = ws.audit, ws.principal
        with recorded(audit, "memory.reembed", who, {"embedder": embedder}) as outcome:
            cipher = ws.keyring.cipher("memory.ltm") if ws.settings.security.encrypt else None
            outcome["rows"] = n = run(home, embedder, cipher=cipher)
    typer.echo(f"re-embedded {n} memories with {embedder}")
