"""``emergent integrations``: which integrations are configured, and what each can do."""

from __future__ import annotations

import json

import typer

from emergent.cli._common import HOME

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(home: str = HOME, as_json: bool = typer.Option(False, "--json", help="one JSON object")) -> None:
    """List the integrations, whether their settings are complete, and their tools."""
    from rich.console import Console
    from rich.table import Table

    from emergent.config import load_settings
    from emergent.tools.integrations import status

    rows = status(load_settings(home))
    if as_json:
        typer.echo(json.dumps({"integrations": rows}, indent=2))
        return
    table = Table("integration", "configured", "tools (side effect)")
    for r in rows:
        ok = "yes" if r["configured"] else f"no: set {r['missing']}"
        ops = ", ".join(f"{r['name']}.{op} ({level})" for op, level in r["operations"].items())
        table.add_row(r["title"], ok, ops)
    Console().print(table)


@app.command()
def show(name: str = typer.Argument(..., help="integration name, e.g. github")) -> None:
    """Print an integration's settings and the argument schema of each of its tools, as JSON."""
    from emergent.tools.integrations import INTEGRATIONS
    from emergent.tools.integrations._tools import specs_for

    cls = INTEGRATIONS.get(name)
    tools = {s.name: {"side_effect": str(s.side_effect), "description": s.description, "args": s.args_schema}
             for s in specs_for(cls)}
    typer.echo(json.dumps({"name": cls.name, "title": cls.title, "credential": cls.credential_setting,
                           "tools": tools}, indent=2))
