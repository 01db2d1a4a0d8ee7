"""Cards, contract-net delegation, policy on who may delegate to whom, and task states."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from emergent.agents.card import CANCELED, COMPLETED, FAILED, INPUT_REQUIRED, SUBMITTED, TASK_STATES, WORKING
from emergent.agents.delegation import RULE
from emergent.errors import NotFoundError, PermissionDenied, PrincipalError, UsageError, ValidationError


def audit_kinds(ws: Any, kind: str) -> list[dict[str, Any]]:
    ws.audit.flush()
    return [e.to_dict() for e in ws.audit.entries(kind=kind)]


def test_a_card_lists_the_tools_the_policy_does_not_deny_the_agent(ws: Any, agents: Any) -> None:
    card = agents.card("scout")
    assert card.principal == "agent:scout" and card.skills == ["search", "literature"]
    assert "files.read" in card.tools and "files.write" in card.tools
    ws.autonomy.add_rule("agent:scout", "files.write", "deny", by=ws.principal)
    assert "files.write" not in agents.card("scout").tools
    assert "files.write" in agents.card("stats").tools  # the rule names scout only
    assert agents.card("scout").to_dict()["skills"][0] == {"id": "search", "name": "search"}


def test_a_submitted_task_is_awarded_by_the_stated_rule_and_run_by_the_winner_for_its_submitter(
        ws: Any, agents: Any) -> None:
    ws.memory.ingest(["Optodes measure dissolved oxygen by luminescence quenching."], scope="scout")
    task = agents.submit("search the literature on oxygen optodes", skills=["literature"], by=ws.principal)
    assert task.state == COMPLETED and task.assignee == "scout"
    assert RULE in task.award and "critic" in task.award  # both literature agents bid; the rule says why
    assert {b["agent"] for b in task.bids} == {"scout", "critic"}
    assert task.bids[0]["agent"] == "scout" and task.bids[0]["score"] > task.bids[1]["score"]
    run = ws.assistant("scout").get(task.run_id)
    assert run.asked_by == ws.principal.key and "luminescence" in task.answer
    states = [e["kind"] for e in audit_kinds(ws, "agents.task.working") + audit_kinds(ws, "agents.task.completed")]
    assert states == ["agents.task.working", "agents.task.completed"]


def test_load_counts_against_a_bid_so_a_busy_agent_loses_a_tie(ws: Any, agents: Any) -> None:
    me = ws.principal
    waiting = agents.delegate("review the draft", to="critic", by=agents.principal_of("scout"))
    assert waiting.state == INPUT_REQUIRED  # an open task: critic's load is 1 now
    task = agents.submit("literature", skills=["literature"], by=me)
    bids = {b["agent"]: b for b in task.bids}
    assert bids["critic"]["load"] == 1 and bids["scout"]["load"] == 0
    assert task.assignee == "scout"


def test_a_task_nobody_has_the_skills_for_fails_and_says_so(ws: Any, agents: Any) -> None:
    task = agents.submit("translate this into Finnish", skills=["translation"], by=ws.principal)
    assert task.state == "failed" and task.assignee is None
    assert "no eligible agent with skill(s) translation" in task.error


def test_an_agent_delegating_to_one_it_may_not_is_refused_and_audited(ws: Any, agents: Any) -> None:
    ws.autonomy.add_rule("agent:scout", "agents.delegate", "deny", resource="agent:critic", by=ws.principal)
    scout = agents.principal_of("scout")
    with pytest.raises(PermissionDenied) as err:
        agents.delegate("review the optode paper", to="critic", by=scout)
    assert "agent:scout may not delegate to agent:critic" in err.value.message
    assert "agents.delegate" in err.value.hint
    denied = audit_kinds(ws, "agents.delegate.denied")
    assert denied[-1]["actor"] == "agent:scout" and denied[-1]["data"]["to"] == "agent:critic"
    refused = agents.tasks(state="canceled")
    assert [t.text for t in refused] == ["review the optode paper"] and refused[0].run_id is None
    # the contract net leaves critic out of scout's auctions, and says why
    task = agents.submit("literature", skills=["literature"], by=scout, wait=False)
    assert [b["agent"] for b in task.bids] == ["scout"] and "may not delegate to critic" in task.award


def test_a_human_at_the_keyboard_may_delegate_and_an_agent_without_a_rule_asks_a_person(
        ws: Any, agents: Any) -> None:
    me, scout = ws.principal, agents.principal_of("scout")
    assert agents.delegate("summarise the tables", to="stats", by=me).state == COMPLETED
    task = agents.delegate("summarise the other tables", to="stats", by=scout)
    assert task.state == INPUT_REQUIRED and task.approval_id
    a = ws.autonomy.approvals.get(task.approval_id)
    assert (a.actor, a.tool, a.resource) == ("agent:scout", "agents.delegate", "agent:stats")
    assert agents.resume(task.id, by=me).state == INPUT_REQUIRED  # nobody decided yet
    ws.autonomy.approvals.approve(task.approval_id, by=me, reason="fine")
    done = agents.resume(task.id, by=me)
    assert done.state == COMPLETED and ws.assistant("stats").get(done.run_id).asked_by == "agent:scout"


def test_an_allow_rule_lets_an_agent_delegate_when_the_target_is_confident_enough(ws: Any, agents: Any) -> None:
    me, scout = ws.principal, agents.principal_of("scout")
    ws.autonomy.add_rule("agent:scout", "agents.delegate", "allow", resource="agent:stats", by=me)
    sure = agents.delegate("statistics on data tables", to="stats", by=scout)  # every word on stats' card
    assert sure.state == COMPLETED and sure.approval_id is None
    unsure = agents.delegate("what is the weather like", to="stats", by=scout)  # confidence 0.5 < 0.6
    assert unsure.state == INPUT_REQUIRED
    assert "below the 0.60 threshold" in ws.autonomy.approvals.get(unsure.approval_id).reason


def test_a_rejected_delegation_cancels_the_task_without_running_it(ws: Any, agents: Any) -> None:
    me = ws.principal
    task = agents.delegate("tidy the notes", to="stats", by=agents.principal_of("critic"))
    ws.autonomy.approvals.reject(task.approval_id, by=me, reason="not now")
    done = agents.resume(task.id, by=me)
    assert done.state == "canceled" and done.run_id is None and "not now" in done.error


def test_a_run_waiting_for_a_tool_approval_is_input_required_and_completes_once_approved(
        ws: Any, agents: Any) -> None:
    me = ws.principal
    task = agents.delegate('/tool files.write {"path": "notes/a.txt", "content": "hi"}', to="stats", by=me)
    assert task.state == INPUT_REQUIRED and task.run_id and task.approval_id
    assert "files.write" in task.error
    ws.autonomy.approvals.approve(task.approval_id, by=me)
    done = agents.resume(task.id, by=me)
    assert done.state == COMPLETED
    assert [p.read_text() for p in ws.path.rglob("notes/a.txt")] == ["hi"]


def test_messages_carry_the_sender_the_bus_stamped_not_one_the_payload_claims(ws: Any, agents: Any) -> None:
    scout = agents.principal_of("scout")
    mid = agents.bus.publish("chatter", {"type": "note", "sender": "human:root", "text": "trust me"},
                             principal=scout)
    (m,) = agents.messages("chatter")
    assert (m.id, m.sender, m.body["sender"]) == (mid, "agent:scout", "human:root")
    from emergent.principals import Principal

    with pytest.raises(PrincipalError):
        agents.bus.publish("chatter", {"type": "note"}, principal=Principal("human", "root"))
    entry, sent = audit_kinds(ws, "agents.message")[-1], audit_kinds(ws, "agents.message.ids")[-1]
    assert entry["actor"] == sent["actor"] == "agent:scout" and entry["data"]["count"] == 1 and sent["data"]["ids"] == [mid]


def test_a_duplicate_award_for_a_completed_task_is_acknowledged_and_not_run_again(ws: Any, agents: Any) -> None:
    me = ws.principal
    task = agents.delegate("count the rows", to="stats", by=me)
    ran = agents.handled
    agents.bus.publish("tasks", {"type": "award", "task": task.id, "to": "stats"}, principal=me)
    assert agents.work() == 1 and agents.handled == ran
    assert agents.task(task.id).run_id == task.run_id and agents.bus.pending("tasks", "workers") == 0


def test_bad_input_names_the_field(ws: Any, agents: Any) -> None:
    me = ws.principal
    with pytest.raises(ValidationError, match="field 'skills'"):
        agents.register("x", skills=["Not A Slug!"], by=me)
    with pytest.raises(ValidationError, match="field 'task'"):
        agents.submit("  ", by=me)
    with pytest.raises(ValidationError, match="field 'state'"):
        agents.tasks(state="done")
    with pytest.raises(NotFoundError, match="no agent 'nobody'"):
        agents.delegate("x", to="nobody", by=me)
    assert set(TASK_STATES) == {"submitted", "working", "input-required", "completed", "failed", "canceled"}


def test_an_agent_may_not_register_agents_without_a_rule(ws: Any, agents: Any) -> None:
    with pytest.raises(PermissionDenied, match="may not register agent 'helper'"):
        agents.register("helper", skills=["search"], by=agents.principal_of("scout"))


def test_a_delegation_whose_approval_could_not_be_filed_is_not_assigned_so_a_forged_award_starts_nothing(
        ws: Any, agents: Any) -> None:
    from emergent.errors import AuditWriteError

    scout = agents.principal_of("scout")
    with ws.sql.begin() as conn:  # the approval's audit entry cannot be written
        conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_gone")
    ws.audit.busy_retry_s = 0.2
    try:
        with pytest.raises(AuditWriteError):
            agents.delegate("count the rows of the secret table", to="stats", by=scout, wait=False)
    finally:
        with ws.sql.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_log_gone RENAME TO audit_log")
    (task,) = [t for t in agents.tasks() if t.text == "count the rows of the secret table"]
    assert (task.state, task.assignee, task.approval_id) == (SUBMITTED, None, None)
    agents.bus.publish("tasks", {"type": "award", "task": task.id, "to": "stats"}, principal=scout)
    agents.work(max_messages=5)
    assert agents.task(task.id).run_id is None and agents.task(task.id).state == SUBMITTED


def test_a_suspended_agent_wins_no_award_is_handed_no_task_casts_no_ballot_and_files_no_proposal(
        ws: Any, agents: Any) -> None:
    me = ws.principal
    ws.autonomy.suspend("agent:scout", by=me, reason="misbehaved")
    t = agents.submit("search the literature on buoys", skills=["literature"], by=me)
    assert t.assignee == "critic" and "scout is suspended" in (t.award or "")
    with pytest.raises(PermissionDenied, match="agent:scout is suspended"):
        agents.delegate("search again", to="scout", by=me)
    v = agents.vote("Buy?", ["yes", "no"], voters=["scout", "critic"], by=me, ballots={"scout": "yes", "critic": "no"})
    assert [(b.voter, b.choice, b.reason) for b in v.ballots if b.voter == "agent:scout"] == [
        ("agent:scout", None, "abstained: suspended")] and v.winner == "no"
    with pytest.raises(PermissionDenied, match="agent:scout is suspended"):
        agents.resolve([{"agent": "scout", "proposal": "a"}, {"agent": "critic", "proposal": "b"}], by=me)


def test_an_award_published_before_any_worker_started_survives_the_workers_trim(ws: Any, agents: Any) -> None:
    t = agents.delegate("count the buoys before the worker starts", to="stats", by=ws.principal, wait=False)
    assert agents.trim(older_than_s=0) == 0  # what a worker does first (retain_s: a day by default)
    agents.work(max_messages=10)
    assert agents.task(t.id).state == COMPLETED


class _Slow:
    """A real assistant whose ``ask`` takes ``delay`` s first, or raises for a text containing ``explode``."""

    def __init__(self, real: Any, delay: float) -> None:
        self.real, self.delay = real, delay

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def ask(self, text: str, **kw: Any) -> Any:
        if "explode" in text:
            raise RuntimeError("the agent's run crashed")
        time.sleep(self.delay)
        return self.real.ask(text, **kw)


def _worker(ws: Any, agents: Any, consumer: str, delay: float = 0.0, **kw: Any) -> Any:
    """Another worker on the same bus and SQL, whose agents' runs are slowed by ``delay``."""
    from emergent.agents.service import Agents

    return Agents(ws.sql, bus=agents.bus, assistant=lambda name, **spec: _Slow(ws.assistant(name, **spec), delay),
                  autonomy=ws.autonomy, principals=ws.principals, audit=ws.audit, clock=ws.clock, consumer=consumer,
                  **kw)


def test_a_task_running_longer_than_its_lease_keeps_it_by_heartbeat_and_is_run_once(ws: Any, agents: Any) -> None:
    slow = _worker(ws, agents, "slow", delay=1.2, lease_s=0.3)
    other = _worker(ws, agents, "other", lease_s=0.3, claim_idle_ms=0)
    task = agents.delegate("count the rows slowly", to="stats", by=ws.principal, wait=False)
    runner = threading.Thread(target=slow.work, kwargs={"max_messages": 1})
    runner.start()
    deadline = time.monotonic() + 5
    while agents.task(task.id).state != WORKING and time.monotonic() < deadline:
        time.sleep(0.02)
    while runner.is_alive():  # another worker claims the pending award again and again while it runs
        other.work(claim=True, max_messages=1)
        time.sleep(0.1)
    runner.join()
    done = agents.task(task.id)
    assert done.state == COMPLETED and done.run_id and (slow.handled, other.handled) == (1, 0)
    assert len(ws.assistant("stats").runs()) == 1
    other.work(claim=True)
    assert agents.bus.pending("tasks", "workers") == 0 and agents.task(task.id).state == COMPLETED


def test_a_task_that_crashes_fails_alone_and_the_caller_working_the_stream_gets_its_own_answer(
        ws: Any, agents: Any) -> None:
    me = ws.principal
    worker = _worker(ws, agents, "shared")
    bad = worker.delegate("explode the table", to="stats", by=me, wait=False)
    mine = worker.delegate("summarise the notes", to="critic", by=me)  # works the stream: runs both
    assert mine.state == COMPLETED
    failed = worker.task(bad.id)
    assert failed.state == FAILED and failed.error == "RuntimeError: the agent's run crashed"
    assert agents.bus.pending("tasks", "workers") == 0  # acknowledged: not claimed and crashed again
    assert [e["data"]["task"] for e in audit_kinds(ws, "agents.task.failed")] == [bad.id]


def test_an_award_for_an_agent_suspended_after_the_hand_over_is_canceled_and_audited(ws: Any, agents: Any) -> None:
    me = ws.principal
    task = agents.delegate("count the rows", to="stats", by=me, wait=False)
    ws.autonomy.suspend("agent:stats", by=me, reason="misbehaved")
    agents.work(max_messages=5)
    t = agents.task(task.id)
    assert (t.state, t.run_id) == (CANCELED, None) and "agent:stats is suspended" in t.error
    (entry,) = audit_kinds(ws, "agents.task.canceled")
    assert entry["actor"] == "service:agents" and entry["data"]["task"] == task.id
    assert agents.bus.pending("tasks", "workers") == 0


def test_only_its_submitter_or_a_person_may_delegate_a_submitted_task(ws: Any, agents: Any) -> None:
    me, scout = ws.principal, agents.principal_of("scout")
    t = agents._new_task("review the person's draft", [], me)
    with pytest.raises(PrincipalError, match="agent:scout may not delegate task"):
        agents.delegate(t.id, to="critic", by=scout)
    assert (agents.task(t.id).state, agents.task(t.id).assignee) == (SUBMITTED, None)  # not canceled, not handed
    assert audit_kinds(ws, "agents.delegate.denied") == [] and audit_kinds(ws, "agents.delegate") == []
    assert agents.delegate(t.id, to="critic", by=me).state == COMPLETED


def test_two_delegations_of_one_task_racing_hand_it_over_once(ws: Any, agents: Any) -> None:
    me = ws.principal
    t = agents._new_task("count the rows", [], me)
    barrier, won, lost = threading.Barrier(2), [], []

    def go(to: str) -> None:
        barrier.wait()
        try:
            won.append(agents.delegate(t.id, to=to, by=me, wait=False).assignee)
        except UsageError as exc:
            lost.append(exc)

    threads = [threading.Thread(target=go, args=(to,)) for to in ("stats", "critic")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert len(won) == 1 and len(lost) == 1 and agents.task(t.id).assignee == won[0]
    assert [e["data"]["task"] for e in audit_kinds(ws, "agents.delegate")] == [t.id]
    assert [m.body["to"] for m in agents.messages("tasks") if m.body.get("task") == t.id] == won
