"""Linear GraphQL API: teams, issues (filtered by team and state), create issue, comment.

Auth: ``Authorization: <EMERGENT_LINEAR_TOKEN>`` (a personal API key goes bare; an OAuth access
token is sent as ``Bearer``). Pagination: Relay connections (``first`` / ``after`` with
``pageInfo { hasNextPage endCursor }``). GraphQL errors come in ``errors`` with
``extensions.code`` (``AUTHENTICATION_ERROR``, ``FORBIDDEN``, ``RATELIMITED``...), often on HTTP 400.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from emergent.errors import (
    CredentialError,
    IntegrationError,
    MissingScopeError,
    NotFoundError,
    ValidationError,
)
from emergent.tools.integrations._http import DEFAULT_LIMIT, HttpIntegration, page_size, require

ISSUE_FIELDS = "id identifier title url priority createdAt state { name type } assignee { name } team { key }"

LIST_ISSUES = """
query ListIssues($first: Int!, $after: String, $filter: IssueFilter) {
  issues(first: $first, after: $after, filter: $filter) {
    nodes { ISSUE_FIELDS }
    pageInfo { hasNextPage endCursor }
  }
}
""".replace("ISSUE_FIELDS", ISSUE_FIELDS)

LIST_TEAMS = """
query ListTeams($first: Int!, $after: String) {
  teams(first: $first, after: $after) {
    nodes { id key name }
    pageInfo { hasNextPage endCursor }
  }
}
"""

CREATE_ISSUE = """
mutation CreateIssue($input: IssueCreateInput!) {
  issueCreate(input: $input) { success issue { ISSUE_FIELDS } }
}
""".replace("ISSUE_FIELDS", ISSUE_FIELDS)

CREATE_COMMENT = """
mutation CreateComment($input: CommentCreateInput!) {
  commentCreate(input: $input) { success comment { id url body createdAt } }
}
"""


class Linear(HttpIntegration):
    name = "linear"
    title = "Linear"
    credential_setting = "EMERGENT_LINEAR_TOKEN"
    base_url_setting = "EMERGENT_LINEAR_BASE_URL"
    operations = {"list_teams": "read", "list_issues": "read", "create_issue": "external", "comment": "external"}

    def __init__(self, token: str, base_url: str = "https://api.linear.app/graphql", **kwargs: Any) -> None:
        auth = token if token.startswith(("lin_api_", "Bearer ")) else f"Bearer {token}"
        super().__init__(base_url, headers={"Authorization": auth, "Content-Type": "application/json"}, **kwargs)

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> Linear:
        token = require(s.linear_token, cls.credential_setting, cls.title)
        return cls(token, s.linear_base_url, **{**cls.http_options(s), **kwargs})

    def graphql(self, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run one GraphQL document; ``data`` or an error from its ``errors``."""
        resp = self.request("POST", self.base_url, json={"query": query, "variables": variables or {}})
        body = self.expect(self.parse(resp), None, dict)
        if body.get("errors"):
            self._raise_graphql(body["errors"])
        return self.expect(body, "data", dict)

    def _raise_for_error(self, resp: httpx.Response) -> None:
        try:
            body = resp.json()
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("errors"), list) and body["errors"]:
            self._raise_graphql(body["errors"])
        super()._raise_for_error(resp)

    def _rate_limit_wait(self, resp: httpx.Response) -> float | None:
        if resp.status_code == 400 and b"RATELIMITED" in resp.content:
            reset = resp.headers.get("x-ratelimit-requests-reset")  # epoch milliseconds
            return max(0.0, float(reset) / 1000 - time.time()) if reset else 1.0
        return super()._rate_limit_wait(resp)

    def _raise_graphql(self, errors: list[Any]) -> None:
        first: dict[str, Any] = errors[0] if isinstance(errors[0], dict) else {"message": str(errors[0])}
        ext: dict[str, Any] = first.get("extensions") or {}
        code = str(ext.get("code") or ext.get("type") or "")
        message = str(first.get("message", "unknown error"))
        fields = {"integration": self.name, "code": code}
        if code in ("AUTHENTICATION_ERROR", "UNAUTHENTICATED") or "authentication" in message.lower():
            raise CredentialError(f"Linear rejected the API key: {message}",
                                  hint=f"check {self.credential_setting}", setting=self.credential_setting, **fields)
        if code == "FORBIDDEN":
            raise MissingScopeError(f"Linear refused the operation: {message}",
                                    hint=f"give the key in {self.credential_setting} write access to the team",
                                    setting=self.credential_setting, needed=None, provided=None, **fields)
        if code in ("GRAPHQL_VALIDATION_FAILED", "INVALID_INPUT", "BAD_USER_INPUT"):
            raise ValidationError(f"Linear rejected the request: {message}", hint="fix the arguments", **fields)
        if code == "ENTITY_NOT_FOUND" or "not found" in message.lower():
            raise NotFoundError(f"Linear: {message}", hint="check the id", **fields)
        raise IntegrationError(f"Linear GraphQL error: {message}", **fields)

    def _connection(self, query: str, field: str, variables: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        def fetch(after: str | None) -> tuple[list[Any], str | None]:
            data = self.graphql(query, {**variables, "first": page_size(limit, 250), "after": after})
            conn = self.expect(data, field, dict)
            nodes = self.expect(conn, "nodes", list)
            info = self.expect(conn, "pageInfo", dict)
            return nodes, info.get("endCursor") if info.get("hasNextPage") else None

        return self.collect(fetch, limit)

    # ------------------------------------------------------------------ operations
    def list_teams(self, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        return self._connection(LIST_TEAMS, "teams", {}, limit)

    def list_issues(self, team_key: str | None = None, state: str | None = None,
                    limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """Issues visible to the key, newest first.

        Args:
            team_key: only this team's issues (e.g. ENG)
            state: only issues in the workflow state with this name (e.g. In Progress)
            limit: most issues to return
        """
        flt: dict[str, Any] = {}
        if team_key:
            flt["team"] = {"key": {"eq": team_key}}
        if state:
            flt["state"] = {"name": {"eq": state}}
        return self._connection(LIST_ISSUES, "issues", {"filter": flt or None}, limit)

    def create_issue(self, team_id: str, title: str, description: str | None = None,
                     priority: int | None = None) -> dict[str, Any]:
        """Create an issue in a team (``team_id`` is the team's UUID; see list_teams)."""
        data: dict[str, Any] = {"teamId": team_id, "title": title}
        if description:
            data["description"] = description
        if priority is not None:
            data["priority"] = priority
        payload = self.expect(self.graphql(CREATE_ISSUE, {"input": data}), "issueCreate", dict)
        return self.expect(payload, "issue", dict)

    def comment(self, issue_id: str, body: str) -> dict[str, Any]:
        """Comment on an issue (its UUID or identifier such as ENG-12); body is Markdown."""
        payload = self.graphql(CREATE_COMMENT, {"input": {"issueId": issue_id, "body": body}})
        return self.expect(self.expect(payload, "commentCreate", dict), "comment", dict)
