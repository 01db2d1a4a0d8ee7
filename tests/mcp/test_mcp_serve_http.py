"""`emergent mcp serve --http` (streamable HTTP, a real server on a free loopback port), driven by
the official SDK client: each request acts as the principal of its bearer token."""

from __future__ import annotations

import json
import sqlite3
import time

import anyio
import httpx
import pytest

from emergent.cli import main
from emergent.errors import UsageError
from emergent.mcp.server import RESUME, STATUS

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "raw", "version": "0"}}}
ACCEPT = {"Accept": "application/json, text/event-stream", "Content-Type": "application/json"}


def run(fn):
    return anyio.run(fn)


def raw_init(url, token=None, **headers):
    h = {**ACCEPT, **headers}
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    return httpx.post(url, json=INIT, headers=h, timeout=30)


def test_a_request_without_a_valid_token_is_refused_with_401(http_server, tokens, ws, me, agent):
    _, secret = tokens.create(agent, by=me)
    missing = raw_init(http_server)
    wrong = raw_init(http_server, "emt_" + "x" * 43)
    mangled = raw_init(http_server, secret[:-1] + ("A" if secret[-1] != "A" else "B"))
    basic = httpx.post(http_server, json=INIT, headers={**ACCEPT, "Authorization": "Basic dXNlcjpwYXNz"}, timeout=30)
    for r in (missing, wrong, mangled, basic):
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert raw_init(http_server, secret).status_code == 200


def test_a_token_acts_as_its_principal_through_the_gate_and_the_session_is_audited(http_server, tokens, ws, me,
                                                                                   agent, http_session):
    info, secret = tokens.create(agent, by=me, label="claude")

    async def main_():
        async with http_session(http_server, secret) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            recalled = await s.call_tool("memory.recall", {"query": "anything"})
            asked = await s.call_tool("memory.remember", {"text": "over http"})
            aid = asked.structuredContent["approval"]
            await anyio.to_thread.run_sync(lambda: ws.autonomy.approvals.approve(aid, by=me))
            ran = await s.call_tool(RESUME, {"approval": aid})
            return names, recalled, asked, ran

    names, recalled, asked, ran = run(main_)
    assert {"memory.recall", "memory.remember", STATUS, RESUME} <= names
    assert not recalled.isError and recalled.structuredContent == {"result": []}  # a read: allowed
    assert asked.structuredContent["status"] == "pending_approval"  # a write by an agent: asks
    aid = asked.structuredContent["approval"]
    assert ws.autonomy.approvals.get(aid).actor == agent.key
    assert not ran.isError and ws.memory.get(ran.content[0].text, scope=agent.id).text == "over http"
    ws.audit.flush()
    (started,) = ws.audit.entries(kind="mcp.session_started")
    assert started.actor == agent.key and started.data["transport"] == "http" and started.data["token"] == info.id
    calls = {(e.actor, e.data["tool"].split("@")[0]) for e in ws.audit.entries(kind="tool.call")}
    assert calls == {(agent.key, "memory.recall"), (agent.key, "memory.remember")}


def test_a_policy_deny_over_http_reaches_the_client_as_an_error(http_server, tokens, ws, me, agent, http_session):
    ws.autonomy.add_rule(agent.key, "memory.recall", "deny", by=me)
    _, secret = tokens.create(agent, by=me)

    async def main_():
        async with http_session(http_server, secret) as s:
            return await s.call_tool("memory.recall", {"query": "q"})

    res = run(main_)
    assert res.isError and res.structuredContent["status"] == "denied" and res.structuredContent["hint"]


def test_attack_headers_claiming_another_principal_get_nothing_more(http_server, tokens, ws, me, agent,
                                                                     http_session):
    _, secret = tokens.create(agent, by=me)
    claims = {"X-Emergent-Principal": me.key, "X-Principal": me.key, "X-User": me.id, "X-Forwarded-User": me.id}

    async def main_():
        async with http_session(http_server, secret, headers=claims) as s:
            return await s.call_tool("memory.remember", {"text": "still an agent"},
                                     meta={"principal": me.key})

    res = run(main_)
    assert res.structuredContent["status"] == "pending_approval"
    assert ws.autonomy.approvals.get(res.structuredContent["approval"]).actor == agent.key


def test_attack_a_revoked_token_is_refused_at_once(http_server, tokens, ws, me, agent, http_session):
    info, secret = tokens.create(agent, by=me)
    _, other = tokens.create(agent, by=me)

    async def main_():
        ok = None
        try:
            async with http_session(http_server, secret) as s:
                ok = await s.call_tool("memory.recall", {"query": "q"})
                await anyio.to_thread.run_sync(lambda: tokens.revoke(info.id, by=me))
                with anyio.fail_after(30):
                    await s.call_tool("memory.recall", {"query": "q"})
        except BaseException as exc:  # the SDK ends the session with the HTTP error
            return ok, exc
        return ok, None

    ok, refused = run(main_)
    assert ok is not None and not ok.isError
    assert 401 in statuses(refused)  # the same session's next request: refused
    assert raw_init(http_server, secret).status_code == 401  # a new session with it: refused too
    assert raw_init(http_server, other).status_code == 200  # the principal's other token still works
    tokens.revoke(principal=agent.key, by=me)  # every token of the principal
    assert raw_init(http_server, other).status_code == 401


def statuses(exc):
    """HTTP status codes of the httpx errors inside (nested) exception groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [c for e in exc.exceptions for c in statuses(e)]
    return [exc.response.status_code] if isinstance(exc, httpx.HTTPStatusError) else []


def test_attack_a_suspended_principals_token_is_refused(http_server, tokens, ws, me, agent):
    _, secret = tokens.create(agent, by=me)
    assert raw_init(http_server, secret).status_code == 200
    ws.autonomy.suspend(agent.key, by=me, reason="misbehaved")
    deadline = time.time() + 10  # the server reads the policy state at most every 0.5 s
    while raw_init(http_server, secret).status_code != 401:
        assert time.time() < deadline, "a suspended agent's token still opens sessions"
        time.sleep(0.2)


def test_attack_a_session_opened_with_one_token_cannot_be_used_with_another(http_server, tokens, ws, me, agent):
    _, mine = tokens.create(agent, by=me)
    _, theirs = tokens.create(ws.principals.agent("other", created_by=me), by=me)
    opened = raw_init(http_server, mine)
    sid = opened.headers["mcp-session-id"]
    hijack = httpx.post(http_server, json={"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
                        headers={**ACCEPT, "Authorization": f"Bearer {theirs}", "mcp-session-id": sid,
                                 "mcp-protocol-version": "2025-06-18"}, timeout=30)
    assert hijack.status_code == 404  # as if the session did not exist


def test_tokens_are_stored_hashed_printed_once_and_never_for_a_person(home, ws, me, agent, tokens, capsys):
    with pytest.raises(UsageError):
        tokens.create(me, by=me)  # a bearer credential never carries a person's trust
    code = main(["mcp", "token", "create", "--as", agent.key, "--label", "desktop", "--home", str(home)])
    out = capsys.readouterr()
    assert code in (None, 0)
    secret = out.out.strip()
    assert secret.startswith("emt_") and "shown only now" in out.err
    main(["mcp", "token", "list", "--json", "--home", str(home)])
    listed = json.loads(capsys.readouterr().out)
    assert [(t["principal"], t["label"], t["active"]) for t in listed] == [(agent.key, "desktop", True)]
    assert secret not in json.dumps(listed)
    db = sqlite3.connect(ws.path / "emergent.db")
    stored = db.execute("SELECT token_sha256 FROM mcp_tokens").fetchall()
    db.close()
    import hashlib

    assert stored == [(hashlib.sha256(secret.encode()).hexdigest(),)]
    found = tokens.verify(secret)
    assert found is not None and found[1] == agent
    with pytest.raises(SystemExit):
        main(["mcp", "token", "create", "--as", "human:admin", "--home", str(home)])
    assert "error:" in capsys.readouterr().err
