"""``emergent jobs``: add, list, show, run, pause, resume, remove, history.

Each command acts as the OS user running it (``ws.principal``); a run started here runs its
notebook as that user. Scheduled runs act as ``service:scheduler`` (``emergent scheduler run``)."""

from __future__ import annotations

import json
from typing import Any

import typer

from emergent.cli._common import HOME, workstation
from emergent.errors import ValidationError

app = typer.Typer(no_args_is_help=True)


def _params(pairs: list[str] | None, as_json: str | None) -> dict[str, Any]:
    """``-p name=value`` (value parsed as JSON when it is JSON, else a string) and/or ``--params-json``."""
    out: dict[str, Any] = json.loads(as_json) if as_json else {}
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name:
            raise ValidationError(f"parameter {pair!r} is not NAME=VALUE", hint="e.g. -p n=5 -p label=daily")
        try:
            out[name] = json.loads(raw)
        except json.JSONDecodeError:
            out[name] = raw
    return out


def _when(t: float | None) -> str:
    from emergent.clock import iso

    return iso(t) if t else "-"


@app.command()
def add(name: str, notebook: str,
        schedule: str = typer.Option(None, "--schedule", "-s", help="cron ('0 3 * * *', UTC) or interval ('every 15m')"),
        param: list[str] = typer.Option(None, "--param", "-p", help="NAME=VALUE (repeatable; JSON values parsed)"),
        params_json: str = typer.Option(None, "--params-json", help="all parameters as one JSON object"),
        timeout: float = typer.Option(3600.0, help="seconds for the whole run"),
        retries: int = typer.Option(0, help="extra attempts after a failure"),
        retry_delay: float = typer.Option(0.0, help="seconds between attempts"),
        kernel: str = typer.Option("python3", help="kernel name (e.g. emergent)"),
        chain: list[str] = typer.Option(None, "--chain", help="job to run after a success (repeatable)"),
        notify: list[str] = typer.Option(None, "--notify", help="webhook URL, slack:<channel> or email:<addr>"),
        replace: bool = typer.Option(False, help="redefine an existing job"), home: str = HOME) -> None:
    """Define job NAME running NOTEBOOK."""
    with workstation(home) as ws:
        state = ws.jobs.add(name, notebook, principal=ws.principal, replace=replace, schedule=schedule, parameters=_params(param, params_json),
                            timeout_s=timeout, retries=retries, retry_delay_s=retry_delay, kernel=kernel,
                            chain=chain or [], notify=notify or [])
        typer.echo(f"added {name}; next run {_when(state.next_run_at)}")


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """Jobs with their schedule, next run and last status."""
    from rich.console import Console
    from rich.table import Table

    with workstation(home) as ws:
        states = ws.jobs.list()
        last = {s.name: next(iter(ws.jobs.history(s.name, 1)), None) for s in states}
        if as_json:
            status = {name: (r.status.value if r is not None else None) for name, r in last.items()}
            typer.echo(json.dumps([{**s.as_dict(), "last_status": status[s.name]} for s in states], default=str))
            return
        table = Table("job", "schedule", "next run (UTC)", "state", "last run")
        for s in states:
            r = last[s.name]
            table.add_row(s.name, s.spec.schedule or "on demand", _when(s.next_run_at),
                          "paused" if s.paused else ("running" if s.lease_owner else "active"),
                          f"{r.status.value} {_when(r.started_at)}" if r else "-")
        Console().print(table)


@app.command()
def show(name: str, home: str = HOME) -> None:
    """The definition and state of job NAME (JSON)."""
    with workstation(home) as ws:
        typer.echo(json.dumps(ws.jobs.get(name).as_dict(), indent=2, default=str))


@app.command()
def run(name: str, param: list[str] = typer.Option(None, "--param", "-p", help="override NAME=VALUE"),
        params_json: str = typer.Option(None, "--params-json"), home: str = HOME) -> None:
    """Run job NAME now (retries and chain included); exit 1 if it failed."""
    import sys

    with workstation(home) as ws:
        ws.jobs.progress_bar = sys.stderr.isatty()
        r = ws.jobs.run(name, _params(param, params_json), principal=ws.principal)
        typer.echo(json.dumps(r.as_dict(), indent=2, default=str))
        if r.status.value != "succeeded":
            raise typer.Exit(1)


@app.command()
def pause(name: str, home: str = HOME) -> None:
    """Stop scheduling job NAME (on-demand runs still work)."""
    with workstation(home) as ws:
        ws.jobs.pause(name, principal=ws.principal)
        typer.echo(f"paused {name}")


@app.command()
def resume(name: str, home: str = HOME) -> None:
    """Schedule job NAME again from its next slot after now."""
    with workstation(home) as ws:
        state = ws.jobs.resume(name, principal=ws.principal)
        typer.echo(f"resumed {name}; next run {_when(state.next_run_at)}")


@app.command()
def remove(name: str, home: str = HOME) -> None:
    """Delete job NAME (its run history is kept)."""
    with workstation(home) as ws:
        ws.jobs.remove(name, principal=ws.principal)
        typer.echo(f"removed {name}")


@app.command()
def history(name: str = typer.Argument(None), limit: int = 20, as_json: bool = typer.Option(False, "--json"),
            home: str = HOME) -> None:
    """Recent runs (of NAME, or of every job): status, duration, error, executed notebook."""
    from rich.console import Console
    from rich.table import Table

    with workstation(home) as ws:
        runs = ws.jobs.history(name, limit)
        if as_json:
            typer.echo(json.dumps([r.as_dict() for r in runs], default=str))
            return
        table = Table("run", "job", "started (UTC)", "attempt", "status", "s", "error", "notebook")
        for r in runs:
            table.add_row(str(r.id), r.job, _when(r.started_at), str(r.attempt), r.status.value,
                          f"{r.duration_s:.1f}" if r.duration_s is not None else "-", (r.error or "")[:80],
                          r.output_path or "-")
        Console().print(table)
