"""/v1/agents: cards (an admin registers), tasks through the delegation policy, a person's decisions."""

from __future__ import annotations

from typing import Any

import pytest

from .conftest import audited, problem


@pytest.fixture
def team(ws: Any, client: Any, headers: Any) -> None:
    for name, skills in (("scout", ["search", "literature"]), ("stats", ["stats"])):
        r = client.post("/v1/agents/cards", json={"name": name, "skills": skills, "description": f"{name} agent"},
                        headers=headers["admin"])
        assert r.status_code == 201, r.text


def test_an_admin_registers_agents_and_a_viewer_reads_their_cards(
        ws: Any, me: Any, client: Any, headers: Any, team: None) -> None:
    cards = client.get("/v1/agents/cards", headers=headers["viewer"]).json()
    assert [c["name"] for c in cards] == ["scout", "stats"]
    scout = client.get("/v1/agents/cards/scout", headers=headers["agent"]).json()
    assert scout["principal"] == "agent:scout" and scout["created_by"] == me.key and scout["tools"]
    assert [e.actor for e in audited(ws, "agents.register", None)] == [me.key, me.key]


def test_an_operator_may_not_register_an_agent(client: Any, headers: Any) -> None:
    problem(client.post("/v1/agents/cards", json={"name": "x", "skills": ["a"]}, headers=headers["operator"]), 403)
    assert client.get("/v1/agents/cards", headers=headers["viewer"]).json() == []


def test_a_task_submitted_by_an_operator_is_awarded_and_run_for_its_principal(
        ws: Any, me: Any, client: Any, headers: Any, team: None) -> None:
    r = client.post("/v1/agents/tasks", json={"text": "search the literature on optodes", "skills": ["literature"]},
                    headers=headers["operator"])
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["state"] == "completed" and task["assignee"] == "scout" and task["submitted_by"] == me.key
    assert client.get(f"/v1/agents/tasks/{task['id']}", headers=headers["viewer"]).json()["answer"]
    assert [t["id"] for t in client.get("/v1/agents/tasks", headers=headers["viewer"]).json()["items"]] == [task["id"]]


def test_an_agent_token_sees_only_its_own_tasks(client: Any, headers: Any, team: None) -> None:
    theirs = client.post("/v1/agents/tasks", json={"text": "run the stats", "to": "stats"},
                         headers=headers["operator"]).json()
    problem(client.get(f"/v1/agents/tasks/{theirs['id']}", headers=headers["agent"]), 404)
    assert client.get("/v1/agents/tasks", headers=headers["agent"]).json()["items"] == []


def test_an_agent_token_delegating_without_a_rule_waits_for_a_person(
        ws: Any, agent: Any, client: Any, headers: Any, team: None) -> None:
    r = client.post("/v1/agents/tasks", json={"text": "summarise the tables", "to": "stats"}, headers=headers["agent"])
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["state"] == "input-required" and task["approval_id"] and task["submitted_by"] == agent.key
    assert ws.autonomy.approvals.get(task["approval_id"]).actor == agent.key
    assert client.get(f"/v1/agents/tasks/{task['id']}", headers=headers["agent"]).status_code == 200
    cancelled = client.post(f"/v1/agents/tasks/{task['id']}/cancel", headers=headers["agent"])
    assert cancelled.status_code == 200 and cancelled.json()["state"] == "canceled"


def test_a_delegation_the_policy_denies_is_a_403_and_the_task_is_cancelled(
        ws: Any, me: Any, client: Any, headers: Any, team: None) -> None:
    ws.autonomy.add_rule("agent:researcher", "agents.delegate", "deny", resource="agent:stats", by=me)
    body = problem(client.post("/v1/agents/tasks", json={"text": "run the stats", "to": "stats"},
                               headers=headers["agent"]), 403)
    assert "agents.delegate" in body["hint"]
    assert [t.state for t in ws.agents.tasks()] == ["canceled"]
    assert audited(ws, "agents.delegate.denied", None)[-1].actor == "agent:researcher"


def test_a_viewer_token_may_not_submit_a_task(client: Any, headers: Any, team: None) -> None:
    problem(client.post("/v1/agents/tasks", json={"text": "x"}, headers=headers["viewer"]), 403)


def test_an_unknown_task_id_is_a_404_and_a_malformed_one_a_422(client: Any, headers: Any) -> None:
    problem(client.get("/v1/agents/tasks/0123456789abcdef", headers=headers["viewer"]), 404)
    problem(client.get("/v1/agents/tasks/../etc", headers=headers["viewer"]), 404)
    problem(client.get("/v1/agents/tasks/XYZ", headers=headers["viewer"]), 422)


def test_the_bus_messages_show_the_auction_with_each_senders_principal(
        me: Any, client: Any, headers: Any, team: None) -> None:
    client.post("/v1/agents/tasks", json={"text": "search the literature", "skills": ["literature"]},
                headers=headers["operator"])
    msgs = client.get("/v1/agents/messages", params={"stream": "contract-net"}, headers=headers["viewer"]).json()
    assert [(m["body"]["type"], m["sender"]) for m in msgs] == [("announce", me.key), ("bid", "agent:scout")]
    problem(client.get("/v1/agents/messages", headers=headers["agent"]), 403)
