"""The browser tools through ``ws.tools.call``, as a person and as an agent, on a real Chromium and the
loopback DemoSite: registered from the entry point with their side effects; a person opens, fills (a
secret by reference, never in the audit trail), submits; an agent's read is allowed but its action on
the page (external) waits for a person's approval and then runs as the agent; a deny rule refuses; an
agent cannot act in a person's session; extraction and replay return JSON data."""

from __future__ import annotations

import json
from typing import Any

import pytest
from _surfaces import PASSWORD, login_script, table_template

from emergent.browser.model import Action, Script, Target
from emergent.errors import ApprovalPending, PermissionDenied, ToolExecutionError, ValidationError


@pytest.fixture(scope="module")
def saved(ws: Any, human: Any, site: Any) -> None:
    ws.browser.save_script(login_script(site), by=human)
    ws.browser.save_template(table_template(site), by=human)


def call(ws: Any, tool: str, args: dict[str, Any], who: Any, **kw: Any) -> Any:
    return ws.tools.call(tool, args, principal=who, **kw)


def test_the_tools_come_from_the_entry_point_with_their_side_effects(ws: Any) -> None:
    specs = {name: ws.tools.registry.resolve(name) for name in
             ("browser.open", "browser.act", "browser.extract", "browser.replay")}
    assert {n: str(s.side_effect) for n, s in specs.items()} == {
        "browser.open": "read", "browser.act": "external", "browser.extract": "read", "browser.replay": "external"}
    assert {n: (s.resource_arg, s.resource_kind) for n, s in specs.items()} == {
        "browser.open": ("url", "url"), "browser.act": (None, None), "browser.extract": ("url", "url"),
        "browser.replay": ("script", None)}
    assert all(s.permissions == ("net", "browser") and s.tags == ("browser",) and s.version == "1.0.0"
               for s in specs.values())
    closer = ws.tools.registry.resolve("browser.close")
    assert (str(closer.side_effect), closer.permissions, closer.network) == ("read", ("browser",), False)


def test_an_agent_closes_its_own_session_even_while_autonomy_is_paused(ws: Any, human: Any, agent: Any,
                                                                       site: Any) -> None:
    sid = call(ws, "browser.open", {"url": site.url("/login")}, agent)["session"]
    mine = call(ws, "browser.open", {"url": site.url("/login")}, human)["session"]
    ws.autonomy.pause(by=human, reason="lunch")
    try:
        with pytest.raises(PermissionDenied, match="paused"):
            call(ws, "browser.open", {"url": site.url("/login")}, agent)
        with pytest.raises(PermissionDenied, match="belongs to"):
            call(ws, "browser.close", {"session": mine}, agent)
        assert call(ws, "browser.close", {"session": sid}, agent) == {"session": sid, "closed": True}
    finally:
        ws.autonomy.resume(by=human)
    open_ids = {s["id"] for s in ws.browser.sessions()}
    assert sid not in open_ids and mine in open_ids
    call(ws, "browser.close", {"session": mine}, human)


def test_a_person_opens_fills_a_secret_by_reference_and_submits(ws: Any, human: Any, site: Any) -> None:
    opened = call(ws, "browser.open", {"url": site.url("/login")}, human)
    assert (opened["status"], opened["title"], opened["url"]) == (200, "Sign in", site.url("/login"))
    sid = opened["session"]
    call(ws, "browser.act", {"session": sid, "action": "fill", "target": "label=Email",
                             "value": "lin@example.org"}, human)
    call(ws, "browser.act", {"session": sid, "action": "fill", "target": "label=Password",
                             "value": "${secrets.portal_password}"}, human)
    call(ws, "browser.act", {"session": sid, "action": "select", "target": "label=Country", "value": "Canada"},
         human)
    before = len(site.submissions)
    call(ws, "browser.act", {"session": sid, "action": "click", "target": 'role=button[name="Sign in"]',
                             "submits": True}, human)
    call(ws, "browser.act", {"session": sid, "action": "wait"}, human)  # the page's load
    call(ws, "browser.act", {"session": sid, "action": "wait", "target": "#who"}, human)
    got = site.submissions[before]
    assert (got["email"], got["password"], got["country"]) == ("lin@example.org", PASSWORD, "ca")
    ws.browser.session(sid, by=human).close()
    ws.audit.flush()
    trail = json.dumps([e.to_dict() for e in ws.audit.entries()])
    assert PASSWORD not in trail
    assert "browser.action" in trail
    assert "${secrets.portal_password}" in trail or "(secret" in trail


def test_an_agents_action_waits_for_a_persons_approval_then_runs_as_the_agent(ws: Any, human: Any, agent: Any,
                                                                             site: Any) -> None:
    opened = call(ws, "browser.open", {"url": site.url("/login")}, agent)  # read: allowed by default
    sid = opened["session"]
    args = {"session": sid, "action": "fill", "target": "label=Email", "value": "agent@example.org"}
    with pytest.raises(ApprovalPending) as pending:
        call(ws, "browser.act", args, agent, wait=False, confidence=0.99)
    approval = pending.value.fields["approval"]
    assert ws.autonomy.approvals.get(approval).tool == "browser.act@1.0.0"
    page = ws.browser.session(sid, by=agent)
    assert page.run(lambda p: p.input_value("#email")) == ""  # nothing happened yet
    ws.autonomy.approvals.approve(approval, by=human, reason="fill only")
    out = ws.tools.resume(approval)
    assert out["session"] == sid
    assert page.run(lambda p: p.input_value("#email")) == "agent@example.org"
    ws.audit.flush()
    acted = [e for e in ws.audit.entries(kind="browser.action") if e.data.get("session") == sid]
    assert acted and all(e.actor == agent.key for e in acted)
    page.close()


def test_a_deny_rule_refuses_before_any_page_is_opened(ws: Any, human: Any, agent: Any, site: Any) -> None:
    rule = ws.autonomy.add_rule(f"agent:{agent.id}", "browser.open", "deny", resource=f"http://{site.host}/table*",
                                by=human)
    try:
        before = len(ws.browser.sessions())
        with pytest.raises(PermissionDenied, match="may not run browser.open"):
            call(ws, "browser.open", {"url": site.url("/table?page=2")}, agent)
        assert len(ws.browser.sessions()) == before
        opened = call(ws, "browser.open", {"url": site.url("/login")}, agent)  # another URL: allowed
        ws.browser.session(opened["session"], by=agent).close()
    finally:
        ws.autonomy.remove_rule(rule.id, by=human)


def test_an_agent_cannot_act_in_a_persons_session(ws: Any, human: Any, agent: Any, site: Any) -> None:
    rule = ws.autonomy.add_rule(f"agent:{agent.id}", "browser.act", "allow", by=human)
    try:
        sid = call(ws, "browser.open", {"url": site.url("/login")}, human)["session"]
        with pytest.raises(PermissionDenied):
            call(ws, "browser.act", {"session": sid, "action": "click", "target": "text=Sign in"}, agent,
                 confidence=0.99)
        ws.browser.session(sid, by=human).close()
    finally:
        ws.autonomy.remove_rule(rule.id, by=human)


def test_extract_returns_json_rows_across_pages(ws: Any, human: Any, saved: None) -> None:
    from emergent.browser.demo import TABLE

    out = call(ws, "browser.extract", {"template": "assays"}, human)
    assert out["count"] == len(TABLE) == len(out["rows"])
    assert out["columns"] == ["compound", "ic50_nm", "measured"]
    assert out["rows"][0] == {"compound": TABLE[0]["compound"], "ic50_nm": TABLE[0]["ic50_nm"],
                              "measured": TABLE[0]["measured"]}  # a date as ISO text
    assert out["dtypes"]["measured"] == "Date"
    json.dumps(out)
    one = call(ws, "browser.extract", {"template": "assays", "max_pages": 1}, human)
    assert one["rows"] == out["rows"][:10]
    with pytest.raises(ValidationError, match="needs a template"):
        call(ws, "browser.extract", {}, human)


def test_replay_returns_the_result_as_json_and_check_raises_on_failure(ws: Any, human: Any, site: Any,
                                                                      saved: None) -> None:
    before = len(site.submissions)
    out = call(ws, "browser.replay", {"script": "portal-login", "params": {"email": "r@example.org"}}, human)
    assert (out["status"], out["script"], out["healed"]) == ("completed", "portal-login", 0)
    assert [s["status"] for s in out["steps"]] == ["ok"] * 5
    assert site.submissions[before]["email"] == "r@example.org"
    json.dumps(out)
    broken = Script(name="broken", actions=[
        Action(kind="navigate", value=site.url("/login")),
        Action(kind="click", target=Target.of("#no-such-button"), timeout_ms=300)])
    ws.browser.save_script(broken, by=human)
    out = call(ws, "browser.replay", {"script": "broken", "heal": False}, human)
    assert out["status"] == "failed" and out["steps"][-1]["status"] == "failed"
    with pytest.raises(ToolExecutionError, match="replay of broken 1.0.0 failed") as failed:
        call(ws, "browser.replay", {"script": "broken", "heal": False, "check": True}, human)
    assert failed.value.hint and "emergent browser runs" in failed.value.hint


def test_a_blocked_first_navigation_leaves_no_session_open(ws: Any, human: Any, site: Any) -> None:
    before = {s["id"] for s in ws.browser.sessions()}
    with pytest.raises(PermissionDenied) as refused:
        call(ws, "browser.open", {"url": site.other + "/login"}, human)  # localhost: off the allow-list
    assert refused.value.hint and "ALLOW_HOSTS" in refused.value.hint
    assert {s["id"] for s in ws.browser.sessions()} == before


def test_upload_sends_a_workspace_file_and_refuses_a_path_outside_it(ws: Any, human: Any, site: Any) -> None:
    (ws.path / "files" / "reports").mkdir(parents=True, exist_ok=True)
    (ws.path / "files" / "reports" / "r1.csv").write_bytes(b"compound,ic50\nCMP-0001,4.75\n")
    sid = call(ws, "browser.open", {"url": site.url("/login")}, human)["session"]
    try:
        with pytest.raises(ValidationError):
            call(ws, "browser.act", {"session": sid, "action": "upload", "target": "label=Report",
                                     "value": "../../etc/passwd"}, human)
        with pytest.raises(ValidationError, match="needs a value"):
            call(ws, "browser.act", {"session": sid, "action": "upload", "target": "label=Report"}, human)
        call(ws, "browser.act", {"session": sid, "action": "upload", "target": "label=Report",
                                 "value": "reports/r1.csv"}, human)
        before = len(site.uploads)
        call(ws, "browser.act", {"session": sid, "action": "click", "target": "testid=sign-in"}, human)
        call(ws, "browser.act", {"session": sid, "action": "wait", "target": "#who"}, human)
        assert site.uploads[before]["head"].startswith(b"compound,ic50")
        rows = call(ws, "browser.extract", {"template": {"name": "who", "rows": "#who",
                                                          "fields": [{"name": "text"}]}, "session": sid}, human)
        assert rows["rows"] == [{"text": "Signed in as"}]
    finally:
        ws.browser.session(sid, by=human).close()


def test_a_navigation_rule_covers_the_pages_a_template_or_script_opens(ws: Any, human: Any, agent: Any,
                                                                      site: Any, saved: None) -> None:
    """browser.extract names no URL when the template brings its own, so the gate's tool rule cannot see it;
    every navigation is put to the policy as browser.navigate, which is where a URL rule belongs."""
    rule = ws.autonomy.add_rule(f"agent:{agent.id}", "browser.navigate", "deny",
                                resource=f"http://{site.host}/table*", by=human)
    try:
        with pytest.raises(PermissionDenied):
            call(ws, "browser.extract", {"template": "assays"}, agent)
        assert call(ws, "browser.extract", {"template": "assays", "max_pages": 1}, human)["count"] == 10
    finally:
        ws.autonomy.remove_rule(rule.id, by=human)
