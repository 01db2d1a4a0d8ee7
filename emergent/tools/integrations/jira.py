"""Jira Cloud REST API v3: JQL search, issues, comments, transitions.

Auth: HTTP basic with ``EMERGENT_JIRA_EMAIL`` and an API token in ``EMERGENT_JIRA_TOKEN``;
``EMERGENT_JIRA_BASE_URL`` is the site (``https://<site>.atlassian.net``). Pagination: the enhanced
search (``/rest/api/3/search/jql``) pages with ``nextPageToken`` / ``isLast``; comments with
``startAt`` / ``maxResults`` / ``total``. Text fields are Atlassian Document Format (ADF).
"""

from __future__ import annotations

from typing import Any

from emergent.errors import NotFoundError
from emergent.tools.integrations._http import DEFAULT_LIMIT, HttpIntegration, page_size, require


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document (one paragraph per line block)."""
    paragraphs = [p for p in text.split("\n\n") if p.strip()] or [text]
    return {
        "type": "doc",
        "version": 1,
        "content": [{"type": "paragraph", "content": [{"type": "text", "text": p}]} for p in paragraphs],
    }


def atlassian_auth(s: Any, product: str, title: str) -> tuple[str, tuple[str, str]]:
    """(site URL, basic-auth pair) for Jira or Confluence from settings, naming what is missing."""
    upper = product.upper()
    site = require(getattr(s, f"{product}_base_url"), f"EMERGENT_{upper}_BASE_URL", title, "the site URL")
    email = require(getattr(s, f"{product}_email"), f"EMERGENT_{upper}_EMAIL", title, "the account e-mail")
    token = require(getattr(s, f"{product}_token"), f"EMERGENT_{upper}_TOKEN", title, "an API token")
    return site, (email, token)


class Jira(HttpIntegration):
    name = "jira"
    title = "Jira"
    credential_setting = "EMERGENT_JIRA_EMAIL / EMERGENT_JIRA_TOKEN"
    base_url_setting = "EMERGENT_JIRA_BASE_URL"
    operations = {
        "search": "read",
        "get_issue": "read",
        "create_issue": "external",
        "comment": "external",
        "list_comments": "read",
        "transition": "external",
    }

    def __init__(self, base_url: str, email: str, token: str, **kwargs: Any) -> None:
        super().__init__(base_url, auth=(email, token), headers={"Accept": "application/json"}, **kwargs)

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> Jira:
        site, (email, token) = atlassian_auth(s, "jira", cls.title)
        return cls(site, email, token, **{**cls.http_options(s), **kwargs})

    def search(self, jql: str, fields: list[str] | None = None, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """Issues matching a JQL query.

        Args:
            jql: a JQL query, e.g. ``project = OPS AND status = "In Progress"``
            fields: issue fields to return (default: summary, status, assignee)
            limit: most issues to return
        """
        wanted = fields or ["summary", "status", "assignee"]

        def fetch(token: str | None) -> tuple[list[Any], str | None]:
            params: dict[str, Any] = {"jql": jql, "maxResults": page_size(limit, 100), "fields": wanted}
            if token:
                params["nextPageToken"] = token
            data = self.call("GET", "/rest/api/3/search/jql", params=params)
            issues = self.expect(data, "issues", list)
            return issues, None if data.get("isLast", True) else data.get("nextPageToken")

        return self.collect(fetch, limit)

    def get_issue(self, key: str) -> dict[str, Any]:
        data = self.call("GET", f"/rest/api/3/issue/{key}")
        self.expect(data, "fields", dict)
        return data

    def create_issue(
        self, project: str, summary: str, issue_type: str = "Task", description: str | None = None,
        labels: list[str] | None = None,
    ) -> dict[str, Any]:
        """Create an issue; returns ``{"id", "key", "self"}``.

        Args:
            project: project key, e.g. OPS
            summary: one-line title
            issue_type: Task, Bug, Story...
            description: plain text (sent as ADF)
            labels: labels to set
        """
        fields: dict[str, Any] = {"project": {"key": project}, "summary": summary, "issuetype": {"name": issue_type}}
        if description:
            fields["description"] = adf(description)
        if labels:
            fields["labels"] = labels
        data = self.call("POST", "/rest/api/3/issue", json={"fields": fields})
        self.expect(data, "key", str)
        return data

    def comment(self, key: str, body: str) -> dict[str, Any]:
        data = self.call("POST", f"/rest/api/3/issue/{key}/comment", json={"body": adf(body)})
        self.expect(data, "id", str)
        return data

    def list_comments(self, key: str, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        def fetch(start: int | None) -> tuple[list[Any], int | None]:
            at = start or 0
            params = {"startAt": at, "maxResults": page_size(limit, 100)}
            data = self.call("GET", f"/rest/api/3/issue/{key}/comment", params=params)
            page = self.expect(data, "comments", list)
            nxt = at + len(page)
            return page, nxt if page and nxt < int(data.get("total", 0)) else None

        return self.collect(fetch, limit)

    def transition(self, key: str, to: str) -> dict[str, Any]:
        """Move an issue through its workflow to the transition or status named ``to``."""
        data = self.call("GET", f"/rest/api/3/issue/{key}/transitions")
        options = self.expect(data, "transitions", list)
        wanted = to.casefold()
        for t in options:
            status = (t.get("to") or {}).get("name", "")
            if wanted in (str(t.get("name", "")).casefold(), str(t.get("id")), status.casefold()):
                self.request("POST", f"/rest/api/3/issue/{key}/transitions", json={"transition": {"id": t["id"]}})
                return {"key": key, "transition": t.get("name"), "status": status or None}
        names = ", ".join(str(t.get("name")) for t in options) or "none"
        raise NotFoundError(f"Jira issue {key} has no transition {to!r}", hint=f"available: {names}",
                            integration=self.name)
