"""The jobs service: define, run (with retries, chains and notifications) and inspect jobs.

``Workstation.jobs`` builds one on the workspace's SQL store; the scheduler and the CLI drive it.
Every run, on demand or scheduled, takes the job's lease first, so one job never runs twice at once
whichever process asked.

Who acts is a :class:`~emergent.principals.Principal`: the human at the CLI or in a notebook for
definitions and on-demand runs, ``service:scheduler`` for scheduled runs. Each change (define,
remove, pause, resume) and each run is in the audit trail, its intent before it happens and its
outcome after. A run's notebook kernel acts as the principal that started the run: a run started by
the scheduler gets ``EMERGENT_PRINCIPAL=service:scheduler``, so what the notebook does is the
scheduler's, never the OS user's.
"""

from __future__ import annotations

import builtins
import hashlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from emergent.clock import Clock, SystemClock
from emergent.errors import AuditWriteError, UsageError, ValidationError
from emergent.jobs import runner
from emergent.jobs.model import RETRYABLE, JobSpec, JobState, Run, RunStatus, next_fire
from emergent.jobs.notify import Delivery, Notifier
from emergent.jobs.store import JobStore
from emergent.monitoring.tracing import traced
from emergent.workspace.audited import recorded, verified

log = logging.getLogger("emergent.jobs")


def new_owner(kind: str = "run") -> str:
    return f"{kind}:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _check_kernel(kernel: str) -> None:
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        KernelSpecManager().get_kernel_spec(kernel)
    except NoSuchKernel:
        known = sorted(KernelSpecManager().find_kernel_specs())
        raise ValidationError(f"no Jupyter kernel named {kernel!r}",
                              hint=f"installed kernels: {', '.join(known)}; the Emergent kernel is installed "
                                   "with: emergent kernel install", kernel=kernel) from None


class Heartbeat:
    """Renew ``owner``'s leases every ``lease_s / 3`` seconds while in use."""

    def __init__(self, store: JobStore, owner: str, lease_s: float, now: Callable[[], float]) -> None:
        self.store, self.owner, self.lease_s, self.now = store, owner, lease_s, now
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=f"lease-{owner}", daemon=True)

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.store.renew(self.owner, now=self.now(), lease_s=self.lease_s)
            except Exception as exc:  # a transient database error must not kill the run
                log.warning("could not renew the lease of %s: %s", self.owner, exc)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _sha256(path: Path) -> str | None:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


class JobService:
    """Jobs of one workspace. ``audit`` is an :class:`emergent.audit.Auditor`, ``principals`` the
    workspace's directory (who may act)."""

    def __init__(self, sql: Any, workspace: Path, *, clock: Clock | None = None, notifier: Notifier | None = None,
                 lease_s: float = 30.0, audit: Any = None, principals: Any = None) -> None:
        self.store = JobStore(sql)
        self.workspace = Path(workspace)
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.progress_bar = False  # papermill's bar while a run executes (the CLI turns it on in a terminal)
        self.lease_s = lease_s
        self.audit = audit
        self.principals = principals
        self.last_deliveries: builtins.list[Delivery] = []

    # ------------------------------------------------------------------ definitions
    def add(self, name: str, notebook: str | Path, *, principal: Any, replace: bool = False,
            **fields: Any) -> JobState:
        """Define a job (see JobSpec for the fields); the notebook and parameters are checked now."""
        who = verified(self.principals, principal)
        spec = JobSpec.build(name=name, notebook=str(notebook), **fields)
        try:
            runner.check_notebook(Path(spec.notebook), spec.parameters)
        except runner.InvalidJob as exc:
            raise ValidationError(f"cannot add job {name!r}: {exc}", hint="fix the notebook or the parameters",
                                  job=name) from None
        _check_kernel(spec.kernel)
        now = self.clock.now()
        nxt = next_fire(spec.schedule, now) if spec.schedule else None
        with recorded(self.audit, "job.define", who, {"job": name, "replace": replace, "spec": spec.model_dump(
                mode="json"), "notebook_sha256": _sha256(Path(spec.notebook))}):
            self.store.put(spec, now=now, next_run_at=nxt, replace=replace)
        return self.store.get(name)

    def get(self, name: str) -> JobState:
        return self.store.get(name)

    def list(self) -> builtins.list[JobState]:
        return self.store.all()

    def remove(self, name: str, *, principal: Any) -> None:
        who = verified(self.principals, principal)
        self.store.get(name)
        with recorded(self.audit, "job.remove", who, {"job": name}):
            self.store.delete(name)

    def pause(self, name: str, *, principal: Any) -> JobState:
        who = verified(self.principals, principal)
        state = self.store.get(name)
        with recorded(self.audit, "job.pause", who, {"job": name}):
            self.store.set_paused(name, True, now=self.clock.now(), next_run_at=state.next_run_at)
        return self.store.get(name)

    def resume(self, name: str, *, principal: Any) -> JobState:
        """Unpause; slots missed while paused are skipped (the next one is computed from now)."""
        who = verified(self.principals, principal)
        state = self.store.get(name)
        now = self.clock.now()
        nxt = state.next_run_at
        if state.spec.schedule and (nxt is None or nxt <= now):
            nxt = next_fire(state.spec.schedule, now)
        with recorded(self.audit, "job.resume", who, {"job": name, "next_run_at": nxt}):
            self.store.set_paused(name, False, now=now, next_run_at=nxt)
        return self.store.get(name)

    def history(self, name: str | None = None, limit: int = 20) -> builtins.list[Run]:
        if name is not None:
            self.store.get(name)
        self.recover()  # a run whose owner died reads 'interrupted', not 'running' forever
        return self.store.runs(name, limit)

    def due(self, now: float | None = None, limit: int = 100) -> builtins.list[tuple[str, float]]:
        return self.store.due(self.clock.now() if now is None else now, limit)

    # ------------------------------------------------------------------ running
    @traced("jobs.run")
    def run(self, name: str, parameters: dict[str, Any] | None = None, *, principal: Any, owner: str | None = None,
            trigger: str = "manual") -> Run:
        """Run ``name`` now as ``principal`` (with its retries and chain) and return its last attempt."""
        who = verified(self.principals, principal)
        state = self.store.get(name)
        params = {**state.spec.parameters, **(parameters or {})}
        owner = owner or new_owner()
        first = self.store.claim(name, owner=owner, now=self.clock.now(), lease_s=self.lease_s, slot=None,
                                 next_run_at=None, trigger=trigger, parameters=params)
        if first is None:
            busy = self.store.get(name)
            raise UsageError(f"job {name!r} is already running on {busy.lease_owner}",
                             hint="wait for it to finish (emergent jobs history NAME) and run it again")
        with Heartbeat(self.store, owner, self.lease_s, self.clock.now):
            return self.execute(state.spec, first, principal=who)

    def execute(self, spec: JobSpec, run: Run, *, principal: Any) -> Run:
        """Run attempts of a claimed job, as ``principal``, until one succeeds or the retry policy gives up.

        The run's intent (job, trigger, parameters, the notebook's sha256) is in the audit trail
        before the notebook starts; if it cannot be written the run is recorded failed and the
        notebook does not run."""
        who = verified(self.principals, principal)
        intent = {"job": spec.name, "run": run.id, "trigger": run.trigger, "parameters": run.parameters,
                  "notebook": spec.notebook, "notebook_sha256": _sha256(Path(spec.notebook))}
        try:
            with recorded(self.audit, "job.run", who, intent) as outcome:
                try:
                    while True:
                        self._attempt(spec, run, who)
                        if run.status not in RETRYABLE or run.attempt > spec.retries:
                            break
                        time.sleep(spec.retry_delay_s)
                        run = self.store.start_attempt(run, now=self.clock.now(), lease_s=self.lease_s)
                finally:
                    self.store.release(spec.name, run.owner)
                outcome.update(status=run.status.value, attempt=run.attempt, error=run.error,
                               output_path=run.output_path)
        except AuditWriteError:
            if run.status is RunStatus.RUNNING:  # the intent was not written: nothing ran
                run.status, run.error, run.error_name = (RunStatus.FAILED, "the audit trail could not be written, "
                                                         "so the notebook did not run", "AuditWriteError")
                self.store.finish(run, now=self.clock.now())
                self.store.release(spec.name, run.owner)
            raise
        if run.status is RunStatus.SUCCEEDED:
            self._chain(spec, run, who)
        elif spec.notify:
            self.last_deliveries = self.notifier.notify(spec.notify, run, who)
            for d in self.last_deliveries:
                if not d.ok:
                    log.warning("notification to %s failed: %s", d.target, d.detail)
        return run

    def output_path(self, job: str, at: float, attempt: int = 1) -> Path:
        stamp = datetime.fromtimestamp(at, tz=UTC).strftime("%Y%m%dT%H%M%S%fZ")
        suffix = "" if attempt == 1 else f"-attempt{attempt}"
        return self.workspace / "runs" / job / f"{stamp}{suffix}.ipynb"

    def _attempt(self, spec: JobSpec, run: Run, principal: Any) -> None:
        out = self.output_path(spec.name, run.started_at, run.attempt)
        self.store.set_output_path(run.id, str(out))
        env = {"EMERGENT_HOME": str(self.workspace), "EMERGENT_JOB": spec.name, "EMERGENT_RUN_ID": str(run.id),
               # the kernel acts as whoever started the run: the OS user (a human), or less
               "EMERGENT_PRINCIPAL": "" if principal.is_human else principal.key}
        outcome = runner.execute(Path(spec.notebook), out, run.parameters, kernel=spec.kernel,
                                 timeout_s=spec.timeout_s, env=env, progress_bar=self.progress_bar)
        run.status, run.error, run.error_cell = outcome.status, outcome.error, outcome.error_cell
        run.error_name, run.outputs = outcome.error_name, outcome.outputs
        run.output_path = str(out) if out.exists() else None
        self.store.finish(run, now=self.clock.now())

    def _chain(self, spec: JobSpec, parent: Run, principal: Any) -> None:
        for child_name in spec.chain:
            try:
                child = self.store.get(child_name)
            except UsageError as exc:
                log.warning("job %s chains to %s: %s", spec.name, child_name, exc)
                continue
            declared = runner.parameters_cell(Path(child.spec.notebook)) if Path(child.spec.notebook).exists() else {}
            passed = {k: v for k, v in parent.outputs.items() if k in (declared or {})}
            try:
                self.run(child_name, passed, owner=new_owner("chain"), trigger=f"chain:{spec.name}#{parent.id}",
                         principal=principal)
            except UsageError as exc:
                log.warning("chained job %s not started: %s", child_name, exc)

    # ------------------------------------------------------------------ scheduling
    def claim_due(self, owner: str, now: float | None = None, limit: int = 100) -> builtins.list[tuple[JobSpec, Run]]:
        """Claim every due slot this owner can get; the caller executes them (see Scheduler)."""
        now = self.clock.now() if now is None else now
        claimed: builtins.list[tuple[JobSpec, Run]] = []
        for name, slot in self.store.due(now, limit):
            try:
                state = self.store.get(name)
            except UsageError:  # removed since the due check
                continue
            nxt = next_fire(state.spec.schedule, max(slot, now)) if state.spec.schedule else None
            run = self.store.claim(name, owner=owner, now=now, lease_s=self.lease_s, slot=slot, next_run_at=nxt,
                                   trigger="schedule", parameters=state.spec.parameters)
            if run is not None:
                claimed.append((state.spec, run))
        return claimed

    def recover(self, now: float | None = None) -> builtins.list[Run]:
        """Record runs of dead schedulers as interrupted; a job with retries left is due again at once."""
        now = self.clock.now() if now is None else now
        lost = self.store.recover(now)
        for run in lost:
            try:
                spec = self.store.get(run.job).spec
            except UsageError:
                continue
            if run.attempt <= spec.retries:
                self.store.set_next(run.job, now)
        return lost

    def run_totals(self, since: float) -> builtins.list[dict[str, Any]]:
        """Per job, the runs started at or after ``since`` and how many failed (for the proposals'
        analyzers: they read job history here, never the ``job_runs`` table)."""
        return self.store.run_totals(since)
