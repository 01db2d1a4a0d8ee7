"""``emergent scheduler run``: the long-running process that runs due jobs, as ``service:scheduler``."""

from __future__ import annotations

import logging
import os
import signal
from typing import Any

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


@app.command("run")
def run(workers: int = typer.Option(2, help="jobs run at the same time"),
        poll: float = typer.Option(1.0, help="seconds between checks for due jobs"),
        lease: float = typer.Option(30.0, help="seconds a silent scheduler keeps its jobs"),
        ticks: int = typer.Option(None, help="stop after this many checks (default: run until stopped)"),
        home: str = HOME) -> None:
    """Run due jobs until stopped (Ctrl-C / SIGTERM let the running jobs finish)."""
    from emergent.jobs.scheduler import Scheduler

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("emergent").setLevel(logging.INFO)
    with workstation(home) as ws:
        ws.jobs.lease_s = lease
        sched = Scheduler(ws.jobs, principal=ws.scheduler_principal, workers=workers, poll_s=poll)

        def _stop(signum: int, _frame: Any) -> None:
            logging.getLogger("emergent.jobs.scheduler").info("signal %s: stopping after running jobs", signum)
            sched.stop()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        typer.echo(f"scheduler {sched.owner} as {sched.principal.key} on {ws.path} (pid {os.getpid()})", err=True)
        sched.run_forever(max_ticks=ticks)
