"""Votes (majority, weighted, quorum) with recorded dissent, escalation to a person, and conflicts
resolved by priority, confidence or escalation, explained."""

from __future__ import annotations

from typing import Any

import pytest

from emergent.errors import PrincipalError, ValidationError

VOTERS = ["scout", "stats", "critic"]


def test_a_majority_vote_records_who_voted_what_and_why_and_the_dissent(ws: Any, agents: Any) -> None:
    v = agents.vote("Which sensor do we buy?", ["optode", "electrode"], voters=VOTERS, by=ws.principal,
                    ballots={"scout": ("optode", "drifts little"), "stats": "optode",
                             "critic": ("electrode", "responds faster")})
    assert (v.status, v.winner, v.tally) == ("decided", "optode", {"optode": 2.0, "electrode": 1.0})
    assert [(b.voter, b.choice, b.reason) for b in v.dissent] == [("agent:critic", "electrode", "responds faster")]
    stored = agents.vote_result(v.id)
    assert stored.winner == "optode" and {b.voter for b in stored.ballots} == {f"agent:{n}" for n in VOTERS}
    ballots = [m for m in agents.messages("votes") if m.body["vote"] == v.id]
    assert sorted(m.sender for m in ballots) == sorted(f"agent:{n}" for n in VOTERS)  # each voted as itself
    ws.audit.flush()
    (entry,) = [e for e in ws.audit.entries(kind="agents.vote") if e.data["vote"] == v.id]
    assert entry.actor == ws.principal.key and len(entry.data["ballots"]) == 3


def test_a_weighted_vote_lets_the_heavier_voter_outweigh_a_majority(ws: Any, agents: Any) -> None:
    ballots = {"scout": "optode", "stats": "optode", "critic": "electrode"}
    v = agents.vote("Which sensor?", ["optode", "electrode"], voters=VOTERS, method="weighted",
                    weights={"critic": 3}, ballots=ballots, by=ws.principal)
    assert (v.winner, v.tally["electrode"], v.tally["optode"]) == ("electrode", 3.0, 2.0)
    assert {b.voter for b in v.dissent} == {"agent:scout", "agent:stats"}


def test_agents_vote_from_their_own_memory_and_card_and_abstain_when_nothing_decides(
        ws: Any, agents: Any) -> None:
    v = agents.vote("Who should take the next job?", ["literature", "stats"], voters=VOTERS, by=ws.principal)
    chosen = {b.voter: b.choice for b in v.ballots}
    assert chosen == {"agent:scout": "literature", "agent:critic": "literature", "agent:stats": "stats"}
    assert v.winner == "literature"
    ws.memory.ingest(["Optodes drift little over months of deployment."], scope="scout")
    ws.memory.ingest(["Electrodes respond within seconds."], scope="stats")
    ws.memory.ingest(["Optodes are slow; electrodes are fast."], scope="critic")  # both: no preference
    m = agents.vote("Which oxygen sensor do we buy?", ["optode", "electrode"], voters=VOTERS, by=ws.principal)
    by_voter = {b.voter: b for b in m.ballots}
    assert (by_voter["agent:scout"].choice, by_voter["agent:stats"].choice) == ("optode", "electrode")
    assert by_voter["agent:critic"].choice is None and "no preference" in by_voter["agent:critic"].reason
    assert m.status == "no-majority" and m.approval_id  # 1 : 1 with one abstention
    scored = agents.vote("Pick one", ["a", "b"], voters=VOTERS, by=ws.principal,
                         score=lambda card, q, option: 1.0 if (card.name == "stats") == (option == "b") else 0.0)
    assert {b.voter: b.choice for b in scored.ballots}["agent:stats"] == "b" and scored.winner == "a"


def test_a_vote_without_quorum_says_so_and_escalates_to_a_person(ws: Any, agents: Any) -> None:
    me = ws.principal
    v = agents.vote("Adopt the new sensor?", ["yes", "no"], voters=VOTERS, method="quorum", quorum=3, by=me,
                    ballots={"scout": ("yes", "better data"), "stats": (None, "no opinion"), "critic": "no"})
    assert v.status == "no-quorum" and v.winner is None
    assert "no quorum: 2 of 3 voter(s) cast a ballot, 1 abstained; the quorum is 3" in v.explanation
    a = ws.autonomy.approvals.get(v.approval_id)
    assert a.status == "pending" and a.tool == "agents.vote" and a.resource == f"vote:{v.id}"
    with pytest.raises(PrincipalError):
        agents.decide_vote(v.id, "yes", by=agents.principal_of("scout"))
    decided = agents.decide_vote(v.id, "yes", by=me, reason="the data argue for it")
    assert (decided.status, decided.winner, decided.decided_by) == ("decided", "yes", me.key)
    assert ws.autonomy.approvals.get(v.approval_id).status == "approved"
    assert [b.voter for b in decided.dissent] == ["agent:critic"]


def test_a_tie_is_no_majority_and_escalates(ws: Any, agents: Any) -> None:
    v = agents.vote("Which?", ["a", "b"], voters=["scout", "stats"], by=ws.principal,
                    ballots={"scout": "a", "stats": "b"})
    assert v.status == "no-majority" and v.winner is None and v.approval_id
    assert "no option has more than half of 2 ballot(s)" in v.explanation
    assert agents.votes()[0].id == v.id


def test_a_vote_refuses_bad_input_by_field_and_an_infinite_quorum_or_weight(ws: Any, agents: Any) -> None:
    me = ws.principal
    with pytest.raises(ValidationError, match="field 'method'"):
        agents.vote("q", ["a", "b"], voters=VOTERS, method="ranked", by=me)
    with pytest.raises(ValidationError, match="field 'quorum'"):
        agents.vote("q", ["a", "b"], voters=VOTERS, method="quorum", by=me)
    with pytest.raises(ValidationError, match="field 'options'"):
        agents.vote("q", ["a"], voters=VOTERS, by=me)
    with pytest.raises(ValidationError, match="field 'ballots'"):
        agents.vote("q", ["a", "b"], voters=VOTERS, by=me, ballots={"scout": "c"})
    with pytest.raises(ValidationError, match="field 'quorum': must be a finite number"):
        agents.vote("q?", ["a", "b"], voters=VOTERS, method="quorum", quorum=float("inf"), by=ws.principal,
                    ballots={"scout": "a"})
    with pytest.raises(ValidationError, match="field 'weights'"):
        agents.vote("q?", ["a", "b"], voters=VOTERS, method="weighted", weights={"scout": float("inf")},
                    by=ws.principal, ballots={"scout": "a"})


PROPOSALS = [{"agent": "scout", "proposal": "buy optodes", "priority": 2, "confidence": 0.6},
             {"agent": "critic", "proposal": "buy electrodes", "priority": 1, "confidence": 0.9}]


def test_conflicting_proposals_are_resolved_by_priority_or_confidence_and_explained(ws: Any, agents: Any) -> None:
    me = ws.principal
    by_priority = agents.resolve(PROPOSALS, rule="priority", by=me)
    assert by_priority.status == "resolved" and by_priority.winner.agent == "scout"
    assert "by priority: scout's 'buy optodes' wins with the highest priority 2" in by_priority.explanation
    assert "set aside: critic ('buy electrodes')" in by_priority.explanation
    by_confidence = agents.resolve(PROPOSALS, rule="confidence", by=me)
    assert by_confidence.winner.agent == "critic" and "highest confidence 0.9" in by_confidence.explanation
    tied = [{**PROPOSALS[0], "priority": 1}, {**PROPOSALS[1], "confidence": 0.6}]
    fallback = agents.resolve(tied, rule="priority", by=me)
    assert fallback.status == "escalated" and fallback.approval_id and "tie stands" in fallback.explanation
    assert [r.id for r in agents.resolutions()][:3] == [fallback.id, by_confidence.id, by_priority.id]
    senders = {m.sender for m in agents.messages("proposals")}
    assert senders == {"agent:scout", "agent:critic"}


def test_an_escalated_conflict_is_decided_by_a_person_and_agreement_is_no_conflict(ws: Any, agents: Any) -> None:
    me = ws.principal
    r = agents.resolve(PROPOSALS, rule="escalate", by=me)
    assert r.status == "escalated" and r.winner is None
    assert ws.autonomy.approvals.get(r.approval_id).tool == "agents.resolve"
    done = agents.decide_conflict(r.id, "critic", by=me, reason="faster response matters more")
    assert done.status == "resolved" and done.winner.proposal == "buy electrodes" and done.decided_by == me.key
    same = agents.resolve([{"agent": "scout", "proposal": "wait"}, {"agent": "stats", "proposal": "wait"}],
                          rule="escalate", by=me)
    assert same.status == "agreed" and same.approval_id is None and "no conflict" in same.explanation


def test_an_agent_casts_only_its_own_ballot_and_files_only_its_own_proposal_unless_a_rule_allows(
        ws: Any, agents: Any) -> None:
    from emergent.errors import PermissionDenied

    me, scout = ws.principal, agents.principal_of("scout")
    with pytest.raises(PermissionDenied, match="agent:scout may not cast agent:stats's ballot") as err:
        agents.vote("Drop the audit table?", ["yes", "no"], voters=["scout", "stats"], by=scout,
                    ballots={"scout": "yes", "stats": "yes"})
    assert "agents.vote" in err.value.hint
    with pytest.raises(PermissionDenied):  # a scoring function decides the others' ballots too
        agents.vote("Drop it?", ["yes", "no"], voters=["scout", "stats"], by=scout, score=lambda c, q, o: 1.0)
    with pytest.raises(PermissionDenied, match="agent:scout may not file a proposal as agent:critic"):
        agents.resolve([{"agent": "scout", "proposal": "a"}, {"agent": "critic", "proposal": "b"}], by=scout)
    assert agents.votes() == [] and agents.resolutions() == [] and agents.messages("votes") == []
    own = agents.vote("Mine?", ["yes", "no"], voters=["scout"], by=scout, ballots={"scout": "yes"})
    assert own.winner == "yes"
    ws.autonomy.add_rule("agent:scout", "agents.vote", "allow", resource="agent:stats", by=me)
    allowed = agents.vote("Yours?", ["yes", "no"], voters=["scout", "stats"], by=scout,
                          ballots={"scout": "yes", "stats": "yes"})
    assert allowed.winner == "yes" and {m.sender for m in agents.messages("votes") if m.body["vote"] == allowed.id} \
        == {"agent:scout", "agent:stats"}


def test_a_vote_whose_audit_entry_cannot_be_written_puts_no_ballot_on_the_bus(ws: Any, agents: Any) -> None:
    from emergent.errors import AuditWriteError

    with ws.sql.begin() as conn:
        conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_gone")
    ws.audit.busy_retry_s = 0.2
    try:
        with pytest.raises(AuditWriteError):
            agents.vote("Unaudited?", ["yes", "no"], voters=["scout", "stats"], by=ws.principal,
                        ballots={"scout": "yes", "stats": "no"})
    finally:
        with ws.sql.begin() as conn:
            conn.exec_driver_sql("ALTER TABLE audit_log_gone RENAME TO audit_log")
    assert agents.messages("votes") == [] and agents.votes() == []


def test_a_vote_and_a_conflict_whose_approval_was_rejected_in_the_inbox_are_still_decided_by_a_person(
        ws: Any, agents: Any) -> None:
    me = ws.principal
    v = agents.vote("Which?", ["a", "b"], voters=["scout", "stats"], by=me, ballots={"scout": "a", "stats": "b"})
    ws.autonomy.approvals.reject(v.approval_id, by=me, reason="not now")  # the inbox's reject button
    decided = agents.decide_vote(v.id, "b", by=me, reason="b is cheaper")
    assert (decided.status, decided.winner, decided.decided_by) == ("decided", "b", me.key)
    assert f"its approval was rejected by {me.key} first" in decided.explanation
    r = agents.resolve(PROPOSALS, rule="escalate", by=me)
    ws.autonomy.approvals.reject(r.approval_id, by=me)
    done = agents.decide_conflict(r.id, "critic", by=me)
    assert done.status == "resolved" and done.winner.proposal == "buy electrodes"
    ws.audit.flush()
    (vd,) = ws.audit.entries(kind="agents.vote.decided")
    (rd,) = ws.audit.entries(kind="agents.resolve.decided")
    assert vd.data["approval"] == rd.data["approval"] == f"rejected by {me.key}"
    assert ws.autonomy.approvals.get(v.approval_id).status == "rejected"  # the approval itself is left as decided
