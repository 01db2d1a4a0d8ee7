"""External integrations: GitHub, GitLab, Jira, Confluence, Slack, Linear, Notion, PagerDuty, a
signed webhook and e-mail (SMTP + IMAP).

Each vendor is a small client class (``emergent.tools.integrations.<vendor>``) built from
:class:`~emergent.config.IntegrationSettings` with ``from_settings``; its ``operations`` (method
name → side-effect level) become tools named ``<vendor>.<operation>`` (``github.create_issue``,
``slack.post_message``...) through :func:`tool_specs`, which the ``emergent.tools`` entry point
hands to the tool registry. Third-party packages add vendors to :data:`INTEGRATIONS` through the
``emergent.integrations`` entry-point group.
"""

from __future__ import annotations

from typing import Any

from emergent.registry import Registry
from emergent.tools.integrations.confluence import Confluence
from emergent.tools.integrations.github import GitHub
from emergent.tools.integrations.gitlab import GitLab
from emergent.tools.integrations.jira import Jira
from emergent.tools.integrations.linear import Linear
from emergent.tools.integrations.mail import Email
from emergent.tools.integrations.notion import Notion
from emergent.tools.integrations.pagerduty import PagerDuty
from emergent.tools.integrations.slack import Slack
from emergent.tools.integrations.webhook import Webhook

#: vendor name → client class (``from_settings``, ``operations``, ``close``)
INTEGRATIONS: Registry[Any] = Registry("integration", group="emergent.integrations")
for _cls in (GitHub, GitLab, Jira, Confluence, Slack, Linear, Notion, PagerDuty, Webhook, Email):
    INTEGRATIONS.register(_cls.name, _cls)


def connect(name: str, settings: Any) -> Any:
    """A client for integration ``name`` from :class:`~emergent.config.Settings` (or its
    ``integrations`` part); raises :class:`~emergent.errors.CredentialError` naming what is missing."""
    return INTEGRATIONS.get(name).from_settings(getattr(settings, "integrations", settings))


def status(settings: Any) -> list[dict[str, Any]]:
    """Each integration: whether its settings are complete (else which variable is missing) and its
    operations with their side-effect levels. Builds clients but sends nothing."""
    from emergent.errors import CredentialError

    s = getattr(settings, "integrations", settings)
    rows = []
    for name in INTEGRATIONS.names():
        cls = INTEGRATIONS.get(name)
        missing = None
        try:
            cls.from_settings(s).close()
            if name == "email" and not (s.smtp_host or s.imap_host):
                missing = "EMERGENT_SMTP_HOST / EMERGENT_IMAP_HOST"
        except CredentialError as exc:
            missing = exc.fields.get("setting") or str(exc)
        rows.append({"name": name, "title": cls.title, "configured": missing is None, "missing": missing,
                     "operations": dict(cls.operations)})
    return rows


def tool_specs() -> list[Any]:
    """Every integration operation as a ToolSpec (the ``emergent.tools`` entry point)."""
    from emergent.tools.integrations._tools import specs_for

    return [spec for name in INTEGRATIONS.names() for spec in specs_for(INTEGRATIONS.get(name))]


__all__ = ["INTEGRATIONS", "Confluence", "Email", "GitHub", "GitLab", "Jira", "Linear", "Notion", "PagerDuty",
           "Slack", "Webhook", "connect", "status", "tool_specs"]
