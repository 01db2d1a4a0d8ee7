"""The approvals queue: pending → approved | rejected | expired, approved → consumed; in SQL.

A call that the gate answers with *ask* files a request and waits: a decision made in this process
wakes it at once (a ``threading.Event``), one made elsewhere (the CLI, another kernel) is seen by
polling. A request not decided before it expires is rejected automatically.

An approval is bound to a **digest** of exactly what will run: the tool and its version, the
validated arguments, and the bytes of every file the call reads or runs (a notebook, a script).
:meth:`ApprovalQueue.consume` turns an approval into a run at most once, and only while the digest
still matches (else :class:`~emergent.errors.ApprovalStaleError`). Only a human decides, and never on
a request of their own.
"""

from __future__ import annotations

import base64
import builtins
import dataclasses
import json
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from emergent.audit import actor_key, personal_digest
from emergent.autonomy.tables import approvals
from emergent.clock import Clock, SystemClock
from emergent.errors import (
    ApprovalPending,
    ApprovalStaleError,
    ConfigError,
    NotFoundError,
    PermissionDenied,
    PrincipalError,
    UsageError,
)
from emergent.principals import Principal, Principals

PENDING, APPROVED, REJECTED, EXPIRED, CONSUMED = "pending", "approved", "rejected", "expired", "consumed"
_SEALED_PREFIX = "egc1:"  # a sealed args column: this prefix, then the sealed blob in base64


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
    digest: str | None = None
    files: dict[str, str] | None = None
    consumed_at: float | None = None
    consumed_by: str | None = None

    @property
    def decided(self) -> bool:
        return self.status != PENDING

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class ApprovalQueue:
    """With ``cipher`` (an ``emergent.security.crypto.Cipher``, EMERGENT_SECURITY__ENCRYPT) a request's
    arguments are sealed with AES-GCM from the first write on, bound to the request's id; the digest an
    approval is bound to is computed by the caller over the plaintext arguments, before sealing."""

    def __init__(self, sql: Any, *, principals: Principals, clock: Clock | None = None, audit: Any = None,
                 default_ttl: float = 3600.0, poll_interval: float = 0.2, cipher: Any = None) -> None:
        self.sql = sql
        self.cipher = cipher
        self.principals = principals
        self.clock = clock or SystemClock()
        self.audit = audit
        self.default_ttl = default_ttl
        self.poll_interval = poll_interval
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ the args column, sealed or not
    def _dump_args(self, approval_id: str, args: dict[str, Any]) -> str:
        text = json.dumps(args, default=str)
        if self.cipher is None:
            return text
        blob = self.cipher.seal(text.encode(), approval_id.encode())
        return _SEALED_PREFIX + base64.b64encode(blob).decode()

    def _load_args(self, approval_id: str, value: str) -> Any:
        if isinstance(value, str) and value.startswith(_SEALED_PREFIX):
            if self.cipher is None:
                raise ConfigError(f"approval {approval_id} is sealed but encryption is off",
                                  hint="set EMERGENT_SECURITY__ENCRYPT=true (and the KEK it was sealed with)",
                                  approval=approval_id)
            blob = base64.b64decode(value[len(_SEALED_PREFIX):])
            value = self.cipher.open(blob, approval_id.encode()).decode()
        return json.loads(value)

    def _row(self, r: Any) -> Approval:
        return Approval(r.id, r.created_at, r.expires_at, r.status, r.actor, r.tool, self._load_args(r.id, r.args),
                        r.resource, r.reason, r.confidence, r.decided_by, r.decided_at, r.decision_reason, r.digest,
                        json.loads(r.files) if r.files else None, r.consumed_at, r.consumed_by)

    def _secure_delete(self, conn: Any) -> None:
        """SQLite: freed pages are zeroed (whatever the build's default), so an old value does not linger."""
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA secure_delete=ON")

    def request(self, *, principal: Principal, tool: str, args: dict[str, Any], reason: str, digest: str,
                files: dict[str, str] | None = None, resource: str | None = None, confidence: float | None = None,
                ttl: float | None = None, audit_args: dict[str, Any] | None = None) -> Approval:
        """File a request for ``principal`` to run ``tool`` with ``args``; ``digest`` binds it to
        exactly that (``files``: path → sha256 of each file the call reads or runs)."""
        who = self.principals.verify(principal)
        now = self.clock.now()
        aid = uuid.uuid4().hex[:16]
        row: dict[str, Any] = {"id": aid, "created_at": now, "expires_at": now + (ttl or self.default_ttl),
                               "status": PENDING, "actor": who.key, "tool": tool, "args": self._dump_args(aid, args),
                               "resource": resource, "reason": reason, "confidence": confidence, "digest": digest,
                               "files": json.dumps(files or {})}
        if self.audit is not None:
            self.audit.append("approval.requested", who, {
                "approval": aid, "tool": tool, "resource": resource, "reason": reason, "digest": digest,
                "files": files or {}, "args": args if audit_args is None else audit_args}, durable=True)
        with self.sql.begin() as conn:
            if self.cipher is not None:
                self._secure_delete(conn)
            conn.execute(approvals.insert(), row)
        with self._lock:
            self._events[aid] = threading.Event()
        return self.get(aid)

    def get(self, approval_id: str) -> Approval:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(approvals).where(approvals.c.id == approval_id)).first()
        if r is None:
            raise NotFoundError(f"no approval request {approval_id!r}",
                                hint="`emergent approvals list` shows the pending ones", approval=approval_id)
        return self._row(r)

    def list(self, status: str | None = PENDING, limit: int = 200) -> builtins.list[Approval]:
        self.expire_due()
        q = sa.select(approvals).order_by(approvals.c.created_at.desc()).limit(limit)
        if status:
            q = q.where(approvals.c.status == status)
        with self.sql.connect() as conn:
            return [self._row(r) for r in conn.execute(q)]

    def _decide(self, approval_id: str, status: str, by: Any, reason: str) -> Approval:
        current = self.get(approval_id)
        if current.decided:
            raise UsageError(f"approval {approval_id} is already {current.status}",
                             hint="only pending requests can be decided", approval=approval_id)
        if self.audit is not None:
            self.audit.append(f"approval.{status}", by, {"approval": approval_id, "tool": current.tool,
                                                         "requested_by": current.actor, "digest": current.digest,
                                                         "reason": reason}, durable=True)
        now, by_key = self.clock.now(), actor_key(by)
        with self.sql.begin() as conn:
            done = conn.execute(approvals.update().where(approvals.c.id == approval_id,
                                                         approvals.c.status == PENDING)
                                .values(status=status, decided_by=by_key, decided_at=now, decision_reason=reason))
        if done.rowcount != 1:
            raise UsageError(f"approval {approval_id} was decided by someone else meanwhile", approval=approval_id)
        decided = dataclasses.replace(current, status=status, decided_by=by_key, decided_at=now,
                                      decision_reason=reason)
        with self._lock:
            ev = self._events.pop(approval_id, None)
        if ev is not None:
            ev.set()  # the waiter may consume it at once: return the decision, not a re-read
        return decided

    def approve(self, approval_id: str, *, by: Principal, reason: str = "") -> Approval:
        """Approve a pending request: only a human, and never the one who asked."""
        who = self.principals.verify(by)
        current = self.get(approval_id)
        if not who.is_human:
            raise PrincipalError(f"{who.key} may not approve requests", hint="only a human approves",
                                 approval=approval_id)
        if who.key == current.actor:
            raise PrincipalError(f"{who.key} asked for approval {approval_id} and may not approve it too",
                                 hint="another human approves it", approval=approval_id)
        if current.status == PENDING and self.clock.now() >= current.expires_at:
            self.expire_due()  # past its expiry it was rejected, whether or not anything noticed yet
            raise UsageError(f"approval {approval_id} expired before it was decided",
                             hint="nothing ran; ask for the action again", approval=approval_id)
        return self._decide(approval_id, APPROVED, who, reason)

    def reject(self, approval_id: str, *, by: Principal, reason: str = "") -> Approval:
        """Reject a pending request: a human, or the requester withdrawing its own request."""
        who = self.principals.verify(by)
        if not who.is_human and who.key != self.get(approval_id).actor:
            raise PrincipalError(f"{who.key} may not reject requests of others", hint="a human decides",
                                 approval=approval_id)
        return self._decide(approval_id, REJECTED, who, reason)

    def consume(self, approval_id: str, *, principal: Principal, tool: str, digest: str, files: dict[str, str],
                call_id: str) -> Approval:
        """Turn an approval into one run of ``tool`` by ``principal`` (who asked for it) whose
        content digest is ``digest``: at most once, and only while nothing changed."""
        who = self.principals.verify(principal)
        now = self.clock.now()
        with self.sql.begin() as conn:
            done = conn.execute(approvals.update().where(
                approvals.c.id == approval_id, approvals.c.status == APPROVED, approvals.c.digest == digest,
                approvals.c.tool == tool, approvals.c.actor == who.key)
                .values(status=CONSUMED, consumed_at=now, consumed_by=call_id))
        a = self.get(approval_id)
        if done.rowcount == 1:
            if self.audit is not None:
                self.audit.append("approval.consumed", who, {"approval": approval_id, "call": call_id,
                                                             "digest": digest}, durable=True)
            return a
        if a.status == PENDING:
            raise ApprovalPending(f"approval {approval_id} is still pending",
                                  hint=f"`emergent approvals approve {approval_id}`", approval=approval_id)
        if a.status == CONSUMED:
            raise PermissionDenied(f"approval {approval_id} was already used (by call {a.consumed_by})",
                                   hint="an approval runs its call once; ask again", approval=approval_id)
        if a.status != APPROVED:
            raise PermissionDenied(f"approval {approval_id} was {a.status} by {a.decided_by}: "
                                   f"{a.decision_reason or 'no reason given'}", hint="the action did not run",
                                   approval=approval_id)
        if a.tool != tool:
            raise PermissionDenied(f"approval {approval_id} is for {a.tool}, not {tool}",
                                   hint="an approval runs only the tool it was granted for", approval=approval_id)
        if a.actor != who.key:
            raise PermissionDenied(f"approval {approval_id} was granted to {a.actor}, not {who.key}",
                                   hint="an approval runs only the requester's call", approval=approval_id)
        changed = sorted(set((a.files or {}).items()) ^ set(files.items()))
        raise ApprovalStaleError(
            f"approval {approval_id} no longer matches what would run: its arguments or the content of "
            f"{', '.join(sorted({p for p, _ in changed})) or 'a file it reads'} changed since it was approved",
            hint="nothing ran; ask for a new approval of the current content", approval=approval_id)


    # ------------------------------------------------------------------ personal content
    def redact(self, approval_id: str, fields: Iterable[str], *, by: Any) -> Approval:
        """Drop the text of the personal arguments ``fields`` (a memory's text) of a request that will
        not run again (consumed, rejected or expired): each becomes its length and sha256, so what was
        approved stays provable (the request's digest is kept) without its content. Audited."""
        a = self.get(approval_id)
        if a.status in (PENDING, APPROVED):
            raise UsageError(f"approval {approval_id} is {a.status}: its call may still run with these arguments",
                             hint="redact it once it ran, was rejected or expired", approval=approval_id)
        names = sorted({f for f in fields if f in a.args and a.args[f] is not None})
        new = {k: personal_digest(v) if k in names else v for k, v in a.args.items()}
        if new == a.args:
            return a
        if self.audit is not None:
            self.audit.append("approval.redacted", by, {"approval": approval_id, "tool": a.tool, "fields": names,
                                                        "digest": a.digest}, durable=True)
        with self.sql.begin() as conn:
            self._secure_delete(conn)  # the freed bytes of the old value are zeroed
            conn.execute(approvals.update().where(approvals.c.id == approval_id,
                                                  approvals.c.status.notin_([PENDING, APPROVED]))
                         .values(args=self._dump_args(approval_id, new)))
        return dataclasses.replace(a, args=new)

    def erase_content(self, texts: Iterable[str], *, by: Principal, reason: str) -> builtins.list[str]:
        """Right-to-erasure for the requests: every request with an argument holding one of ``texts``
        (an erased memory's text) loses that argument's text (its length and sha256 stay); one still
        pending or approved but not yet run is rejected first (its content was erased: it must not be
        written again). Returns the ids of the requests changed. The caller checked ``by`` (a human)."""
        wanted = {t.strip() for t in texts if isinstance(t, str) and t.strip()}
        if not wanted:
            return []

        def holds(v: Any) -> bool:
            if isinstance(v, str):
                return v.strip() in wanted
            if isinstance(v, dict):
                return any(holds(x) for x in v.values())
            if isinstance(v, list):
                return any(holds(x) for x in v)
            return False

        with self.sql.connect() as conn:
            rows = [(r.id, r.status, self._load_args(r.id, r.args))
                    for r in conn.execute(sa.select(approvals.c.id, approvals.c.status, approvals.c.args))]
        changed = []
        for aid, status, args in rows:
            fields = [k for k, v in (args.items() if isinstance(args, dict) else ()) if holds(v)]
            if not fields:
                continue
            if status in (PENDING, APPROVED):
                self._withdraw(aid, by, reason)
            self.redact(aid, fields, by=by)
            changed.append(aid)
        return changed

    def _withdraw(self, approval_id: str, by: Principal, reason: str) -> None:
        """Reject a request that is pending, or approved and not yet run (its content was erased)."""
        a = self.get(approval_id)
        why = f"its content was erased: {reason}"
        if self.audit is not None:
            self.audit.append("approval.rejected", by, {"approval": approval_id, "tool": a.tool,
                                                        "requested_by": a.actor, "digest": a.digest,
                                                        "reason": why, "was": a.status}, durable=True)
        with self.sql.begin() as conn:
            conn.execute(approvals.update().where(approvals.c.id == approval_id,
                                                  approvals.c.status.in_([PENDING, APPROVED]))
                         .values(status=REJECTED, decided_by=actor_key(by), decided_at=self.clock.now(),
                                 decision_reason=why))
        with self._lock:
            ev = self._events.pop(approval_id, None)
        if ev is not None:
            ev.set()

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

    def decided(self, since: float) -> builtins.list[Approval]:
        """Requests filed at or after ``since`` that a human decided: approved, consumed (approved,
        then used) or rejected; oldest first. A read for other services (nothing expires here)."""
        q = (sa.select(approvals).where(approvals.c.created_at >= since,
                                        approvals.c.status.in_([APPROVED, CONSUMED, REJECTED]))
             .order_by(approvals.c.created_at))
        with self.sql.connect() as conn:
            return [self._row(r) for r in conn.execute(q)]
