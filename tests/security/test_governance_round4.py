"""Governance attacks, round 4: each test is named after the attack, tried through the public API.

The attackers: an agent principal, a token of an agent whose standing changed, and code handing the
governance a principal it did not get from the directory. Each held attack passes; each defect found
was fixed with its test.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from emergent.errors import ApprovalPending, PrincipalError
from emergent.tools.spec import SideEffect, tool

RAN: list[tuple[str, str]] = []


@tool(name="note.write", version="1.0.0", side_effect=SideEffect.WRITE, resource="topic")
def note_write(topic: str, text: str) -> str:
    """Write a note (a stand-in for any write action)."""
    RAN.append((topic, text))
    return "written"


@pytest.fixture(autouse=True)
def _ran():
    RAN.clear()
    yield
    RAN.clear()


def _open(home: Any) -> Any:
    from emergent import Workstation

    return Workstation.open(home, embedder="hashing")


def _settle(*workstations: Any) -> None:
    """Past the gate's refresh interval: every process has looked at the shared state again."""
    time.sleep(max(w.autonomy.refresh_interval for w in workstations) + 0.1)


# ------------------------------------------------------------------ roles across processes
def test_a_role_revoked_in_another_process_stops_counting_in_a_long_running_one(home, ws, me, agent):
    """The server (another process on the same workspace) kept the agent's roles cached: a role a
    person revoked at the CLI still let the agent write alone, until some policy change."""
    ws.tools.add(note_write)
    ws.autonomy.add_rule("role:writer", "note.write", "allow", by=me)
    ws.principals.grant("role:writer", to=agent.key, by=me)
    server = _open(home)  # a long-running second process: `emergent serve`, a kernel
    try:
        server.tools.add(note_write)
        bot = server.principals.agent(agent.id)
        server.autonomy.snapshot()  # it has been serving for a while: the policy is loaded
        assert server.tools.call("note.write", {"topic": "t", "text": "before"}, principal=bot,
                                 confidence=1.0) == "written"
        ws.principals.revoke("role:writer", to=agent.key, by=me)  # the person, at the CLI
        _settle(ws, server)
        with pytest.raises(ApprovalPending):
            server.tools.call("note.write", {"topic": "t", "text": "after"}, principal=bot, confidence=1.0,
                              wait=False)
        assert RAN == [("t", "before")]
    finally:
        server.close()


def test_a_role_granted_in_another_process_takes_effect_in_a_long_running_one(home, ws, me, agent):
    """The other direction: a person quarantines an agent by granting it a role a deny rule names."""
    ws.tools.add(note_write)
    ws.autonomy.add_rule("agent:researcher", "note.write", "allow", by=me)
    ws.autonomy.add_rule("role:quarantined", "*", "deny", by=me)
    server = _open(home)
    try:
        server.tools.add(note_write)
        bot = server.principals.agent(agent.id)
        server.autonomy.snapshot()  # it has been serving for a while: the policy is loaded
        assert server.tools.call("note.write", {"topic": "t", "text": "before"}, principal=bot,
                                 confidence=1.0) == "written"
        ws.principals.grant("role:quarantined", to=agent.key, by=me)
        _settle(ws, server)
        from emergent.errors import PermissionDenied

        with pytest.raises(PermissionDenied, match="quarantined"):
            server.tools.call("note.write", {"topic": "t", "text": "after"}, principal=bot, confidence=1.0)
        assert RAN == [("t", "before")]
    finally:
        server.close()


# ------------------------------------------------------------------ MCP tokens
def _delete_principal(home: Any, key: str) -> None:
    """Another process removes a principal from the directory (the row goes)."""
    from emergent.autonomy.tables import principals as table

    other = _open(home)
    try:
        with other.sql.begin() as conn:
            assert conn.execute(table.delete().where(table.c.key == key)).rowcount == 1
    finally:
        other.close()


def test_an_mcp_token_of_a_principal_removed_elsewhere_stops_in_the_process_that_knew_it(home, ws, me, agent):
    """The MCP server's process re-issued the token's principal from what it once knew (the API's
    tokens ask the table each time): a removed agent kept acting over MCP until a restart."""
    from emergent.mcp.server import TokenVerifier
    from emergent.mcp.tokens import TokenStore

    tokens = TokenStore(ws.sql, principals=ws.principals, audit=ws.audit, clock=ws.clock)
    _, secret = tokens.create(agent, by=me, label="client")
    verifier = TokenVerifier(tokens, ws.autonomy.suspended)
    assert verifier.check(secret) is not None
    _delete_principal(home, agent.key)
    assert tokens.verify(secret) is None
    assert verifier.check(secret) is None


# ------------------------------------------------------------------ principals not issued by the directory
def _truncate_after(ws: Any, seq: int) -> None:
    from emergent.autonomy.tables import audit_log

    with ws.sql.begin() as conn:
        conn.execute(audit_log.delete().where(audit_log.c.seq > seq))


def test_a_hand_built_human_cannot_reanchor_a_truncated_audit_chain(ws, me):
    """Re-anchoring checked only ``kind == "human"``: a ``Principal("human", "mallory")`` built by
    hand anchored a truncated chain (verify then said intact) and the trail named a made-up person."""
    from emergent.principals import Principal

    ws.autonomy.add_rule("agent:x", "*", "deny", by=me)
    ws.autonomy.add_rule("agent:y", "*", "deny", by=me)
    keep = ws.audit.head().seq - 1
    _truncate_after(ws, keep)
    assert not ws.audit.verify().ok
    for forged in (Principal("human", "mallory"), Principal("human", me.id)):
        with pytest.raises(PrincipalError):
            ws.audit.reanchor(forged)
    assert not ws.audit.verify().ok  # the truncation is still reported
    assert all(e.actor != "human:mallory" for e in ws.audit.entries())


def test_something_that_only_looks_like_a_principal_cannot_reanchor_and_gets_a_clear_error(ws, me):
    from types import SimpleNamespace

    with pytest.raises(PrincipalError):
        ws.audit.reanchor(SimpleNamespace(kind="human", key="human:root", id="root"))


def test_a_principal_subclass_claiming_a_human_key_is_refused(ws, me, agent):
    """A subclass of Principal carrying the agent's own (valid) seal, whose ``key`` and ``is_human``
    say human: verify() checked the seal over kind and id only and handed the object back, so the agent
    approved its own request and paused autonomy as the person."""
    from emergent.principals import Principal

    class Posing(Principal):
        @property
        def key(self) -> str:
            return me.key

        @property
        def is_human(self) -> bool:
            return True

    posing = Posing(agent.kind, agent.id, agent.seal)
    ws.tools.add(note_write)
    with pytest.raises(ApprovalPending) as exc:
        ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=agent, wait=False)
    aid = exc.value.approval
    with pytest.raises(PrincipalError):
        ws.principals.verify(posing)
    with pytest.raises(PrincipalError):
        ws.autonomy.approvals.approve(aid, by=posing)
    with pytest.raises(PrincipalError):
        ws.autonomy.pause(by=posing)
    assert ws.autonomy.approvals.get(aid).status == "pending" and not ws.autonomy.paused


# ------------------------------------------------------------------ an agent token forgetting
def _api(ws: Any) -> Any:
    from fastapi.testclient import TestClient

    from emergent.api import create_app

    return TestClient(create_app(ws), raise_server_exceptions=False)


@pytest.mark.parametrize("stop", ["pause", "deny_rule"])
def test_an_agent_token_cannot_forget_its_memories_while_autonomy_is_paused_or_a_rule_denies_it(ws, me, agent, stop):
    """DELETE /v1/memory/{id} with an agent token went straight to the memory service: no gate, so a
    pause (which stops every agent action but a plain read) or a deny rule on the agent's memory did
    not stop a destructive forget."""
    mid = ws.memory.remember("the agent's own note", scope=agent.id, tier="ltm").id
    secret = ws.tokens.create(agent, "agent", by=me, ttl_s=600)[1]
    if stop == "pause":
        ws.autonomy.pause(by=me, reason="incident")
    else:
        ws.autonomy.add_rule(agent.key, "memory.*", "deny", by=me)
    with _api(ws) as client:
        r = client.delete(f"/v1/memory/{mid}", headers={"Authorization": f"Bearer {secret}"})
        assert r.status_code == 403, r.text
    assert ws.memory.get(mid, scope=agent.id).id == mid
    assert not [e for e in ws.audit.entries(kind="memory.forget") if e.actor == agent.key]


def test_an_agent_token_forgetting_its_own_memory_waits_for_a_person_then_the_approved_call_forgets_it(ws, me, agent):
    """A forget is destructive: by default a person approves it (202 with the approval, nothing forgotten
    yet); the approved call, resumed, forgets exactly that memory, audited as the agent's."""
    mid = ws.memory.remember("the agent's own note", scope=agent.id, tier="ltm").id
    other = ws.memory.remember("another note of the agent", scope=agent.id, tier="ltm").id
    secret = ws.tokens.create(agent, "agent", by=me, ttl_s=600)[1]
    auth = {"Authorization": f"Bearer {secret}"}
    with _api(ws) as client:
        r = client.delete(f"/v1/memory/{mid}", headers=auth)
        assert r.status_code == 202, r.text
        aid = r.json()["approval"]
        assert ws.memory.get(mid, scope=agent.id).id == mid  # nothing forgotten before a person decides
        ws.autonomy.approvals.approve(aid, by=me, reason="fine")
        done = client.post(f"/v1/approvals/{aid}/resume", headers=auth)
        assert done.status_code == 200 and done.json()["result"] == 1, done.text
    assert ws.memory.get(other, scope=agent.id).id == other
    assert [e for e in ws.audit.entries(kind="memory.forget") if e.actor == agent.key]

