"""The long-running scheduler: claim due slots, run them in worker threads, keep leases alive.

Start it with ``emergent scheduler run``. It needs no JupyterLab; any number of schedulers may
share one database (each slot is claimed by exactly one of them), and a restarted one picks up
what is due and records what its predecessor left unfinished as ``interrupted``. It acts as its
own principal, ``service:scheduler`` (issued by the composition root:
``ws.principals.service("scheduler")``), never as the OS user who started it.
"""

from __future__ import annotations

import functools
import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from emergent.jobs.model import Run
from emergent.jobs.service import Heartbeat, JobService, new_owner

log = logging.getLogger("emergent.jobs.scheduler")


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
        self._crashed: list[tuple[str, float, BaseException]] = []  # runs whose end is not recorded yet
        self.stop_event = threading.Event()

    def _on_done(self, name: str, slot: float, fut: Future[Run]) -> None:
        exc = fut.exception()
        if exc is not None:  # e.g. a full disk as the run ended: its row is still 'running', its job leased
            log.error("a job run crashed in the scheduler: %s: %s", type(exc).__name__, exc)
            with self._lock:
                self._crashed.append((name, slot, exc))

    def _settle_crashed(self) -> None:
        """Record the runs whose execution crashed as interrupted, and free their jobs (the heartbeat renews
        this scheduler's leases, so their own lease would never run out); kept for the next tick until it
        can be written."""
        with self._lock:
            todo, self._crashed = self._crashed, []
        for i, (name, slot, exc) in enumerate(todo):
            why = getattr(exc, "message", None) or str(exc)
            try:
                self.service.store.abandon(name, slot, self.owner, now=self.service.clock.now(), error=(
                    f"the scheduler {self.owner} could not record how the run ended ({type(exc).__name__}: "
                    f"{why}); the notebook may have run to its end: see its output notebook")[:2000])
            except Exception as err:  # still failing (the disk is still full): try again next tick
                log.warning("could not record the end of a run of %s: %s", name, err)
                with self._lock:
                    self._crashed[:0] = todo[i:]
                return

    def tick(self) -> list[Future[Run]]:
        """One pass: recover dead schedulers' runs, claim what is due (up to free workers), start it."""
        self._settle_crashed()
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
            fut.add_done_callback(functools.partial(self._on_done, spec.name, run.slot))
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
