"""The approvals inbox never approves an escalated vote blank: it says how to decide it with a choice."""

from __future__ import annotations

from typing import Any


def test_the_inbox_points_an_escalated_vote_at_its_decision_and_leaves_it_pending(aws: Any) -> None:
    from emergent.ui.approvals import ApprovalsInbox

    me, agents = aws.principal, aws.agents
    for name in ("scout", "stats"):
        agents.register(name, skills=[name], by=me)
    vote = agents.vote("Publish the draft now?", ["yes", "no"], voters=["scout", "stats"], method="quorum",
                       quorum=2, by=me, ballots={"scout": "yes", "stats": None})
    assert vote.status == "no-quorum" and vote.approval_id
    inbox = ApprovalsInbox(aws.autonomy, by=me, tools=aws.tools)
    inbox.picker.value = vote.approval_id
    assert inbox.decide(True) is None
    assert f"ws.agents.decide_vote(&#x27;{vote.id}&#x27;, CHOICE, by=ws.principal)" in inbox.status.value
    assert aws.autonomy.approvals.get(vote.approval_id).status == "pending"
    decided = agents.decide_vote(vote.id, "no", by=me)  # the way the hint names records the choice
    assert decided.winner == "no" and aws.autonomy.approvals.get(vote.approval_id).status != "pending"
