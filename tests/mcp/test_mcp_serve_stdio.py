"""`emergent mcp serve` over stdio, driven by the official SDK client (a real subprocess).

Every call passes the same gate as an in-process call, as the session's principal: the OS user,
or the existing agent the server was started `--as`."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from emergent.mcp.server import RESUME, STATUS

EMERGENT = Path(sys.executable).with_name("emergent")


def run(fn):
    return anyio.run(fn)


def test_a_client_lists_the_enabled_tools_with_schemas_and_annotations(ws, me, stdio_session):
    ws.tools.disable("files.list", by=me)

    async def main():
        async with stdio_session() as s:
            return {t.name: t for t in (await s.list_tools()).tools}

    tools = run(main)
    assert "files.list" not in tools  # disabled: not offered
    recall, remember, delete = tools["memory.recall"], tools["memory.remember"], tools["files.delete"]
    assert recall.inputSchema == ws.tools.resolve("memory.recall").args_schema
    assert recall.annotations.readOnlyHint is True and recall.annotations.destructiveHint is False
    assert remember.annotations.readOnlyHint is False and remember.annotations.destructiveHint is False
    assert delete.annotations.destructiveHint is True
    assert tools["notebook.run"].annotations.openWorldHint is True  # runs code on the host
    assert recall.meta == {"emergent/version": ws.tools.resolve("memory.recall").version,
                           "emergent/side_effect": "read"}
    assert tools[STATUS].annotations.readOnlyHint is True and RESUME in tools
    assert recall.description


def test_a_humans_calls_go_through_the_gate_and_are_audited_under_them(ws, me, stdio_session):
    async def main():
        async with stdio_session() as s:
            kept = await s.call_tool("memory.remember", {"text": "the ring buffer holds 4096 entries"})
            found = await s.call_tool("memory.recall", {"query": "ring buffer size"})
            return kept, found

    kept, found = run(main)
    assert not kept.isError and not found.isError
    mid = kept.content[0].text
    assert found.structuredContent["result"][0]["id"] == mid
    ws.audit.flush()
    (started,) = ws.audit.entries(kind="mcp.session_started")
    assert started.actor == me.key and started.data["transport"] == "stdio"
    calls = [(e.actor, e.data["tool"].split("@")[0], e.data["outcome"]) for e in ws.audit.entries(kind="tool.call")]
    assert (me.key, "memory.remember", "ok") in calls and (me.key, "memory.recall", "ok") in calls


def test_a_policy_deny_reaches_the_client_as_an_error_with_its_hint(ws, me, agent, stdio_session):
    ws.autonomy.add_rule(agent.key, "files.write", "deny", by=me)

    async def main():
        async with stdio_session("--as", agent.key) as s:
            return await s.call_tool("files.write", {"path": "notes.txt", "content": "x"})

    res = run(main)
    assert res.isError
    assert res.structuredContent["status"] == "denied" and res.structuredContent["error"] == "PermissionDenied"
    assert "agent:researcher may not run files.write" in res.content[0].text and "hint:" in res.content[0].text
    assert not (ws.path / "files" / "notes.txt").exists()


def test_an_ask_reaches_the_client_as_a_pending_approval_that_runs_once_a_human_approves(ws, me, agent,
                                                                                         stdio_session):
    async def main():
        async with stdio_session("--as", agent.key) as s:
            asked = await s.call_tool("memory.remember", {"text": "agents write through approvals"})
            aid = asked.structuredContent["approval"]
            before = await s.call_tool(STATUS, {"approval": aid})
            early = await s.call_tool(RESUME, {"approval": aid})
            await anyio.to_thread.run_sync(lambda: ws.autonomy.approvals.approve(aid, by=me, reason="fine"))
            after = await s.call_tool(STATUS, {"approval": aid})
            ran = await s.call_tool(RESUME, {"approval": aid})
            twice = await s.call_tool(RESUME, {"approval": aid})
            return asked, before, early, after, ran, twice

    asked, before, early, after, ran, twice = run(main)
    assert not asked.isError
    assert asked.structuredContent["status"] == "pending_approval"
    assert asked.structuredContent["tool"] == "memory.remember" and "approve" in asked.structuredContent["hint"]
    aid = asked.structuredContent["approval"]
    assert ws.autonomy.approvals.get(aid).actor == agent.key
    assert before.structuredContent["status"] == "pending"
    assert early.structuredContent["status"] == "pending_approval"  # resuming too early: still pending
    assert after.structuredContent["status"] == "approved" and after.structuredContent["decided_by"] == me.key
    assert not ran.isError
    mem_id = ran.content[0].text
    assert ws.memory.get(mem_id, scope=agent.id).text == "agents write through approvals"  # its own scope
    assert twice.isError and "already used" in twice.content[0].text  # an approval runs once
    assert ws.autonomy.approvals.get(aid).status == "consumed"


def test_an_agent_can_state_its_confidence_in_the_request_meta(ws, me, agent, stdio_session):
    ws.autonomy.add_rule(agent.key, "memory.remember", "allow", by=me)

    async def main():
        async with stdio_session("--as", agent.key) as s:
            low = await s.call_tool("memory.remember", {"text": "unsure"})
            sure = await s.call_tool("memory.remember", {"text": "sure"}, meta={"emergent/confidence": 0.9})
            return low, sure

    low, sure = run(main)
    assert low.structuredContent["status"] == "pending_approval"  # allowed, but no confidence given
    assert sure.structuredContent is None and not sure.isError  # over the 0.6 threshold for writes: it ran


def test_attack_arguments_and_meta_claiming_another_principal_get_nothing_more(ws, me, agent, stdio_session):
    ws.memory.remember("the human's private note", scope=me.id)

    async def main():
        async with stdio_session("--as", agent.key) as s:
            claim = await s.call_tool("memory.remember", {"text": "x", "principal": me.key})
            meta = await s.call_tool("memory.remember", {"text": "y"},
                                     meta={"principal": me.key, "emergent/principal": me.key, "user": me.key})
            foreign = await s.call_tool("memory.recall", {"query": "private note", "scope": me.id})
            return claim, meta, foreign

    claim, meta, foreign = run(main)
    assert claim.isError and claim.structuredContent["error"] == "ValidationError"  # no such argument
    assert meta.structuredContent["status"] == "pending_approval"  # still the agent: it asks
    assert ws.autonomy.approvals.get(meta.structuredContent["approval"]).actor == agent.key
    assert foreign.isError and foreign.structuredContent["status"] == "denied"  # another's scope


def test_attack_a_session_cannot_see_or_resume_another_principals_approval(ws, me, agent, stdio_session):
    from emergent.errors import ApprovalPending

    other = ws.principals.agent("other", created_by=me)
    with pytest.raises(ApprovalPending) as pending:
        ws.tools.call("files.write", {"path": "x.txt", "content": "x"}, principal=other, wait=False)
    aid = pending.value.fields["approval"]
    ws.autonomy.approvals.approve(aid, by=me)

    async def main():
        async with stdio_session("--as", agent.key) as s:
            return await s.call_tool(STATUS, {"approval": aid}), await s.call_tool(RESUME, {"approval": aid})

    status, resume = run(main)
    assert status.isError and resume.isError and "no approval" in resume.content[0].text
    assert ws.autonomy.approvals.get(aid).status == "approved"  # untouched: still the requester's to run


def test_serve_refuses_to_act_as_a_person_or_an_agent_that_does_not_exist(ws):
    _ = ws.principal
    env = {**os.environ, "EMERGENT_EMBEDDER": "hashing"}
    person = subprocess.run([str(EMERGENT), "mcp", "serve", "--as", "human:admin"], capture_output=True, text=True,
                            timeout=60, env=env, stdin=subprocess.DEVNULL)
    ghost = subprocess.run([str(EMERGENT), "mcp", "serve", "--as", "agent:ghost"], capture_output=True, text=True,
                           timeout=60, env=env, stdin=subprocess.DEVNULL)
    assert person.returncode == 2 and "error:" in person.stderr and "Traceback" not in person.stderr
    assert ghost.returncode == 2 and "does not exist" in ghost.stderr and person.stdout == ghost.stdout == ""
