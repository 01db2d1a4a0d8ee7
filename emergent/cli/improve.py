"""``emergent improve``: run the self-improvement cycle, show its status and history."""

from __future__ import annotations

import json

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


@app.command()
def run(data: str = typer.Option(None, help="a LoCoMo-format recall workload; without it only proposals run"),
        conversations: int = typer.Option(None), questions: int = typer.Option(None, help="per conversation"),
        max_hypotheses: int = typer.Option(6), home: str = HOME) -> None:
    """Signals → proposals → (with --data) baseline, experiments, decision, tracking."""
    from rich.console import Console

    console = Console(stderr=True)
    with workstation(home) as ws, console.status("self-improvement") as st:
        out = ws.self_improvement(data=data, conversations=conversations, questions_per_conversation=questions,
                                  max_hypotheses=max_hypotheses, progress=lambda m: st.update(m))
    typer.echo(json.dumps(out, indent=2, default=str))


@app.command()
def status(home: str = HOME) -> None:
    """Current config versions, open experiments, pending proposals, the last cycle."""
    with workstation(home) as ws:
        typer.echo(json.dumps(ws.improvement_status(), indent=2, default=str))


@app.command()
def history(limit: int = 10, home: str = HOME) -> None:
    """Past cycles: when, decision, held-out gain."""
    from emergent.experiments.cycle import ImprovementCycle

    with workstation(home) as ws:
        for c in ImprovementCycle(ws.experiments.registry, ws.experiments).history(limit):
            gain = ((c["report"] or {}).get("heldout") or {}).get("gain")
            typer.echo(f"{c['id']}  {c['status']:<8} {c['decision'] or '-':<18} held-out gain "
                       f"{'-' if gain is None else f'{gain:+.4f}'}")
