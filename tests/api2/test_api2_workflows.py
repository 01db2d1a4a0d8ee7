"""/v1/workflows: runs as the token's principal; no Python call step ever comes over the network."""

from __future__ import annotations

from typing import Any

from .conftest import audited, problem, until

RECALL = {"name": "recall_once", "version": "1", "inputs": {"q": None},
          "steps": [{"id": "r", "kind": "tool", "tool": "memory.recall", "args": {"query": "${inputs.q}", "k": 1},
                     "output": "list"}]}


def finished(client: Any, headers: Any, run_id: str) -> Any:
    def check() -> Any:
        run = client.get(f"/v1/workflows/runs/{run_id}", headers=headers["viewer"]).json()
        return run if run["status"] not in ("running",) else None

    return until(check)


def test_an_operator_starts_an_inline_workflow_that_runs_as_its_principal(
        ws: Any, me: Any, client: Any, headers: Any) -> None:
    r = client.post("/v1/workflows/runs", json={"workflow": RECALL, "inputs": {"q": "oxygen"}},
                    headers=headers["operator"])
    assert r.status_code == 201, r.text
    assert r.json()["principal"] == me.key and r.json()["workflow"] == "recall_once"
    run = finished(client, headers, r.json()["id"])
    assert run["status"] == "completed", run
    assert run["steps"][0]["status"] == "completed"
    listed = client.get("/v1/workflows/runs", headers=headers["viewer"]).json()["items"]
    assert [x["id"] for x in listed] == [run["id"]]


def test_a_call_step_from_the_network_is_refused_and_nothing_runs(ws: Any, client: Any, headers: Any) -> None:
    evil = {"name": "evil", "steps": [{"id": "x", "kind": "call", "fn": "os:system", "args": {"command": "true"}}]}
    nested = {"name": "outer", "steps": [{"id": "sub", "kind": "workflow", "workflow": evil}]}
    for spec in (evil, nested):
        body = problem(client.post("/v1/workflows/runs", json={"workflow": spec}, headers=headers["admin"]), 403)
        assert "call step" in body["detail"]
        problem(client.post("/v1/workflows", json={"workflow": spec}, headers=headers["admin"]), 403)
    assert ws.workflows.runs() == [] and audited(ws, "workflow.run.start", None) == []


def test_a_workflow_is_named_not_read_from_a_path(client: Any, headers: Any) -> None:
    for name in ("../../etc/x.yaml", "steps:\n  - id: a", "incidents.yaml"):
        body = problem(client.post("/v1/workflows/runs", json={"workflow": name}, headers=headers["operator"]), 400)
        assert body["field"] == "workflow"
    problem(client.post("/v1/workflows/runs", json={"workflow": "no_such"}, headers=headers["operator"]), 404)


def test_templates_are_listed_with_their_inputs(client: Any, headers: Any) -> None:
    names = {t["name"]: t for t in client.get("/v1/workflows/templates", headers=headers["viewer"]).json()}
    assert "incident_triage" in names and "incident" in names["incident_triage"]["inputs"]


def test_an_admin_saves_a_workflow_that_an_operator_then_starts_by_name(
        ws: Any, me: Any, client: Any, headers: Any) -> None:
    r = client.post("/v1/workflows", json={"workflow": RECALL}, headers=headers["admin"])
    assert r.status_code == 201 and r.json()["name"] == "recall_once"
    assert [e.actor for e in audited(ws, "workflow.register")] == [me.key]
    started = client.post("/v1/workflows/runs", json={"workflow": "recall_once", "inputs": {"q": "x"}},
                          headers=headers["operator"])
    assert started.status_code == 201, started.text
    assert finished(client, headers, started.json()["id"])["status"] == "completed"


def test_an_agent_token_sees_and_controls_only_its_own_runs(ws: Any, agent: Any, client: Any, headers: Any) -> None:
    theirs = client.post("/v1/workflows/runs", json={"workflow": RECALL, "inputs": {"q": "x"}},
                         headers=headers["operator"]).json()
    mine = client.post("/v1/workflows/runs", json={"workflow": RECALL, "inputs": {"q": "y"}},
                       headers=headers["agent"])
    assert mine.status_code == 201, mine.text
    assert mine.json()["principal"] == agent.key
    finished(client, headers, theirs["id"])
    problem(client.get(f"/v1/workflows/runs/{theirs['id']}", headers=headers["agent"]), 404)
    problem(client.post(f"/v1/workflows/runs/{theirs['id']}/cancel", headers=headers["agent"]), 404)
    listed = client.get("/v1/workflows/runs", headers=headers["agent"]).json()["items"]
    assert [x["id"] for x in listed] == [mine.json()["id"]]


def test_cancelling_a_finished_run_is_refused(client: Any, headers: Any) -> None:
    run = client.post("/v1/workflows/runs", json={"workflow": RECALL, "inputs": {"q": "x"}},
                      headers=headers["operator"]).json()
    finished(client, headers, run["id"])
    assert "already" in problem(client.post(f"/v1/workflows/runs/{run['id']}/cancel", headers=headers["operator"]),
                                400)["detail"]


def test_an_inline_spec_too_deep_or_too_long_for_the_run_tables_is_a_400(ws: Any, client: Any, headers: Any) -> None:
    deep: dict[str, Any] = RECALL
    for i in range(40):
        deep = {"name": f"n{i}", "steps": [{"id": "sub", "kind": "workflow", "workflow": deep}]}
    long_name = {**RECALL, "name": "n" * 101}
    for spec in (deep, long_name):
        problem(client.post("/v1/workflows/runs", json={"workflow": spec, "inputs": {}}, headers=headers["operator"]),
                400)
    assert ws.workflows.runs() == []
