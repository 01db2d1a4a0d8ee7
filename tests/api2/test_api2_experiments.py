"""/v1/experiments: config versions (an admin's), experiments (an operator's), through the gate."""

from __future__ import annotations

from typing import Any

from .conftest import audited, problem


def test_an_admin_makes_a_new_config_version_current_and_a_viewer_sees_it(
        ws: Any, me: Any, client: Any, headers: Any) -> None:
    r = client.post("/v1/experiments/config/memory/versions", json={"changes": {"candidates": 77}, "note": "wider",
                                                                     "make_current": True}, headers=headers["admin"])
    assert r.status_code == 201, r.text
    v = r.json()
    assert v["current"] and v["values"]["candidates"] == 77 and v["created_by"] == me.key
    seen = client.get("/v1/experiments/config/memory", headers=headers["viewer"]).json()
    assert seen["current"] == v["id"] and [x["id"] for x in seen["versions"]][-1] == v["id"]
    assert ws.settings.memory.candidates == 77  # the workstation applied it
    assert [e.actor for e in audited(ws, "config.make_current")] == [me.key]


def test_an_operator_token_may_not_change_configuration(ws: Any, client: Any, headers: Any) -> None:
    problem(client.post("/v1/experiments/config/memory/versions", json={"changes": {"candidates": 5}},
                        headers=headers["operator"]), 403)
    assert len(ws.experiments.registry.versions("memory")) <= 1  # at most the defaults


def test_an_unknown_config_key_is_refused_with_the_schema_named(client: Any, headers: Any) -> None:
    body = problem(client.post("/v1/experiments/config/memory/versions", json={"changes": {"nope": 1}},
                               headers=headers["admin"]), 400)
    assert "nope" in body["detail"]


def test_rollback_makes_the_previous_version_current_again(ws: Any, client: Any, headers: Any) -> None:
    before = client.get("/v1/experiments/config/tools", headers=headers["viewer"]).json()["current"]
    client.post("/v1/experiments/config/tools/versions", json={"changes": {}, "make_current": True},
                headers=headers["admin"])
    r = client.post("/v1/experiments/config/tools/rollback", json={"reason": "back"}, headers=headers["admin"])
    assert r.status_code == 200, r.text
    assert r.json()["id"] == before and ws.experiments.registry.current("tools").id == before


def test_an_experiment_started_by_an_operator_cannot_decide_without_data(
        ws: Any, me: Any, client: Any, headers: Any) -> None:
    cand = ws.experiments.registry.create("memory", changes={"candidates": 99}, principal=me)
    r = client.post("/v1/experiments", json={"name": "wider", "candidate": cand.id, "metric": "recall@10"},
                    headers=headers["operator"])
    assert r.status_code == 201, r.text
    exp = r.json()
    assert exp["status"] == "running" and exp["candidate_version"] == cand.id
    assert client.get("/v1/experiments", headers=headers["viewer"]).json()["items"][0]["id"] == exp["id"]
    body = problem(client.post(f"/v1/experiments/{exp['id']}/decide", headers=headers["operator"]), 409)
    assert "too few units" in body["detail"] and body["hint"]
    assert ws.experiments.get(exp["id"])["status"] == "running"


def test_an_experiment_of_an_unknown_version_is_a_404(client: Any, headers: Any) -> None:
    problem(client.post("/v1/experiments", json={"name": "x", "candidate": "memory@999", "metric": "m"},
                        headers=headers["operator"]), 404)


def test_an_adoption_approved_in_the_approvals_queue_is_carried_out_by_sync(
        ws: Any, me: Any, agent: Any, client: Any, headers: Any) -> None:
    cand = ws.experiments.registry.create("memory", changes={"candidates": 123}, principal=me)
    exp = ws.experiments.start("wider", cand.id, metric="recall@10", principal=me)
    waiting = ws.experiments.adopt(exp["id"], principal=agent, reason="better", confidence=0.5)
    assert waiting["status"] == "pending_approval", waiting  # the gate asks a person for an agent
    r = client.post(f"/v1/approvals/{waiting['approval_id']}/approve", json={"reason": "go"},
                    headers=headers["operator"])
    assert r.status_code == 200, r.text
    assert client.post("/v1/experiments/sync", headers=headers["operator"]).json() == {"applied": 1}
    assert client.get(f"/v1/experiments/{exp['id']}", headers=headers["viewer"]).json()["status"] == "adopted"
    assert ws.experiments.registry.current("memory").id == cand.id
