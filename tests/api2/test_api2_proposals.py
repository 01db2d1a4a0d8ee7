"""/v1/proposals: reading with cursor pagination, a person deciding as the token's principal."""

from __future__ import annotations

from typing import Any

import pytest

from emergent.proposals.writer import Expected, ProposalDraft

from .conftest import audited, problem


def draft(n: int) -> ProposalDraft:
    return ProposalDraft(title=f"Longer timeout {n}", rationale="it times out", kind="tool", target=f"tool{n}",
                         change={"file": f"tool{n}.py"}, expected=Expected(metric="failure_rate", direction="decrease",
                                                                           how_measured="tool telemetry"))


@pytest.fixture
def pending(ws: Any) -> dict[str, Any]:
    """A proposal the self-improvement agent submitted: it waits for a person."""
    bot = ws.self_improvement_agent()
    p = ws.proposals.create(draft(0), principal=bot)
    return ws.proposals.submit(p["id"], principal=bot)  # type: ignore[no-any-return]


def test_proposals_are_listed_newest_first_a_page_at_a_time(ws: Any, client: Any, headers: Any) -> None:
    bot = ws.self_improvement_agent()
    ids = [ws.proposals.create(draft(i), principal=bot)["id"] for i in range(3)]
    first = client.get("/v1/proposals", params={"limit": 2}, headers=headers["viewer"]).json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = client.get("/v1/proposals", params={"limit": 2, "cursor": first["next_cursor"]},
                      headers=headers["viewer"]).json()
    assert rest["next_cursor"] is None
    assert sorted(p["id"] for p in first["items"] + rest["items"]) == sorted(ids)


def test_an_operator_approves_as_its_principal_and_the_decision_is_audited(
        ws: Any, me: Any, client: Any, headers: Any, pending: dict[str, Any]) -> None:
    assert pending["status"] == "pending" and pending["approval_id"]
    r = client.post(f"/v1/proposals/{pending['id']}/approve", json={"reason": "fine"}, headers=headers["operator"])
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "approved" and r.json()["decided_by"] == me.key
    assert [e.actor for e in audited(ws, "proposal.approved")] == [me.key]
    assert ws.autonomy.approvals.get(pending["approval_id"]).status == "consumed"


def test_a_viewer_token_may_not_decide_and_nothing_changes(ws: Any, client: Any, headers: Any,
                                                           pending: dict[str, Any]) -> None:
    problem(client.post(f"/v1/proposals/{pending['id']}/approve", headers=headers["viewer"]), 403)
    assert ws.proposals.get(pending["id"])["status"] == "pending"


def test_an_agent_token_reads_no_proposals(client: Any, headers: Any, pending: dict[str, Any]) -> None:
    problem(client.get("/v1/proposals", headers=headers["agent"]), 403)
    problem(client.get(f"/v1/proposals/{pending['id']}", headers=headers["agent"]), 403)


def test_deciding_twice_is_a_conflict(client: Any, headers: Any, pending: dict[str, Any]) -> None:
    url = f"/v1/proposals/{pending['id']}"
    assert client.post(f"{url}/reject", json={"reason": "not now"}, headers=headers["operator"]).status_code == 200
    body = problem(client.post(f"{url}/approve", json={}, headers=headers["operator"]), 409)
    assert "rejected" in body["detail"] and body["hint"]


def test_a_rejection_needs_a_reason(client: Any, headers: Any, pending: dict[str, Any]) -> None:
    problem(client.post(f"/v1/proposals/{pending['id']}/reject", json={"reason": "  "}, headers=headers["operator"]),
            422)


def test_one_proposal_comes_with_its_history(client: Any, headers: Any, pending: dict[str, Any]) -> None:
    p = client.get(f"/v1/proposals/{pending['id']}", headers=headers["viewer"]).json()
    assert [e["to_status"] for e in p["events"]] == ["draft", "pending"]


def test_an_unknown_proposal_is_a_404_with_a_hint(client: Any, headers: Any) -> None:
    assert "emergent proposals list" in problem(client.get("/v1/proposals/nope", headers=headers["viewer"]), 404)["hint"]


def test_a_decision_made_in_the_approvals_queue_is_applied_by_sync_as_its_decider(
        ws: Any, me: Any, client: Any, headers: Any, pending: dict[str, Any]) -> None:
    r = client.post(f"/v1/approvals/{pending['approval_id']}/approve", json={"reason": "ok"},
                    headers=headers["operator"])
    assert r.status_code == 200, r.text
    assert ws.proposals.get(pending["id"])["status"] == "pending"  # not yet applied
    assert client.post("/v1/proposals/sync", headers=headers["operator"]).json() == {"applied": 1}
    p = ws.proposals.get(pending["id"])
    assert p["status"] == "approved" and p["decided_by"] == me.key
    assert ws.autonomy.approvals.get(pending["approval_id"]).status == "consumed"
    assert client.post("/v1/proposals/sync", headers=headers["operator"]).json() == {"applied": 0}
