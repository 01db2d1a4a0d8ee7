"""The approvals queue: survives restarts, decides once, expires into a rejection, runs once."""

import threading

import pytest

from emergent.audit import AuditLog
from emergent.autonomy.approvals import ApprovalQueue
from emergent.errors import ApprovalStaleError, NotFoundError, PermissionDenied, PrincipalError, UsageError
from emergent.principals import Principals

D = "d" * 64


@pytest.fixture
def directory(store, clock):
    return Principals(store, clock=clock)


@pytest.fixture
def boss(directory):
    return directory.os_user()


@pytest.fixture
def bot(directory, boss):
    return directory.agent("a", created_by=boss)


def queue(store, clock, directory, **kw):
    return ApprovalQueue(store, principals=directory, clock=clock, **kw)


def ask(q, who, **kw):
    return q.request(principal=who, tool=kw.pop("tool", "t@1.0.0"), args=kw.pop("args", {}), reason="r",
                     digest=kw.pop("digest", D), **kw)


def test_pending_requests_survive_a_restart(store, clock, directory, boss, bot):
    q = queue(store, clock, directory)
    a = ask(q, bot, tool="files.write@1.0.0", args={"path": "x"})
    q2 = queue(store, clock, directory)
    assert [p.id for p in q2.list()] == [a.id]
    done = q2.approve(a.id, by=boss, reason="ok")
    assert done.status == "approved" and done.decided_by == boss.key and done.digest == D
    assert q.get(a.id).status == "approved"


def test_a_request_is_decided_only_once(store, clock, directory, boss, bot):
    q = queue(store, clock, directory)
    a = ask(q, bot)
    q.reject(a.id, by=boss, reason="no")
    with pytest.raises(UsageError, match="already rejected"):
        q.approve(a.id, by=boss)
    with pytest.raises(NotFoundError, match="no approval request"):
        q.get("missing")


def test_expiry_auto_rejects(store, clock, directory, bot):
    q = queue(store, clock, directory, default_ttl=60)
    a = ask(q, bot)
    clock.advance(61)
    assert q.expire_due() == 1
    e = q.get(a.id)
    assert e.status == "expired" and e.decided_by == "system:expiry"
    b = ask(q, bot, ttl=5)
    clock.advance(6)
    assert q.wait(b.id, timeout=1).status == "expired"


def test_an_approval_past_its_expiry_cannot_be_approved_even_if_nothing_expired_it_yet(
        store, clock, directory, boss, bot):
    q = queue(store, clock, directory, default_ttl=60)
    a = ask(q, bot)
    clock.advance(61)  # nobody listed or waited: it is still "pending" in SQL
    with pytest.raises(UsageError, match="expired before it was decided"):
        q.approve(a.id, by=boss)
    assert q.get(a.id).status == "expired"


def test_waiter_wakes_when_decided_in_this_process(store, clock, directory, boss, bot):
    q = queue(store, clock, directory, poll_interval=5)
    a = ask(q, bot)
    threading.Timer(0.1, lambda: q.approve(a.id, by=boss)).start()
    assert q.wait(a.id, timeout=3).status == "approved"


def test_decisions_are_audited(store, clock, directory, boss, bot):
    audit = AuditLog(store, clock=clock, flush_interval=None)
    q = ApprovalQueue(store, principals=directory, clock=clock, audit=audit)
    a = ask(q, bot)
    q.approve(a.id, by=boss, reason="fine")
    kinds = [(e.kind, e.actor) for e in audit.entries()]
    assert kinds == [("approval.requested", "agent:a"), ("approval.approved", boss.key)]


def test_agents_and_services_cannot_approve(store, clock, directory, bot):
    q = queue(store, clock, directory)
    a = ask(q, bot)
    other = directory.agent("b", created_by=directory.os_user())
    for who in (bot, other, directory.service("scheduler")):
        with pytest.raises(PrincipalError, match="only a human approves"):
            q.approve(a.id, by=who)
    assert q.get(a.id).status == "pending"


def test_the_requester_cannot_approve_its_own_request(store, clock, directory, boss):
    q = queue(store, clock, directory)
    a = ask(q, boss)
    with pytest.raises(PrincipalError, match="may not approve it too"):
        q.approve(a.id, by=boss)


def test_an_approval_is_consumed_once_for_its_digest_tool_and_requester(store, clock, directory, boss, bot):
    q = queue(store, clock, directory)
    a = ask(q, bot, files={"nb.ipynb": "1" * 64})
    with pytest.raises(Exception, match="still pending"):
        q.consume(a.id, principal=bot, tool="t@1.0.0", digest=D, files={}, call_id="c0")
    q.approve(a.id, by=boss)
    with pytest.raises(ApprovalStaleError, match="nb.ipynb"):
        q.consume(a.id, principal=bot, tool="t@1.0.0", digest="e" * 64, files={"nb.ipynb": "2" * 64}, call_id="c1")
    with pytest.raises(PermissionDenied, match="not u@1.0.0"):
        q.consume(a.id, principal=bot, tool="u@1.0.0", digest=D, files={}, call_id="c1")
    other = directory.agent("b", created_by=boss)
    with pytest.raises(PermissionDenied, match="granted to agent:a"):
        q.consume(a.id, principal=other, tool="t@1.0.0", digest=D, files={}, call_id="c1")
    assert q.consume(a.id, principal=bot, tool="t@1.0.0", digest=D, files={}, call_id="c2").status == "consumed"
    with pytest.raises(PermissionDenied, match="already used"):
        q.consume(a.id, principal=bot, tool="t@1.0.0", digest=D, files={}, call_id="c3")
