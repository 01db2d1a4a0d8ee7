"""Workflow runs and their steps in SQL: the checkpoints a resumed run starts from.

A run row is driven by one process at a time: the one holding its *lease* (``lease_owner``,
``lease_until``), renewed while it runs. Another process takes a run over only with a
compare-and-set on the owner it saw, and only when that owner is gone: its lease ran out, or it
was a process on this host that no longer exists (killed).

Step rows are written in one transaction per batch (:meth:`RunStore.write_steps`): a
gate-crossing step's ``running`` row is committed before its side effect starts, its
``completed`` row (with the output) after it ends.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from emergent.audit import canonical
from emergent.errors import NotFoundError, ValidationError
from emergent.workflows.tables import workflow_defs, workflow_runs, workflow_steps

RUNNING, PAUSED, WAITING, COMPLETED, FAILED, CANCELLED = (
    "running", "paused", "waiting_approval", "completed", "failed", "cancelled")
RUN_FINAL = frozenset({COMPLETED, FAILED, CANCELLED})
PENDING, SKIPPED, COMPENSATED = "pending", "skipped", "compensated"
STEP_FINAL = frozenset({COMPLETED, FAILED, SKIPPED, CANCELLED, COMPENSATED})
LEASE_S = 30.0
HOST = socket.gethostname()

_STEP_COLS = ("run_id", "key", "step_id", "status", "attempt", "output", "error", "approval_id", "seq",
              "started_at", "finished_at")
_UPDATE_COLS = _STEP_COLS[3:]


def new_owner() -> str:
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def owner_gone(owner: str | None) -> bool:
    """True when ``owner`` was a process on this host that no longer exists."""
    if not owner:
        return True
    host, _, rest = owner.partition(":")
    pid = rest.split(":", 1)[0]
    if host != HOST or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError):
        return canonical(value)


@dataclass
class RunRow:
    id: str
    workflow: str
    version: str
    spec: dict[str, Any]
    inputs: dict[str, Any]
    status: str
    principal: str
    parent: str | None
    error: str | None
    outputs: dict[str, Any] | None
    lease_owner: str | None
    lease_until: float | None
    created_at: float
    updated_at: float


@dataclass
class StepRow:
    key: str
    step_id: str
    status: str
    attempt: int
    output: Any
    error: str | None
    approval_id: str | None
    seq: int | None
    started_at: float | None
    finished_at: float | None


def _run(r: Any) -> RunRow:
    d = dict(r._mapping)
    d["spec"] = json.loads(d["spec"])
    d["inputs"] = json.loads(d["inputs"])
    d["outputs"] = json.loads(d["outputs"]) if d["outputs"] else None
    return RunRow(**d)


class RunStore:
    def __init__(self, sql: Any, *, lease_s: float = LEASE_S) -> None:
        self.sql = sql
        self.lease_s = lease_s
        engine = getattr(sql, "engine", sql)
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        cols = ", ".join(_STEP_COLS)
        self._insert = f"INSERT INTO workflow_steps ({cols}) VALUES ({', '.join([mark] * len(_STEP_COLS))})"
        sets = ", ".join(f"{c} = {mark}" for c in _UPDATE_COLS)
        self._update = f"UPDATE workflow_steps SET {sets} WHERE run_id = {mark} AND key = {mark}"

    # ------------------------------------------------------------------ runs
    def create(self, *, run_id: str, workflow: str, version: str, spec: dict[str, Any], inputs: dict[str, Any],
               principal: str, parent: str | None, owner: str, now: float) -> None:
        with self.sql.begin() as conn:
            conn.execute(workflow_runs.insert(), {
                "id": run_id, "workflow": workflow, "version": version, "spec": dumps(spec),
                "inputs": dumps(inputs), "status": RUNNING, "principal": principal, "parent": parent, "error": None,
                "outputs": None, "lease_owner": owner, "lease_until": now + self.lease_s, "created_at": now,
                "updated_at": now})

    def get(self, run_id: str, *, spec: bool = True) -> RunRow:
        """Run ``run_id``; ``spec=False`` leaves its spec out (``{}``): a big workflow's JSON is not parsed."""
        cols = list(workflow_runs.c) if spec else [c if c.name != "spec" else sa.literal("{}").label("spec")
                                                   for c in workflow_runs.c]
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(*cols).where(workflow_runs.c.id == run_id)).first()
        if r is None:
            raise NotFoundError(f"no workflow run {run_id!r}", hint="ws.workflows.runs() (or `emergent workflows "
                                "runs`) lists the recent ones", run=run_id)
        return _run(r)

    def recent(self, *, limit: int = 20, status: str | None = None) -> list[RunRow]:
        q = sa.select(workflow_runs).order_by(workflow_runs.c.created_at.desc()).limit(limit)
        if status is not None:
            q = q.where(workflow_runs.c.status == status)
        with self.sql.connect() as conn:
            return [_run(r) for r in conn.execute(q)]

    def claim(self, run: RunRow, *, owner: str, now: float) -> bool:
        """Take ``run`` to drive it: compare-and-set on the owner (and status) it was read with."""
        c = workflow_runs.c
        same_owner = c.lease_owner.is_(None) if run.lease_owner is None else c.lease_owner == run.lease_owner
        with self.sql.begin() as conn:
            done = conn.execute(workflow_runs.update().where(c.id == run.id, c.status == run.status, same_owner)
                                .values(status=RUNNING, lease_owner=owner, lease_until=now + self.lease_s,
                                        updated_at=now)).rowcount
        return bool(done == 1)

    def renew(self, run_id: str, *, owner: str, now: float) -> bool:
        """Extend the lease; False when the run is no longer ours (paused or cancelled from elsewhere)."""
        c = workflow_runs.c
        with self.sql.begin() as conn:
            done = conn.execute(workflow_runs.update().where(c.id == run_id, c.lease_owner == owner,
                                                             c.status == RUNNING)
                                .values(lease_until=now + self.lease_s)).rowcount
        return bool(done == 1)

    def finish(self, run_id: str, *, owner: str, status: str, now: float, error: str | None = None,
               outputs: dict[str, Any] | None = None) -> bool:
        """Set the run's status and release the lease (only if ``owner`` still holds it)."""
        c = workflow_runs.c
        with self.sql.begin() as conn:
            done = conn.execute(workflow_runs.update().where(c.id == run_id, c.lease_owner == owner).values(
                status=status, error=error, outputs=dumps(outputs) if outputs is not None else None,
                lease_owner=None, lease_until=None, updated_at=now)).rowcount
        return bool(done == 1)

    def request(self, run_id: str, status: str, *, now: float) -> RunRow:
        """Pause or cancel a run from outside its driver: the row says so, the driver sees it at its next
        lease renewal and stops."""
        run = self.get(run_id)
        c = workflow_runs.c
        with self.sql.begin() as conn:
            conn.execute(workflow_runs.update().where(c.id == run_id, c.status.not_in(RUN_FINAL))
                         .values(status=status, updated_at=now))
        return run

    # ------------------------------------------------------------------ steps
    def steps(self, run_id: str) -> list[StepRow]:
        c = workflow_steps.c
        q = sa.select(c.key, c.step_id, c.status, c.attempt, c.output, c.error, c.approval_id, c.seq, c.started_at,
                      c.finished_at).where(c.run_id == run_id)
        with self.sql.connect() as conn:
            rows = [StepRow(k, sid, st, att, json.loads(out) if out is not None else None, err, ap, seq, t0, t1)
                    for k, sid, st, att, out, err, ap, seq, t0, t1 in conn.execute(q).all()]
        return sorted(rows, key=lambda r: (r.seq if r.seq is not None else 1 << 30, r.started_at or 0.0))

    def write_steps(self, run_id: str, inserts: list[tuple[Any, ...]], updates: list[tuple[Any, ...]]) -> None:
        """One transaction: new step rows (``_STEP_COLS`` minus run_id) and changed ones (keyed by ``key``)."""
        with self.sql.begin() as conn:
            if inserts:
                conn.exec_driver_sql(self._insert, [(run_id, *row) for row in inserts])
            if updates:
                conn.exec_driver_sql(self._update, [(*row[2:], run_id, row[0]) for row in updates])

    # ------------------------------------------------------------------ saved workflows
    def save_def(self, name: str, version: str, spec: dict[str, Any], by: str, now: float) -> None:
        with self.sql.begin() as conn:
            conn.execute(workflow_defs.delete().where(workflow_defs.c.name == name))
            conn.execute(workflow_defs.insert(), {"name": name, "version": version, "spec": dumps(spec),
                                                  "registered_by": by, "updated_at": now})

    def get_def(self, name: str) -> dict[str, Any] | None:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(workflow_defs.c.spec).where(workflow_defs.c.name == name)).first()
        return None if r is None else json.loads(r[0])  # type: ignore[no-any-return]

    def def_owner(self, name: str) -> str | None:
        """Who saved workflow ``name`` (a principal key), or None."""
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(workflow_defs.c.registered_by).where(workflow_defs.c.name == name)).first()
        return None if r is None else str(r[0])

    def def_names(self) -> list[str]:
        with self.sql.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(workflow_defs.c.name).order_by(workflow_defs.c.name))]


def step_tuple(key: str, step_id: str, status: str, attempt: int, output: Any, error: str | None,
               approval_id: str | None, seq: int | None, started_at: float | None,
               finished_at: float | None) -> tuple[Any, ...]:
    """A row for :meth:`RunStore.write_steps` (the output as JSON)."""
    if output is not None:
        try:
            text: str | None = json.dumps(output, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError):
            raise ValidationError(f"step {key!r}: its output cannot be stored as JSON",
                                  hint="return JSON-compatible values (dict, list, str, number, bool, None)",
                                  step=key, field="output") from None
    else:
        text = None
    return (key, step_id, status, attempt, text, error, approval_id, seq, started_at, finished_at)


__all__ = ["CANCELLED", "COMPENSATED", "COMPLETED", "FAILED", "PAUSED", "PENDING", "RUNNING", "RUN_FINAL",
           "RunRow", "RunStore", "SKIPPED", "STEP_FINAL", "StepRow", "WAITING", "new_owner", "owner_gone",
           "step_tuple"]
