"""The ``emergent`` command line. Each area registers a Typer sub-app in its own module."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from emergent.errors import EmergentError

app = typer.Typer(no_args_is_help=True, add_completion=False, rich_markup_mode=None,
                  help="Emergent: memory, tools, governance and notebooks for an AI assistant.")

# name -> module:attribute of a typer.Typer (imported only when the command runs)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "memory": ("emergent.cli.memory", "Remember, recall, consolidate, re-embed."),
    "chat": ("emergent.cli.chat", "Talk to the assistant: a conversation, or one question answered and exit."),
    "backup": ("emergent.cli.backup", "Create, list, verify and restore backups."),
    "bench": ("emergent.cli.bench", "Benchmarks: our figure beside a same-run baseline."),
    "models": ("emergent.cli.models", "Prepare offline models (export MiniLM to ONNX)."),
    "tools": ("emergent.cli.tools", "Tools: list, show, install, enable, disable, deprecate, stats, call, resume."),
    "integrations": ("emergent.cli.integrations", "External integrations: which are configured, and their tools."),
    "sandbox": ("emergent.cli.sandbox", "Run a command in the sandbox (limits, no network); show isolation."),
    "audit": ("emergent.cli.audit", "Verify, export and tail the hash-chained audit trail."),
    "approvals": ("emergent.cli.approvals", "List and show approval requests; approve (and run) or reject them."),
    "policy": ("emergent.cli.policy", "Permission matrix, thresholds, overrides, pause and suspension."),
    "principals": ("emergent.cli.principals", "Who may act: list principals, create agents, grant and revoke roles."),
    "jobs": ("emergent.cli.jobs", "Scheduled notebook jobs: add, list, show, run, pause, resume, remove, history."),
    "scheduler": ("emergent.cli.scheduler", "Run due jobs (a long-running process; no JupyterLab needed)."),
    "kernel": ("emergent.cli.kernel", "Install the Emergent Jupyter kernel."),
    "proposals": ("emergent.cli.proposals", "Improvement proposals: analyze, generate, list, show, approve, reject, rank."),
    "experiments": ("emergent.cli.experiments", "Config versions (set, rollback) and A/B experiments (list, show, decide)."),
    "improve": ("emergent.cli.improve", "The self-improvement cycle: run, status, history."),
    "graph": ("emergent.cli.graph", "Knowledge graph: sync, search, show, communities, infer, edit, export, render."),
    "mcp": ("emergent.cli.mcp", "MCP: serve the tools to MCP clients (stdio or HTTP); bearer tokens for HTTP."),
    "agents": ("emergent.cli.agents", "Agents: their cards, tasks and states, bus messages, votes, conflicts; decide what they escalated."),
    "workflows": ("emergent.cli.workflows", "Workflows: runs, show, templates, run, validate, pause, resume, cancel."),
    "browser": ("emergent.cli.browser", "Browser automation: scripts, show, replay, accept, reject, templates, extract, runs (record in a notebook: it needs a page a person drives)."),
    "serve": ("emergent.cli.serve", "Serve the REST API (FastAPI under uvicorn): prints the URL; Ctrl-C stops."),
    "tokens": ("emergent.cli.tokens", "API tokens of the REST API: create (the secret printed once), list, revoke."),
    "retention": ("emergent.cli.retention", "Retention policies, the purge, right-to-erasure and the compliance report."),
    "keys": ("emergent.cli.keys", "Encryption at rest: list data keys, rotate a data key or the KEK, reseal old rows."),
    "doctor": ("emergent.cli.doctor", "Check every store, an interrupted restore, leftovers and the audit chain; --repair."),
}


def _wanted(argv: list[str]) -> str | None:
    """The sub-command named on the command line (the first argument that is not a root option)."""
    for arg in argv:
        if arg in ("--help", "-h"):
            return arg
        if not arg.startswith("-"):
            return arg
    return None


def _plain(sub: typer.Typer) -> typer.Typer:
    """Help text is printed as written: never parsed as Rich markup (``[/user]`` in a help string
    once crashed ``--help``). Applied to every sub-app and its nested groups."""
    sub.rich_markup_mode = None
    for group in sub.registered_groups:
        if group.typer_instance is not None:
            _plain(group.typer_instance)
    return sub


def _register() -> None:
    wanted = _wanted(sys.argv[1:])
    for name, (module, help_) in SUBCOMMANDS.items():
        if wanted in (None, "--help", "-h") or wanted == name:
            sub = importlib.import_module(module).app
            app.add_typer(_plain(sub), name=name, help=help_)
        else:
            app.add_typer(typer.Typer(help=help_, rich_markup_mode=None), name=name, help=help_)


def _version(value: bool) -> None:
    if value:
        from emergent import __version__

        typer.echo(f"emergent {__version__}")
        raise typer.Exit(0)


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="print the version and exit"),
    create: bool = typer.Option(False, "--create", help="create the workspace (--home) if it does not exist"),
) -> None:
    """Emergent: memory, tools, governance and notebooks for an AI assistant."""
    from emergent.cli import _common

    if create:
        _common.CREATE = True


@app.command()
def init(path: str = typer.Argument(None, help="workspace directory (default: EMERGENT_HOME)")) -> None:
    """Create a workspace (its stores and tables) and print where it is."""
    from emergent.cli._common import workstation

    with workstation(path, create=True) as ws:
        _ = ws.sql
        typer.echo(f"workspace ready: {ws.path}")


@app.command()
def status(home: str = typer.Option(None, "--home", help="workspace directory (default: EMERGENT_HOME)"),
           as_json: bool = typer.Option(False, "--json", help="print one JSON object")) -> None:
    """Show the workspace: its stores and their health, counts, and the embedder in use."""
    import json

    from emergent.cli._common import workstation

    with workstation(home) as ws:
        info = ws.status()
        if as_json:
            typer.echo(json.dumps(info, indent=2, default=str))
            return
        for key, value in info.items():
            typer.echo(f"{key:>16}: {json.dumps(value, default=str) if isinstance(value, dict | list) else value}")


@app.command()
def run(home: str = typer.Option(None, "--home", help="workspace directory (default: EMERGENT_HOME)")) -> None:
    """Run the main job: the quickstart notebook (and the daily job) on this workspace (created if needed)."""
    from emergent.mainjob import run_main_job

    run_main_job(home)


def _usage_error(exc: Exception) -> int:
    """Print a usage mistake in one or two lines (no traceback, no box) and return its exit code."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # a bare group: its help is what the user wants
        typer.echo(ctx.get_help() if ctx is not None else str(exc))
        return 0
    message = exc.format_message() if hasattr(exc, "format_message") else str(exc)
    typer.secho(f"error: {message}", fg="red", err=True)
    where = ctx.command_path if ctx is not None else "emergent"
    typer.secho(f"hint: run `{where} --help` to see what it takes", err=True)
    return int(getattr(exc, "exit_code", 2))


def main(argv: list[str] | None = None) -> Any:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    _register()
    try:
        return app(standalone_mode=False)
    except EmergentError as exc:
        typer.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            typer.secho(f"hint: {exc.hint}", err=True)
        raise SystemExit(2) from None
    except typer.Exit as exc:
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        typer.secho("interrupted", err=True)
        raise SystemExit(130) from None
    except Exception as exc:
        # Typer bundles its own copy of click (typer._click), so its exceptions are not instances of
        # click's classes: recognise a usage error by its shape instead.
        name = type(exc).__name__
        if name == "Abort":
            typer.secho("aborted", err=True)
            raise SystemExit(1) from None
        if hasattr(exc, "exit_code") and hasattr(exc, "format_message"):
            raise SystemExit(_usage_error(exc)) from None
        if isinstance(exc, typer.Exit):  # pragma: no cover - handled above
            raise SystemExit(exc.exit_code) from None
        raise
