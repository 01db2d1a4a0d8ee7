"""Jira (REST v3) and Confluence (v2 pages, v1 CQL search) clients against local servers checked
with Atlassian's OpenAPI descriptions."""

from __future__ import annotations

import base64

import pytest
from vendor_harness import Raw, instance, openapi, response, spec

from emergent.config import IntegrationSettings
from emergent.errors import CredentialError, MalformedResponseError, NotFoundError, RateLimitedError
from emergent.tools.integrations import Confluence, Jira, connect

JIRA = "jira/subset.json"
CONF_V2, CONF_V1 = "confluence/subset.json", "confluence/subset_v1.json"
BASIC = "Basic " + base64.b64encode(b"ada@example.org:atl-token").decode()


@pytest.fixture
def jira(vendor_server):
    server = vendor_server(openapi((JIRA, "")))
    waits: list[float] = []
    client = Jira(server.url, "ada@example.org", "atl-token", sleep=waits.append)
    yield server, client, waits
    client.close()


def jira_issue(key: str) -> dict:
    return instance(spec(JIRA), "IssueBean", key=key, id=key.split("-")[1],
                    fields={"summary": f"summary of {key}", "status": {"name": "To Do"}})


def test_jql_search_pages_with_next_page_token(jira) -> None:
    server, client, _ = jira

    def search(req, p):
        if req.args.get("nextPageToken") == "tok2":
            return 200, response(spec(JIRA), "/rest/api/3/search/jql", issues=[jira_issue("OPS-3")], isLast=True)
        return 200, response(spec(JIRA), "/rest/api/3/search/jql", issues=[jira_issue("OPS-1"), jira_issue("OPS-2")],
                             isLast=False, nextPageToken="tok2")

    server.route("GET", "/rest/api/3/search/jql", search)
    got = client.search("project = OPS ORDER BY created DESC", fields=["summary", "status"], limit=10)
    assert [i["key"] for i in got] == ["OPS-1", "OPS-2", "OPS-3"]
    assert server.calls[0].headers["Authorization"] == BASIC
    assert server.calls[0].args["fields"] == ["summary", "status"]


def test_create_issue_sends_adf_description_and_comment(jira) -> None:
    server, client, _ = jira
    server.route("POST", "/rest/api/3/issue", lambda req, p: (
        201, response(spec(JIRA), "/rest/api/3/issue", "post", "201", id="10001", key="OPS-7",
                      self="https://site.example/rest/api/3/issue/10001")))
    server.route("POST", "/rest/api/3/issue/{key}/comment", lambda req, p: (
        201, instance(spec(JIRA), "Comment", id="100", body=req.json["body"])))
    created = client.create_issue("OPS", "Disk full on db-2", "Bug", "df shows 100%\n\nsince 02:00", labels=["infra"])
    assert created["key"] == "OPS-7"
    fields = server.calls[0].json()["fields"]
    assert fields["issuetype"] == {"name": "Bug"} and fields["project"] == {"key": "OPS"}
    assert [p["content"][0]["text"] for p in fields["description"]["content"]] == ["df shows 100%", "since 02:00"]
    assert client.comment("OPS-7", "on it")["id"] == "100"


def test_comments_page_with_start_at_and_transition_by_name(jira) -> None:
    server, client, _ = jira

    def comments(req, p):
        at = int(req.args.get("startAt", 0))
        page = [instance(spec(JIRA), "Comment", id=str(at + i)) for i in range(2 if at == 0 else 1)]
        return 200, response(spec(JIRA), "/rest/api/3/issue/{issueIdOrKey}/comment", comments=page,
                             startAt=at, maxResults=2, total=3)

    server.route("GET", "/rest/api/3/issue/{key}/comment", comments)
    assert [c["id"] for c in client.list_comments("OPS-7", limit=10)] == ["0", "1", "2"]
    server.route("GET", "/rest/api/3/issue/{key}/transitions", lambda req, p: (200, {"transitions": [
        {"id": "11", "name": "Start", "to": {"name": "In Progress"}}, {"id": "31", "name": "Done", "to": {"name": "Done"}}]}))
    server.route("POST", "/rest/api/3/issue/{key}/transitions", lambda req, p: (204, ""))
    assert client.transition("OPS-7", "in progress")["transition"] == "Start"
    assert server.calls[-1].json() == {"transition": {"id": "11"}}
    with pytest.raises(NotFoundError, match="available: Start, Done"):
        client.transition("OPS-7", "Blocked")


def test_jira_errors_name_credentials_and_rate_limits(jira) -> None:
    server, client, waits = jira
    server.route("GET", "/rest/api/3/issue/{key}", lambda req, p: (401, {"errorMessages": ["Unauthorized"]}))
    with pytest.raises(CredentialError, match="EMERGENT_JIRA_EMAIL / EMERGENT_JIRA_TOKEN"):
        client.get_issue("OPS-1")
    server.route("GET", "/rest/api/3/issue/{key}", lambda req, p: (429, {}, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}))
    with pytest.raises(RateLimitedError):
        client.get_issue("OPS-1")
    assert waits == [0.0, 0.0, 0.0]  # a date in the past: retry at once, three times
    with pytest.raises(CredentialError, match="EMERGENT_JIRA_TOKEN is not set"):
        connect("jira", IntegrationSettings(jira_base_url=server.url, jira_email="ada@example.org"))


@pytest.fixture
def conf(vendor_server):
    server = vendor_server(openapi((CONF_V2, "/wiki/api/v2"), (CONF_V1, "")))
    client = Confluence(server.url, "ada@example.org", "atl-token")
    yield server, client
    client.close()


def page(pid: str, title: str) -> dict:
    return instance(spec(CONF_V2), "PageBulk", id=pid, title=title)


def test_confluence_lists_pages_following_links_next(conf) -> None:
    server, client = conf

    def pages(req, p):
        if req.args.get("cursor") == "c2":
            return 200, {"results": [page("3", "Runbook C")], "_links": {}}
        return 200, {"results": [page("1", "Runbook A"), page("2", "Runbook B")],
                     "_links": {"next": "/wiki/api/v2/pages?cursor=c2&limit=2"}}

    server.route("GET", "/wiki/api/v2/pages", pages)
    assert [p["title"] for p in client.list_pages(space_id=65536, limit=5)] == ["Runbook A", "Runbook B", "Runbook C"]
    assert server.calls[0].args == {"limit": ["5"], "space-id": ["65536"]}
    assert server.calls[0].headers["Authorization"] == BASIC


def test_confluence_create_page_and_cql_search(conf) -> None:
    server, client = conf
    server.route("POST", "/wiki/api/v2/pages", lambda req, p: (
        200, instance(spec(CONF_V2), "PageSingle", id="77", title=req.json["title"])))
    assert client.create_page("65536", "Postmortem", "<p>what happened</p>", parent_id="12")["id"] == "77"
    assert server.calls[0].json()["body"] == {"representation": "storage", "value": "<p>what happened</p>"}
    hit = instance(spec(CONF_V1), "SearchResult", title="Postmortem")
    server.route("GET", "/wiki/rest/api/search", lambda req, p: (200, response(
        spec(CONF_V1), "/wiki/rest/api/search", results=[hit], cqlQuery=req.args["cql"])))
    assert [r["title"] for r in client.search('type = page AND title ~ "Postmortem"')] == ["Postmortem"]
    server.route("GET", "/wiki/rest/api/search", lambda req, p: (200, Raw('{"size": 0}', "application/json")))
    with pytest.raises(MalformedResponseError, match="'results'"):
        client.search("type = page")


def test_jira_get_issue_and_confluence_get_page(jira, conf) -> None:
    jserver, jclient, _ = jira
    jserver.route("GET", "/rest/api/3/issue/{key}", lambda req, p: (200, jira_issue(p["key"])))
    assert jclient.get_issue("OPS-9")["fields"]["summary"] == "summary of OPS-9"
    cserver, cclient = conf
    cserver.route("GET", "/wiki/api/v2/pages/{id}", lambda req, p: (
        200, instance(spec(CONF_V2), "PageSingle", id=p["id"], title="Runbook")))
    assert cclient.get_page(42)["title"] == "Runbook"
    assert cserver.calls[0].args == {"body-format": ["storage"]}
