"""The main job behind ``make run`` / ``emergent run``: the quickstart, then the daily maintenance job.

The quickstart is executed with papermill into ``<workspace>/runs/quickstart/<timestamp>.ipynb``;
the daily job runs through the jobs service (defined on first use, scheduled 03:00 UTC), so its
run lands in the job history like a scheduled one. Fails (non-zero exit) when either fails.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import typer

from emergent.errors import ConfigError, OperationalError

QUICKSTART = "00_quickstart.ipynb"
DAILY_JOB = "daily_maintenance"
DAILY_SCHEDULE = "0 3 * * *"


def repo_root() -> Path:
    """The checkout this package is installed from (editable install)."""
    return Path(__file__).resolve().parents[1]


def notebooks_dir() -> Path:
    nb_dir = repo_root() / "notebooks"
    if not (nb_dir / QUICKSTART).is_file():
        raise ConfigError(
            f"the notebooks directory with {QUICKSTART} was not found at {nb_dir}",
            hint="run from a clone of the repository installed with `pip install -e .` (make run does this)",
        )
    return nb_dir


def default_home(home: str | None) -> str | None:
    """``home``, else EMERGENT_HOME, else ``<repo>/workspace`` when run from inside the repository."""
    if home or os.environ.get("EMERGENT_HOME"):
        return home or os.environ["EMERGENT_HOME"]
    root = repo_root()
    cwd = Path.cwd().resolve()
    return str(root / "workspace") if cwd == root or root in cwd.parents else None


def run_main_job(home: str | None) -> None:
    from emergent.jobs import runner
    from emergent.jobs.model import RunStatus
    from emergent.workstation import Workstation

    nb_dir = notebooks_dir()
    with Workstation.open(default_home(home)) as ws:
        typer.echo(f"workspace: {ws.path}")
        stamp = datetime.now(tz=UTC).strftime("%Y%m%dT%H%M%SZ")
        out = ws.path / "runs" / "quickstart" / f"{stamp}.ipynb"
        typer.echo(f"running {nb_dir / QUICKSTART} ...")
        declared = runner.parameters_cell(nb_dir / QUICKSTART) or {}
        params = {"home": str(ws.path)} if "home" in declared else {}  # the quickstart works in this workspace
        watching = sys.stderr.isatty()
        outcome = runner.execute(nb_dir / QUICKSTART, out, params, kernel="python3", timeout_s=600,
                                 env={"EMERGENT_HOME": str(ws.path)}, progress_bar=watching)
        typer.echo(f"quickstart: {outcome.status.value} -> {out}")
        if outcome.status is not RunStatus.SUCCEEDED:
            raise OperationalError(f"the quickstart notebook {outcome.status.value}: {outcome.error}",
                                   hint=f"open the executed notebook {out} to see the failing cell")
        if DAILY_JOB not in ws.jobs.store.names():
            ws.jobs.add(DAILY_JOB, nb_dir / "jobs" / f"{DAILY_JOB}.ipynb", schedule=DAILY_SCHEDULE, timeout_s=900,
                        principal=ws.principal)
        ws.jobs.progress_bar = watching
        run = ws.jobs.run(DAILY_JOB, principal=ws.principal)
        typer.echo(f"{DAILY_JOB}: {run.status.value} -> {run.output_path}")
        if run.status is not RunStatus.SUCCEEDED:
            raise OperationalError(f"the {DAILY_JOB} job {run.status.value}: {run.error}",
                                   hint=f"see `emergent jobs history {DAILY_JOB}` and {run.output_path}")
        typer.echo(f"executed notebooks are in {ws.path / 'runs'}")
