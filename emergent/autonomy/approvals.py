"""The approvals queue: pending → approved | rejected | expired, in SQL, surviving restarts.

A call that the gate answers with *ask* files a request and waits: a decision made in this process
wakes it at once (a ``threading.Event``), one made elsewhere (the CLI, another kernel) is seen by
polling. A request not decided before it expires is rejected automatically.
"""

from __future__ import annotations

import builtins
import json
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from emergent.autonomy.tables import approvals
from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, UsageError

PENDING, APPROVED, REJECTED, EXPIRED = "pending", "approved", "rejected", "expired"


@dataclass(frozen=True, slots=True)
class Approval:
    id: str
    created_at: float
    expires_at: float
    status: str
    actor: str
    tool: str
    args: dict[str, Any]
    resource: str | None
    reason: str
    confidence: float | None
    decided_by: str | None
    decided_at: float | None
    decision_reason: str | None

    @property
    def decided(self) -> bool:
        return self.status != PENDING

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def _row(r: Any) -> Approval:
    return Approval(r.id, r.created_at, r.expires_at, r.status, r.actor, r.tool, json.loads(r.args), r.resource,
                    r.reason, r.confidence, r.decided_by, r.decided_at, r.decision_reason)


class ApprovalQueue:
    def __init__(self, sql: Any, *, clock: Clock | None = None, audit: Any = None,
                 default_ttl: float = 3600.0, poll_interval: float = 0.2) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()
        self.audit = audit
        self.default_ttl = default_ttl
        self.poll_interval = poll_interval
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def request(self, *, actor: str, tool: str, args: dict[str, Any], reason: str, resource: str | None = None,
                confidence: float | None = None, ttl: float | None = None) -> Approval:
        now = self.clock.now()
        aid = uuid.uuid4().hex[:16]
        row: dict[str, Any] = {"id": aid, "created_at": now, "expires_at": now + (ttl or self.default_ttl),
               "status": PENDING, "actor": actor, "tool": tool, "args": json.dumps(args, default=str),
               "resource": resource, "reason": reason, "confidence": confidence}
        with self.sql.begin() as conn:
            conn.execute(approvals.insert(), row)
        with self._lock:
            self._events[aid] = threading.Event()
        if self.audit is not None:
            self.audit.append("approval.requested", actor, {"approval": aid, "tool": tool,
                                                             "resource": resource, "reason": reason}, durable=True)
        return self.get(aid)

    def get(self, approval_id: str) -> Approval:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(approvals).where(approvals.c.id == approval_id)).first()
        if r is None:
            raise NotFoundError(f"no approval request {approval_id!r}",
                                hint="`emergent approvals list` shows the pending ones", approval=approval_id)
        return _row(r)

    def list(self, status: str | None = PENDING, limit: int = 200) -> builtins.list[Approval]:
        self.expire_due()
        q = sa.select(approvals).order_by(approvals.c.created_at.desc()).limit(limit)
        if status:
            q = q.where(approvals.c.status == status)
        with self.sql.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def _decide(self, approval_id: str, status: str, by: str, reason: str) -> Approval:
        current = self.get(approval_id)
        if current.decided:
            raise UsageError(f"approval {approval_id} is already {current.status}",
                             hint="only pending requests can be decided", approval=approval_id)
        now = self.clock.now()
        with self.sql.begin() as conn:
            done = conn.execute(approvals.update().where(approvals.c.id == approval_id,
                                                         approvals.c.status == PENDING)
                                .values(status=status, decided_by=by, decided_at=now, decision_reason=reason))
        if done.rowcount != 1:
            raise UsageError(f"approval {approval_id} was decided by someone else meanwhile", approval=approval_id)
        if self.audit is not None:
            self.audit.append(f"approval.{status}", by, {"approval": approval_id, "tool": current.tool,
                                                         "requested_by": current.actor, "reason": reason},
                              durable=True)
        with self._lock:
            ev = self._events.pop(approval_id, None)
        if ev is not None:
            ev.set()
        return self.get(approval_id)

    def approve(self, approval_id: str, *, by: str = "user:local", reason: str = "") -> Approval:
        return self._decide(approval_id, APPROVED, by, reason)

    def reject(self, approval_id: str, *, by: str = "user:local", reason: str = "") -> Approval:
        return self._decide(approval_id, REJECTED, by, reason)

    def expire_due(self) -> int:
        """Auto-reject every pending request past its expiry; returns how many."""
        now = self.clock.now()
        with self.sql.connect() as conn:
            due = [r.id for r in conn.execute(sa.select(approvals.c.id).where(
                approvals.c.status == PENDING, approvals.c.expires_at <= now))]
        n = 0
        for aid in due:
            try:
                self._decide(aid, EXPIRED, "system:expiry", "not decided before it expired")
                n += 1
            except UsageError:
                continue
        return n

    def wait(self, approval_id: str, timeout: float | None = None) -> Approval:
        """Block until the request is decided (or expires); returns the decided request."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            ev = self._events.setdefault(approval_id, threading.Event())
        while True:
            a = self.get(approval_id)
            if a.decided:
                return a
            if self.clock.now() >= a.expires_at:
                self.expire_due()
                continue
            if deadline is not None and time.monotonic() >= deadline:
                return a
            left = self.poll_interval if deadline is None else min(self.poll_interval, deadline - time.monotonic())
            ev.wait(max(left, 0.0))
