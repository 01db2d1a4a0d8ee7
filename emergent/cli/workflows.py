"""``emergent workflows``: runs, show, templates, run, validate, pause, resume, cancel.

Each command acts as the OS user running it (``ws.principal``): a run started here runs its tool,
notebook and assistant steps as that user, through the gate. ``run`` takes a YAML file or the name of
a template (``emergent workflows templates`` lists them); inputs are ``--input name=value`` (a value
that parses as JSON is JSON, else a string)."""

from __future__ import annotations

import contextlib
import json
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from emergent.cli._common import HOME, workstation
from emergent.errors import ValidationError

app = typer.Typer(no_args_is_help=True)

_STYLE = {"completed": "green", "running": "blue", "failed": "red", "waiting_approval": "yellow",
          "paused": "dark_orange", "cancelled": "grey50", "skipped": "grey50", "pending": "grey70",
          "compensated": "magenta"}


def parse_inputs(pairs: list[str] | None, as_json: str | None = None) -> dict[str, Any]:
    """``--input name=value`` (repeatable; JSON values parsed, else strings) over ``--inputs-json``."""
    try:
        out: dict[str, Any] = json.loads(as_json) if as_json else {}
    except json.JSONDecodeError as exc:
        raise ValidationError(f"--inputs-json is not JSON: {exc.msg} (line {exc.lineno} column {exc.colno})",
                              hint='pass one JSON object, e.g. --inputs-json \'{"topic": "buoys"}\'',
                              field="inputs") from None
    except RecursionError:
        raise ValidationError("--inputs-json nests too deeply to read", hint="pass flatter inputs",
                              field="inputs") from None
    if not isinstance(out, dict):
        raise ValidationError("--inputs-json must be a JSON object", hint='e.g. {"topic": "buoys"}', field="inputs")
    for pair in pairs or []:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise ValidationError(f"input {pair!r} is not NAME=VALUE", hint="e.g. --input topic=buoys --input days=7",
                                  field="inputs")
        try:
            out[name.strip()] = json.loads(raw)
        except json.JSONDecodeError:
            out[name.strip()] = raw
    return out


def is_file(source: str) -> bool:
    """A spec named by a path (a YAML/JSON suffix, a separator, or an existing file) rather than a name."""
    return source.endswith((".yaml", ".yml", ".json")) or "/" in source or Path(source).exists()


def load_spec(source: str) -> Any:
    """A Workflow from a YAML file, else the template of that name (no workspace needed); a user's
    mistake (bad YAML, an unknown field, a cycle, a missing file) is a ValidationError naming what to
    fix, never a traceback."""
    from emergent.workflows import templates
    from emergent.workflows.spec import Workflow

    if is_file(source):
        if not Path(source).is_file():
            raise ValidationError(f"no workflow file {source!r}", hint="pass the path of a YAML spec, or a template "
                                  "name (`emergent workflows templates` lists them)", field="spec")
        return Workflow.from_yaml(Path(source))
    return Workflow.from_yaml(templates.text(source))


def _when(t: float | None) -> str:
    from emergent.clock import iso

    return iso(t).replace("+00:00", "Z") if t else "-"


def _status(value: Any) -> Any:
    """A state, coloured (a rich Text: never parsed as markup)."""
    from rich.text import Text

    return Text(str(value), style=_STYLE.get(str(value), ""))


def _plain(*parts: Any) -> Any:
    """Values shown as written: a run's error, a step's key or a principal holding ``[/bold]`` is text,
    not rich markup (which would restyle the output or crash it)."""
    from rich.text import Text

    return Text.assemble(*(p if isinstance(p, Text) else str(p) for p in parts))


def _console() -> Any:
    from rich.console import Console

    return Console()


@app.command()
def runs(limit: int = typer.Option(20, "--limit", "-n", min=1, help="how many runs, newest first"),
         status: str = typer.Option(None, "--status", help="only runs in this state (running, failed, ...)"),
         as_json: bool = typer.Option(False, "--json", help="print a JSON list"), home: str = HOME) -> None:
    """Recent workflow runs: workflow, state, steps done, principal, started, error."""
    from rich.table import Table

    with workstation(home) as ws:
        found = ws.workflows.runs(limit=limit, status=status)
        if as_json:
            typer.echo(json.dumps([{**r.to_dict(), "abandoned": r.status == "running" and
                                    ws.workflows.abandoned(r.id)} for r in found], default=str))
            return
        if not found:
            typer.echo("no workflow runs yet: emergent workflows run TEMPLATE_OR_FILE")
            return
        table = Table(title="workflow runs")
        table.add_column("run", no_wrap=True)  # never cut: it is what `show` and `resume` take
        for name in ("workflow", "state", "steps done", "by", "started (UTC)"):
            table.add_column(name)
        table.add_column("error", ratio=1)
        for r in found:
            done = sum(1 for s in r.steps if s.status in ("completed", "skipped"))
            state = _status(r.status)
            if r.status == "running" and ws.workflows.abandoned(r.id):
                state = _plain(state, " (abandoned: resume it)")
            table.add_row(_plain(r.id), _plain(r.workflow), state, f"{done}/{len(r.steps)}",
                          _plain(r.principal), _when(r.created_at), _plain((r.error or "")[:80]))
        _console().print(table)


@app.command()
def show(run_id: str = typer.Argument(..., metavar="ID", help="the run's id (emergent workflows runs)"),
         as_json: bool = typer.Option(False, "--json", help="print the run as one JSON object"), home: str = HOME) -> None:
    """Run ID: its state, inputs, outputs, and every step (state, attempt, error, waits on)."""
    from rich.table import Table

    with workstation(home) as ws:
        run = ws.workflows.get(run_id)
        abandoned = run.status == "running" and ws.workflows.abandoned(run_id)
        if as_json:
            typer.echo(json.dumps({**run.to_dict(), "abandoned": abandoned}, indent=2, default=str))
            return
        console = _console()
        console.print(_plain(f"{run.workflow} run {run.id}: ", _status(run.status), f" · by {run.principal} · "
                             f"started {_when(run.created_at)} · updated {_when(run.updated_at)}"), highlight=False)
        if abandoned:
            console.print(_plain(f"abandoned: the process that drove it is gone (killed?) and nothing drives it; "
                                 f"continue it with `emergent workflows resume {run.id}`"), highlight=False)
        if run.error:
            console.print(_plain(f"error: {run.error}"), highlight=False)
        console.print(f"inputs: {json.dumps(run.inputs, default=str)}", markup=False, highlight=False)
        table = Table(title="steps")
        table.add_column("step", no_wrap=True)
        for name in ("kind", "state", "attempt", "needs", "started", "finished"):
            table.add_column(name)
        table.add_column("error / waits on", ratio=1)
        for s in run.steps:
            note = s.error or (f"approval {s.approval_id}" if s.approval_id else "")
            table.add_row(_plain(s.key), _plain(s.kind), _status(s.status), str(s.attempt),
                          _plain(", ".join(s.needs or [])), _when(s.started_at), _when(s.finished_at),
                          _plain(note[:100]))
        console.print(table)
        if run.outputs:
            console.print(f"outputs: {json.dumps(run.outputs, default=str)[:2000]}", markup=False, highlight=False)


@app.command()
def templates(as_json: bool = typer.Option(False, "--json", help="print a JSON list")) -> None:
    """The workflow templates shipped with Emergent: name, steps, inputs (required ones marked *)."""
    from rich.table import Table

    from emergent.workflows import templates as t

    infos = [t.describe(name) for name in t.names()]
    if as_json:
        typer.echo(json.dumps(infos, default=str))
        return
    table = Table("template", "steps", "inputs (* required)", "description", title="workflow templates",
                  caption="run one: emergent workflows run NAME --input name=value")
    for info in infos:
        inputs = ", ".join(f"{k}*" if v is None else f"{k}={json.dumps(v)}" for k, v in info["inputs"].items())
        table.add_row(_plain(info["name"]), str(info["steps"]), _plain(inputs), _plain(info["description"]))
    _console().print(table)


@app.command()
def validate(file: Path = typer.Argument(..., metavar="FILE", help="a workflow spec (YAML)")) -> None:
    """Check a YAML spec: fields, references, conditions, cycles. Exit 2 with what to fix."""
    wf = load_spec(str(file))
    typer.echo(f"valid: {wf.name} (version {wf.version}), {len(wf.steps)} steps")


def _finish(run: Any, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(run.to_dict(), indent=2, default=str))
    else:
        console = _console()
        console.print(_plain(f"run {run.id} ({run.workflow}): ", _status(run.status)), highlight=False)
        if run.error:
            console.print(f"error: {run.error}", markup=False, highlight=False)
        waiting = [s for s in run.steps if s.approval_id and s.status == "waiting_approval"]
        for s in waiting if run.status == "waiting_approval" else []:
            console.print(f"step {s.key} waits on approval {s.approval_id}: emergent approvals approve "
                          f"{s.approval_id}, then emergent workflows resume {run.id}", markup=False, highlight=False)
        if run.outputs:
            console.print(f"outputs: {json.dumps(run.outputs, default=str)[:2000]}", markup=False, highlight=False)
    if run.status in ("failed", "cancelled"):
        raise typer.Exit(1)


@app.command()
def run(spec: str = typer.Argument(..., metavar="SPEC_OR_TEMPLATE", help="a YAML file, a saved workflow or a template name"),
        inputs: list[str] = typer.Option(None, "--input", "-i", help="NAME=VALUE (repeatable; JSON values parsed)"),
        inputs_json: str = typer.Option(None, "--inputs-json", help="all inputs as one JSON object"),
        executor: str = typer.Option(None, "--executor", help="threads, threads:N or dask://host:port"),
        timeout: float = typer.Option(None, "--timeout", help="seconds to wait for it"),
        as_json: bool = typer.Option(False, "--json", help="print the finished run as JSON"), home: str = HOME) -> None:
    """Run a workflow (a YAML file, a saved workflow or a template) as you, until it ends or waits for an
    approval; exit 1 when it failed or was cancelled. A run lives in this process: Ctrl-C (or --timeout)
    pauses it, a kill leaves it checkpointed; `emergent workflows resume ID` continues it."""
    values = parse_inputs(inputs, inputs_json)
    wf = load_spec(spec) if is_file(spec) else None
    with workstation(home) as ws:
        if wf is None:  # a saved workflow or a template (whose notebooks are put in the workspace first)
            wf = ws.workflows.resolve(spec)
        _finish(_wait(ws, lambda: ws.workflows.start(wf, values, principal=ws.principal, executor=executor),
                      timeout), as_json)


@contextlib.contextmanager
def _deferred_interrupt() -> Iterator[list[int]]:
    """SIGINT during the block is recorded (the list gets an item) instead of raised; in the main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield []
        return
    seen: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, _frame: seen.append(signum))
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


def _wait(ws: Any, start: Callable[[], str], timeout: float | None) -> Any:
    """Start the run and return it once it stops; past ``--timeout`` or on Ctrl-C it is paused (running
    steps finish, no new one starts) and the way to continue it is printed. A Ctrl-C while the run starts is
    held until its id is known, and the start sits inside the ``try``: no instant between them escapes it."""
    from emergent.errors import TimeoutExceeded

    run_id: str | None = None
    try:
        with _deferred_interrupt() as interrupted:
            run_id = start()
        if interrupted:
            raise KeyboardInterrupt
        return ws.workflows.wait(run_id, timeout)
    except (TimeoutExceeded, KeyboardInterrupt) as exc:
        if run_id is None:  # interrupted before the run existed: nothing to pause
            typer.secho("interrupted before the run started: nothing was run", err=True)
            raise typer.Exit(130) from None
        why = f"still running after {timeout:g} s" if isinstance(exc, TimeoutExceeded) else "interrupted"
        try:
            ws.workflows.pause(run_id, by=ws.principal)
        except Exception:  # noqa: BLE001 - it ended meanwhile: nothing to pause
            return ws.workflows.get(run_id)
        typer.secho(f"{why}: pausing run {run_id} (its running steps finish first; Ctrl-C again leaves now)",
                    err=True)
        try:
            run = ws.workflows.wait(run_id)
        except KeyboardInterrupt:
            run = ws.workflows.get(run_id)
        typer.secho(f"run {run_id} is {run.status}; continue it with `emergent workflows resume {run_id}`", err=True)
        raise typer.Exit(130 if isinstance(exc, KeyboardInterrupt) else 1) from None


@app.command()
def resume(run_id: str = typer.Argument(..., metavar="ID"),
           as_json: bool = typer.Option(False, "--json", help="print the finished run as JSON"), home: str = HOME) -> None:
    """Continue run ID (after a kill, a pause or a decided approval); completed steps are not re-run."""
    with workstation(home) as ws:
        _finish(ws.workflows.resume(run_id, principal=ws.principal), as_json)


@app.command()
def pause(run_id: str = typer.Argument(..., metavar="ID"), home: str = HOME) -> None:
    """Pause run ID: no new step starts; running ones finish. `resume` continues it."""
    with workstation(home) as ws:
        ws.workflows.pause(run_id, by=ws.principal)
        typer.echo(f"paused {run_id}")


@app.command()
def cancel(run_id: str = typer.Argument(..., metavar="ID"), home: str = HOME) -> None:
    """Cancel run ID: no step starts again; it cannot be resumed."""
    with workstation(home) as ws:
        ws.workflows.cancel(run_id, by=ws.principal)
        typer.echo(f"cancelled {run_id}")
