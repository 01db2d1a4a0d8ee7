"""API tokens and who may do what through the REST API: stored hashed, expiring, revocable, roles."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from emergent.clock import FakeClock
from emergent.errors import NotFoundError, PrincipalError, ValidationError
from emergent.security.tables import api_tokens
from emergent.security.tokens import ApiTokens, digest


def test_secret_is_returned_once_and_stored_only_hashed(ws: Any, me: Any) -> None:
    info, secret = ws.tokens.create(me, "viewer", by=me, ttl_s=60, label="laptop")
    with ws.sql.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.select(api_tokens))]
    assert len(rows) == 1 and rows[0]["token_sha256"] == digest(secret)
    assert secret not in repr(rows) and secret not in repr(info.to_dict())
    found = ws.tokens.verify(secret)
    assert found is not None and found[0].id == info.id and found[1] == me and found[0].role == "viewer"
    created = [e for e in ws.audit.entries(kind="api.token_created")]
    assert created[-1].actor == me.key and created[-1].data["token"] == info.id and secret not in str(created[-1].data)


def test_every_token_expires_within_the_maximum(ws: Any, me: Any) -> None:
    tokens = ApiTokens(ws.sql, principals=ws.principals, audit=ws.audit, clock=FakeClock(1000.0), max_ttl_s=100)
    info, _ = tokens.create(me, "viewer", by=me)
    assert info.expires_at == 1100.0
    for bad in (101, 0, -1, float("inf"), float("nan"), True):
        with pytest.raises(ValidationError):
            tokens.create(me, "viewer", by=me, ttl_s=bad)


def test_expired_token_is_refused(ws: Any, me: Any) -> None:
    clock = FakeClock(1000.0)
    tokens = ApiTokens(ws.sql, principals=ws.principals, audit=ws.audit, clock=clock, max_ttl_s=100)
    _, secret = tokens.create(me, "viewer", by=me, ttl_s=10)
    assert tokens.verify(secret) is not None
    clock.advance(10)
    assert tokens.verify(secret) is None
    assert tokens.list() == [] and len(tokens.list(include_inactive=True)) == 1


def test_roles_fit_the_principal(ws: Any, me: Any, agent: Any) -> None:
    for role in ("admin", "operator"):
        with pytest.raises(ValidationError, match="only as a person"):
            ws.tokens.create(agent, role, by=me, ttl_s=60)
    with pytest.raises(ValidationError, match="only as an agent"):
        ws.tokens.create(me, "agent", by=me, ttl_s=60)
    with pytest.raises(ValidationError, match="unknown"):
        ws.tokens.create(me, "root", by=me, ttl_s=60)
    assert ws.tokens.create(agent, "viewer", by=me, ttl_s=60)[0].principal == agent.key


def test_attack_agent_creates_or_revokes_tokens(ws: Any, me: Any, agent: Any) -> None:
    with pytest.raises(PrincipalError):
        ws.tokens.create(agent, "agent", by=agent, ttl_s=60)
    info, _ = ws.tokens.create(agent, "agent", by=me, ttl_s=60)
    with pytest.raises(PrincipalError):
        ws.tokens.revoke(info.id, by=agent)


def test_revoked_token_is_refused_at_once_and_revocation_audited(ws: Any, me: Any) -> None:
    info, secret = ws.tokens.create(me, "viewer", by=me, ttl_s=60)
    after = ws.tokens.revoke(info.id, by=me)
    assert after.revoked_by == me.key and ws.tokens.verify(secret) is None
    assert ws.audit.entries(kind="api.token_revoked")[-1].data["token"] == info.id
    with pytest.raises(NotFoundError):
        ws.tokens.revoke(info.id, by=me)


@pytest.mark.parametrize("secret", ["", "emk_", "emk_" + "x" * 43, "Bearer", "emk_" + "a" * 500, "emt_abc"])
def test_attack_guessed_or_malformed_secret_is_unknown(ws: Any, me: Any, secret: str) -> None:
    ws.tokens.create(me, "viewer", by=me, ttl_s=60)
    assert ws.tokens.verify(secret) is None


# ---------------------------------------------------------------- over HTTP
def test_missing_token_is_401_with_bearer_challenge(client: Any) -> None:
    r = client.get("/v1/memory/recall", params={"query": "x"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.headers["content-type"] == "application/problem+json" and r.json()["hint"]


@pytest.mark.parametrize("value", ["Bearer emk_wrong", "Basic dXNlcjpwYXNz", "Bearer ", "emk_x"])
def test_attack_wrong_token_is_401(client: Any, tokens: dict[str, str], value: str) -> None:
    r = client.get("/v1/memory/recall", params={"query": "x"}, headers={"Authorization": value})
    assert r.status_code == 401, r.text


def test_expired_token_is_401(ws: Any, me: Any, client: Any) -> None:
    clock = FakeClock(ws.clock.now())
    tokens = ApiTokens(ws.sql, principals=ws.principals, clock=clock)
    _, secret = tokens.create(me, "admin", by=me, ttl_s=5)
    clock.advance(3600)  # another process's view: the same row, read after it expired
    assert tokens.verify(secret) is None
    ws.tokens.clock = clock
    r = client.get("/v1/memory/recall", params={"query": "x"}, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 401


def test_revoked_token_is_401_on_the_next_request(ws: Any, me: Any, client: Any) -> None:
    info, secret = ws.tokens.create(me, "admin", by=me, ttl_s=60)
    h = {"Authorization": f"Bearer {secret}"}
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=h).status_code == 200
    ws.tokens.revoke(info.id, by=me)
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=h).status_code == 401


def test_attack_viewer_token_writes_memory(client: Any, headers: dict[str, Any]) -> None:
    r = client.post("/v1/memory", json={"text": "sneaky"}, headers=headers["viewer"])
    assert r.status_code == 403 and r.json()["title"] == "PrincipalError"
    mid = client.post("/v1/memory", json={"text": "kept"}, headers=headers["operator"]).json()["id"]
    assert client.delete(f"/v1/memory/{mid}", headers=headers["viewer"]).status_code == 403
    assert client.get(f"/v1/memory/{mid}", headers=headers["viewer"]).status_code == 200


def test_attack_agent_token_reads_another_scope(client: Any, headers: dict[str, Any]) -> None:
    mid = client.post("/v1/memory", json={"text": "the admin's secret plan", "scope": "ops"},
                      headers=headers["admin"]).json()["id"]
    for r in (client.get("/v1/memory/recall", params={"query": "secret plan", "scope": "ops"}, headers=headers["agent"]),
              client.get(f"/v1/memory/{mid}", params={"scope": "ops"}, headers=headers["agent"]),
              client.delete(f"/v1/memory/{mid}", params={"scope": "ops"}, headers=headers["agent"]),
              client.post("/v1/memory", json={"text": "planted", "scope": "ops/alice"}, headers=headers["agent"])):
        assert r.status_code == 403, r.text
        assert r.json()["title"] == "ScopeError"
    # without a scope it reads its own, where the admin's memory is not
    assert client.get(f"/v1/memory/{mid}", headers=headers["agent"]).status_code == 404
    own = client.get("/v1/memory/recall", params={"query": "secret plan"}, headers=headers["agent"]).json()["items"]
    assert all(h["scope"].split("/")[0] == "researcher" for h in own)


def test_memory_writes_are_audited_with_the_tokens_principal(ws: Any, me: Any, client: Any,
                                                               headers: dict[str, Any]) -> None:
    r = client.post("/v1/memory", json={"text": "audited note", "scope": "ops"}, headers=headers["operator"])
    assert r.status_code == 201
    mid = r.json()["id"]
    done = [e for e in ws.audit.entries(kind="api.memory.remember") if e.data.get("phase") == "done"]
    assert done[-1].actor == me.key and done[-1].data["id"] == mid and "audited note" not in str(done[-1].data)
    assert client.delete(f"/v1/memory/{mid}", params={"scope": "ops"}, headers=headers["operator"]).json() == \
        {"forgotten": 1}
    assert ws.audit.entries(kind="memory.forget")[-1].actor == me.key


def test_agent_token_writes_through_the_gate_as_the_agent(ws: Any, agent: Any, client: Any,
                                                          headers: dict[str, Any]) -> None:
    r = client.post("/v1/memory", json={"text": "agent's note"}, headers=headers["agent"])
    if r.status_code == 202:  # the default policy asks a person before an agent writes memory
        body = r.json()
        assert body["approval"] and ws.autonomy.approvals.get(body["approval"]).actor == agent.key
    else:
        assert r.status_code == 201


def test_attack_suspended_agent_keeps_using_its_token(ws: Any, me: Any, client: Any, headers: dict[str, Any]) -> None:
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=headers["agent"]).status_code == 200
    ws.autonomy.suspend("agent:researcher", by=me, reason="misbehaved")
    r = client.get("/v1/memory/recall", params={"query": "x"}, headers=headers["agent"])
    assert r.status_code == 403 and r.json()["title"] == "PermissionDenied" and r.json()["hint"]
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=headers["viewer"]).status_code == 200


def test_attack_token_outlives_its_principal_in_a_process_that_knew_it(ws: Any, me: Any, agent: Any, client: Any,
                                                                       headers: dict[str, Any]) -> None:
    from emergent.autonomy.tables import principals as table

    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=headers["agent"]).status_code == 200
    with ws.sql.begin() as conn:  # another process removes the agent from the directory
        assert conn.execute(table.delete().where(table.c.key == agent.key)).rowcount == 1
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=headers["agent"]).status_code == 401
    assert client.get("/v1/memory/recall", params={"query": "x"}, headers=headers["viewer"]).status_code == 200
