"""Retention policies (a human sets and removes them, audited) and the purge that applies them."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from emergent import Workstation
from emergent.clock import FakeClock
from emergent.errors import NotFoundError, PrincipalError, ValidationError

DAY = 86400.0


def test_a_human_sets_replaces_lists_and_removes_policies_and_each_change_is_audited(ws, me, agent) -> None:
    r = ws.retention
    first = r.set_policy("episodic", "assistant", 90, by=me, note="GDPR minimisation")
    again = r.set_policy("episodic", "assistant", 60, by=me)
    assert again.id == first.id and [(p.kind, p.scope, p.max_age_days) for p in r.policies()] == \
        [("episodic", "assistant", 60.0)]
    r.set_policy("*", "*", 3650, by=me)
    assert {(p.kind, p.scope) for p in r.policies()} == {("episodic", "assistant"), ("*", "*")}
    r.remove_policy("*", "*", by=me)
    assert [p.scope for p in r.policies()] == ["assistant"]
    kinds = [(e.kind, e.data["phase"]) for e in ws.audit.entries() if e.kind.startswith("retention.")]
    assert kinds == [("retention.policy_set", "intent"), ("retention.policy_set", "done")] * 3 + \
        [("retention.policy_remove", "intent"), ("retention.policy_remove", "done")]
    with pytest.raises(NotFoundError):
        r.remove_policy("*", "*", by=me)


def test_an_agent_or_the_scheduler_cannot_set_or_remove_a_policy(ws, me, agent) -> None:
    ws.retention.set_policy("semantic", "assistant", 30, by=me)
    for who in (agent, ws.scheduler_principal):
        with pytest.raises(PrincipalError):
            ws.retention.set_policy("semantic", "assistant", 1, by=who)
        with pytest.raises(PrincipalError):
            ws.retention.remove_policy("semantic", "assistant", by=who)
    assert [p.max_age_days for p in ws.retention.policies()] == [30.0]


@pytest.mark.parametrize("kind, scope, days", [
    ("gossip", "assistant", 30), ("episodic", "bad scope!", 30), ("episodic", "assistant", 0),
    ("episodic", "assistant", -1), ("episodic", "assistant", float("nan")), ("episodic", "assistant", True),
    ("episodic", "assistant", "90"), ("episodic", "/alice", 30),
])
def test_an_invalid_policy_is_refused_at_the_boundary(ws, me, kind, scope, days) -> None:
    with pytest.raises(ValidationError):
        ws.retention.set_policy(kind, scope, days, by=me)
    assert ws.retention.policies() == []


def test_the_purge_erases_what_the_most_specific_policy_says_expired_and_keeps_the_rest(home: Path) -> None:
    t0 = time.time() - 200 * DAY
    clock = FakeClock(t0)
    with Workstation.open(home, embedder="hashing", clock=clock) as past:
        old_episode = past.memory.remember("the harbour flooded in spring", scope="assistant/bob", tier="ltm").id
        old_fact = past.memory.remember("the harbour is deep", kind="semantic", scope="assistant/bob", tier="ltm").id
        held = past.memory.remember("the harbour lawsuit episode", scope="assistant/legal", tier="ltm").id
        other_agent = past.memory.remember("the coach's old episode", scope="coach/bob", tier="ltm").id
    clock.set(t0 + 100 * DAY)
    with Workstation.open(home, embedder="hashing", clock=clock) as ws:
        me = ws.principal
        fresh = ws.memory.remember("the harbour reopened", scope="assistant/bob", tier="ltm").id
        general = ws.retention.set_policy("episodic", "assistant", 90, by=me)
        ws.retention.set_policy("episodic", "assistant/legal", 3650, by=me, note="legal hold")

        dry = ws.retention.purge(by=ws.scheduler_principal, dry_run=True)
        assert dry.ids == [old_episode] and dry.by_policy == {general.id: 1}
        assert len(ws.memory.locate(scope="assistant")) == 4  # a dry run changes nothing

        report = ws.retention.purge(by=ws.scheduler_principal)
        assert (report.erased, report.ids, report.by_policy) == (1, [old_episode], {general.id: 1})
        left = {f["id"] for f in ws.memory.locate(scope="assistant")} | {f["id"] for f in ws.memory.locate(scope="coach")}
        assert left == {old_fact, held, fresh, other_agent}
        assert [h.id for h in ws.memory.recall("harbour flooded spring", scope="assistant/bob", k=5)
                if h.id == old_episode] == []

        [ledger] = ws.retention.erasures(op="purge")
        assert (ledger["status"], ledger["count"], ledger["by"]) == ("done", 1, "service:scheduler")
        done = [e for e in ws.audit.entries(kind="retention.purge") if e.data["phase"] == "done"]
        assert done and done[-1].actor == "service:scheduler" and done[-1].data["ids"] == [old_episode]

        assert ws.retention.purge(by=ws.scheduler_principal).erased == 0  # idempotent


def test_the_purge_job_notebook_runs_as_a_job_and_purges(home: Path) -> None:
    from emergent.jobs.model import RunStatus
    from emergent.security.retention import PURGE_JOB, job_notebook

    clock = FakeClock(time.time() - 30 * DAY)
    with Workstation.open(home, embedder="hashing", clock=clock) as past:
        stale = past.memory.remember("a month-old episode", scope="assistant/bob", tier="ltm").id
    with Workstation.open(home, embedder="hashing") as ws:
        keep = ws.memory.remember("today's episode", scope="assistant/bob", tier="ltm").id
        ws.retention.set_policy("episodic", "*", 7, by=ws.principal)
        ws.jobs.add(PURGE_JOB, job_notebook(PURGE_JOB), schedule="30 3 * * *", parameters={"embedder": "hashing"},
                    timeout_s=300, principal=ws.principal)
        run = ws.jobs.run(PURGE_JOB, principal=ws.scheduler_principal, trigger="schedule")
        assert run.status is RunStatus.SUCCEEDED, run.error
        assert run.outputs["erased"] == 1
        assert {f["id"] for f in ws.memory.locate(scope="assistant")} == {keep}
        assert stale not in {f["id"] for f in ws.memory.locate(learned_before=time.time() + 1)}
        [ledger] = ws.retention.erasures(op="purge")
        assert ledger["by"] == "service:scheduler"
