"""GitHub REST API (version 2022-11-28): issues, comments, pull requests, issue search.

Auth: ``Authorization: Bearer <EMERGENT_GITHUB_TOKEN>`` (classic or fine-grained token).
Pagination: ``Link`` headers. Rate limits: 429, or 403 with ``X-RateLimit-Remaining: 0`` (wait until
``X-RateLimit-Reset``) or a ``Retry-After`` (secondary limits). Missing scopes: classic tokens name
what they have in ``X-OAuth-Scopes`` and what the endpoint accepts in ``X-Accepted-OAuth-Scopes``;
fine-grained tokens get ``X-Accepted-GitHub-Permissions``.
"""

from __future__ import annotations

import time
from typing import Any

import httpx

from emergent.errors import MissingScopeError
from emergent.tools.integrations._http import (
    DEFAULT_LIMIT,
    HttpIntegration,
    page_size,
    require,
    retry_after_seconds,
)


class GitHub(HttpIntegration):
    name = "github"
    title = "GitHub"
    credential_setting = "EMERGENT_GITHUB_TOKEN"
    base_url_setting = "EMERGENT_GITHUB_BASE_URL"
    operations = {
        "list_issues": "read",
        "get_issue": "read",
        "create_issue": "external",
        "comment": "external",
        "list_pulls": "read",
        "search_issues": "read",
    }

    def __init__(self, token: str, base_url: str = "https://api.github.com", **kwargs: Any) -> None:
        super().__init__(
            base_url,
            headers={
                "Authorization": f"Bearer {token}",
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28",
            },
            **kwargs,
        )

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> GitHub:
        token = require(s.github_token, cls.credential_setting, cls.title)
        return cls(token, s.github_base_url, **{**cls.http_options(s), **kwargs})

    # ------------------------------------------------------------------ operations
    def list_issues(
        self, owner: str, repo: str, state: str = "open", labels: list[str] | None = None,
        limit: int = DEFAULT_LIMIT,
    ) -> list[dict[str, Any]]:
        """Issues (and pull requests, which GitHub lists as issues) of ``owner/repo``."""
        params: dict[str, Any] = {"state": state, "per_page": page_size(limit, 100)}
        if labels:
            params["labels"] = ",".join(labels)
        return self.paginate_links(f"/repos/{owner}/{repo}/issues", params, limit)

    def get_issue(self, owner: str, repo: str, number: int) -> dict[str, Any]:
        return self.expect(self.call("GET", f"/repos/{owner}/{repo}/issues/{number}"), None, dict)

    def create_issue(
        self, owner: str, repo: str, title: str, body: str | None = None,
        labels: list[str] | None = None, assignees: list[str] | None = None,
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {"title": title}
        for key, value in (("body", body), ("labels", labels), ("assignees", assignees)):
            if value:
                payload[key] = value
        data = self.call("POST", f"/repos/{owner}/{repo}/issues", json=payload)
        self.expect(data, "number", int)
        return data

    def comment(self, owner: str, repo: str, number: int, body: str) -> dict[str, Any]:
        """Add a comment to issue or pull request ``number``."""
        data = self.call("POST", f"/repos/{owner}/{repo}/issues/{number}/comments", json={"body": body})
        self.expect(data, "id", int)
        return data

    def list_pulls(
        self, owner: str, repo: str, state: str = "open", limit: int = DEFAULT_LIMIT
    ) -> list[dict[str, Any]]:
        params = {"state": state, "per_page": page_size(limit, 100)}
        return self.paginate_links(f"/repos/{owner}/{repo}/pulls", params, limit)

    def search_issues(self, query: str, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """Issues and pull requests matching GitHub search syntax (``repo:o/r is:open label:bug``)."""
        params = {"q": query, "per_page": page_size(limit, 100)}
        return self.paginate_links("/search/issues", params, limit, items_key="items")

    # ------------------------------------------------------------------ vendor signals
    def _rate_limit_wait(self, resp: httpx.Response) -> float | None:
        if resp.status_code not in (403, 429):
            return None
        wait = retry_after_seconds(resp)
        if wait is not None:
            return wait
        if resp.headers.get("x-ratelimit-remaining") == "0":
            reset = float(resp.headers.get("x-ratelimit-reset") or time.time() + 60)
            return max(0.0, reset - time.time())
        return 1.0 if resp.status_code == 429 else None

    def _raise_for_error(self, resp: httpx.Response) -> None:
        accepted = resp.headers.get("x-accepted-oauth-scopes")
        have = resp.headers.get("x-oauth-scopes")
        permissions = resp.headers.get("x-accepted-github-permissions")
        if resp.status_code in (403, 404) and (permissions or (accepted and have is not None)):
            needed = permissions or accepted
            held = set(s.strip() for s in (have or "").split(",") if s.strip())
            if permissions or not held & {s.strip() for s in (accepted or "").split(",")}:
                raise MissingScopeError(
                    f"GitHub refused {resp.request.method} {resp.request.url.path}: the token in "
                    f"{self.credential_setting} lacks {'permission' if permissions else 'scope'} {needed}"
                    + (f" (it has: {have or 'no scopes'})" if have is not None else ""),
                    hint=f"create a token with {needed} and put it in {self.credential_setting}",
                    integration=self.name, status=resp.status_code, setting=self.credential_setting,
                    needed=needed, provided=have,
                )
        super()._raise_for_error(resp)
