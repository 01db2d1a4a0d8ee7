"""GitLab client against a local server checked with a description written from GitLab's docs
(tests/integrations/specs/gitlab.yaml: GitLab's own OpenAPI file was not available offline)."""

from __future__ import annotations

import pytest
from vendor_harness import instance, openapi, spec

from emergent.errors import CredentialError, MissingScopeError, RateLimitedError
from emergent.tools.integrations import GitLab

DOC = "specs/gitlab.yaml"


def issue(iid: int, **kw) -> dict:
    return instance(spec(DOC), "Issue", iid=iid, **kw)


@pytest.fixture
def gl(vendor_server):
    server = vendor_server(openapi((DOC, "/api/v4")))
    waits: list[float] = []
    client = GitLab("glpat-test", server.url + "/api/v4", sleep=waits.append, max_retries=1)
    yield server, client, waits
    client.close()


def test_list_issues_encodes_the_project_path_and_follows_links(gl) -> None:
    server, client, _ = gl

    def issues(req, p):
        assert p["id"] == "team%2Fapp"
        if req.args.get("page") == "2":
            return 200, [issue(3)]
        nxt = f'<{server.url}/api/v4/projects/team%2Fapp/issues?page=2&per_page=2&state=opened>; rel="next"'
        return 200, [issue(1), issue(2)], {"Link": nxt, "X-Next-Page": "2"}

    server.route("GET", "/api/v4/projects/{id}/issues", issues)
    assert [i["iid"] for i in client.list_issues("team/app", labels=["bug"], limit=5)] == [1, 2, 3]
    assert server.calls[0].headers["Private-Token"] == "glpat-test"
    assert server.calls[0].args == {"per_page": ["5"], "state": ["opened"], "labels": ["bug"]}


def test_create_issue_and_note(gl) -> None:
    server, client, _ = gl
    server.route("POST", "/api/v4/projects/{id}/issues", lambda req, p: (201, issue(9, title=req.json["title"])))
    server.route("POST", "/api/v4/projects/{id}/issues/{iid}/notes",
                 lambda req, p: (201, instance(spec(DOC), "Note", body=req.json["body"], noteable_iid=9)))
    assert client.create_issue(42, "Flaky test", "fails 1 in 10", labels=["ci", "flaky"])["iid"] == 9
    assert server.calls[0].json() == {"title": "Flaky test", "description": "fails 1 in 10", "labels": "ci,flaky"}
    assert client.comment(42, 9, "bisecting")["body"] == "bisecting"


def test_insufficient_scope_names_the_scope(gl) -> None:
    server, client, _ = gl
    server.route("POST", "/api/v4/projects/{id}/issues", lambda req, p: (
        403, {"error": "insufficient_scope", "error_description": "The request requires higher privileges than "
              "provided by the access token.", "scope": "api"},
        {"WWW-Authenticate": 'Bearer realm="", error="insufficient_scope", scope="api"'}))
    with pytest.raises(MissingScopeError, match="lacks scope api") as err:
        client.create_issue("team/app", "x")
    assert err.value.needed == "api" and err.value.setting == "EMERGENT_GITLAB_TOKEN"


def test_unauthorized_and_rate_limited(gl) -> None:
    server, client, waits = gl
    server.route("GET", "/api/v4/projects/{id}/merge_requests", lambda req, p: (401, {"message": "401 Unauthorized"}))
    with pytest.raises(CredentialError, match="EMERGENT_GITLAB_TOKEN"):
        client.list_merge_requests("team/app")
    server.route("GET", "/api/v4/projects/{id}/merge_requests",
                 lambda req, p: (429, {"message": "Retry later"}, {"Retry-After": "5"}))
    with pytest.raises(RateLimitedError):
        client.list_merge_requests("team/app")
    assert waits == [5.0]


def test_list_merge_requests_of_every_state(gl) -> None:
    server, client, _ = gl
    mr = instance(spec(DOC), "MergeRequest", iid=4, state="merged")
    server.route("GET", "/api/v4/projects/{id}/merge_requests", lambda req, p: (200, [mr]))
    assert client.list_merge_requests("team/app", state="all")[0]["iid"] == 4
    assert "state" not in server.calls[0].args  # GitLab's default is every state
