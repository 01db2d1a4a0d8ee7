"""The REST API over the real services: tools through the gate, approvals, policy, audit, assistant runs
(with server-sent events), tokens; problem details and cursor pagination."""

from __future__ import annotations

import json
from typing import Any

import pytest


def sse(text: str) -> list[tuple[str, dict[str, Any]]]:
    out = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        out.append((fields["event"], json.loads(fields["data"])))
    return out


# ---------------------------------------------------------------- tools and the gate
def test_tool_call_runs_as_the_tokens_principal(ws: Any, me: Any, client: Any, headers: dict[str, Any]) -> None:
    client.post("/v1/memory", json={"text": "the pump runs at 40 Hz", "scope": "lab"}, headers=headers["operator"])
    r = client.post("/v1/tools/memory.recall/call", json={"args": {"query": "pump", "scope": "lab"}},
                    headers=headers["operator"])
    assert r.status_code == 200, r.text
    assert r.json()["result"][0]["text"] == "the pump runs at 40 Hz"
    rows = client.get("/v1/calls", params={"tool": "memory.recall"}, headers=headers["viewer"]).json()["items"]
    assert rows[0]["actor"] == me.key and rows[0]["outcome"] == "ok"


def test_tool_call_the_gate_asks_about_is_202_then_approved_and_resumed(ws: Any, agent: Any, client: Any,
                                                                        headers: dict[str, Any]) -> None:
    r = client.post("/v1/tools/memory.remember/call", json={"args": {"text": "agent wrote this"}},
                    headers=headers["agent"])
    assert r.status_code == 202 and r.headers["content-type"] == "application/problem+json"
    aid = r.json()["approval"]
    # the agent sees its own request, a viewer sees all; the agent cannot approve it
    assert client.get(f"/v1/approvals/{aid}", headers=headers["agent"]).json()["requester"] == agent.key
    assert [a["id"] for a in client.get("/v1/approvals", headers=headers["viewer"]).json()["items"]] == [aid]
    assert client.post(f"/v1/approvals/{aid}/approve", json={}, headers=headers["agent"]).status_code == 403
    assert client.post(f"/v1/approvals/{aid}/approve", json={}, headers=headers["viewer"]).status_code == 403
    # running it before a person decided: still 202
    assert client.post(f"/v1/approvals/{aid}/resume", headers=headers["agent"]).status_code == 202
    ok = client.post(f"/v1/approvals/{aid}/approve", json={"reason": "fine"}, headers=headers["operator"])
    assert ok.status_code == 200 and ok.json()["approval"]["status"] == "approved"
    again = client.post(f"/v1/approvals/{aid}/approve", json={}, headers=headers["operator"])
    assert again.status_code == 409 and again.json()["status"] == 409
    done = client.post(f"/v1/approvals/{aid}/resume", headers=headers["agent"])
    assert done.status_code == 200, done.text
    got = client.get(f"/v1/memory/{done.json()['result']}", headers=headers["agent"]).json()
    assert got["text"] == "agent wrote this" and got["scope"] == agent.id
    assert client.post(f"/v1/approvals/{aid}/resume", headers=headers["agent"]).status_code == 403  # once


def test_tool_call_the_policy_denies_is_403(ws: Any, me: Any, client: Any, headers: dict[str, Any]) -> None:
    rule = client.post("/v1/policy/rules", json={"subject": me.key, "tool": "memory.recall", "effect": "deny"},
                       headers=headers["admin"])
    assert rule.status_code == 201, rule.text
    r = client.post("/v1/tools/memory.recall/call", json={"args": {"query": "x"}}, headers=headers["operator"])
    assert r.status_code == 403 and r.json()["title"] == "PermissionDenied" and r.json()["hint"] is not None
    assert client.delete(f"/v1/policy/rules/{rule.json()['id']}", headers=headers["admin"]).status_code == 200
    assert client.post("/v1/tools/memory.recall/call", json={"args": {"query": "x"}},
                       headers=headers["operator"]).status_code == 200


def test_attack_operator_changes_the_policy(client: Any, headers: dict[str, Any]) -> None:
    for role in ("operator", "viewer", "agent"):
        r = client.post("/v1/policy/rules", json={"subject": "agent:*", "tool": "*", "effect": "allow"},
                        headers=headers[role])
        assert r.status_code == 403, (role, r.text)
        assert client.post("/v1/policy/pause", json={}, headers=headers[role]).status_code == 403
    assert client.get("/v1/policy", headers=headers["admin"]).json()["rules"] == []


def test_policy_changes_are_audited_with_the_admins_principal(ws: Any, me: Any, client: Any,
                                                              headers: dict[str, Any]) -> None:
    assert client.post("/v1/policy/pause", json={"reason": "maintenance"}, headers=headers["admin"]).status_code == 200
    assert client.get("/v1/policy", headers=headers["viewer"]).json()["paused"]["reason"] == "maintenance"
    assert client.post("/v1/policy/resume", headers=headers["admin"]).status_code == 200
    kinds = [(e.kind, e.actor) for e in ws.audit.entries()]
    assert ("autonomy.paused", me.key) in kinds and ("autonomy.resumed", me.key) in kinds
    r = client.get("/v1/policy/explain", params={"actor": "agent:researcher", "tool": "memory.remember",
                                                  "side_effect": "write"}, headers=headers["viewer"])
    assert r.status_code == 200 and r.json()["effect"] == "ask"


def test_unknown_tool_is_404_problem_with_hint(client: Any, headers: dict[str, Any]) -> None:
    r = client.post("/v1/tools/no.such/call", json={"args": {}}, headers=headers["operator"])
    assert r.status_code == 404
    body = r.json()
    assert set(body) >= {"type", "title", "status", "detail", "hint"} and body["hint"]
    assert body["type"].startswith("urn:emergent:problem:")


def test_tools_list_and_show(client: Any, headers: dict[str, Any]) -> None:
    r = client.get("/v1/tools", params={"limit": 2}, headers=headers["viewer"])
    assert r.status_code == 200 and len(r.json()["items"]) == 2 and r.json()["next_cursor"]
    names = []
    cursor = None
    while True:
        page = client.get("/v1/tools", params={"limit": 3, **({"cursor": cursor} if cursor else {})},
                          headers=headers["viewer"]).json()
        names += [t["name"] for t in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = client.get("/v1/tools", params={"limit": 500}, headers=headers["viewer"]).json()
    assert names == [t["name"] for t in everything["items"]] and everything["next_cursor"] is None
    tool = client.get("/v1/tools/memory.recall", headers=headers["agent"]).json()
    assert tool["args_schema"]["properties"]["query"] and tool["versions"]


# ---------------------------------------------------------------- problems and pagination
@pytest.mark.parametrize("cursor", ["!!!", "e30", "bm90IGpzb24", "eyJvZmZzZXQiOiAtMX0", "x" * 600])
def test_attack_forged_cursor_is_a_400_or_422_problem(client: Any, headers: dict[str, Any], cursor: str) -> None:
    r = client.get("/v1/audit", params={"cursor": cursor}, headers=headers["viewer"])
    assert r.status_code in (200, 400, 422) and r.headers["content-type"].startswith("application/")
    if r.status_code != 200:
        assert r.headers["content-type"] == "application/problem+json" and r.json()["hint"]


def test_body_validation_is_a_422_problem_naming_the_field(client: Any, headers: dict[str, Any]) -> None:
    r = client.post("/v1/memory", json={"text": "x", "importance": 7}, headers=headers["operator"])
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["errors"][0]["loc"] == ["body", "importance"] and "importance" in body["detail"] and body["hint"]


def test_unknown_route_and_method_are_problems(client: Any, headers: dict[str, Any]) -> None:
    r = client.get("/v1/nothing", headers=headers["viewer"])
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    r = client.put("/v1/memory/recall", headers=headers["viewer"])
    assert r.status_code == 405 and r.json()["status"] == 405


def test_attack_oversized_body_is_413(ws: Any, client: Any, headers: dict[str, Any]) -> None:
    big = "x" * (ws.settings.api.max_body_bytes + 10)
    r = client.post("/v1/memory", content=json.dumps({"text": big}),
                    headers={**headers["operator"], "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["title"] == "PayloadTooLarge"


def test_audit_pages_oldest_first_and_verifies(ws: Any, me: Any, client: Any, headers: dict[str, Any]) -> None:
    for i in range(5):
        ws.audit.append("test.entry", me, {"i": i})
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, "kind": "test.entry"}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/audit", params=params, headers=headers["viewer"]).json()
        seen += [e["data"]["i"] for e in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [0, 1, 2, 3, 4]
    v = client.get("/v1/audit/verify", headers=headers["viewer"]).json()
    assert v["ok"] is True and v["entries"] >= 5
    assert client.get("/v1/audit", headers=headers["agent"]).status_code == 403


# ---------------------------------------------------------------- tokens over HTTP
def test_admin_creates_an_agent_token_that_works_once_shown(ws: Any, me: Any, agent: Any, client: Any,
                                                            headers: dict[str, Any]) -> None:
    r = client.post("/v1/tokens", json={"principal": agent.key, "role": "agent", "ttl_s": 600, "label": "ci"},
                    headers=headers["admin"])
    assert r.status_code == 201, r.text
    secret, tid = r.json()["secret"], r.json()["token"]["id"]
    assert r.json()["token"]["created_by"] == me.key
    listed = client.get("/v1/tokens", headers=headers["admin"]).text
    assert tid in listed and secret not in listed
    h = {"Authorization": f"Bearer {secret}"}
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=h).status_code == 200
    assert client.delete(f"/v1/tokens/{tid}", headers=headers["admin"]).status_code == 200
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=h).status_code == 401


def test_attack_admin_mints_a_token_in_another_persons_name(ws: Any, client: Any, headers: dict[str, Any]) -> None:
    r = client.post("/v1/tokens", json={"principal": "human:someone_else", "role": "admin"}, headers=headers["admin"])
    assert r.status_code == 403
    assert client.post("/v1/tokens", json={"role": "viewer"}, headers=headers["operator"]).status_code == 403


def test_attack_agent_token_escalates_through_tokens_or_approvals(client: Any, headers: dict[str, Any]) -> None:
    r = client.post("/v1/tokens", json={"role": "admin"}, headers=headers["agent"])
    assert r.status_code == 403
    assert client.get("/v1/tokens", headers=headers["agent"]).status_code == 403


# ---------------------------------------------------------------- the assistant
def test_offline_assistant_run_streams_its_steps_as_server_sent_events(ws: Any, client: Any,
                                                                       headers: dict[str, Any]) -> None:
    ws.memory.ingest(["The ring buffer overflowed because it holds only 4096 samples."], scope="assistant")
    with client.stream("POST", "/v1/assistant/runs", json={"question": "Why did the ring buffer overflow?"},
                       headers={**headers["operator"], "Accept": "text/event-stream"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        events = sse(r.read().decode())
    kinds = [k for k, _ in events]
    assert kinds[:2] == ["started", "recall"] and kinds[-2:] == ["stopped", "result"]
    result = events[-1][1]
    assert result["status"] == "completed" and "4096" in result["answer"]
    assert all(d["run_id"] == result["run_id"] for k, d in events[:-1])
    got = client.get(f"/v1/assistant/runs/{result['run_id']}", headers=headers["viewer"]).json()
    assert got["answer"] == result["answer"]


def test_run_paused_on_approval_resumes_after_approval_through_the_api(ws: Any, me: Any, client: Any,
                                                                       headers: dict[str, Any]) -> None:
    r = client.post("/v1/assistant/runs", json={"question": "/remember The grant report is due May 12."},
                    headers=headers["operator"])
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["status"] == "waiting_approval" and run["asked_by"] == me.key
    aid = run["pending_approval"]
    # resuming before a decision changes nothing
    assert client.post(f"/v1/assistant/runs/{run['run_id']}/resume", json={},
                       headers=headers["operator"]).json()["status"] == "waiting_approval"
    decided = client.post(f"/v1/approvals/{aid}/approve", json={"reason": "ok"}, headers=headers["operator"]).json()
    assert decided["approval"]["decided_by"] == me.key
    assert decided["assistant_run"]["status"] == "completed"
    again = client.get(f"/v1/assistant/runs/{run['run_id']}", headers=headers["viewer"]).json()
    assert again["status"] == "completed"
    hits = client.get("/v1/memory/recall", params={"query": "grant report due", "scope": "assistant"},
                      headers=headers["viewer"]).json()["items"]
    assert "May 12" in hits[0]["text"]


def test_attack_agent_token_reads_runs_it_did_not_ask(ws: Any, client: Any, headers: dict[str, Any]) -> None:
    run = client.post("/v1/assistant/runs", json={"question": "/help"}, headers=headers["operator"]).json()
    assert client.get(f"/v1/assistant/runs/{run['run_id']}", headers=headers["agent"]).status_code == 404
    assert client.get("/v1/assistant/runs", headers=headers["agent"]).json()["items"] == []
    assert client.post(f"/v1/assistant/runs/{run['run_id']}/cancel", headers=headers["agent"]).status_code == 404


def test_attack_agent_token_creates_an_assistant(client: Any, headers: dict[str, Any]) -> None:
    r = client.post("/v1/assistant/runs", json={"question": "hi", "assistant": "brand_new"}, headers=headers["agent"])
    assert r.status_code == 404 and r.json()["hint"]


def test_every_mutation_is_audited_with_the_tokens_principal(ws: Any, me: Any, agent: Any, client: Any,
                                                             headers: dict[str, Any]) -> None:
    before = ws.audit.entries()[-1].seq if ws.audit.entries() else 0
    admin, op = headers["admin"], headers["operator"]
    mutations = [
        ("POST", "/v1/memory", {"text": "a note", "scope": "lab"}, op, "api.memory.remember"),
        ("POST", "/v1/tools/memory.remember/call", {"args": {"text": "via tool", "scope": "lab"}}, op, "tool."),
        ("POST", "/v1/policy/rules", {"subject": "agent:*", "tool": "web.*", "effect": "deny"}, admin,
         "policy.rules_added"),
        ("POST", "/v1/policy/suspensions/agent:researcher", {"reason": "audit test"}, admin, "agent.suspended"),
        ("DELETE", "/v1/policy/suspensions/agent:researcher", None, admin, "agent.unsuspended"),
        ("POST", "/v1/tokens", {"role": "viewer", "ttl_s": 60}, admin, "api.token_created"),
    ]
    for method, path, body, h, kind in mutations:
        r = client.request(method, path, json=body, headers=h)
        assert r.status_code in (200, 201), (path, r.text)
        new = [e for e in ws.audit.entries(start=before + 1)]
        assert any(e.kind.startswith(kind) and e.actor == me.key for e in new), (path, [e.kind for e in new])
        assert all(e.actor == me.key for e in new), (path, [(e.kind, e.actor) for e in new])
        before = new[-1].seq


def test_streamed_run_that_needs_approval_ends_waiting_with_the_approval_event(ws: Any, client: Any,
                                                                              headers: dict[str, Any]) -> None:
    with client.stream("POST", "/v1/assistant/runs", json={"question": "/remember Pumps need oil.", "stream": True},
                       headers=headers["operator"]) as r:
        events = sse(r.read().decode())
    kinds = [k for k, _ in events]
    assert "approval" in kinds and kinds[-1] == "result"
    approval = dict(events)["approval"]["approval"]
    result = events[-1][1]
    assert result["status"] == "waiting_approval" and result["pending_approval"] == approval
    # resumed as a stream once approved through the API: the run completes
    decided = client.post(f"/v1/approvals/{approval}/approve", json={}, headers=headers["operator"]).json()
    assert decided["assistant_run"]["status"] == "completed"


def test_stream_of_a_run_that_fails_to_start_ends_with_an_error_event(client: Any, headers: dict[str, Any]) -> None:
    with client.stream("POST", "/v1/assistant/runs", json={"question": "/nosuchcommand", "stream": True},
                       headers=headers["operator"]) as r:
        events = sse(r.read().decode())
    assert events[-1][0] == "error" and events[-1][1]["status"] == 400 and events[-1][1]["hint"]


def test_attack_tool_call_smuggling_a_principal_argument_is_a_400_not_a_500(client: Any,
                                                                            headers: dict[str, Any]) -> None:
    r = client.post("/v1/tools/memory.recall/call", json={"args": {"query": "x", "principal": "human:mallory"}},
                    headers=headers["operator"])
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json" and r.json()["hint"]


def test_attack_oversized_body_streamed_without_a_length_is_413(ws: Any, client: Any, headers: dict[str, Any]) -> None:
    limit = ws.settings.api.max_body_bytes

    def chunks() -> Any:
        yield b'{"text": "'
        for _ in range(limit // 1024 + 2):
            yield b"a" * 1024
        yield b'"}'

    r = client.post("/v1/memory", content=chunks(), headers={**headers["operator"], "content-type": "application/json"})
    assert r.status_code == 413 and r.json()["title"] == "PayloadTooLarge" and r.json()["hint"]


def test_attack_agent_token_reads_another_scope_through_an_assistant(ws: Any, me: Any, client: Any,
                                                                     headers: dict[str, Any]) -> None:
    ws.memory.ingest(["the vault passphrase is tangerine"], scope="assistant")
    ws.assistant()  # the person's assistant exists
    for stream in (False, True):
        r = client.post("/v1/assistant/runs", json={"question": "What is the vault passphrase?",
                                                     "assistant": "assistant", "stream": stream},
                        headers=headers["agent"])
        assert r.status_code == 404 and "tangerine" not in r.text
    own = client.post("/v1/assistant/runs", json={"question": "What is the vault passphrase?"}, headers=headers["agent"])
    assert own.status_code == 200 and own.json()["assistant"] == "researcher" and "tangerine" not in own.text


@pytest.mark.parametrize("method, url, body", [
    ("GET", "/v1/approvals/ab%00cd", None), ("GET", "/v1/assistant/runs/run%00x", None),
    ("DELETE", "/v1/tokens/x%00y", None), ("GET", "/v1/audit?kind=a%00b", None),
    ("POST", "/v1/policy/rules", {"subject": "agent:*", "tool": "x\u0000", "effect": "deny"}),
])
def test_attack_nul_characters_are_a_400_everywhere(client: Any, headers: dict[str, Any], method: str, url: str,
                                                    body: Any) -> None:
    r = client.request(method, url, json=body, headers=headers["admin"])
    assert r.status_code == 400 and r.headers["content-type"] == "application/problem+json", r.text
