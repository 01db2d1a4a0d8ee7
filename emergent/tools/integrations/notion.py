"""Notion API (``Notion-Version: 2025-09-03``): search, pages, appending blocks, data-source
queries, users.

Auth: ``Authorization: Bearer <EMERGENT_NOTION_TOKEN>`` (an internal integration secret). A page
or database is visible only once it is shared with the integration: Notion answers 404
``object_not_found`` (or 403 ``restricted_resource``) otherwise, and the errors here say so.
Pagination: ``has_more`` / ``next_cursor``, sent back as ``start_cursor``.
"""

from __future__ import annotations

from typing import Any

import httpx

from emergent.errors import MissingScopeError, NotFoundError
from emergent.tools.integrations._http import DEFAULT_LIMIT, HttpIntegration, page_size, require


def paragraph(text: str) -> dict[str, Any]:
    """A paragraph block holding ``text``."""
    return {"type": "paragraph",
            "paragraph": {"rich_text": [{"type": "text", "text": {"content": text}}]}}


class Notion(HttpIntegration):
    name = "notion"
    title = "Notion"
    credential_setting = "EMERGENT_NOTION_TOKEN"
    base_url_setting = "EMERGENT_NOTION_BASE_URL"
    operations = {
        "search": "read",
        "get_page": "read",
        "create_page": "external",
        "append_text": "external",
        "query_data_source": "read",
        "list_users": "read",
    }

    def __init__(self, token: str, base_url: str = "https://api.notion.com", version: str = "2025-09-03",
                 **kwargs: Any) -> None:
        super().__init__(base_url, headers={"Authorization": f"Bearer {token}", "Notion-Version": version}, **kwargs)

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> Notion:
        token = require(s.notion_token, cls.credential_setting, cls.title)
        return cls(token, s.notion_base_url, s.notion_version, **{**cls.http_options(s), **kwargs})

    def _pages(self, method: str, path: str, body: dict[str, Any] | None, limit: int) -> list[dict[str, Any]]:
        size = page_size(limit, 100)

        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            if method == "GET":
                params = {"page_size": size, **({"start_cursor": cursor} if cursor else {})}
                data = self.call("GET", path, params=params)
            else:
                payload = {**(body or {}), "page_size": size, **({"start_cursor": cursor} if cursor else {})}
                data = self.call(method, path, json=payload)
            results = self.expect(data, "results", list)
            return results, data.get("next_cursor") if data.get("has_more") else None

        return self.collect(fetch, limit)

    def _raise_for_error(self, resp: httpx.Response) -> None:
        try:
            code = resp.json().get("code")
        except (ValueError, AttributeError):
            code = None
        where = f"{resp.request.method} {resp.request.url.path}"
        if code == "restricted_resource":
            raise MissingScopeError(
                f"Notion refused {where}: the integration lacks a capability or access ({self._error_detail(resp)})",
                hint="enable the capability (read/insert/update content) in the integration's settings and share "
                     "the page with it", integration=self.name, status=resp.status_code,
                setting=self.credential_setting, needed=None, provided=None)
        if code == "object_not_found":
            raise NotFoundError(f"Notion has nothing at {where} visible to the integration",
                                hint="share the page or database with the integration (••• → Connections)",
                                integration=self.name, status=resp.status_code)
        super()._raise_for_error(resp)

    # ------------------------------------------------------------------ operations
    def search(self, query: str = "", object_type: str | None = None, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """Pages and data sources whose title matches ``query``.

        Args:
            query: text compared against titles (empty: everything shared with the integration)
            object_type: page or data_source to search only those
            limit: most results to return
        """
        body: dict[str, Any] = {"query": query}
        if object_type:
            body["filter"] = {"property": "object", "value": object_type}
        return self._pages("POST", "/v1/search", body, limit)

    def get_page(self, page_id: str) -> dict[str, Any]:
        data = self.call("GET", f"/v1/pages/{page_id}")
        self.expect(data, "id", str)
        return data

    def create_page(self, parent_page_id: str, title: str, text: str | None = None) -> dict[str, Any]:
        """Create a page under another page, with optional paragraphs of ``text`` (blank-line separated)."""
        body = {"parent": {"page_id": parent_page_id},
                "properties": {"title": {"title": [{"type": "text", "text": {"content": title}}]}}}
        page = self.call("POST", "/v1/pages", json=body)
        self.expect(page, "id", str)
        if text:
            self.append_text(page["id"], text)
        return page

    def append_text(self, block_id: str, text: str) -> list[dict[str, Any]]:
        """Append paragraphs (blank-line separated) to a page or block; returns the new blocks."""
        children = [paragraph(p) for p in text.split("\n\n") if p.strip()]
        data = self.call("PATCH", f"/v1/blocks/{block_id}/children", json={"children": children})
        return self.expect(data, "results", list)

    def query_data_source(self, data_source_id: str, filter: dict[str, Any] | None = None,
                          limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """Pages (rows) of a data source, optionally filtered with a Notion filter object."""
        body = {"filter": filter} if filter else {}
        return self._pages("POST", f"/v1/data_sources/{data_source_id}/query", body, limit)

    def list_users(self, limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        return self._pages("GET", "/v1/users", None, limit)
