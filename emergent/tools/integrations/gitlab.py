"""GitLab REST API v4: project issues, notes (comments), merge requests.

Auth: ``PRIVATE-TOKEN: <EMERGENT_GITLAB_TOKEN>`` (personal, project or group access token).
``EMERGENT_GITLAB_BASE_URL`` is the API root (``https://gitlab.example.com/api/v4`` when self-hosted).
Projects are named by numeric id or by ``group/project`` path (URL-encoded here). Pagination:
``Link`` headers (offset and keyset alike). A token without the needed scope gets 403 with
``{"error": "insufficient_scope", "scope": "api"}`` (also in ``WWW-Authenticate``).
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import httpx

from emergent.errors import MissingScopeError
from emergent.tools.integrations._http import DEFAULT_LIMIT, HttpIntegration, page_size, require


def project_ref(project: str | int) -> str:
    """A project id, or its ``namespace/path`` URL-encoded as one path segment."""
    return quote(str(project), safe="")


class GitLab(HttpIntegration):
    name = "gitlab"
    title = "GitLab"
    credential_setting = "EMERGENT_GITLAB_TOKEN"
    base_url_setting = "EMERGENT_GITLAB_BASE_URL"
    operations = {
        "list_issues": "read",
        "create_issue": "external",
        "comment": "external",
        "list_merge_requests": "read",
    }

    def __init__(self, token: str, base_url: str = "https://gitlab.com/api/v4", **kwargs: Any) -> None:
        super().__init__(base_url, headers={"PRIVATE-TOKEN": token, "Accept": "application/json"}, **kwargs)

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> GitLab:
        token = require(s.gitlab_token, cls.credential_setting, cls.title)
        return cls(token, s.gitlab_base_url, **{**cls.http_options(s), **kwargs})

    def list_issues(
        self, project: str, state: str = "opened", labels: list[str] | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[dict[str, Any]]:
        """Issues of a project.

        Args:
            project: numeric id or ``group/project`` path
            state: opened, closed or all
            labels: only issues carrying all these labels
            limit: most issues to return
        """
        params: dict[str, Any] = {"per_page": page_size(limit, 100)}
        if state != "all":
            params["state"] = state
        if labels:
            params["labels"] = ",".join(labels)
        return self.paginate_links(f"/projects/{project_ref(project)}/issues", params, limit)

    def create_issue(
        self, project: str, title: str, description: str | None = None, labels: list[str] | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"title": title}
        if description:
            payload["description"] = description
        if labels:
            payload["labels"] = ",".join(labels)
        data = self.call("POST", f"/projects/{project_ref(project)}/issues", json=payload)
        self.expect(data, "iid", int)
        return data

    def comment(self, project: str, issue_iid: int, body: str) -> dict[str, Any]:
        """Add a note (comment) to issue ``issue_iid`` of the project."""
        data = self.call("POST", f"/projects/{project_ref(project)}/issues/{issue_iid}/notes", json={"body": body})
        self.expect(data, "id", int)
        return data

    def list_merge_requests(
        self, project: str, state: str = "opened", limit: int = DEFAULT_LIMIT
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"per_page": page_size(limit, 100)}
        if state != "all":
            params["state"] = state
        return self.paginate_links(f"/projects/{project_ref(project)}/merge_requests", params, limit)

    def _raise_for_error(self, resp: httpx.Response) -> None:
        if resp.status_code == 403:
            needed = _insufficient_scope(resp)
            if needed is not None:
                raise MissingScopeError(
                    f"GitLab refused {resp.request.method} {resp.request.url.path}: the token in "
                    f"{self.credential_setting} lacks scope {needed or '(unnamed)'}",
                    hint=f"create a token with the {needed or 'api'} scope and put it in {self.credential_setting}",
                    integration=self.name, status=403, setting=self.credential_setting,
                    needed=needed, provided=None,
                )
        super()._raise_for_error(resp)


def _insufficient_scope(resp: httpx.Response) -> str | None:
    """The scope GitLab asks for on an ``insufficient_scope`` answer; None for other 403s."""
    header = resp.headers.get("www-authenticate", "")
    if "insufficient_scope" in header:
        m = re.search(r'scope="([^"]*)"', header)
        return m.group(1) if m else ""
    try:
        body = resp.json()
    except ValueError:
        return None
    if isinstance(body, dict) and body.get("error") == "insufficient_scope":
        return str(body.get("scope") or "")
    return None
