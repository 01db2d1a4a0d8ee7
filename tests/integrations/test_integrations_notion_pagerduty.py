"""Notion and PagerDuty clients against local servers checked with their OpenAPI descriptions
(PagerDuty's answers are its own documented examples)."""

from __future__ import annotations

import pytest
from vendor_harness import example, openapi, spec

from emergent.config import IntegrationSettings
from emergent.errors import CredentialError, MissingScopeError, NotFoundError, RateLimitedError
from emergent.tools.integrations import Notion, PagerDuty, connect

NOTION, PD = "notion/notion-openapi.json", "pagerduty/subset.json"


def notion_page(pid: str, title: str) -> dict:
    """A page object as Notion's API reference documents it."""
    return {"object": "page", "id": pid, "created_time": "2026-11-25T12:00:00.000Z",
            "last_edited_time": "2026-11-25T12:00:00.000Z", "archived": False, "in_trash": False,
            "parent": {"type": "workspace", "workspace": True}, "url": f"https://www.notion.so/{pid}",
            "properties": {"title": {"id": "title", "type": "title",
                                     "title": [{"type": "text", "text": {"content": title}, "plain_text": title}]}}}


def listing(results: list, cursor: str | None) -> dict:
    return {"object": "list", "results": results, "next_cursor": cursor, "has_more": cursor is not None,
            "type": "page_or_data_source", "page_or_data_source": {}}


@pytest.fixture
def notion(vendor_server):
    server = vendor_server(openapi((NOTION, "")))
    waits: list[float] = []
    client = Notion("ntn_test", server.url, sleep=waits.append)
    yield server, client, waits
    client.close()


def test_notion_search_pages_with_start_cursor(notion) -> None:
    server, client, _ = notion

    def search(req, p):
        if req.json.get("start_cursor") == "cur-2":
            return 200, listing([notion_page("p3", "Gamma")], None)
        return 200, listing([notion_page("p1", "Alpha"), notion_page("p2", "Beta")], "cur-2")

    server.route("POST", "/v1/search", search)
    got = client.search("runbook", object_type="page", limit=10)
    assert [r["id"] for r in got] == ["p1", "p2", "p3"]
    first = server.calls[0]
    assert first.headers["Authorization"] == "Bearer ntn_test" and first.headers["Notion-Version"] == "2025-09-03"
    assert first.json() == {"query": "runbook", "filter": {"property": "object", "value": "page"}, "page_size": 10}


def test_notion_create_page_then_append_paragraphs(notion) -> None:
    server, client, _ = notion
    server.route("POST", "/v1/pages", lambda req, p: (200, notion_page("new-1", "Notes")))
    server.route("PATCH", "/v1/blocks/{id}/children", lambda req, p: (200, listing(req.json["children"], None)))
    page = client.create_page("59833787-2cf9-4fdf-8782-e53db20768a5", "Notes", "first\n\nsecond")
    assert page["id"] == "new-1"
    assert server.calls[0].json()["parent"] == {"page_id": "59833787-2cf9-4fdf-8782-e53db20768a5"}
    children = server.calls[1].json()["children"]
    assert [c["paragraph"]["rich_text"][0]["text"]["content"] for c in children] == ["first", "second"]


def test_notion_unshared_page_and_missing_capability_say_what_to_do(notion) -> None:
    server, client, waits = notion
    server.route("GET", "/v1/pages/{id}", lambda req, p: (404, {
        "object": "error", "status": 404, "code": "object_not_found", "message": "Could not find page"}))
    with pytest.raises(NotFoundError, match="share the page"):
        client.get_page("p404")
    server.route("PATCH", "/v1/blocks/{id}/children", lambda req, p: (403, {
        "object": "error", "status": 403, "code": "restricted_resource", "message": "Insufficient permissions"}))
    with pytest.raises(MissingScopeError, match="capability"):
        client.append_text("p1", "x")
    server.route("GET", "/v1/users", lambda req, p: (429, {"object": "error", "status": 429, "code": "rate_limited",
                                                          "message": "slow down"}, {"Retry-After": "1"}))
    with pytest.raises(RateLimitedError):
        client.list_users()
    assert waits == [1.0, 1.0, 1.0]


@pytest.fixture
def pd(vendor_server):
    server = vendor_server(openapi((PD, "")))
    client = PagerDuty("pd-key", server.url, from_email="oncall@example.org")
    yield server, client
    client.close()


def test_pagerduty_lists_incidents_with_offset_and_more(pd) -> None:
    server, client = pd

    def incidents(req, p):
        body = example(spec(PD), "/incidents")
        offset = int(req.args.get("offset", 0))
        body["incidents"][0]["id"] = f"PINC{offset}"
        body.update(offset=offset, limit=1, more=offset == 0)
        return 200, body

    server.route("GET", "/incidents", incidents)
    got = client.list_incidents(statuses=["triggered", "acknowledged"], limit=5)
    assert [i["id"] for i in got] == ["PINC0", "PINC1"]
    call = server.calls[0]
    assert call.headers["Authorization"] == "Token token=pd-key"
    assert call.headers["Accept"] == "application/vnd.pagerduty+json;version=2"
    assert call.args["statuses[]"] == ["triggered", "acknowledged"]
    assert server.calls[1].args["offset"] == ["1"]


def test_pagerduty_create_and_resolve_send_from_header(pd) -> None:
    server, client = pd
    server.route("POST", "/incidents", lambda req, p: (201, example(spec(PD), "/incidents", "post", "201")))
    server.route("PUT", "/incidents/{id}", lambda req, p: (200, example(spec(PD), "/incidents/{id}", "put")))
    created = client.create_incident("PWIXJZS", "The server is on fire.", urgency="high", details="disk 100%")
    assert created["id"] == "PT4KHLK"
    assert server.calls[0].headers["From"] == "oncall@example.org"
    assert server.calls[0].json()["incident"]["service"] == {"id": "PWIXJZS", "type": "service_reference"}
    client.resolve("PT4KHLK")
    assert server.calls[1].json() == {"incident": {"type": "incident_reference", "status": "resolved"}}


def test_pagerduty_errors_name_key_and_from(pd) -> None:
    server, client = pd
    server.route("GET", "/incidents/{id}", lambda req, p: (401, {"error": {"message": "Unauthorized", "code": 2006}}))
    with pytest.raises(CredentialError, match="EMERGENT_PAGERDUTY_TOKEN") as err:
        client.get_incident("PT4KHLK")
    assert "Unauthorized" in str(err.value)
    no_from = connect("pagerduty", IntegrationSettings(pagerduty_token="k", pagerduty_base_url=server.url))
    with pytest.raises(CredentialError, match="EMERGENT_PAGERDUTY_FROM"):
        no_from.acknowledge("PT4KHLK")
    assert len(server.calls) == 1  # refused before sending anything


def test_notion_get_page_query_data_source_and_users(notion) -> None:
    server, client, _ = notion
    server.route("GET", "/v1/pages/{id}", lambda req, p: (200, notion_page(p["id"], "Roadmap")))
    server.route("POST", "/v1/data_sources/{id}/query", lambda req, p: (200, listing([notion_page("r1", "Row")], None)))
    server.route("GET", "/v1/users", lambda req, p: (200, listing([{"object": "user", "id": "u1", "type": "bot"}], None)))
    assert client.get_page("abc")["id"] == "abc"
    rows = client.query_data_source("ds-1", filter={"property": "Status", "status": {"equals": "Done"}}, limit=5)
    assert [r["id"] for r in rows] == ["r1"]
    assert server.calls[1].json() == {"filter": {"property": "Status", "status": {"equals": "Done"}}, "page_size": 5}
    assert client.list_users()[0]["id"] == "u1" and server.calls[2].args == {"page_size": ["100"]}


def test_pagerduty_get_and_acknowledge(pd) -> None:
    server, client = pd
    server.route("GET", "/incidents/{id}", lambda req, p: (200, example(spec(PD), "/incidents/{id}")))
    server.route("PUT", "/incidents/{id}", lambda req, p: (200, example(spec(PD), "/incidents/{id}", "put")))
    assert client.get_incident("PT4KHLK")["id"] == "PT4KHLK"
    client.acknowledge("PT4KHLK")
    assert server.calls[1].json()["incident"]["status"] == "acknowledged"
