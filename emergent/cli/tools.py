"""``emergent tools``: list, show, install, enable, disable, deprecate, stats, call, resume.

Every command acts as the OS user running it (``ws.principal``); ``call --as agent:NAME`` lowers
trust to an existing agent to try a policy.
"""

from __future__ import annotations

import json

import typer

from emergent.cli._common import HOME, workstation
from emergent.cli.principals import AS, acting

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def list_(search: str = typer.Argument("", help="text to look for in names, descriptions, tags"),
          as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """List the tools (latest version of each)."""
    from rich.console import Console
    from rich.table import Table

    with workstation(home) as ws:
        infos = ws.tools.list(search)
        if as_json:
            typer.echo(json.dumps([i.__dict__ if hasattr(i, "__dict__") else
                                   {k: getattr(i, k) for k in i.__slots__} for i in infos], default=str))
            return
        table = Table("tool", "version", "side effect", "enabled", "description")
        for i in infos:
            flag = "yes" if i.enabled else "no"
            table.add_row(i.name, i.version + (" (deprecated)" if i.deprecated else ""), i.side_effect, flag,
                          i.description[:70])
        Console().print(table)


@app.command()
def show(ref: str, home: str = HOME) -> None:
    """Show a tool's versions and the schema of the version REF resolves to."""
    with workstation(home) as ws:
        versions = [{k: getattr(v, k) for k in v.__slots__} for v in ws.tools.versions(ref.partition("@")[0])]
        spec = ws.tools.resolve(ref)
        typer.echo(json.dumps({"resolved": spec.describe(), "versions": versions}, indent=2, default=str))


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def install(target: list[str] = typer.Argument(..., help="module (pkg.mod or pkg.mod:attr), a .py file, "
                                                   "mcp+stdio:COMMAND ARGS... or mcp+http(s)://URL"),
            home: str = HOME) -> None:
    """Register the @tool functions of a module or file, or the tools of an MCP server (every version is kept).

    A server command with options of its own goes after ``--``:
    ``emergent tools install --home W -- mcp+stdio:npx -y @scope/server --flag``."""
    import shlex

    joined = target[0] if len(target) == 1 else target[0] + " " + shlex.join(target[1:])
    with workstation(home) as ws:
        for spec in ws.tools.install(joined, by=ws.principal):
            typer.echo(f"installed {spec.key}")


@app.command()
def enable(ref: str, home: str = HOME) -> None:
    """Enable NAME (every version) or NAME@VERSION / NAME@^RANGE."""
    with workstation(home) as ws:
        typer.echo("enabled " + ", ".join(ws.tools.enable(ref, by=ws.principal)))


@app.command()
def disable(ref: str, home: str = HOME) -> None:
    """Disable NAME (every version) or NAME@VERSION / NAME@^RANGE."""
    with workstation(home) as ws:
        typer.echo("disabled " + ", ".join(ws.tools.disable(ref, by=ws.principal)))


@app.command()
def deprecate(ref: str, successor: str = typer.Option(None, help="the tool to use instead, e.g. name@^2"),
              note: str = typer.Option(None), home: str = HOME) -> None:
    """Mark versions as deprecated (they still run) and name their successor."""
    with workstation(home) as ws:
        typer.echo("deprecated " + ", ".join(ws.tools.deprecate(ref, by=ws.principal, successor=successor, note=note)))


@app.command()
def stats(tool: str = typer.Argument(None), as_json: bool = typer.Option(False, "--json"), home: str = HOME) -> None:
    """Calls, success rate, p50/p95 latency and last error per tool version (from telemetry)."""
    from rich.console import Console
    from rich.table import Table

    with workstation(home) as ws:
        rows = ws.tools.stats(tool)
        if as_json:
            typer.echo(json.dumps([r.to_dict() for r in rows], default=str))
            return
        table = Table("tool", "version", "calls", "success", "p50 ms", "p95 ms", "last error")
        for r in rows:
            table.add_row(r.tool, r.version, str(r.calls), f"{r.success_rate:.1%}", f"{r.p50_ms:.2f}",
                          f"{r.p95_ms:.2f}", (r.last_error or "")[:60])
        Console().print(table)


@app.command()
def call(ref: str, args: str = typer.Argument("{}", help="JSON object of arguments"), as_: str = AS,
         confidence: float = typer.Option(None, help="0..1; counts only when acting as an agent"),
         wait: bool = typer.Option(False, help="wait for a human to decide when the gate asks"),
         home: str = HOME) -> None:
    """Call a tool through the gate (as you, the OS user) and print its JSON result."""
    from emergent.errors import ValidationError

    try:
        parsed = json.loads(args)
    except json.JSONDecodeError as exc:
        raise ValidationError(f"ARGS is not JSON: {exc}", hint='e.g. \'{"path": "notes.txt"}\'') from None
    with workstation(home) as ws:
        result = ws.tools.call(ref, parsed, principal=acting(ws, as_), confidence=confidence, wait=wait)
        typer.echo(json.dumps(result, indent=2, default=str))


@app.command()
def resume(approval_id: str, home: str = HOME) -> None:
    """Run the call approval APPROVAL_ID was granted for: once, as its requester, with the exact tool
    version and arguments, and only if the files it reads did not change since."""
    with workstation(home) as ws:
        result = ws.tools.resume(approval_id)
        typer.echo(json.dumps(result, indent=2, default=str))
