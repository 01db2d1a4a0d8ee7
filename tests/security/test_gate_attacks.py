"""Governance attacks on the gate, each named after the attack, tried through the public API.

The attacker is an agent principal (``agent:researcher``) or code that tries to pass for a person.
"""

from __future__ import annotations

import threading
import time

import pytest

from emergent.errors import (
    ApprovalPending,
    ConfigError,
    PermissionDenied,
    PrincipalError,
    UsageError,
)
from emergent.principals import Principal
from emergent.tools.spec import SideEffect, tool


@tool(name="note.write", version="1.0.0", side_effect=SideEffect.WRITE, resource="topic")
def note_write(topic: str, text: str) -> str:
    """Write a note (a stand-in for any write action)."""
    RAN.append((topic, text))
    return "written"


@tool(name="note.send", version="1.0.0", side_effect=SideEffect.EXTERNAL, cost=5.0)
def note_send(text: str) -> str:
    """Send a note somewhere outside (external, with a declared cost)."""
    RAN.append(("sent", text))
    return "sent"


@tool(name="note.read", version="1.0.0")
def note_read() -> int:
    """Read something."""
    return len(RAN)


RAN: list[tuple[str, str]] = []


@pytest.fixture(autouse=True)
def _tools(ws):
    RAN.clear()
    ws.tools.add(note_write, note_send, note_read)
    yield
    RAN.clear()


def pending_id(ws, agent, tool_name="note.write", args=None):
    with pytest.raises(ApprovalPending) as exc:
        ws.tools.call(tool_name, args or {"topic": "t", "text": "x"}, principal=agent, wait=False)
    return exc.value.approval


# ------------------------------------------------------------------ identity
@pytest.mark.parametrize("name", ["notebookbot", "cli-evil", "client", "clinic", "scheduler-x", "user:",
                                  "user:local", "human:root", "cli", "notebook"])
def test_a_name_that_looks_like_a_person_is_not_a_principal(ws, name):
    with pytest.raises(PrincipalError, match="not a principal"):
        ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=name)
    assert RAN == []


def test_a_call_without_a_principal_is_refused_and_says_how_to_get_one(ws):
    with pytest.raises(PrincipalError) as exc:
        ws.tools.call("note.read", {})
    assert "ws.principal" in str(exc.value)


def test_a_hand_built_human_principal_is_refused(ws, me):
    forged = Principal("human", me.id)
    with pytest.raises(PrincipalError, match="not issued by this workspace"):
        ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=forged)
    assert any(e.kind == "tool.refused" for e in ws.audit.entries())


def test_a_principal_of_another_workspace_is_refused(ws, tmp_path):
    from emergent import Workstation

    with Workstation.open(tmp_path / "other", embedder="hashing") as other:
        stranger = other.principal
        with pytest.raises(PrincipalError, match="not issued by this workspace"):
            ws.tools.call("note.read", {}, principal=stranger)


def test_the_environment_cannot_make_a_process_another_human(tmp_path, monkeypatch):
    from emergent import Workstation

    monkeypatch.setenv("EMERGENT_PRINCIPAL", "human:root")
    with Workstation.open(tmp_path / "w", embedder="hashing") as w, pytest.raises(ConfigError, match="names a human"):
        _ = w.principal


def test_the_environment_can_only_lower_trust_to_an_agent_that_exists(tmp_path, monkeypatch):
    from emergent import Workstation

    monkeypatch.setenv("EMERGENT_PRINCIPAL", "agent:ghost")
    with Workstation.open(tmp_path / "w", embedder="hashing") as w, pytest.raises(PrincipalError, match="does not exist"):
        _ = w.principal


def test_an_agent_cannot_create_agents(ws, agent):
    with pytest.raises(PrincipalError, match="only a human creates an agent"):
        ws.principals.agent("minion", created_by=agent)


# ------------------------------------------------------------------ roles, confidence, cost
def test_roles_declared_by_the_caller_are_refused(ws, agent):
    with pytest.raises(UsageError, match="does not take roles"):
        ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=agent, roles=["role:admin"])


def test_a_role_rule_applies_only_once_a_human_granted_the_role(ws, me, agent):
    ws.autonomy.add_rule("role:admin", "note.write", "allow", by=me)
    with pytest.raises(ApprovalPending):
        ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=agent, confidence=1.0, wait=False)
    with pytest.raises(PrincipalError, match="may not change roles"):
        ws.principals.grant("role:admin", to=agent.key, by=agent)
    ws.principals.grant("role:admin", to=agent.key, by=me)
    assert ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=agent, confidence=1.0) == "written"


def test_leaving_out_confidence_does_not_skip_the_threshold(ws, me, agent):
    ws.autonomy.add_rule("agent:researcher", "note.write", "allow", by=me)
    with pytest.raises(ApprovalPending):
        ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=agent, wait=False)
    assert RAN == []
    assert ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=agent, confidence=0.9) == "written"


def test_declaring_cost_zero_does_not_dodge_a_cost_rule(ws, me, agent):
    ws.autonomy.add_rule("agent:*", "note.send", "allow", max_cost=1.0, by=me)
    ws.autonomy.add_rule("agent:*", "note.send", "deny", min_cost=1.0, by=me)
    with pytest.raises(PermissionDenied, match="deny"):
        ws.tools.call("note.send", {"text": "x"}, principal=agent, cost=0, confidence=1.0)
    assert RAN == []


# ------------------------------------------------------------------ approvals
def test_approved_is_not_a_caller_argument(ws, agent):
    with pytest.raises(UsageError, match="does not take approved"):
        ws.tools.call("note.send", {"text": "x"}, principal=agent, approved="anything")
    assert RAN == []


def test_one_approval_cannot_be_resumed_three_times(ws, me, agent):
    aid = pending_id(ws, agent)
    ws.autonomy.approvals.approve(aid, by=me)
    assert ws.tools.resume(aid) == "written"
    for _ in range(2):
        with pytest.raises(PermissionDenied, match="already used"):
            ws.tools.resume(aid)
    assert len(RAN) == 1


def test_the_requester_cannot_approve_its_own_request(ws, me, agent):
    aid = pending_id(ws, agent)
    with pytest.raises(PrincipalError):
        ws.autonomy.approvals.approve(aid, by=agent)
    ws.autonomy.add_rule(me.key, "note.write", "ask", by=me)
    with pytest.raises(ApprovalPending) as exc:
        ws.tools.call("note.write", {"topic": "mine", "text": "x"}, principal=me, wait=False)
    with pytest.raises(PrincipalError, match="may not approve it too"):
        ws.autonomy.approvals.approve(exc.value.approval, by=me)
    assert RAN == []


def test_an_agent_cannot_approve_another_agents_request(ws, me, agent):
    aid = pending_id(ws, agent)
    other = ws.principals.agent("helper", created_by=me)
    with pytest.raises(PrincipalError, match="only a human approves"):
        ws.autonomy.approvals.approve(aid, by=other)
    with pytest.raises(PrincipalError):
        ws.autonomy.approvals.reject(aid, by=other)


def test_a_resumed_call_runs_the_approved_version_and_arguments_only(ws, me, agent):
    aid = pending_id(ws, agent, args={"topic": "approved", "text": "ok"})
    ws.autonomy.approvals.approve(aid, by=me)

    @tool(name="note.write", version="2.0.0", side_effect=SideEffect.WRITE, resource="topic")
    def newer(topic: str, text: str) -> str:
        """A newer version registered after the approval."""
        RAN.append(("v2", text))
        return "v2"

    ws.tools.add(newer)
    assert ws.tools.resume(aid) == "written"
    assert RAN == [("approved", "ok")]


def test_an_approval_is_bound_to_its_arguments(ws, me, agent):
    aid = pending_id(ws, agent, args={"topic": "a", "text": "harmless"})
    with ws.sql.begin() as c:  # tamper with the stored arguments after filing
        from emergent.autonomy.tables import approvals

        c.execute(approvals.update().where(approvals.c.id == aid).values(args='{"topic": "a", "text": "evil"}'))
    ws.autonomy.approvals.approve(aid, by=me)
    from emergent.errors import ApprovalStaleError

    with pytest.raises(ApprovalStaleError):
        ws.tools.resume(aid)
    assert RAN == []


# ------------------------------------------------------------------ pause and suspension
def test_pause_stops_a_call_already_waiting_for_approval(ws, me, agent):
    box: list[BaseException | str] = []

    def waiting() -> None:
        try:
            box.append(ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=agent, wait=10))
        except BaseException as exc:  # noqa: BLE001
            box.append(exc)

    t = threading.Thread(target=waiting)
    t.start()
    deadline = time.time() + 5
    while not ws.autonomy.approvals.list() and time.time() < deadline:
        time.sleep(0.02)
    (req,) = ws.autonomy.approvals.list()
    ws.autonomy.pause(by=me, reason="incident")
    ws.autonomy.approvals.approve(req.id, by=me)
    t.join(10)
    assert isinstance(box[0], PermissionDenied) and "paused" in str(box[0])
    with pytest.raises(PermissionDenied, match="paused"):
        ws.tools.resume(req.id)
    assert RAN == []


def test_pause_stops_agents_and_services_but_not_the_human(ws, me, agent):
    ws.autonomy.add_rule("*", "note.*", "allow", by=me)
    ws.autonomy.pause(by=me, reason="stop")
    scheduler = ws.principals.service("scheduler")
    for who in (agent, scheduler):
        with pytest.raises(PermissionDenied, match="paused"):
            ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=who, confidence=1)
        with pytest.raises(PermissionDenied, match="paused"):
            ws.tools.call("note.send", {"text": "x"}, principal=who, confidence=1)
    assert ws.tools.call("note.read", {}, principal=agent) == 0
    assert ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=me) == "written"


def test_a_suspended_agents_approved_call_does_not_run(ws, me, agent):
    aid = pending_id(ws, agent)
    ws.autonomy.approvals.approve(aid, by=me)
    ws.autonomy.suspend(agent.key, by=me, reason="misbehaved")
    with pytest.raises(PermissionDenied, match="suspended"):
        ws.tools.resume(aid)
    assert RAN == []


# ------------------------------------------------------------------ governance changes
@pytest.mark.parametrize("action", ["pause", "resume", "suspend", "rule", "override", "threshold", "default",
                                    "isolation"])
def test_an_agent_cannot_change_the_governance(ws, agent, action):
    a = ws.autonomy
    calls = {
        "pause": lambda: a.pause(by=agent), "resume": lambda: a.resume(by=agent),
        "suspend": lambda: a.suspend("agent:other", by=agent),
        "rule": lambda: a.add_rule("agent:researcher", "*", "allow", by=agent),
        "override": lambda: a.override("agent:researcher", "*", "allow", by=agent, reason="me"),
        "threshold": lambda: a.set_threshold("write", 0.0, by=agent),
        "default": lambda: a.set_default("write", "allow", by=agent),
        "isolation": lambda: a.require_isolation("none", by=agent),
    }
    before = len(ws.audit.entries())
    with pytest.raises(PrincipalError):
        calls[action]()
    assert len(ws.audit.entries()) == before


def test_a_service_cannot_change_the_governance(ws):
    with pytest.raises(PrincipalError):
        ws.autonomy.resume(by=ws.principals.service("scheduler"))


def test_an_agent_cannot_install_or_enable_tools(ws, agent, tmp_path):
    mod = tmp_path / "evil.py"
    mod.write_text("open('/tmp/emergent-evil-installed','w').write('x')\n")
    with pytest.raises(PrincipalError):
        ws.tools.install(str(mod), by=agent)
    with pytest.raises(PrincipalError):
        ws.tools.enable("note.write", by=agent)
    import os

    assert not os.path.exists("/tmp/emergent-evil-installed")


def test_every_decision_and_call_is_in_the_audit_chain(ws, me, agent):
    aid = pending_id(ws, agent)
    ws.autonomy.approvals.approve(aid, by=me)
    ws.tools.resume(aid)
    kinds = [(e.kind, e.actor) for e in ws.audit.entries()]
    for want in [("approval.requested", agent.key), ("approval.approved", me.key),
                 ("approval.consumed", agent.key), ("tool.intent", agent.key), ("tool.call", agent.key)]:
        assert want in kinds, want
    intent = next(e for e in ws.audit.entries() if e.kind == "tool.intent")
    assert intent.data["args"] == {"topic": "t", "text": "x"} and intent.data["approval"] == aid
    assert ws.audit.verify().ok


def test_a_url_rule_cannot_be_dodged_by_another_spelling_of_the_url(ws, me, agent):
    from emergent.tools.runner import canonical_resource

    ws.autonomy.add_rule("agent:*", "http_get", "deny", resource="https://intranet.example/*", by=me)
    for spelling in ("HTTPS://Intranet.Example/x", "https://intranet.example:443/x", "https://intranet.example./x"):
        assert canonical_resource("url", spelling) == "https://intranet.example/x"
        with pytest.raises(PermissionDenied, match="deny"):
            ws.tools.call("http_get", {"url": spelling}, principal=agent)


def test_a_refused_call_reads_none_of_its_files(ws, me, agent):
    read: list[str] = []

    def reads(kwargs, ctx):
        read.append(kwargs["path"])
        return {kwargs["path"]: b"x"}

    @tool(name="probe.read", version="1.0.0", resource="path", reads=reads)
    def probe(path: str) -> str:
        """Read a file (a probe for whether refused calls touch the disk)."""
        return path

    ws.tools.add(probe)
    ws.autonomy.add_rule("agent:researcher", "probe.read", "deny", by=me)
    with pytest.raises(PermissionDenied):
        ws.tools.call("probe.read", {"path": "secret.txt"}, principal=agent)
    assert read == []
    assert ws.tools.call("probe.read", {"path": "open.txt"}, principal=me) == "open.txt" and read == ["open.txt"]


def test_deleting_the_anchor_directory_is_detected_and_a_human_can_reanchor(ws, me, agent, tmp_path):
    import shutil

    ws.tools.call("note.write", {"topic": "t", "text": "x"}, principal=me)
    assert ws.audit.verify().ok
    shutil.rmtree(ws.audit.anchor.dir)
    rep = ws.audit.verify()
    assert not rep.ok and "no anchor" in rep.problems[-1][1]
    with pytest.raises(Exception, match="only a human"):
        ws.audit.reanchor(agent)
    ws.audit.reanchor(me)
    assert ws.audit.verify().ok and ws.audit.entries()[-1].kind == "audit.reanchored"


def test_an_entry_whose_write_failed_is_kept_but_marked(ws, me):
    from emergent.errors import AuditWriteError

    ws.audit.flush()
    real = ws.audit._chain
    ws.audit.busy_retry_s = 0.0

    def broken(batch):
        raise RuntimeError("disk full")

    ws.audit._chain = broken
    with pytest.raises(AuditWriteError):
        ws.autonomy.pause(by=me, reason="x")
    assert not ws.autonomy.paused  # the action did not happen
    ws.audit._chain = real
    ws.audit.flush()
    last = ws.audit.entries()[-1]
    assert last.kind == "autonomy.paused" and last.data["audit_write_failed"] is True


def test_an_audit_entry_cannot_claim_a_system_actor_or_a_lookalike_principal(ws):
    from types import SimpleNamespace

    for claimed in ("system:root", "system:gate-but-not-really", "system:", "human:root",
                    SimpleNamespace(key="human:root")):
        with pytest.raises(ValueError, match="need a Principal"):
            ws.audit.append("note", claimed, {})
    ws.audit.append("note", "system:gate", {})  # the system's own, closed list
