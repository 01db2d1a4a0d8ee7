"""The ``emergent`` command line. Each area registers a Typer sub-app in its own module."""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

from emergent.errors import EmergentError

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Emergent: memory, tools, governance and notebooks for an AI assistant.")

# name -> module:attribute of a typer.Typer (imported only when the command runs)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "memory": ("emergent.cli.memory", "Remember, recall, consolidate, re-embed."),
    "backup": ("emergent.cli.backup", "Create, list, verify and restore backups."),
    "bench": ("emergent.cli.bench", "Benchmarks: our figure beside a same-run baseline."),
    "models": ("emergent.cli.models", "Prepare offline models (export MiniLM to ONNX)."),
    "tools": ("emergent.cli.tools", "Tools: list, show, install, enable, disable, deprecate, stats, call."),
    "integrations": ("emergent.cli.integrations", "External integrations: which are configured, and their tools."),
    "sandbox": ("emergent.cli.sandbox", "Run a command in the sandbox (limits, no network); show isolation."),
    "audit": ("emergent.cli.audit", "Verify, export and tail the hash-chained audit trail."),
    "approvals": ("emergent.cli.approvals", "List, approve and reject pending approval requests."),
    "policy": ("emergent.cli.policy", "Permission matrix, thresholds, overrides, pause and suspension."),
    "principals": ("emergent.cli.principals", "Who may act: list principals, create agents, grant and revoke roles."),
    "jobs": ("emergent.cli.jobs", "Scheduled notebook jobs: add, list, show, run, pause, resume, remove, history."),
    "scheduler": ("emergent.cli.scheduler", "Run due jobs (a long-running process; no JupyterLab needed)."),
    "kernel": ("emergent.cli.kernel", "Install the Emergent Jupyter kernel."),
    "proposals": ("emergent.cli.proposals", "Improvement proposals: analyze, generate, list, show, approve, reject, rank."),
    "experiments": ("emergent.cli.experiments", "Config versions (set, rollback) and A/B experiments (list, show, decide)."),
    "improve": ("emergent.cli.improve", "The self-improvement cycle: run, status, history."),
    "graph": ("emergent.cli.graph", "Knowledge graph: sync, search, show, communities, infer, edit, export, render."),
}


def _register() -> None:
    wanted = sys.argv[1] if len(sys.argv) > 1 else None
    for name, (module, help_) in SUBCOMMANDS.items():
        if wanted in (None, "--help", "-h") or wanted == name:
            sub = importlib.import_module(module).app
            app.add_typer(sub, name=name, help=help_)
        else:
            app.add_typer(typer.Typer(help=help_), name=name, help=help_)


@app.command()
def status(home: str = typer.Option(None, help="workspace directory (default: EMERGENT_HOME)")) -> None:
    """Show the workspace, its stores and their health."""
    import json

    from emergent.workstation import Workstation

    with Workstation.open(home) as ws:
        typer.echo(json.dumps(ws.status(), indent=2, default=str))


@app.command()
def run(home: str = typer.Option(None, help="workspace directory (default: EMERGENT_HOME)")) -> None:
    """Run the main job: the quickstart notebook (and the daily job) on this workspace."""
    from emergent.mainjob import run_main_job

    run_main_job(home)


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
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            raise SystemExit(exc.exit_code) from None
        if isinstance(exc, click.exceptions.Abort):
            raise SystemExit(1) from None
        raise
