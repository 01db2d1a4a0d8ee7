"""The approvals queue: survives restarts, decides once, expires into a rejection."""

import threading

import pytest

from emergent.autonomy.approvals import ApprovalQueue
from emergent.autonomy.audit import AuditLog
from emergent.errors import NotFoundError, UsageError


def test_pending_requests_survive_a_restart(store, clock):
    q = ApprovalQueue(store, clock=clock)
    a = q.request(actor="agent:a", tool="files.write@1.0.0", args={"path": "x"}, reason="write needs a human")
    q2 = ApprovalQueue(store, clock=clock)
    assert [p.id for p in q2.list()] == [a.id]
    done = q2.approve(a.id, by="user:boss", reason="ok")
    assert done.status == "approved" and done.decided_by == "user:boss"
    assert q.get(a.id).status == "approved"


def test_a_request_is_decided_only_once(store, clock):
    q = ApprovalQueue(store, clock=clock)
    a = q.request(actor="agent:a", tool="t@1.0.0", args={}, reason="r")
    q.reject(a.id, reason="no")
    with pytest.raises(UsageError, match="already rejected"):
        q.approve(a.id)
    with pytest.raises(NotFoundError, match="no approval request"):
        q.get("missing")


def test_expiry_auto_rejects(store, clock):
    q = ApprovalQueue(store, clock=clock, default_ttl=60)
    a = q.request(actor="agent:a", tool="t@1.0.0", args={}, reason="r")
    clock.advance(61)
    assert q.expire_due() == 1
    e = q.get(a.id)
    assert e.status == "expired" and e.decided_by == "system:expiry"
    b = q.request(actor="agent:a", tool="t@1.0.0", args={}, reason="r", ttl=5)
    clock.advance(6)
    assert q.wait(b.id, timeout=1).status == "expired"


def test_waiter_wakes_when_decided_in_this_process(store, clock):
    q = ApprovalQueue(store, clock=clock, poll_interval=5)
    a = q.request(actor="agent:a", tool="t@1.0.0", args={}, reason="r")
    threading.Timer(0.1, lambda: q.approve(a.id)).start()
    assert q.wait(a.id, timeout=3).status == "approved"


def test_decisions_are_audited(store, clock):
    audit = AuditLog(store, clock=clock, flush_interval=None)
    q = ApprovalQueue(store, clock=clock, audit=audit)
    a = q.request(actor="agent:a", tool="t@1.0.0", args={}, reason="r")
    q.approve(a.id, by="user:boss", reason="fine")
    kinds = [(e.kind, e.actor) for e in audit.entries()]
    assert kinds == [("approval.requested", "agent:a"), ("approval.approved", "user:boss")]
