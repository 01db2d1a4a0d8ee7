"""PagerDuty REST API v2: list, get, create, acknowledge and resolve incidents.

Auth: ``Authorization: Token token=<EMERGENT_PAGERDUTY_TOKEN>`` (a REST API key). Writes also need
a ``From`` header naming a PagerDuty user's e-mail (``EMERGENT_PAGERDUTY_FROM``). Pagination:
``offset`` / ``limit`` with ``more``. Errors come as ``{"error": {"message", "code", "errors"}}``.
"""

from __future__ import annotations

from typing import Any

from emergent.tools.integrations._http import DEFAULT_LIMIT, HttpIntegration, page_size, require


class PagerDuty(HttpIntegration):
    name = "pagerduty"
    title = "PagerDuty"
    credential_setting = "EMERGENT_PAGERDUTY_TOKEN"
    base_url_setting = "EMERGENT_PAGERDUTY_BASE_URL"
    operations = {
        "list_incidents": "read",
        "get_incident": "read",
        "create_incident": "external",
        "acknowledge": "external",
        "resolve": "external",
    }

    def __init__(self, token: str, base_url: str = "https://api.pagerduty.com", from_email: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(base_url, headers={
            "Authorization": f"Token token={token}",
            "Accept": "application/vnd.pagerduty+json;version=2",
            "Content-Type": "application/json",
        }, **kwargs)
        self.from_email = from_email

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> PagerDuty:
        token = require(s.pagerduty_token, cls.credential_setting, cls.title, "a REST API key")
        return cls(token, s.pagerduty_base_url, s.pagerduty_from, **{**cls.http_options(s), **kwargs})

    def _from(self) -> dict[str, str]:
        email = require(self.from_email, "EMERGENT_PAGERDUTY_FROM", self.title,
                        "the e-mail of a PagerDuty user to act as (writes need a From header)")
        return {"From": email}

    def list_incidents(self, statuses: list[str] | None = None, service_ids: list[str] | None = None,
                       limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        """Incidents, optionally only with these statuses (triggered, acknowledged, resolved)."""
        size = page_size(limit, 100)

        def fetch(offset: int | None) -> tuple[list[Any], int | None]:
            params: dict[str, Any] = {"limit": size, "offset": offset or 0}
            if statuses:
                params["statuses[]"] = statuses
            if service_ids:
                params["service_ids[]"] = service_ids
            data = self.call("GET", "/incidents", params=params)
            page = self.expect(data, "incidents", list)
            return page, (offset or 0) + len(page) if data.get("more") and page else None

        return self.collect(fetch, limit)

    def get_incident(self, incident_id: str) -> dict[str, Any]:
        return self.expect(self.call("GET", f"/incidents/{incident_id}"), "incident", dict)

    def create_incident(self, service_id: str, title: str, urgency: str = "high", details: str | None = None,
                        incident_key: str | None = None) -> dict[str, Any]:
        """Open an incident on a service.

        Args:
            service_id: the PagerDuty service (e.g. PWIXJZS)
            title: what is wrong, in one line
            urgency: high or low
            details: longer description
            incident_key: de-duplication key (an open incident with the same key rejects the call)
        """
        incident: dict[str, Any] = {"type": "incident", "title": title, "urgency": urgency,
                                    "service": {"id": service_id, "type": "service_reference"}}
        if details:
            incident["body"] = {"type": "incident_body", "details": details}
        if incident_key:
            incident["incident_key"] = incident_key
        data = self.call("POST", "/incidents", json={"incident": incident}, headers=self._from())
        return self.expect(data, "incident", dict)

    def _set_status(self, incident_id: str, status: str) -> dict[str, Any]:
        body = {"incident": {"type": "incident_reference", "status": status}}
        data = self.call("PUT", f"/incidents/{incident_id}", json=body, headers=self._from())
        return self.expect(data, "incident", dict)

    def acknowledge(self, incident_id: str) -> dict[str, Any]:
        return self._set_status(incident_id, "acknowledged")

    def resolve(self, incident_id: str) -> dict[str, Any]:
        return self._set_status(incident_id, "resolved")
