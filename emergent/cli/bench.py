"""``emergent bench <area>``: run a benchmark and print our figures beside the same-run baseline."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

app = typer.Typer(no_args_is_help=False)


# A group callback (not a command) so that `emergent bench memory --json` needs no sub-command name;
# interspersed args let the options follow AREA.
@app.callback(invoke_without_command=True, context_settings={"allow_interspersed_args": True})
def bench(
    area: str = typer.Argument(None, help="benchmark to run: memory, locomo, tools, jobs, graph, experiments, assistant, mcp, workflows, browser, api"),
    as_json: bool = typer.Option(False, "--json", help="print exactly one JSON object instead of a table"),
    size: int = typer.Option(None, "--size", min=1, help="number of items (e.g. memories) to benchmark at"),
    data: Path = typer.Option(None, "--data", envvar="EMERGENT_BENCH_LOCOMO",
                              help="input data file (a LoCoMo JSON file; default: $EMERGENT_BENCH_LOCOMO)"),
    k: int = typer.Option(None, "--k", min=1, help="how many results to retrieve per query"),
    out: Path = typer.Option(None, "--out", help="write per-item results here (JSON lines)"),
    quick: bool = typer.Option(False, "--quick", help="small sizes (checks that it runs; the figures mean little)"),
    workers: int = typer.Option(None, "--workers", min=1, max=64,
                                help="server processes per instance (bench api: `emergent serve --workers N`)"),
) -> None:
    """Run benchmark AREA; without AREA, list the benchmarks available."""
    from emergent import bench as b

    if area is None:
        registered = b.BENCHES.names()
        ready = set(b.available())
        for name in registered:
            typer.echo(f"{name}\t{'ready' if name in ready else 'not installed'}")
        return
    if data is not None and not data.exists():
        from emergent.errors import ValidationError

        raise ValidationError(f"--data file {str(data)!r} does not exist", hint="pass the path of an existing file")
    args = {"size": size, "data": str(data) if data else None, "k": k, "out": str(out) if out else None,
            "quiet": as_json, "quick": quick, "workers": workers}
    import sys

    from rich.console import Console

    with Console(stderr=True).status(f"running bench {area} (this takes a while)...",
                                     spinner="dots") if sys.stderr.isatty() else _nothing():
        result, rows = b.run(area, args)
    if as_json:
        typer.echo(b.to_json(result))
        return
    _print_table(area, rows, result.get("machine") or {})


def _nothing() -> Any:
    import contextlib

    return contextlib.nullcontext()


def _print_table(area: str, rows: Sequence[tuple[object, object, object, object]], machine: dict[str, object]) -> None:
    from rich.console import Console
    from rich.table import Table

    from emergent.bench import describe_machine, fmt

    table = Table("metric", "ours", "baseline (same run)", "ratio / target", title=f"emergent bench {area}",
                  caption=f"machine: {describe_machine(machine)}")
    for metric, ours, base, target in rows:
        table.add_row(str(metric), fmt(ours), fmt(base), fmt(target))
    Console().print(table)
