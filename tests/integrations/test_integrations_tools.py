"""The integrations as tools (registry, entry point, the gate) and the test servers' own checks."""

from __future__ import annotations

import httpx
import pytest
from vendor_harness import GraphQLValidator, Swagger2Validator, instance, openapi, spec

from emergent import Workstation
from emergent.errors import CredentialError
from emergent.tools.integrations import INTEGRATIONS, tool_specs
from emergent.tools.spec import SideEffect

VENDORS = {"github", "gitlab", "jira", "confluence", "slack", "linear", "notion", "pagerduty", "webhook", "email"}


def test_registry_lists_every_integration_and_each_operation_is_a_tool() -> None:
    assert set(INTEGRATIONS.names()) == VENDORS
    specs = {s.name: s for s in tool_specs()}
    for vendor in VENDORS:
        cls = INTEGRATIONS.get(vendor)
        for op, level in cls.operations.items():
            tool = specs[f"{vendor}.{op}"]
            assert tool.side_effect is SideEffect(level) and "ctx" not in tool.args_schema["properties"]
    assert specs["slack.post_message"].args_schema["required"] == ["channel", "text"]
    assert specs["github.list_issues"].side_effect is SideEffect.READ
    assert specs["jira.create_issue"].side_effect is SideEffect.EXTERNAL
    with pytest.raises(KeyError, match="did you mean 'github'"):
        INTEGRATIONS.get("githb")


def test_a_tool_call_through_the_workstation_reaches_the_vendor(vendor_server, home) -> None:
    server = vendor_server(openapi(("github/subset.json", "")))
    server.route("POST", "/repos/{owner}/{repo}/issues",
                 lambda req, p: (201, instance(spec("github/subset.json"), "issue", number=12, title=req.json["title"])))
    ws = Workstation.open(home, embedder="hashing",
                          integrations={"github_token": "ghp_ws", "github_base_url": server.url})
    try:
        me = ws.principal
        out = ws.tools.call("github.create_issue", {"owner": "octo", "repo": "hello", "title": "From a notebook"},
                            principal=me)
        assert out["number"] == 12
        assert server.calls[0].headers["Authorization"] == "Bearer ghp_ws"
        (entry,) = ws.audit.entries(kind="tool.call")
        assert entry.actor == me.key and entry.data["outcome"] == "ok" and "ghp_ws" not in str(entry.data)
        with pytest.raises(CredentialError, match="EMERGENT_SLACK_TOKEN is not set"):
            ws.tools.call("slack.auth_test", {}, principal=me)
    finally:
        ws.close()


def test_an_agents_vendor_call_asks_and_reaches_the_vendor_only_once_approved(vendor_server, home) -> None:
    from emergent.errors import ApprovalPending

    server = vendor_server(openapi(("github/subset.json", "")))
    server.route("POST", "/repos/{owner}/{repo}/issues",
                 lambda req, p: (201, instance(spec("github/subset.json"), "issue", number=7, title=req.json["title"])))
    ws = Workstation.open(home, embedder="hashing",
                          integrations={"github_token": "ghp_ws", "github_base_url": server.url})
    try:
        scout = ws.principals.agent("scout", created_by=ws.principal)
        with pytest.raises(ApprovalPending) as exc:  # external: agents ask (no confidence given counts as 0)
            ws.tools.call("github.create_issue", {"owner": "octo", "repo": "hello", "title": "By an agent"},
                          principal=scout, wait=False)
        assert server.calls == []
        ws.autonomy.approvals.approve(exc.value.approval, by=ws.principal)
        assert ws.tools.resume(exc.value.approval)["number"] == 7 and len(server.calls) == 1
    finally:
        ws.close()


def test_servers_catch_requests_that_break_the_description(vendor_server) -> None:
    gh = vendor_server(openapi(("github/subset.json", "")))
    gh.route("POST", "/repos/{owner}/{repo}/issues", lambda req, p: (201, {"id": 1}))
    httpx.post(f"{gh.url}/repos/o/r/issues", json={"body": "no title"})  # title is required
    httpx.get(f"{gh.url}/repos/o/r/issues", params={"state": "sideways"})  # not in the enum
    slack = vendor_server(Swagger2Validator(spec("slack/subset.json"), ""))
    slack.route("GET", "/conversations.list", lambda req, p: (200, {"ok": True}))
    httpx.get(f"{slack.url}/conversations.list", params={"limit": "many", "colour": "red"})
    linear = vendor_server(GraphQLValidator("linear/schema.graphql"))
    linear.route("POST", "/graphql", lambda req, p: (200, {"data": {}}))
    httpx.post(f"{linear.url}/graphql", json={"query": "{ issues { nodes { colour } } }"})
    found = "\n".join(gh.errors + slack.errors + linear.errors)
    for expected in ("title", "sideways", "many", "colour", "Cannot query field 'colour'", "answer"):
        assert expected in found, expected
    for server in (gh, slack, linear):
        server.errors.clear()  # caught as intended: do not fail the teardown check


def test_cli_lists_which_integrations_are_configured(home, monkeypatch) -> None:
    import json

    from typer.testing import CliRunner

    from emergent.cli.integrations import app

    monkeypatch.setenv("EMERGENT_SLACK_TOKEN", "xoxb-cli")
    result = CliRunner().invoke(app, ["list", "--json", "--home", str(home)])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json.loads(result.output)["integrations"]}
    assert rows["slack"]["configured"] and rows["slack"]["operations"]["post_message"] == "external"
    assert rows["github"]["missing"] == "EMERGENT_GITHUB_TOKEN"
    assert rows["jira"]["missing"] == "EMERGENT_JIRA_BASE_URL"
    shown = CliRunner().invoke(app, ["show", "pagerduty"])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["tools"]["pagerduty.create_incident"]["args"]["required"] == ["service_id", "title"]
    unknown = CliRunner().invoke(app, ["show", "pagerdoody"])
    assert unknown.exit_code != 0 and "did you mean 'pagerduty'" in str(unknown.exception)
