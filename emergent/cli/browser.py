"""``emergent browser``: saved scripts and extraction templates, replays, proposals, extraction, runs.

Every command acts as the OS user running it (``ws.principal``, a person): a replay or an extraction
runs under that principal (audited), and only a person accepts or rejects a proposed version (a
healed script, a learned template). Listing reads the store only: no browser is started for it.

There is no ``record`` command: recording needs a page a person drives. Record in a notebook
(``ws.browser.open(url, by=ws.principal, record="name")``, then act through the session or the
``SelectorBuilder`` widget, then ``session.stop()``), with ``EMERGENT_BROWSER__HEADLESS=false`` to
drive a visible window where there is a display.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from emergent.cli._common import HOME, workstation
from emergent.errors import NotFoundError, ValidationError

app = typer.Typer(no_args_is_help=True, help=(
    "Browser automation: saved scripts and templates, replay (self-healing), accept/reject proposals, "
    "extract to CSV, runs. Recording needs a page a person drives: record in a notebook "
    "(ws.browser.open(url, by=ws.principal, record='name')), not here."))

_STYLE = {"completed": "green", "active": "green", "ok": "green", "healed": "yellow", "proposed": "yellow",
          "failed": "red", "rejected": "grey50", "running": "blue", "skipped": "grey50"}
#: rows of an extraction printed to the terminal (the CSV gets all of them)
SHOWN_ROWS = 20


def _console() -> Any:
    from rich.console import Console

    return Console()


def _text(value: Any) -> Any:
    """A value as plain text (never parsed as rich markup: a page's text may hold ``[/b]``)."""
    from rich.text import Text

    return Text("-" if value is None else str(value), style=_STYLE.get(str(value), ""))


def _when(t: float | None) -> str:
    from emergent.clock import iso

    return iso(t).replace("+00:00", "Z") if t else "-"


def _store(ws: Any) -> Any:
    """The saved scripts, templates and runs (SQL only: no Playwright, no Chromium for listing)."""
    from emergent.browser.store import BrowserStore

    return BrowserStore(ws.sql, clock=ws.clock)


def parse_params(pairs: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise ValidationError(f"--param {pair!r} is not NAME=VALUE", field="param",
                                  hint="e.g. --param email=ada@example.org --param project=P-7")
        out[name.strip()] = value
    return out


def _versions_table(title: str, rows: list[dict[str, Any]]) -> Any:
    from rich.table import Table

    table = Table(title=title)
    for col in ("name", "version", "status", "by", "saved (UTC)", "note"):
        table.add_column(col, no_wrap=col in ("name", "version"))
    for r in rows:
        table.add_row(_text(r["name"]), _text(r["version"]), _text(r["status"]), _text(r["created_by"]),
                      _when(r["created_at"]), _text(r.get("note") or ""))
    return table


def _list(kind: str, as_json: bool, home: str | None) -> None:
    with workstation(home) as ws:
        rows = _store(ws).list(kind)
        if as_json:
            typer.echo(json.dumps(rows, default=str))
            return
        if not rows:
            how = ("record one in a notebook: ws.browser.open(url, by=ws.principal, record='name')" if kind == "script"
                   else "save one: ws.browser.save_template(template, by=ws.principal)")
            typer.echo(f"no {kind}s saved yet: {how}")
            return
        _console().print(_versions_table(f"browser {kind}s (every version)", rows))


@app.command()
def scripts(as_json: bool = typer.Option(False, "--json", help="print a JSON list"), home: str = HOME) -> None:
    """Saved scripts, every version: status (active, proposed, rejected), who saved it, when."""
    _list("script", as_json, home)


@app.command()
def templates(as_json: bool = typer.Option(False, "--json", help="print a JSON list"), home: str = HOME) -> None:
    """Saved extraction templates, every version."""
    _list("template", as_json, home)


@app.command()
def show(name: str = typer.Argument(..., help="a script's (or template's) name"),
         version: str = typer.Option(None, "--version", "-v", help="this version (default: the newest active)"),
         template: bool = typer.Option(False, "--template", help="show the template of that name"),
         home: str = HOME) -> None:
    """A saved script (or template) as YAML, after the list of its versions."""
    kind = "template" if template else "script"
    with workstation(home) as ws:
        store = _store(ws)
        rows = store.list(kind, name=name)
        if not rows and not template and store.list("template", name=name):
            kind, rows = "template", store.list("template", name=name)  # only a template has that name
        if not rows:
            known = sorted({r["name"] for r in store.list(kind)})
            raise NotFoundError(f"no {kind} named {name!r}", hint=f"saved {kind}s: {', '.join(known) or 'none'}"
                                f" (`emergent browser {kind}s`)", name=name)
        item = store.get(kind, name, version) if version or any(r["status"] == "active" for r in rows) else \
            store.get(kind, name, rows[-1]["version"])
        _console().print(_versions_table(f"{kind} {name}", rows))
        typer.echo(f"# {kind} {item.name} {item.version}")
        typer.echo(item.to_yaml().rstrip())
        if kind == "script" and item.secrets:
            typer.echo(f"# needs secrets: {', '.join(item.secrets)} (EMERGENT_BROWSER__SECRETS)")


def _steps_table(result: Any) -> Any:
    from rich.table import Table

    table = Table(title=f"replay {result.script} {result.version}: {result.status}")
    for col in ("#", "action", "status", "found by", "healed by", "ms", "error"):
        table.add_column(col)
    for s in result.steps:
        table.add_row(str(s.index), s.kind, _text(s.status), _text(s.used.describe() if s.used else None),
                      _text(s.healed_by), f"{s.ms:.0f}", _text(s.error or ""))
    return table


@app.command()
def replay(name: str = typer.Argument(..., help="the saved script's name"),
           param: list[str] = typer.Option(None, "--param", "-p", help="NAME=VALUE (repeatable)"),
           version: str = typer.Option(None, "--version", "-v", help="this version (default: the newest active)"),
           no_heal: bool = typer.Option(False, "--no-heal", help="fail at a locator that no longer matches"),
           as_json: bool = typer.Option(False, "--json", help="print the replay result as JSON"),
           home: str = HOME) -> None:
    """Replay a saved script in a fresh browser session; exit 1 when it fails. A healed script is saved as a
    proposed version: accept it with `emergent browser accept NAME VERSION`."""
    params = parse_params(param)
    with workstation(home) as ws:
        result = ws.browser.replay(name, params, by=ws.principal, version=version, heal=not no_heal)
        if as_json:
            typer.echo(json.dumps({**result.model_dump(mode="json"), "healed": result.healed}))
        else:
            _console().print(_steps_table(result))
            typer.echo(f"run {result.run_id} ({result.script} {result.version}): {result.status} in "
                       f"{result.duration_s:.1f} s; {result.healed} step(s) healed")
            if result.proposed_version:
                typer.echo(f"proposed version {result.proposed_version}: `emergent browser accept {result.script} "
                           f"{result.proposed_version}` (or reject)")
            if result.trace:
                typer.echo(f"trace: {result.trace} (open it with `playwright show-trace`)")
            if result.error:
                typer.secho(f"error: {result.error}", fg="red", err=True)
        if result.status != "completed":
            raise typer.Exit(1)


def _decide(accept: bool, name: str, version: str, template: bool, home: str | None) -> None:
    kind = "template" if template else "script"
    with workstation(home) as ws:
        svc = ws.browser
        (svc.accept if accept else svc.reject)(kind, name, version, by=ws.principal)
        typer.echo(f"{kind} {name} {version}: {'active' if accept else 'rejected'}")


@app.command()
def accept(name: str = typer.Argument(..., help="the script's name"),
           version: str = typer.Argument(..., help="the proposed version"),
           template: bool = typer.Option(False, "--template", help="a template's proposed version"),
           home: str = HOME) -> None:
    """Accept a proposed version (a healed script, a learned template): it becomes the active one."""
    _decide(True, name, version, template, home)


@app.command()
def reject(name: str = typer.Argument(..., help="the script's name"),
           version: str = typer.Argument(..., help="the proposed version"),
           template: bool = typer.Option(False, "--template", help="a template's proposed version"),
           home: str = HOME) -> None:
    """Reject a proposed version: it stays stored, never replayed by name."""
    _decide(False, name, version, template, home)


@app.command()
def extract(template: str = typer.Argument(..., help="the saved template's name"),
            url: str = typer.Option(None, "--url", help="where to extract (default: the template's url)"),
            csv: Path = typer.Option(None, "--csv", help="write every row to this CSV file"),
            max_pages: int = typer.Option(None, "--max-pages", min=1, help="read at most this many pages"),
            version: str = typer.Option(None, "--version", "-v", help="this version (default: the newest active)"),
            as_json: bool = typer.Option(False, "--json", help="print the rows as JSON"),
            home: str = HOME) -> None:
    """Extract rows with a saved template into a table (or --csv / --json)."""
    from rich.table import Table

    if csv is not None and (csv.is_dir() or not csv.parent.is_dir()):
        raise ValidationError(f"cannot write {str(csv)!r}: " + ("it is a directory" if csv.is_dir()
                              else f"no directory {str(csv.parent)!r}"), field="csv",
                              hint="pass the path of a file in an existing directory")
    with workstation(home) as ws:
        svc = ws.browser
        t = svc.template(template, version) if version else template
        frame = svc.extract(t, by=ws.principal, url=url, max_pages=max_pages)
        if csv is not None:
            frame.write_csv(csv)
            typer.echo(f"{frame.height} rows, {frame.width} columns → {csv}")
            return
        if as_json:
            from emergent.browser.tools import frame_result

            typer.echo(json.dumps(frame_result(frame)))
            return
        table = Table(title=f"{template}: {frame.height} rows")
        for col, dtype in zip(frame.columns, frame.dtypes, strict=True):
            table.add_column(f"{col} ({dtype})")
        for row in frame.head(SHOWN_ROWS).iter_rows():
            table.add_row(*(_text(v) for v in row))
        _console().print(table)
        if frame.height > SHOWN_ROWS:
            typer.echo(f"… {frame.height - SHOWN_ROWS} more rows: pass --csv PATH for all of them")


@app.command()
def runs(script: str = typer.Option(None, "--script", help="only this script's runs"),
         limit: int = typer.Option(20, "--limit", "-n", min=1, help="how many, newest first"),
         as_json: bool = typer.Option(False, "--json", help="print a JSON list"), home: str = HOME) -> None:
    """Recent replays: script, version, state, steps healed, proposed version, by, started, error."""
    from rich.table import Table

    with workstation(home) as ws:
        found = _store(ws).runs(script=script, limit=limit)
        if as_json:
            typer.echo(json.dumps(found, default=str))
            return
        if not found:
            typer.echo("no replays yet: emergent browser replay NAME")
            return
        table = Table(title="browser replays")
        table.add_column("run", no_wrap=True)
        for col in ("script", "version", "state", "healed", "proposed", "by", "started (UTC)", "error"):
            table.add_column(col)
        for r in found:
            table.add_row(r["id"], _text(r["script"]), _text(r["version"]), _text(r["status"]), str(r["healed"]),
                          _text(r["proposed_version"]), _text(r["principal"]), _when(r["started_at"]),
                          _text(r["error"] or ""))
        _console().print(table)
