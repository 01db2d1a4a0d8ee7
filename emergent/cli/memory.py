"""``emergent memory``: remember, recall, forget, consolidate, stats, reembed."""

from __future__ import annotations

import json

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
            outcome["rows"] = n = run(home, embedder)
    typer.echo(f"re-embedded {n} memories with {embedder}")
