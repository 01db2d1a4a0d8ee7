"""The ToolMarketplace and ApprovalsInbox widgets, driven by clicks."""

import time

import pytest

from emergent import Workstation


@pytest.fixture
def ws(home):
    w = Workstation.open(home, embedder="hashing")
    yield w
    w.close()


def test_marketplace_runs_a_tool_from_its_generated_form(ws):
    from emergent.ui.marketplace import ToolMarketplace

    m = ToolMarketplace(ws.tools)
    m.search.value = "files."
    assert set(m.picker.options) == {"files.delete", "files.list", "files.read", "files.write"}
    m.picker.value = "files.write"
    assert set(m.fields) == {"path", "content", "append"}
    m.fields["path"].value, m.fields["content"].value = "hello.txt", "hi there"
    m.run_button.click()
    assert "hello.txt" in m.output.value and (ws.path / "files" / "hello.txt").read_text() == "hi there"
    m.version.value = "1.0.0"
    assert "1 calls" in m.info.value
    m.toggle.click()
    assert "disabled" in m.info.value and not ws.tools.versions("files.write")[0].enabled
    m.run_button.click()
    assert "disabled" in m.output.value


def test_inbox_approval_resumes_the_waiting_call(ws):
    from emergent.ui.approvals import ApprovalsInbox

    fut = ws.tools.submit("files.write", {"path": "a.txt", "content": "x"}, actor="agent:scout")
    inbox = ApprovalsInbox(ws.autonomy, by="user:ana")
    for _ in range(300):
        inbox.refresh()
        if inbox.picker.value:
            break
        time.sleep(0.01)
    assert "files.write@1.0.0" in inbox.detail.value
    inbox.reason.value = "looks fine"
    inbox.approve_button.click()
    assert fut.result(timeout=5) == {"path": "a.txt", "bytes": 1}
    assert "approved" in inbox.status.value and inbox.picker.value is None
    inbox.pause_toggle.value = True
    assert ws.autonomy.paused


def test_policy_editor_applies_yaml_and_explains(ws):
    from emergent.ui.approvals import PolicyEditor

    ed = PolicyEditor(ws.autonomy, by="user:ana")
    ed.text.value = 'rules:\n  - {subject: "agent:*", tool: "files.*", effect: deny}\n'
    ed.apply_button.click()
    assert ed.result.value == "applied 1 rules" and len(ws.autonomy.rules()) == 1
    ed.actor.value, ed.tool.value, ed.level.value = "agent:x", "files.read", "read"
    ed.explain_button.click()
    assert "deny" in ed.result.value and "deny overrides" in ed.result.value
    ed.text.value = "rules: [{subject: x}]"
    ed.apply_button.click()
    assert "lacks" in ed.result.value and len(ws.autonomy.rules()) == 1
