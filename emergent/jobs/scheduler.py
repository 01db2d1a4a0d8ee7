"""The long-running scheduler: claim due slots, run them in worker threads, keep leases alive.

Start it with ``emergent scheduler run``. It needs no JupyterLab; any number of schedulers may
share one database (each slot is claimed by exactly one of them), and a restarted one picks up
what is due and records what its predecessor left unfinished as ``interrupted``. It acts as its
own principal, ``service:scheduler`` (issued by the composition root:
``ws.principals.service("scheduler")``), never as the OS user who started it.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from emergent.jobs.model import Run
from emergent.jobs.service import Heartbeat, JobService, new_owner

log = logging.getLogger("emergent.jobs.scheduler")


def _log_crash(fut: Future[Run]) -> None:
    exc = fut.exception()
    if exc is not None:  # the run row stays 'running' until its lease expires, then reads 'interrupted'
        log.error("a job run crashed in the scheduler: %s: %s", type(exc).__name__, exc)


class Scheduler:
    def __init__(self, service: JobService, *, principal: Any, workers: int = 2, poll_s: float = 1.0,
                 owner: str | None = None) -> None:
        self.service = service
        self.principal = principal
        self.owner = owner or new_owner("scheduler")
        self.poll_s = poll_s
        self.workers = workers
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="emergent-job")
        self._running: set[Future[Run]] = set()
        self._lock = threading.Lock()
        self.stop_event = threading.Event()

    def tick(self) -> list[Future[Run]]:
        """One pass: recover dead schedulers' runs, claim what is due (up to free workers), start it."""
        for lost in self.service.recover():
            log.warning("run %s of %s was interrupted: %s", lost.id, lost.job, lost.error)
        with self._lock:
            self._running = {f for f in self._running if not f.done()}
            free = self.workers - len(self._running)
        if free <= 0:
            return []
        started = []
        for spec, run in self.service.claim_due(self.owner, limit=free):
            fut = self._pool.submit(self.service.execute, spec, run, principal=self.principal)
            fut.add_done_callback(_log_crash)
            started.append(fut)
            with self._lock:
                self._running.add(fut)
        return started

    def run_forever(self, *, max_ticks: int | None = None) -> None:
        """Tick every ``poll_s`` until ``stop()`` (or SIGTERM/SIGINT in the CLI); then let runs finish."""
        ticks = 0
        with Heartbeat(self.service.store, self.owner, self.service.lease_s, self.service.clock.now):
            while not self.stop_event.is_set():
                try:
                    self.tick()
                except Exception as exc:  # e.g. the database is briefly unavailable: try again next tick
                    log.error("scheduler tick failed: %s: %s", type(exc).__name__, exc)
                ticks += 1
                if max_ticks is not None and ticks >= max_ticks:
                    break
                self.stop_event.wait(self.poll_s)
            self._pool.shutdown(wait=True)

    def stop(self) -> None:
        self.stop_event.set()
