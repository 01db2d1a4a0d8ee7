"""Tasks in SQL: one row per task, its A2A state moved by compare-and-set.

A state change is one ``UPDATE ... WHERE state IN (expected)``: two workers that got the same
message (a redelivery after a crash, a duplicate publish after a lost reply) cannot both start the
task, and a message for a task that already completed finds nothing to do.
"""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from emergent.agents.card import FAILED, OPEN_STATES, SUBMITTED, TASK_STATES, WORKING
from emergent.agents.tables import agent_tasks as tasks
from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, ValidationError

#: how long a worker owns a task it started without renewing it (its heartbeat renews it every third)
LEASE_S = 300.0
#: the error of a task whose worker's lease ran out while it ran (the worker died, or stalled)
ABANDONED = "its worker stopped while it ran; it may have taken effect — submit it again"


@dataclass
class Task:
    id: str
    text: str
    skills: list[str]
    state: str
    assignee: str | None
    submitted_by: str
    delegated_by: str | None = None
    bids: list[dict[str, Any]] = field(default_factory=list)
    award: str | None = None
    run_id: str | None = None
    approval_id: str | None = None
    answer: str | None = None
    error: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    lease_until: float | None = None  # while working: the holder's lease, also its fencing token

    @property
    def done(self) -> bool:
        return self.state not in OPEN_STATES

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def __str__(self) -> str:
        who = f" → {self.assignee}" if self.assignee else ""
        tail = self.answer or self.error or self.award or ""
        return f"task {self.id} [{self.state}]{who}: {self.text[:80]}" + (f" — {tail[:200]}" if tail else "")


def _task(r: Any) -> Task:
    return Task(r.id, r.text, json.loads(r.skills), r.state, r.assignee, r.submitted_by, r.delegated_by,
                json.loads(r.bids) if r.bids else [], r.award, r.run_id, r.approval_id, r.answer, r.error,
                r.created_at, r.updated_at, r.lease_until)


class TaskStore:
    def __init__(self, sql: Any, *, clock: Clock | None = None, lease_s: float = LEASE_S) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()
        self.lease_s = lease_s

    def create(self, text: str, *, skills: list[str], submitted_by: str) -> Task:
        now = self.clock.now()
        row: dict[str, Any] = {"id": uuid.uuid4().hex[:16], "text": text, "skills": json.dumps(skills), "state": SUBMITTED,
               "assignee": None, "submitted_by": submitted_by, "created_at": now, "updated_at": now}
        with self.sql.begin() as conn:
            conn.execute(tasks.insert(), row)
        return self.get(row["id"])

    def get(self, task_id: str) -> Task:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(tasks).where(tasks.c.id == task_id)).first()
        if r is None:
            raise NotFoundError(f"no agent task {task_id!r}", hint="ws.agents.tasks() lists them", task=task_id)
        return _task(r)

    def list(self, *, state: str | None = None, assignee: str | None = None, limit: int = 50) -> list[Task]:
        if state is not None and state not in TASK_STATES:
            raise ValidationError(f"field 'state': {state!r} is not a task state",
                                  hint=f"use one of {', '.join(TASK_STATES)}", field="state")
        q = sa.select(tasks).order_by(tasks.c.created_at.desc(), tasks.c.id).limit(limit)
        if state is not None:
            q = q.where(tasks.c.state == state)
        if assignee is not None:
            q = q.where(tasks.c.assignee == assignee)
        with self.sql.connect() as conn:
            return [_task(r) for r in conn.execute(q)]

    def load(self) -> dict[str, int]:
        """Open tasks per assignee (the *load* of a bid)."""
        q = (sa.select(tasks.c.assignee, sa.func.count()).where(tasks.c.state.in_(sorted(OPEN_STATES)),
                                                                tasks.c.assignee.is_not(None))
             .group_by(tasks.c.assignee))
        with self.sql.connect() as conn:
            return {r[0]: int(r[1]) for r in conn.execute(q)}

    def update(self, task_id: str, **values: Any) -> None:
        """Fields that do not change the state (assignee, bids, award)."""
        if "bids" in values:
            values["bids"] = json.dumps(values["bids"], default=str)
        with self.sql.begin() as conn:
            conn.execute(tasks.update().where(tasks.c.id == task_id).values(**values,
                                                                            updated_at=self.clock.now()))

    def move(self, task_id: str, to: str, *, expect: Iterable[str], lease: float | None = None,
             **values: Any) -> Task | None:
        """Move the task to ``to`` if its state is one of ``expect`` (and, given ``lease``, the caller
        still holds that lease); None if it was not (someone else moved it first, or it is final)."""
        now = self.clock.now()
        cond: sa.ColumnElement[bool] = tasks.c.state.in_(sorted(set(expect)))
        if lease is not None:  # the lease value is the holder's fencing token (no worker column needed)
            cond = sa.and_(cond, tasks.c.lease_until == lease)
        if to == WORKING:
            values["lease_until"] = now + self.lease_s
        with self.sql.begin() as conn:
            done = conn.execute(tasks.update().where(tasks.c.id == task_id, cond)
                                .values(state=to, updated_at=now, **values))
        return self.get(task_id) if done.rowcount == 1 else None

    def renew(self, task_id: str, lease: float) -> float | None:
        """Extend the working task's lease held as ``lease``; the new lease, or None if it was lost."""
        new = max(self.clock.now() + self.lease_s, lease + 1e-3)
        with self.sql.begin() as conn:
            done = conn.execute(tasks.update().where(tasks.c.id == task_id, tasks.c.state == WORKING,
                                                     tasks.c.lease_until == lease).values(lease_until=new))
        return new if done.rowcount == 1 else None

    def abandon(self, task_id: str) -> Task | None:
        """Fail a working task whose lease ran out (its worker stopped: it may have taken effect, so it
        is never run again); None while a live worker holds it."""
        now = self.clock.now()
        with self.sql.begin() as conn:
            done = conn.execute(tasks.update().where(tasks.c.id == task_id, tasks.c.state == WORKING,
                                                     tasks.c.lease_until < now)
                                .values(state=FAILED, error=ABANDONED, updated_at=now))
        return self.get(task_id) if done.rowcount == 1 else None

    def expired(self, limit: int = 200) -> builtins.list[str]:
        """Ids of working tasks whose lease ran out (their worker died or stalled), oldest lease first."""
        q = (sa.select(tasks.c.id).where(tasks.c.state == WORKING, tasks.c.lease_until < self.clock.now())
             .order_by(tasks.c.lease_until).limit(limit))
        with self.sql.connect() as conn:
            return [r[0] for r in conn.execute(q)]

    def assign(self, task_id: str, to: str, *, delegated_by: str) -> bool:
        """Give a submitted task nobody holds to ``to``; False if it was not (any more) such a task."""
        with self.sql.begin() as conn:
            done = conn.execute(tasks.update().where(tasks.c.id == task_id, tasks.c.state == SUBMITTED,
                                                     tasks.c.assignee.is_(None))
                                .values(assignee=to, delegated_by=delegated_by, updated_at=self.clock.now()))
        return bool(done.rowcount == 1)

    def unassign(self, task_id: str, to: str) -> None:
        """Undo :meth:`assign` (its audit write failed, so the hand-over did not happen)."""
        with self.sql.begin() as conn:
            conn.execute(tasks.update().where(tasks.c.id == task_id, tasks.c.state == SUBMITTED,
                                              tasks.c.assignee == to).values(assignee=None, delegated_by=None))
