"""GitHub client against a local server checked with GitHub's own OpenAPI description."""

from __future__ import annotations

import time

import pytest
from vendor_harness import Raw, instance, openapi, response, spec

from emergent.config import IntegrationSettings
from emergent.errors import (
    CredentialError,
    IntegrationUnavailableError,
    MalformedResponseError,
    MissingScopeError,
    RateLimitedError,
)
from emergent.tools.integrations import GitHub, connect

DOC = "github/subset.json"


def issue(number: int, title: str = "a bug") -> dict:
    return instance(spec(DOC), "issue", number=number, title=title)


@pytest.fixture
def gh(vendor_server):
    server = vendor_server(openapi((DOC, "")))
    waits: list[float] = []
    client = GitHub("ghp_test", server.url, sleep=waits.append)
    yield server, client, waits
    client.close()


def test_list_issues_follows_link_headers_across_pages(gh) -> None:
    server, client, _ = gh

    def issues(req, p):
        page = int(req.args.get("page", 1))
        link = {} if page == 2 else {"Link": f'<{server.url}/repos/{p["owner"]}/{p["repo"]}/issues?page=2&per_page=2>; rel="next"'}
        return 200, [issue(page * 10 + i) for i in range(2)], link

    server.route("GET", "/repos/{owner}/{repo}/issues", issues)
    got = client.list_issues("octo", "hello", labels=["bug", "p1"], limit=3)
    assert [i["number"] for i in got] == [10, 11, 20]
    first = server.calls[0]
    assert first.args == {"state": ["open"], "per_page": ["3"], "labels": ["bug,p1"]}
    assert first.headers["Authorization"] == "Bearer ghp_test"
    assert first.headers["X-Github-Api-Version"] == "2022-11-28"
    assert first.headers["Accept"] == "application/vnd.github+json"
    assert len(server.calls) == 2


def test_create_issue_and_comment_send_documented_bodies(gh) -> None:
    server, client, _ = gh
    server.route("POST", "/repos/{owner}/{repo}/issues", lambda req, p: (201, issue(7, req.json["title"])))
    server.route("POST", "/repos/{owner}/{repo}/issues/{n}/comments",
                 lambda req, p: (201, instance(spec(DOC), "issue-comment", body=req.json["body"])))
    created = client.create_issue("octo", "hello", "Crash on start", body="trace…", labels=["bug"])
    assert created["number"] == 7 and created["title"] == "Crash on start"
    comment = client.comment("octo", "hello", 7, "Looking into it")
    assert comment["body"] == "Looking into it"
    assert server.calls[0].json() == {"title": "Crash on start", "body": "trace…", "labels": ["bug"]}


def test_search_reads_items_of_the_search_result(gh) -> None:
    server, client, _ = gh
    item = instance(spec(DOC), "issue-search-result-item", number=5)
    server.route("GET", "/search/issues", lambda req, p: (200, response(spec(DOC), "/search/issues", items=[item])))
    assert [i["number"] for i in client.search_issues("repo:octo/hello is:open")] == [5]
    assert server.calls[0].args["q"] == ["repo:octo/hello is:open"]


def test_429_with_retry_after_is_waited_out_then_succeeds(gh) -> None:
    server, client, waits = gh
    answers = iter([(429, {"message": "slow down"}, {"Retry-After": "3"}), (200, issue(1))])
    server.route("GET", "/repos/{owner}/{repo}/issues/{n}", lambda req, p: next(answers))
    assert client.get_issue("octo", "hello", 1)["number"] == 1
    assert waits == [3.0]


def test_primary_rate_limit_403_waits_until_reset(gh) -> None:
    server, client, waits = gh
    reset = str(int(time.time()) - 1)  # already passed: wait 0
    answers = iter([(403, {"message": "API rate limit exceeded"}, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": reset}),
                    (200, issue(2))])
    server.route("GET", "/repos/{owner}/{repo}/issues/{n}", lambda req, p: next(answers))
    assert client.get_issue("octo", "hello", 2)["number"] == 2
    assert waits == [0.0]


def test_rate_limit_past_the_retry_budget_raises_with_the_wait(gh) -> None:
    server, client, waits = gh
    server.route("GET", "/repos/{owner}/{repo}/issues/{n}",
                 lambda req, p: (429, {"message": "slow down"}, {"Retry-After": "2"}))
    with pytest.raises(RateLimitedError) as err:
        client.get_issue("octo", "hello", 1)
    assert err.value.retry_after == 2.0 and err.value.retryable
    assert waits == [2.0, 2.0, 2.0] and len(server.calls) == 4


def test_missing_scope_names_needed_and_held_scopes(gh) -> None:
    server, client, _ = gh
    server.route("POST", "/repos/{owner}/{repo}/issues", lambda req, p: (
        404, {"message": "Not Found"}, {"X-Accepted-OAuth-Scopes": "repo", "X-OAuth-Scopes": "read:org, gist"}))
    with pytest.raises(MissingScopeError) as err:
        client.create_issue("octo", "private", "x")
    assert err.value.needed == "repo" and "read:org" in str(err.value)
    assert "EMERGENT_GITHUB_TOKEN" in str(err.value)


def test_fine_grained_token_without_permission_names_it(gh) -> None:
    server, client, _ = gh
    server.route("POST", "/repos/{owner}/{repo}/issues/{n}/comments", lambda req, p: (
        403, {"message": "Resource not accessible by personal access token"},
        {"X-Accepted-GitHub-Permissions": "issues=write"}))
    with pytest.raises(MissingScopeError, match="issues=write"):
        client.comment("octo", "hello", 1, "hi")


def test_bad_token_and_missing_token_name_the_setting(gh) -> None:
    server, client, _ = gh
    server.route("GET", "/repos/{owner}/{repo}/issues/{n}", lambda req, p: (401, {"message": "Bad credentials"}))
    with pytest.raises(CredentialError, match="EMERGENT_GITHUB_TOKEN") as err:
        client.get_issue("octo", "hello", 1)
    assert "Bad credentials" in str(err.value)
    with pytest.raises(CredentialError, match="EMERGENT_GITHUB_TOKEN is not set"):
        connect("github", IntegrationSettings(github_base_url=server.url))


def test_malformed_answers_are_reported_not_passed_on(gh) -> None:
    server, client, _ = gh
    server.route("GET", "/repos/{owner}/{repo}/issues", lambda req, p: (200, Raw("<html>login</html>")))
    with pytest.raises(MalformedResponseError, match="not JSON"):
        client.list_issues("octo", "hello")
    server.route("POST", "/repos/{owner}/{repo}/issues", lambda req, p: (201, Raw(b'{"id": 1}', "application/json")))
    with pytest.raises(MalformedResponseError, match="'number'"):
        client.create_issue("octo", "hello", "x")


def test_gateway_errors_on_reads_are_retried_with_backoff_and_500_is_not(gh) -> None:
    server, client, waits = gh
    answers = iter([(503, {"message": "unavailable"}), (502, {"message": "bad gateway"}), (200, issue(4))])
    server.route("GET", "/repos/{owner}/{repo}/issues/{n}", lambda req, p: next(answers))
    assert client.get_issue("octo", "hello", 4)["number"] == 4
    assert waits == [0.5, 1.0]
    server.route("GET", "/repos/{owner}/{repo}/issues/{n}", lambda req, p: (500, {"message": "boom"}))
    with pytest.raises(IntegrationUnavailableError, match="boom") as err:
        client.get_issue("octo", "hello", 4)
    assert err.value.retryable and len(server.calls) == 4  # the runner's retry policy decides, not the client


def test_list_pulls_asks_for_the_state(gh) -> None:
    server, client, _ = gh
    pull = {"number": 3, "title": "Fix crash", "state": "open"}  # pull-request-simple is an open stub in the subset
    server.route("GET", "/repos/{owner}/{repo}/pulls", lambda req, p: (200, [pull]))
    assert client.list_pulls("octo", "hello", state="all")[0]["number"] == 3
    assert server.calls[0].args == {"state": ["all"], "per_page": ["100"]}
