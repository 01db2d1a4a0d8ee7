"""Linear client against a local GraphQL server: every query is validated against Linear's own
schema (graphql-core) and answered by executing it against that schema."""

from __future__ import annotations

import pytest
from vendor_harness import GraphQLValidator, graphql_executor

from emergent.errors import CredentialError, MissingScopeError, RateLimitedError
from emergent.tools.integrations import Linear

SCHEMA = "linear/schema.graphql"


def issue(n: int, team: str = "ENG") -> dict:
    return {"id": f"uuid-{n}", "identifier": f"{team}-{n}", "title": f"issue {n}", "url": f"https://linear.app/i/{n}",
            "priority": 2.0, "createdAt": "2026-11-25T12:00:00.000Z", "state": {"name": "Todo", "type": "unstarted"},
            "assignee": None, "team": {"key": team}}


@pytest.fixture
def linear(vendor_server):
    server = vendor_server(GraphQLValidator(SCHEMA))
    waits: list[float] = []
    client = Linear("lin_api_test", server.url + "/graphql", sleep=waits.append)
    yield server, client, waits
    client.close()


def test_list_issues_pages_through_the_connection_with_a_filter(linear) -> None:
    server, client, _ = linear
    seen: list[dict] = []

    def issues(info, first, after=None, filter=None, **_):
        seen.append({"first": first, "after": after, "filter": filter})
        if after == "c2":
            return {"nodes": [issue(3)], "pageInfo": {"hasNextPage": False, "endCursor": "c3"}}
        return {"nodes": [issue(1), issue(2)], "pageInfo": {"hasNextPage": True, "endCursor": "c2"}}

    server.route("POST", "/graphql", graphql_executor(server, {"issues": issues}))
    got = client.list_issues(team_key="ENG", state="In Progress", limit=10)
    assert [i["identifier"] for i in got] == ["ENG-1", "ENG-2", "ENG-3"]
    assert seen[0]["filter"] == {"team": {"key": {"eq": "ENG"}}, "state": {"name": {"eq": "In Progress"}}}
    assert seen[1]["after"] == "c2"
    assert server.calls[0].headers["Authorization"] == "lin_api_test"


def test_create_issue_and_comment_are_valid_mutations(linear) -> None:
    server, client, _ = linear
    inputs: list[dict] = []

    def issue_create(info, input):
        inputs.append(input)
        return {"success": True, "issue": {**issue(7), "title": input["title"]}}

    def comment_create(info, input):
        inputs.append(input)
        return {"success": True, "comment": {"id": "c-1", "url": "https://linear.app/c/1", "body": input["body"],
                                             "createdAt": "2026-11-25T12:00:00.000Z"}}

    server.route("POST", "/graphql", graphql_executor(server, {"issueCreate": issue_create,
                                                                 "commentCreate": comment_create}))
    created = client.create_issue("team-uuid", "Login loops", "steps…", priority=1)
    assert created["identifier"] == "ENG-7" and created["title"] == "Login loops"
    assert inputs[0] == {"teamId": "team-uuid", "title": "Login loops", "description": "steps…", "priority": 1}
    assert client.comment("ENG-7", "reproduced")["body"] == "reproduced"


def test_teams_list(linear) -> None:
    server, client, _ = linear
    teams = {"nodes": [{"id": "t1", "key": "ENG", "name": "Engineering"}],
             "pageInfo": {"hasNextPage": False, "endCursor": None}}
    server.route("POST", "/graphql", graphql_executor(server, {"teams": lambda info, **a: teams}))
    assert client.list_teams() == [{"id": "t1", "key": "ENG", "name": "Engineering"}]


def test_graphql_errors_become_credential_scope_and_rate_limit_errors(linear) -> None:
    server, client, waits = linear

    def error(code: str, message: str, status: int = 400):
        return lambda req, p: (status, {"errors": [{"message": message, "extensions": {"code": code}}], "data": None})

    server.route("POST", "/graphql", error("AUTHENTICATION_ERROR", "Authentication required, not authenticated"))
    with pytest.raises(CredentialError, match="EMERGENT_LINEAR_TOKEN"):
        client.list_teams()
    server.route("POST", "/graphql", error("FORBIDDEN", "Insufficient permissions", 200))
    with pytest.raises(MissingScopeError):
        client.create_issue("team-uuid", "x")
    server.route("POST", "/graphql", error("RATELIMITED", "Rate limit exceeded"))
    with pytest.raises(RateLimitedError):
        client.list_teams()
    assert waits == [1.0, 1.0, 1.0]
