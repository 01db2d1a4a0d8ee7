"""Confluence Cloud REST: pages through API v2 (``/wiki/api/v2``), CQL search through v1
(``/wiki/rest/api/search``, which v2 does not offer).

Auth: HTTP basic with ``EMERGENT_CONFLUENCE_EMAIL`` and an API token in
``EMERGENT_CONFLUENCE_TOKEN``; ``EMERGENT_CONFLUENCE_BASE_URL`` is the site
(``https://<site>.atlassian.net``). Pagination: ``_links.next`` (a site-relative URL carrying the
cursor) in both versions.
"""

from __future__ import annotations

from typing import Any

from emergent.tools.integrations._http import DEFAULT_LIMIT, HttpIntegration, page_size
from emergent.tools.integrations.jira import atlassian_auth


class Confluence(HttpIntegration):
    name = "confluence"
    title = "Confluence"
    credential_setting = "EMERGENT_CONFLUENCE_EMAIL / EMERGENT_CONFLUENCE_TOKEN"
    base_url_setting = "EMERGENT_CONFLUENCE_BASE_URL"
    operations = {"search": "read", "list_pages": "read", "get_page": "read", "create_page": "external"}

    def __init__(self, base_url: str, email: str, token: str, **kwargs: Any) -> None:
        super().__init__(base_url, auth=(email, token), headers={"Accept": "application/json"}, **kwargs)

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> Confluence:
        site, (email, token) = atlassian_auth(s, "confluence", cls.title)
        return cls(site, email, token, **{**cls.http_options(s), **kwargs})

    def _follow_next(self, path: str, params: dict[str, Any], limit: int) -> list[dict[str, Any]]:
        def fetch(next_link: str | None) -> tuple[list[Any], str | None]:
            data = self.call("GET", next_link or path, params=None if next_link else params)
            results = self.expect(data, "results", list)
            links = data.get("_links") or {}
            return results, links.get("next") if isinstance(links, dict) else None

        return self.collect(fetch, limit)

    def search(self, cql: str, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """Content matching a CQL query.

        Args:
            cql: e.g. ``type = page AND space = ENG AND text ~ "runbook"``
            limit: most results to return
        """
        return self._follow_next("/wiki/rest/api/search", {"cql": cql, "limit": page_size(limit, 100)}, limit)

    def list_pages(self, space_id: int | None = None, title: str | None = None,
                   limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """Pages, optionally of one space (numeric id) or with an exact title."""
        params: dict[str, Any] = {"limit": page_size(limit, 250)}
        if space_id is not None:
            params["space-id"] = [space_id]
        if title:
            params["title"] = title
        return self._follow_next("/wiki/api/v2/pages", params, limit)

    def get_page(self, page_id: int, body_format: str = "storage") -> dict[str, Any]:
        data = self.call("GET", f"/wiki/api/v2/pages/{page_id}", params={"body-format": body_format})
        self.expect(data, "id", str)
        return data

    def create_page(self, space_id: str, title: str, body: str, parent_id: str | None = None,
                    representation: str = "storage") -> dict[str, Any]:
        """Create a published page.

        Args:
            space_id: id of the space
            title: page title
            body: page content in ``representation`` (storage = Confluence XHTML)
            parent_id: parent page id (the space home page when omitted)
            representation: storage or atlas_doc_format
        """
        payload: dict[str, Any] = {
            "spaceId": space_id, "status": "current", "title": title,
            "body": {"representation": representation, "value": body},
        }
        if parent_id:
            payload["parentId"] = parent_id
        data = self.call("POST", "/wiki/api/v2/pages", json=payload)
        self.expect(data, "id", str)
        return data
