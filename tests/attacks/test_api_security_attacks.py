"""Held-out attacks on issue 16: the REST API's governance, erasure, encryption at rest and faults.

Each test is named after the attack. A held attack passes; a defect found is a strict xfail whose
reason names it (the owners read /tmp/attack16.md). Real parts only: a real workstation (SQLite,
LanceDB in a tmp dir), the real app through TestClient, the real redis-server of the session.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

SECRET = "QX9-walrus-okapi-passphrase-5521"
NEEDLES = (b"walrus-okapi", "walrus-okapi".encode("utf-16-le"))


# ---------------------------------------------------------------- helpers
def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def _open(home: Path) -> Any:
    from emergent import Workstation

    return Workstation.open(home, embedder="hashing")


def _app(ws: Any, **api: Any) -> Any:
    from emergent.api import create_app

    cfg = ws.settings.api.model_copy(update=api) if api else None
    return create_app(ws, config=cfg) if cfg is not None else create_app(ws)


@pytest.fixture
def client(ws: Any) -> Iterator[TestClient]:
    with TestClient(_app(ws), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def secrets_by_role(ws: Any, me: Any, agent: Any) -> dict[str, str]:
    out = {role: ws.tokens.create(me, role, by=me, ttl_s=3600)[1] for role in ("admin", "operator", "viewer")}
    out["agent"] = ws.tokens.create(agent, "agent", by=me, ttl_s=3600)[1]
    return out


@pytest.fixture
def h(secrets_by_role: dict[str, str]) -> dict[str, dict[str, str]]:
    return {role: bearer(s) for role, s in secrets_by_role.items()}


def _holding(root: Path, *, skip: tuple[str, ...] = ()) -> list[str]:
    found = []
    if not root.exists():
        return found
    for path in root.rglob("*"):
        if not path.is_file() or any(part in skip for part in path.relative_to(root).parts):
            continue
        try:
            data = path.read_bytes()
        except OSError:
            continue
        if any(n in data for n in NEEDLES):
            found.append(str(path.relative_to(root)))
    return sorted(found)


def _archive_members_holding(archive: Path) -> list[str]:
    """Members of a backup (a tar stream compressed with zstd) whose bytes hold the secret."""
    import io
    import tarfile

    import zstandard

    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(archive.read_bytes())).read()
    found = []
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar.getmembers():
            f = tar.extractfile(member) if member.isfile() else None
            if f is not None and any(n in f.read() for n in NEEDLES):
                found.append(member.name)
    assert found or raw  # the archive was read
    return found


def _agent_remembers_through_the_api(ws: Any, client: TestClient, h: dict[str, dict[str, str]], text: str) -> str:
    """An agent token writes ``text``; the default policy asks a person: approved, then resumed."""
    r = client.post("/v1/memory", json={"text": text}, headers=h["agent"])
    if r.status_code == 202:
        aid = r.json()["approval"]
        assert client.post(f"/v1/approvals/{aid}/approve", json={"reason": "ok"},
                           headers=h["operator"]).status_code == 200
        done = client.post(f"/v1/approvals/{aid}/resume", headers=h["agent"])
        assert done.status_code == 200, done.text
        return str(done.json()["result"])
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


# ================================================================ governance: scopes and roles
def test_attack_agent_token_reads_a_sibling_agent_whose_name_extends_its_own(ws: Any, me: Any, client: TestClient,
                                                                            h: dict[str, Any]) -> None:
    ws.principals.agent("researcher2", created_by=me)
    other = ws.memory.remember(f"sibling note {SECRET}", scope="researcher2", tier="ltm").id
    other_user = ws.memory.remember(f"sibling user note {SECRET}", scope="researcher2/alice").id
    for scope in (None, "researcher"):
        params = {"query": f"sibling note {SECRET}", "k": 50} | ({"scope": scope} if scope else {})
        r = client.get("/v1/memory/recall", params=params, headers=h["agent"])
        assert r.status_code == 200 and all(not i["scope"].startswith("researcher2") for i in r.json()["items"])
    for mid in (other, other_user):
        assert client.get(f"/v1/memory/{mid}", headers=h["agent"]).status_code == 404
        r = client.delete(f"/v1/memory/{mid}", headers=h["agent"])
        assert r.status_code in (202, 404) or r.json() == {"forgotten": 0}
    for scope in ("researcher2", "researcher2/alice", "researcher/../researcher2", "researcher\x00"):
        r = client.get("/v1/memory/recall", params={"query": "sibling", "scope": scope}, headers=h["agent"])
        assert r.status_code in (400, 403, 422) or all(
            i["scope"].split("/")[0] == "researcher" for i in r.json()["items"])
    assert ws.memory.get(other, scope="researcher2").text.endswith(SECRET)


def _test_attack_memory_id_injection_reads_or_forgets_other_rows_case(ws: Any, client: TestClient, h: dict[str, Any],
                                                                 evil_id: str) -> None:
    kept = [ws.memory.remember(f"row {i} {SECRET}", scope="ops", tier="ltm").id for i in range(3)]
    kept.append(ws.memory.remember(f"stm row {SECRET}", scope="ops").id)
    for role in ("agent", "viewer"):
        r = client.get(f"/v1/memory/{evil_id}", params={} if role == "agent" else {"scope": "ops"}, headers=h[role])
        assert r.status_code in (400, 404, 422), (role, r.status_code, r.text[:300])
        assert SECRET not in r.text
    r = client.delete(f"/v1/memory/{evil_id}", params={"scope": "ops"}, headers=h["operator"])
    assert r.status_code in (400, 404, 422) or r.json() == {"forgotten": 0}, r.text
    for mid in kept:
        assert ws.memory.get(mid, scope="ops").text.endswith(SECRET)


def test_attack_memory_id_injection_reads_or_forgets_other_rows(
        ws: Any, client: TestClient, h: dict[str, Any]) -> None:
    for evil_id in ["x' OR '1'='1", "x' OR id != '", "%", "*", "' OR scope LIKE '%",
                                     "../../researcher2", "x\") OR (1=1"]:
        _test_attack_memory_id_injection_reads_or_forgets_other_rows_case(ws, client, h, evil_id)


def _mutating_routes(app: Any) -> list[tuple[str, str]]:
    """Every write route of every router the app includes (read from the routers, not the description)."""
    import importlib

    from emergent.api.routers import ROUTERS

    out = []
    for name in ROUTERS:
        for route in importlib.import_module(f"emergent.api.routers.{name}").router.routes:
            for method in sorted(getattr(route, "methods", None) or ()):
                if method in ("POST", "PUT", "PATCH", "DELETE"):
                    out.append((method, "/v1" + route.path))
    return out


def test_attack_viewer_token_mutates_through_any_route(
        ws: Any, client: TestClient, h: dict[str, Any]) -> None:
    import re

    routes = _mutating_routes(client.app)
    assert len(routes) > 30  # every area's writes are here
    before = len(ws.audit.entries())
    let_through = []
    for method, path in routes:
        url = re.sub(r"\{[^}]+\}", "x", path)
        r = client.request(method, url, json={}, headers=h["viewer"])
        if r.status_code != 403:
            let_through.append((method, path, r.status_code))
    assert let_through == []
    assert len(ws.audit.entries()) == before  # nothing happened, nothing recorded as done


def test_attack_agent_token_reaches_admin_or_operator_routes(
        ws: Any, client: TestClient, h: dict[str, Any]) -> None:
    for method, url, body in (("POST", "/v1/tokens", {"role": "admin"}), ("GET", "/v1/tokens", None),
                              ("POST", "/v1/policy/rules", {"subject": "agent:*", "tool": "*", "effect": "allow"}),
                              ("POST", "/v1/policy/resume", None), ("DELETE", "/v1/policy/suspensions/agent:researcher",
                                                                    None),
                              ("POST", "/v1/policy/overrides", {}), ("POST", "/v1/tools/memory.remember/enable", None),
                              ("GET", "/v1/audit", None), ("POST", "/v1/graph/nodes", {}),
                              ("POST", "/v1/jobs", {})):
        r = client.request(method, url, json=body, headers=h["agent"])
        assert r.status_code == 403, (method, url, r.status_code, r.text[:200])


def _test_attack_admin_mints_a_token_for_another_person_or_stronger_than_its_principal_case(
        ws: Any, client: TestClient, h: dict[str, Any], body: dict[str, Any]) -> None:
    before = len(ws.tokens.list())
    r = client.post("/v1/tokens", json=body, headers=h["admin"])
    assert r.status_code in (400, 403, 404, 422), r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    assert len(ws.tokens.list()) == before


def test_attack_admin_mints_a_token_for_another_person_or_stronger_than_its_principal(
        ws: Any, client: TestClient, h: dict[str, Any]) -> None:
    for body in [
    {"principal": "human:someone-else", "role": "viewer"},
    {"principal": "HUMAN:someone-else", "role": "viewer"},
    {"principal": " human:someone-else", "role": "viewer"},
    {"principal": "agent:researcher", "role": "admin"},
    {"principal": "agent:researcher", "role": "operator"},
    {"principal": "service:scheduler", "role": "admin"},
    {"principal": "agent:nobody-made-me", "role": "agent"},
    {"role": "admin", "ttl_s": 10 * 365 * 86400.0},
    {"role": "root"},
]:
        _test_attack_admin_mints_a_token_for_another_person_or_stronger_than_its_principal_case(ws, client, h, body)


def test_attack_operator_viewer_agent_mint_any_token(client: TestClient, h: dict[str, Any]) -> None:
    for role in ("operator", "viewer", "agent"):
        for want in ("viewer", "agent", "admin"):
            r = client.post("/v1/tokens", json={"role": want, "principal": "agent:researcher"}, headers=h[role])
            assert r.status_code == 403, (role, want, r.text)


def test_attack_revoked_token_is_refused_at_once_by_another_instance(home: Path, ws: Any, me: Any,
                                                                     h: dict[str, Any],
                                                                     secrets_by_role: dict[str, str]) -> None:
    other = _open(home)  # a second instance on the same database
    try:
        with TestClient(_app(ws), raise_server_exceptions=False) as a, \
                TestClient(_app(other), raise_server_exceptions=False) as b:
            assert b.get("/v1/memory/recall", params={"query": "x"}, headers=h["viewer"]).status_code == 200
            tid = next(t.id for t in ws.tokens.list() if t.role == "viewer")
            assert a.delete(f"/v1/tokens/{tid}", headers=h["admin"]).status_code == 200
            for c in (a, b):
                r = c.get("/v1/memory/recall", params={"query": "x"}, headers=h["viewer"])
                assert r.status_code == 401 and secrets_by_role["viewer"] not in r.text
    finally:
        other.close()


def test_attack_token_acts_after_its_expiry_on_a_clock_that_moved(
        ws: Any, me: Any, client: TestClient) -> None:
    import time

    info, secret = ws.tokens.create(me, "viewer", by=me, ttl_s=1.0)
    assert client.get("/v1/policy", headers=bearer(secret)).status_code == 200
    time.sleep(1.05)
    assert client.get("/v1/policy", headers=bearer(secret)).status_code == 401


def _delete_principal(home: Path, key: str) -> None:
    """Another process removes a principal from the directory (the row goes)."""

    from emergent.autonomy.tables import principals as table

    other = _open(home)
    try:
        with other.sql.begin() as conn:
            assert conn.execute(table.delete().where(table.c.key == key)).rowcount == 1
    finally:
        other.close()


def test_attack_token_of_a_removed_principal_in_a_fresh_process(home: Path, ws: Any, agent: Any,
                                                                h: dict[str, Any]) -> None:
    _delete_principal(home, agent.key)
    fresh = _open(home)
    try:
        with TestClient(_app(fresh), raise_server_exceptions=False) as c:
            assert c.get("/v1/memory/recall", params={"query": "x"}, headers=h["agent"]).status_code == 401
    finally:
        fresh.close()


def test_attack_token_of_a_removed_principal_in_the_process_that_knew_it(home: Path, ws: Any, agent: Any,
                                                                         client: TestClient,
                                                                         h: dict[str, Any]) -> None:
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=h["agent"]).status_code == 200
    _delete_principal(home, agent.key)
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=h["agent"]).status_code == 401


def test_attack_operator_approves_its_own_request(
        ws: Any, me: Any, client: TestClient, h: dict[str, Any]) -> None:
    rule = client.post("/v1/policy/rules", json={"subject": me.key, "tool": "memory.remember", "effect": "ask"},
                       headers=h["admin"])
    assert rule.status_code == 201, rule.text
    r = client.post("/v1/tools/memory.remember/call", json={"args": {"text": "self approved", "scope": "ops"}},
                    headers=h["operator"])
    assert r.status_code == 202, r.text
    aid = r.json()["approval"]
    for role in ("operator", "admin"):  # the same person behind another token
        mine = client.post(f"/v1/approvals/{aid}/approve", json={"reason": "me"}, headers=h[role])
        assert mine.status_code == 403, (role, mine.status_code, mine.text)
    assert ws.autonomy.approvals.get(aid).status == "pending"


def test_attack_agent_approves_or_sees_another_agents_request(ws: Any, me: Any, client: TestClient,
                                                              h: dict[str, Any]) -> None:
    other = ws.principals.agent("intruder", created_by=me)
    other_h = bearer(ws.tokens.create(other, "agent", by=me, ttl_s=600)[1])
    r = client.post("/v1/memory", json={"text": f"awaiting {SECRET}"}, headers=h["agent"])
    assert r.status_code == 202
    aid = r.json()["approval"]
    assert all(a["id"] != aid for a in client.get("/v1/approvals", headers=other_h).json()["items"])
    for method, url in (("GET", f"/v1/approvals/{aid}"), ("POST", f"/v1/approvals/{aid}/approve"),
                        ("POST", f"/v1/approvals/{aid}/reject"), ("POST", f"/v1/approvals/{aid}/resume")):
        r2 = client.request(method, url, json={"reason": "x"}, headers=other_h)
        assert r2.status_code in (403, 404) and SECRET not in r2.text
    assert client.post(f"/v1/approvals/{aid}/approve", json={}, headers=h["agent"]).status_code == 403
    assert ws.autonomy.approvals.get(aid).status == "pending"


def test_attack_body_and_headers_name_another_principal(ws: Any, me: Any, client: TestClient,
                                                        h: dict[str, Any]) -> None:
    spoof = {"X-Principal": "human:mallory", "X-Emergent-Principal": "human:mallory", "X-Forwarded-User": "mallory",
             "X-Remote-User": "mallory", "X-User": "human:mallory"}
    body = {"text": "who wrote me", "scope": "ops", "principal": "human:mallory", "by": "human:mallory",
            "actor": "human:mallory", "user": "mallory"}
    r = client.post("/v1/memory", json=body, headers=h["operator"] | spoof)
    assert r.status_code == 201
    r2 = client.post("/v1/policy/pause", json={"reason": "x", "by": "human:mallory", "principal": "human:mallory"},
                     headers=h["admin"] | spoof)
    assert r2.status_code == 200
    recent = ws.audit.entries()[-6:]
    assert recent and all(e.actor == me.key for e in recent if e.kind.startswith(("api.", "policy", "autonomy")))
    assert not any(e.actor == "human:mallory" for e in ws.audit.entries())
    # an agent's token names a person in the tool call's arguments: still the agent
    r3 = client.post("/v1/tools/memory.recall/call", json={"args": {"query": "x"}}, headers=h["agent"] | spoof)
    assert r3.status_code in (200, 202)
    assert not any(e.actor == "human:mallory" for e in ws.audit.entries())


def test_attack_tool_call_with_a_smuggled_argument_is_a_400_not_a_500(
        client: TestClient, h: dict[str, Any]) -> None:
    for role in ("agent", "operator"):
        r = client.post("/v1/tools/memory.recall/call", json={"args": {"query": "x", "principal": "human:mallory"}},
                        headers=h[role])
        assert r.status_code == 400 and r.json()["title"] == "ValidationError", (role, r.status_code)


def test_attack_openapi_description_is_served(client: TestClient) -> None:
    r = client.get("/openapi.json")
    assert r.status_code == 200 and "/v1/memory" in r.json()["paths"]


# ================================================================ rate limits and request shapes
def test_attack_forwarded_headers_and_scheme_spelling_reset_the_rate_limit(ws: Any, me: Any) -> None:
    secret = ws.tokens.create(me, "viewer", by=me, ttl_s=600)[1]
    with TestClient(_app(ws, rate_limit="3/minute"), raise_server_exceptions=False) as c:
        for _ in range(3):
            assert c.get("/v1/policy", headers=bearer(secret)).status_code == 200
        tricks = [{"X-Forwarded-For": "10.0.0.9"}, {"X-Real-IP": "10.1.1.1"}, {"Forwarded": "for=1.2.3.4"},
                  {"X-Forwarded-For": "127.0.0.1, 10.0.0.1"}, {"X-Request-ID": "fresh-id"}]
        for extra in tricks:
            r = c.get("/v1/policy", headers=bearer(secret) | extra)
            assert r.status_code == 429 and r.headers.get("retry-after"), (extra, r.status_code)
        for auth in (f"bearer {secret}", f"BEARER {secret}", f"Bearer  {secret}"):
            r = c.get("/v1/policy", headers={"Authorization": auth})
            assert r.status_code in (401, 429), (auth, r.status_code)
        assert secret not in r.text


def test_attack_oversized_body_with_a_declared_length_is_413(ws: Any, me: Any) -> None:
    secret = ws.tokens.create(me, "operator", by=me, ttl_s=600)[1]
    with TestClient(_app(ws, max_body_bytes=4096), raise_server_exceptions=False) as c:
        r = c.post("/v1/memory", content=b'{"text": "' + b"a" * 20000 + b'"}',
                   headers=bearer(secret) | {"Content-Type": "application/json"})
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["hint"]


def test_attack_oversized_body_streamed_without_a_declared_length_is_413(ws: Any, me: Any) -> None:
    secret = ws.tokens.create(me, "operator", by=me, ttl_s=600)[1]
    with TestClient(_app(ws, max_body_bytes=4096), raise_server_exceptions=False) as c:
        def chunks() -> Iterator[bytes]:
            yield b'{"text": "'
            for _ in range(100):
                yield b"a" * 1024
            yield b'"}'

        r = c.post("/v1/memory", content=chunks(), headers=bearer(secret) | {"Content-Type": "application/json"})
        assert r.status_code in (400, 413)  # refused either way: nothing written
        assert ws.memory.recall("aaaa", scope="root", k=5) == []
        assert r.status_code == 413 and r.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize("depth", [50_000, 2_000])
def test_attack_deeply_nested_json_is_a_problem_not_a_500(ws: Any, client: TestClient, h: dict[str, Any],
                                                          depth: int) -> None:
    body = b'{"text": "deep", "scope": "ops", "meta": {"a": ' + b"[" * depth + b"]" * depth + b"}}"
    r = client.post("/v1/memory", content=body, headers=h["operator"] | {"Content-Type": "application/json"})
    assert r.status_code in (201, 400, 413, 422), (r.status_code, r.text[:300])
    assert r.status_code == 201 or r.headers["content-type"].startswith("application/problem+json")
    if r.status_code == 201:  # accepted: it reads back without a 500
        got = client.get(f"/v1/memory/{r.json()['id']}", params={"scope": "ops"}, headers=h["viewer"])
        assert got.status_code == 200
    r2 = client.post("/v1/tools/memory.recall/call", content=b'{"args": ' + b"[" * depth + b"]" * depth + b"}",
                     headers=h["operator"] | {"Content-Type": "application/json"})
    assert r2.status_code in (400, 413, 422), (r2.status_code, r2.text[:300])


def _test_attack_path_parameters_with_traversal_nul_or_huge_values_case(client: TestClient, h: dict[str, Any],
                                                                  path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        r = client.request(method, path, json={}, headers=h["admin"])
        assert r.status_code < 500, (method, path, r.status_code, r.text[:300])
        assert "root:x:0:0" not in r.text


def test_attack_path_parameters_with_traversal_nul_or_huge_values(
        client: TestClient, h: dict[str, Any]) -> None:
    for path in ["/v1/memory/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/v1/tokens/..%2F..%2Fx",
                                  "/v1/jobs/..%2F..%2F..%2Fetc%2Fpasswd", "/v1/tools/%00/call",
                                  "/v1/policy/suspensions/human:%00root", "/v1/memory/" + "a" * 5000]:
        _test_attack_path_parameters_with_traversal_nul_or_huge_values_case(client, h, path)


# ================================================================ leaks: problems, logs, metrics
def test_attack_problems_and_logs_carry_no_token_secret_or_memory_text(ws: Any, client: TestClient,
                                                                       h: dict[str, Any],
                                                                       secrets_by_role: dict[str, str],
                                                                       caplog: pytest.LogCaptureFixture) -> None:
    forged = "emk_" + "A" * 43
    caplog.set_level(logging.DEBUG)
    responses = [
        client.get("/v1/policy", headers=bearer(forged)),
        client.get("/v1/policy", headers=bearer(secrets_by_role["admin"] + "x")),
        client.post("/v1/memory", json={"text": SECRET, "importance": 7}, headers=h["operator"]),
        client.post("/v1/memory", json={"text": SECRET, "scope": "ops"}, headers=h["viewer"]),
        client.post("/v1/memory", json={"text": SECRET, "scope": "elsewhere"}, headers=h["agent"]),
        client.post("/v1/memory", json={"text": SECRET, "scope": "ops"}, headers=h["operator"]),
        client.get("/v1/memory/recall", params={"query": SECRET, "scope": "ops"}, headers=h["viewer"]),
        client.post("/v1/tokens", json={"role": "viewer", "label": SECRET}, headers=h["admin"]),
    ]
    assert [r.status_code for r in responses[:5]] == [401, 401, 422, 403, 403]
    minted = responses[-1].json()["secret"]
    for r in responses[:2] + responses[3:5]:
        assert forged not in r.text and secrets_by_role["admin"] not in r.text and SECRET not in r.text
    server_side = [rec for rec in caplog.records if not rec.name.startswith(("httpx", "httpcore"))]  # not the client's
    logged = "\n".join(f"{rec.getMessage()} {rec.__dict__}" for rec in server_side)
    for s in (*secrets_by_role.values(), forged, minted):
        assert s not in logged
    assert SECRET not in logged


def test_attack_unauthenticated_metrics_expose_no_memory_text_token_or_principal(ws: Any, client: TestClient,
                                                                                 h: dict[str, Any],
                                                                                 secrets_by_role: dict[str, str]
                                                                                 ) -> None:
    # /metrics answers a scraper without a token; it carries figures and route templates only
    client.post("/v1/memory", json={"text": SECRET, "scope": "ops"}, headers=h["operator"])
    client.get("/v1/memory/recall", params={"query": SECRET, "scope": "ops"}, headers=h["viewer"])
    client.get(f"/v1/memory/{SECRET}", headers=h["viewer"])
    client.get(f"/v1/{SECRET}/nowhere", headers=h["viewer"])
    client.get(f"/{SECRET}")
    client.post("/v1/memory", json={"text": SECRET}, headers=h["agent"])  # an approval pending, args hold it
    r = client.get("/metrics")
    assert r.status_code == 200
    body = r.text
    assert "emergent_http_requests" in body
    assert "walrus-okapi" not in body
    for t in ws.tokens.list():
        assert t.id not in body
    for s in secrets_by_role.values():
        assert s not in body
    assert "human:" not in body and "agent:researcher" not in body


def test_attack_invented_http_methods_grow_the_metrics_without_bound(client: TestClient) -> None:
    for i in range(40):
        client.request(f"ZZ{i}EVIL", "/v1/policy")
    body = client.get("/metrics").text
    assert "ZZ7EVIL" not in body
    assert sum(line.startswith("emergent_http_requests_total{") for line in body.splitlines()) < 20


# ================================================================ erasure
def test_attack_erased_memory_written_by_an_agent_token_survives_in_its_approval_and_call_records(
        home: Path, tmp_path: Path, ws: Any, me: Any, client: TestClient, h: dict[str, Any]) -> None:
    mid = _agent_remembers_through_the_api(ws, client, h, f"the user's passport is {SECRET}")
    assert ws.memory.get(mid, scope="researcher").text.endswith(SECRET)
    ws.retention.erase(by=me, reason="GDPR art. 17 #1", ids=[mid])
    # through the API: no route hands the text back
    for url in ("/v1/approvals?status=all", "/v1/calls", f"/v1/memory/{mid}?scope=researcher",
                f"/v1/memory/recall?query={SECRET}&scope=researcher", "/v1/audit?limit=500"):
        r = client.get(url, headers=h["admin"])
        assert "walrus-okapi" not in r.text, url
    ws.close()
    assert _holding(home, skip=("backups",)) + _holding(tmp_path / "audit-anchor") == []


def test_attack_erased_user_comes_back_from_redis_short_term_memory(home: Path, tmp_path: Path, redis_url: str,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    import redis

    monkeypatch.setenv("EMERGENT_REDIS_URL", redis_url)
    monkeypatch.setenv("EMERGENT_WORKSPACE_ID", "atk" + os.urandom(4).hex())
    ws = _open(home)
    try:
        me = ws.principal
        ws.memory.remember(f"alice said {SECRET}", scope="assistant/alice")
        ws.memory.remember(f"alice again {SECRET}", scope="assistant/alice/s1", tier="ltm")
        keep = ws.memory.remember("bob's harmless note", scope="assistant/bob").id
        ws.retention.erase(by=me, reason="erasure request", user="alice")
        hits = ws.memory.recall(f"alice said {SECRET}", scope="assistant", k=20)
        assert all("walrus-okapi" not in x.record.text for x in hits)
        assert ws.memory.get(keep, scope="assistant/bob").text == "bob's harmless note"
    finally:
        ws.close()
    client = redis.Redis.from_url(redis_url)
    leaked = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key)
        values: list[bytes] = []
        if kind == b"string":
            values = [client.get(key) or b""]
        elif kind == b"hash":
            values = [*client.hgetall(key).values()]
        elif kind == b"list":
            values = client.lrange(key, 0, -1)
        elif kind == b"zset":
            values = client.zrange(key, 0, -1)
        elif kind == b"set":
            values = list(client.smembers(key))
        elif kind == b"stream":
            values = [json.dumps({k.decode(): v.decode("latin-1") for k, v in e[1].items()}).encode()
                      for e in client.xrange(key)]
        if any(n in v for v in values for n in NEEDLES) or any(n in key for n in NEEDLES):
            leaked.append(key)
    client.close()
    assert leaked == []
    ws2 = _open(home)  # a new process: nothing rehydrated from a snapshot
    try:
        hits = ws2.memory.recall(f"alice said {SECRET}", scope="assistant", k=20)
        assert all("walrus-okapi" not in x.record.text for x in hits)
    finally:
        ws2.close()


# ================================================================ encryption at rest
@pytest.fixture
def encrypted(monkeypatch: pytest.MonkeyPatch) -> bytes:
    kek = os.urandom(32)
    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(kek).decode())
    return kek


def _encrypted_api_writes(home: Path, tmp_path: Path) -> list[str]:
    """API writes (a person's, an agent's held then approved, an assistant run) in an encrypting workspace: the
    files that held the secret while it ran (after close, none may: asserted here)."""
    ws = _open(home)
    try:
        me = ws.principal
        agent = ws.principals.agent("researcher", created_by=me)
        h = {"operator": bearer(ws.tokens.create(me, "operator", by=me, ttl_s=600)[1]),
             "agent": bearer(ws.tokens.create(agent, "agent", by=me, ttl_s=600)[1])}
        with TestClient(_app(ws), raise_server_exceptions=False) as c:
            assert c.post("/v1/memory", json={"text": f"op {SECRET}", "scope": "ops", "tier": "ltm"},
                          headers=h["operator"]).status_code == 201
            mid = _agent_remembers_through_the_api(ws, c, h, f"agent {SECRET}")
            assert ws.memory.get(mid, scope="researcher").text.endswith(SECRET)
            r = c.post("/v1/assistant/runs", json={"question": f"/recall {SECRET}"}, headers=h["operator"])
            assert r.status_code == 200
            # while the process runs: the SQLite WAL, journals and LanceDB's uncompacted files too
            live = _holding(home) + _holding(tmp_path / "audit-anchor")
    finally:
        ws.close()
    assert _holding(home) + _holding(tmp_path / "audit-anchor") == []
    return live


def test_attack_encrypted_workspace_holds_plaintext_of_an_api_write(home: Path, tmp_path: Path,
                                                                    encrypted: bytes) -> None:
    _encrypted_api_writes(home, tmp_path)


def test_attack_encrypted_workspace_holds_plaintext_while_it_runs(home: Path, tmp_path: Path,
                                                                  encrypted: bytes) -> None:
    assert _encrypted_api_writes(home, tmp_path) == []


def test_attack_encrypted_operator_write_through_the_api_leaves_no_plaintext(home: Path, tmp_path: Path,
                                                                             encrypted: bytes) -> None:
    ws = _open(home)
    try:
        me = ws.principal
        op = bearer(ws.tokens.create(me, "operator", by=me, ttl_s=600)[1])
        with TestClient(_app(ws), raise_server_exceptions=False) as c:
            for tier in ("stm", "ltm"):
                r = c.post("/v1/memory", json={"text": f"{tier} {SECRET}", "scope": "ops/alice", "tier": tier,
                                               "meta": {"note": SECRET}}, headers=op)
                assert r.status_code == 201
            found = c.get("/v1/memory/recall", params={"query": SECRET, "scope": "ops"}, headers=op).json()["items"]
            assert any(SECRET in i["text"] for i in found)
        ws.memory.ltm.maintain(force=True)
        archive = Path(ws.backup("sealed backup", by=me).path)  # a backup of an encrypted workspace is sealed too
    finally:
        ws.close()
    assert _holding(home, skip=("backups",)) + _holding(tmp_path / "audit-anchor") == []  # the live workspace: held
    assert _archive_members_holding(archive) == []


def test_attack_nonce_reuse_and_a_sealed_blob_moved_to_another_row_or_purpose(
        home: Path, encrypted: bytes) -> None:
    from emergent.errors import IntegrityError

    ws = _open(home)
    try:
        ring = ws.keyring
        blobs = [ring.seal(b"same plaintext", purpose="memory.ltm", aad=b"row-1") for _ in range(300)]
        from emergent.security.crypto import HEADER_LEN

        assert len({b[HEADER_LEN - 12:HEADER_LEN] for b in blobs}) == 300 and len(set(blobs)) == 300
        assert ring.open(blobs[0], purpose="memory.ltm", aad=b"row-1") == b"same plaintext"
        for purpose, aad in (("memory.ltm", b"row-2"), ("memory.stm", b"row-1"), ("sql.assistant_runs", b"row-1")):
            with pytest.raises(IntegrityError):
                ring.open(blobs[0], purpose=purpose, aad=aad)
        flipped = bytearray(blobs[1])
        flipped[-1] ^= 1
        with pytest.raises(IntegrityError):
            ring.open(bytes(flipped), purpose="memory.ltm", aad=b"row-1")
        # a real sealed row copied over another row's payload is refused, not read as the other row
        a = ws.memory.remember(f"row A {SECRET}", scope="ops", tier="ltm").id
        b = ws.memory.remember("row B harmless", scope="ops", tier="ltm").id
        table = ws.memory.ltm.table if hasattr(ws.memory.ltm, "table") else None
        if table is not None:
            rows = {r["id"]: r for r in table.search().where(f"id IN ('{a}', '{b}')").limit(10).to_list()}
            table.update(where=f"id = '{b}'", values={"payload": rows[a]["payload"]})
            try:
                got = ws.memory.get(b, scope="ops").text
            except Exception as exc:  # noqa: BLE001 - refused: what we want
                got = type(exc).__name__
            assert "walrus-okapi" not in got and got in ("IntegrityError", "ValidationError"), got
    finally:
        ws.close()


def test_attack_kill_during_kek_rotation_leaves_an_unreadable_workspace(home: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from emergent.security.crypto import new_kek, write_kek

    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    ws = _open(home)
    try:
        mid = ws.memory.remember(f"before rotation {SECRET}", scope="ops", tier="ltm").id
        current = Path(ws.settings.security.kek_file or ws.settings.audit_anchor_dir() / "kek")
        assert current.exists()
        # the steps `emergent keys rotate-kek` takes, up to the moment a kill -9 lands: new KEK written
        # beside the old one, data keys re-wrapped and committed; the rename never happens
        target = current.with_name(current.name + ".new")
        kek = new_kek()
        write_kek(target, kek)
        ws.keyring.rotate_kek(kek, by=ws.principal)
    finally:
        ws.close()
    again = _open(home)  # the next start, as an operator would do it
    try:
        assert again.memory.get(mid, scope="ops").text.endswith(SECRET)
    finally:
        again.close()


# ================================================================ the assistant as a way around scopes
@pytest.mark.parametrize("assistant", ["assistant", "intruder"])
def test_attack_agent_token_reads_another_scope_through_an_assistant_run(ws: Any, me: Any, client: TestClient,
                                                                         h: dict[str, Any], assistant: str) -> None:
    # a person's assistant (scope "assistant") and another agent ("intruder") hold a secret
    if assistant != "assistant":
        ws.principals.agent(assistant, created_by=me)
    ws.memory.ingest([f"The vault passphrase is {SECRET}."], scope=assistant)
    assert client.post("/v1/assistant/runs", json={"question": "/help", "assistant": assistant},
                       headers=h["operator"]).status_code == 200  # the assistant exists
    leaked = []
    for question in ("What is the vault passphrase?", "/recall vault passphrase"):
        for stream in (False, True):
            r = client.post("/v1/assistant/runs", json={"question": question, "assistant": assistant,
                                                         "stream": stream}, headers=h["agent"])
            if "walrus-okapi" in r.text:
                leaked.append((question, stream, r.status_code))
    assert leaked == []


# ================================================================ faults
ERASER = r"""
import sys
from emergent import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing")
print("go", flush=True)
ws.retention.erase(by=ws.principal, reason="erasure request #9", user="alice")
print("done", flush=True)
ws.close()
"""


def _seed_for_erasure(home: Path) -> tuple[list[str], list[str]]:
    ws = _open(home)
    try:
        alice = [ws.memory.remember(f"alice note {i} {SECRET}", scope=f"assistant/alice/s{i % 3}",
                                    tier="ltm" if i % 2 else "stm").id for i in range(40)]
        bob = [ws.memory.remember(f"bob keeps note {i}", scope="assistant/bob", tier="ltm").id for i in range(20)]
        ws.memory.ltm.maintain(force=True)
        ws.backup("before the erasure", by=ws.principal)
    finally:
        ws.close()
    return alice, bob


@pytest.mark.parametrize("delay", [0.05, 0.25])
def test_attack_kill_9_during_an_erasure_leaves_a_readable_store_and_a_repeatable_erasure(
        home: Path, tmp_path: Path, delay: float) -> None:
    import subprocess
    import sys
    import time

    alice, bob = _seed_for_erasure(home)
    proc = subprocess.Popen([sys.executable, "-c", ERASER, str(home)], stdout=subprocess.PIPE, text=True,
                            env=os.environ.copy())
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "go"
        time.sleep(delay)
        proc.kill()  # SIGKILL: no cleanup, no atexit
    finally:
        proc.wait(timeout=30)
    print("killed", "after" if proc.stdout.read().strip() else "inside", "the erasure")
    ws = _open(home)  # the store opens and reads after the kill
    try:
        assert [ws.memory.get(b, scope="assistant/bob").text for b in bob] == \
            [f"bob keeps note {i}" for i in range(20)]
        hits = ws.memory.recall("bob keeps note", scope="assistant", k=5)
        assert hits
        # the erasure is repeated to the end: alice is gone everywhere, bob stays
        ws.retention.erase(by=ws.principal, reason="erasure request #9 (again)", user="alice")
        hits = ws.memory.recall(f"alice note {SECRET}", scope="assistant", k=50)
        assert all("walrus-okapi" not in x.record.text for x in hits)
        assert len([b for b in bob if ws.memory.get(b, scope="assistant/bob")]) == 20
    finally:
        ws.close()
    assert _holding(home, skip=("backups",)) == []


# ================================================================ more governance and leaks
def test_attack_token_list_or_creation_reveals_stored_hashes(ws: Any, client: TestClient, h: dict[str, Any],
                                                             secrets_by_role: dict[str, str]) -> None:
    import hashlib

    listed = client.get("/v1/tokens?include_inactive=true", headers=h["admin"])
    created = client.post("/v1/tokens", json={"role": "viewer", "ttl_s": 60}, headers=h["admin"])
    assert listed.status_code == 200 and created.status_code == 201
    for s in secrets_by_role.values():
        assert s not in listed.text and hashlib.sha256(s.encode()).hexdigest() not in listed.text
    assert "sha256" not in listed.text and "sha256" not in created.text


def test_attack_suspended_agent_keeps_writing_through_its_token(ws: Any, agent: Any, client: TestClient,
                                                                h: dict[str, Any]) -> None:
    assert client.post(f"/v1/policy/suspensions/{agent.key}", json={"reason": "incident"},
                       headers=h["admin"]).status_code == 200
    r = client.post("/v1/memory", json={"text": "written while suspended"}, headers=h["agent"])
    assert r.status_code in (202, 403), r.text
    r2 = client.post("/v1/tools/memory.remember/call", json={"args": {"text": "again", "scope": "researcher"}},
                     headers=h["agent"])
    assert r2.status_code in (202, 403), r2.text
    hits = ws.memory.recall("written while suspended", scope="researcher", k=5)
    assert all("suspended" not in x.record.text for x in hits)


def _test_attack_request_id_header_injects_into_responses_and_logs_case(client: TestClient, h: dict[str, Any],
                                                                  rid: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    r = client.get("/v1/policy", headers=h["viewer"] | {"X-Request-ID": rid})
    assert r.status_code == 200
    assert r.headers["x-request-id"] != rid and "X-Injected" not in r.headers
    assert all(rid not in rec.getMessage() and getattr(rec, "request_id", "") != rid for rec in caplog.records)


def test_attack_request_id_header_injects_into_responses_and_logs(
        client: TestClient, h: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    for rid in ["a\tX-Injected: 1", "x" * 5000, "<script>", "id with spaces", "a;b=c\\n",
                                 '{"level": "CRITICAL"}']:
        _test_attack_request_id_header_injects_into_responses_and_logs_case(client, h, rid, caplog)


def test_attack_problems_readiness_and_metrics_leak_the_redis_password(home: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch,
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    import shutil
    import socket
    import subprocess
    import time

    import redis

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([shutil.which("redis-server") or "redis-server", "--port", str(port), "--bind",
                               "127.0.0.1", "--requirepass", "hunter2-redis-pw", "--save", "", "--appendonly", "no",
                               "--dir", str(tmp_path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"redis://default:hunter2-redis-pw@127.0.0.1:{port}/0"
        for _ in range(100):
            try:
                redis.Redis.from_url(url).ping()
                break
            except redis.ConnectionError:
                time.sleep(0.05)
        monkeypatch.setenv("EMERGENT_REDIS_URL", url)
        ws = _open(home)
        me = ws.principal
        op = bearer(ws.tokens.create(me, "operator", by=me, ttl_s=600)[1])
        caplog.set_level(logging.INFO)
        with TestClient(_app(ws), raise_server_exceptions=False) as c:
            assert c.post("/v1/memory", json={"text": "while redis is up", "scope": "ops"}, headers=op).status_code == 201
            server.kill()  # the store goes away under a running API
            server.wait(timeout=10)
            answers = [c.post("/v1/memory", json={"text": "while redis is down", "scope": "ops"}, headers=op),
                       c.get("/readyz"), c.get("/metrics")]
        ws.close()
        assert any(r.status_code == 503 for r in answers)
        logged = "\n".join(f"{rec.getMessage()} {rec.__dict__}" for rec in caplog.records)
        assert all("hunter2" not in r.text for r in answers) and "hunter2" not in logged
    finally:
        if server.poll() is None:
            server.kill()
            server.wait(timeout=10)


def test_attack_startup_error_prints_the_redis_password(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from emergent.errors import EmergentError

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("EMERGENT_REDIS_URL", f"redis://default:hunter2-redis-pw@127.0.0.1:{port}/0")
    try:
        ws = _open(home)
    except EmergentError as exc:
        text = f"{exc} {exc.hint} {exc.fields}"
    else:
        try:
            with TestClient(_app(ws), raise_server_exceptions=False) as c:
                text = " ".join(r.text for r in (c.get("/readyz"), c.get("/metrics")))
        except EmergentError as exc:  # the app refuses to start without its Redis: what does it say?
            text = f"{exc} {exc.hint} {exc.fields}"
        finally:
            ws.close()
    assert "hunter2" not in text and "***" in text


@pytest.mark.parametrize("tool,args", [
    ("memory.recall", {"query": "vault passphrase", "scope": "ops"}),
    ("memory.recall", {"query": "vault passphrase", "scope": "intruder"}),
    ("memory.recall", {"query": "vault passphrase", "scope": "ops/alice"}),
])
def test_attack_agent_token_reads_another_scope_through_a_memory_tool_call(ws: Any, me: Any, client: TestClient,
                                                                           h: dict[str, Any], tool: str,
                                                                           args: dict[str, Any]) -> None:
    ws.principals.agent("intruder", created_by=me)
    for scope in ("ops", "intruder", "ops/alice"):
        ws.memory.remember(f"The vault passphrase is {SECRET}.", scope=scope, tier="ltm")
    r = client.post(f"/v1/tools/{tool}/call", json={"args": args}, headers=h["agent"])
    assert "walrus-okapi" not in r.text, (r.status_code, r.text[:300])
    if r.status_code == 202:  # held for a person: the approval, once decided, must not hand it over either
        aid = r.json()["approval"]
        client.post(f"/v1/approvals/{aid}/approve", json={"reason": "ok"}, headers=h["operator"])
        done = client.post(f"/v1/approvals/{aid}/resume", headers=h["agent"])
        assert "walrus-okapi" not in done.text, (done.status_code, done.text[:300])


def test_attack_erased_memory_comes_back_from_the_assistant_run_that_wrote_it(home: Path, tmp_path: Path, ws: Any,
                                                                              me: Any, client: TestClient,
                                                                              h: dict[str, Any]) -> None:
    r = client.post("/v1/assistant/runs", json={"question": f"/remember Alice's passport number is {SECRET}."},
                    headers=h["operator"])
    assert r.status_code == 200, r.text
    run = r.json()
    if run["status"] == "waiting_approval":
        client.post(f"/v1/approvals/{run['pending_approval']}/approve", json={"reason": "ok"}, headers=h["operator"])
    hits = ws.memory.recall(f"passport number {SECRET}", scope="assistant", k=10)
    ids = [x.record.id for x in hits if "walrus-okapi" in x.record.text]
    assert ids, [x.record.text for x in hits]
    ws.retention.erase(by=me, reason="GDPR art. 17 #2", ids=ids)
    got = client.get(f"/v1/assistant/runs/{run['run_id']}", headers=h["viewer"])
    assert got.status_code == 200 and "walrus-okapi" not in got.text  # the run's question and answer kept it
    ws.close()
    assert _holding(home, skip=("backups",)) + _holding(tmp_path / "audit-anchor") == []


def _test_attack_lone_surrogates_and_nul_in_any_text_field_are_a_4xx_not_a_500_case(ws: Any, agent: Any,
                                                                              client: TestClient,
                                                                              h: dict[str, Any], bad: str) -> None:
    # raw JSON so the escapes reach the server as they are
    bodies = [
        ("POST", "/v1/tokens", '{"role": "viewer", "label": "x%s"}', "admin"),
        ("POST", "/v1/policy/rules", '{"subject": "agent:x%s", "tool": "memory.recall", "effect": "deny"}', "admin"),
        ("POST", "/v1/policy/pause", '{"reason": "x%s"}', "admin"),
        ("POST", f"/v1/policy/suspensions/{agent.key}", '{"reason": "x%s"}', "admin"),
        ("POST", "/v1/tools/memory.remember/call", '{"args": {"text": "x%s", "scope": "ops"}}', "operator"),
        ("POST", "/v1/tools/memory.recall/call", '{"args": {"query": "x%s", "scope": "ops"}}', "operator"),
        ("POST", "/v1/memory", '{"text": "x%s", "scope": "ops", "meta": {"k%s": "v"}}', "operator"),
        ("POST", "/v1/assistant/runs", '{"question": "x%s"}', "operator"),
        ("POST", "/v1/graph/nodes", '{"label": "x%s", "scope": "ops"}', "operator"),
    ]
    failures = []
    for method, url, template, role in bodies:
        body = template.replace("%s", bad)
        r = client.request(method, url, content=body.encode(), headers=h[role] | {"Content-Type": "application/json"})
        if r.status_code >= 500:
            failures.append((url, r.status_code, r.text[:200]))
        if url.endswith("/pause") and r.status_code == 200:
            client.post("/v1/policy/resume", headers=h["admin"])
    assert failures == []
    assert ws.audit.verify().ok if hasattr(ws.audit.verify(), "ok") else ws.audit.verify()


def test_attack_lone_surrogates_and_nul_in_any_text_field_are_a_4xx_not_a_500(
        ws: Any, agent: Any, client: TestClient, h: dict[str, Any]) -> None:
    for bad in ["\\ud800", "\\u0000", "\\udfff\\ud800"]:
        _test_attack_lone_surrogates_and_nul_in_any_text_field_are_a_4xx_not_a_500_case(ws, agent, client, h, bad)


def _test_attack_tampered_cursor_or_limit_on_every_list_is_a_4xx_case(client: TestClient, h: dict[str, Any],
                                                                params: dict[str, str]) -> None:
    lists = ["/v1/tokens", "/v1/approvals", "/v1/calls", "/v1/audit", "/v1/tools", "/v1/assistant/runs",
             "/v1/workflows/runs", "/v1/jobs", "/v1/graph/nodes", "/v1/agents/tasks", "/v1/proposals",
             "/v1/experiments"]
    bad = []
    for url in lists:
        r = client.get(url, params=params, headers=h["admin"])
        if r.status_code >= 500 or (r.status_code >= 400 and not r.headers["content-type"].startswith(
                "application/problem+json")):
            bad.append((url, r.status_code, r.text[:150]))
    assert bad == []


def test_attack_tampered_cursor_or_limit_on_every_list_is_a_4xx(
        client: TestClient, h: dict[str, Any]) -> None:
    for params in [{"cursor": "not-a-cursor"}, {"cursor": "eyJvIjogLTF9"}, {"cursor": "A" * 3000},
                                    {"limit": "-1"}, {"limit": str(10**12)}, {"cursor": "%00"},
                                    {"cursor": "eyJvZmZzZXQiOiAxMDAwMDAwMDAwMDAwMDAwMH0="}]:
        _test_attack_tampered_cursor_or_limit_on_every_list_is_a_4xx_case(client, h, params)


def test_attack_second_instance_serves_an_erased_memory_from_its_open_handles(home: Path, ws: Any, me: Any,
                                                                             h: dict[str, Any]) -> None:
    ids = [ws.memory.remember(f"alice's record {i} {SECRET}", scope="assistant/alice", tier="ltm").id
           for i in range(3)]
    stm_id = ws.memory.remember(f"alice short {SECRET}", scope="assistant/alice").id
    bob = ws.memory.remember("bob's record stays", scope="assistant/bob", tier="ltm").id
    other = _open(home)  # instance B, already serving: its handles and hot index have seen alice
    try:
        with TestClient(_app(other), raise_server_exceptions=False) as b:
            for mid in (*ids, stm_id):
                assert b.get(f"/v1/memory/{mid}", params={"scope": "assistant/alice"},
                             headers=h["viewer"]).status_code == 200
            assert "walrus-okapi" in b.get("/v1/memory/recall", params={"query": f"alice record {SECRET}",
                                                                        "scope": "assistant"},
                                           headers=h["viewer"]).text
            ws.retention.erase(by=me, reason="erasure on instance A", user="alice")
            kept = b.get(f"/v1/memory/{bob}", params={"scope": "assistant/bob"}, headers=h["viewer"])
            assert kept.status_code == 200, kept.text[:300]  # B still serves what was not erased
            for mid in (*ids, stm_id):
                r = b.get(f"/v1/memory/{mid}", params={"scope": "assistant/alice"}, headers=h["viewer"])
                assert r.status_code == 404 and "walrus-okapi" not in r.text, (mid, r.status_code)
            r = b.get("/v1/memory/recall", params={"query": f"alice record {SECRET}", "scope": "assistant"},
                      headers=h["viewer"])
            assert r.status_code == 200 and "walrus-okapi" not in r.text
    finally:
        other.close()


def test_attack_erased_text_read_from_the_disk_of_a_running_server(home: Path, tmp_path: Path, ws: Any, me: Any,
                                                                   client: TestClient, h: dict[str, Any]) -> None:
    # the erasure is done and acknowledged; the server keeps running; someone images the disk now
    mid = _agent_remembers_through_the_api(ws, client, h, f"the user's passport is {SECRET}")
    op = client.post("/v1/memory", json={"text": f"operator copy {SECRET}", "scope": "researcher"},
                     headers=h["operator"]).json()["id"]
    ws.retention.erase(by=me, reason="GDPR art. 17 #3", ids=[mid, op])
    assert _holding(home, skip=("backups",)) + _holding(tmp_path / "audit-anchor") == []
