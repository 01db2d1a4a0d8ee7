"""Slack Web API: post messages, list channels, read history, look up users.

Auth: ``Authorization: Bearer <EMERGENT_SLACK_TOKEN>`` (a bot ``xoxb-`` or user ``xoxp-`` token).
Slack answers HTTP 200 with ``{"ok": false, "error": ...}`` for most failures: ``missing_scope``
carries ``needed`` and ``provided``; ``not_authed`` / ``invalid_auth`` / ``token_revoked`` mean the
token is wrong; ``ratelimited`` comes as HTTP 429 with ``Retry-After``. Pagination: cursors in
``response_metadata.next_cursor``.
"""

from __future__ import annotations

import json
from typing import Any

from emergent.errors import (
    CredentialError,
    IntegrationError,
    MissingScopeError,
    NotFoundError,
    ValidationError,
)
from emergent.tools.integrations._http import DEFAULT_LIMIT, HttpIntegration, page_size, require

_AUTH_ERRORS = {"not_authed", "invalid_auth", "token_revoked", "token_expired", "account_inactive",
                "no_permission", "ekm_access_denied"}
_NOT_FOUND = {"channel_not_found", "user_not_found", "thread_not_found", "message_not_found"}


class Slack(HttpIntegration):
    name = "slack"
    title = "Slack"
    credential_setting = "EMERGENT_SLACK_TOKEN"
    base_url_setting = "EMERGENT_SLACK_BASE_URL"
    operations = {
        "post_message": "external",
        "list_channels": "read",
        "history": "read",
        "user_info": "read",
        "auth_test": "read",
    }

    def __init__(self, token: str, base_url: str = "https://slack.com/api", **kwargs: Any) -> None:
        super().__init__(base_url, headers={"Authorization": f"Bearer {token}"}, **kwargs)

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> Slack:
        token = require(s.slack_token, cls.credential_setting, cls.title)
        return cls(token, s.slack_base_url, **{**cls.http_options(s), **kwargs})

    def api(self, method: str, *, http: str = "GET", **args: Any) -> dict[str, Any]:
        """Call Web API ``method`` (e.g. ``conversations.list``); raise on ``ok: false``."""
        clean = {k: v for k, v in args.items() if v is not None}
        if http == "GET":
            resp = self.request("GET", f"/{method}", params=clean)
        else:  # write methods take form fields (the documented encoding)
            resp = self.request("POST", f"/{method}", data=clean)
        data = self.expect(self.parse(resp), None, dict)
        if data.get("ok") is not True:
            self._raise_slack(method, data)
        return data

    def _raise_slack(self, method: str, data: dict[str, Any]) -> None:
        error = str(data.get("error") or "unknown_error")
        fields = {"integration": self.name, "error": error}
        if error == "missing_scope":
            needed, provided = data.get("needed"), data.get("provided")
            raise MissingScopeError(
                f"Slack refused {method}: the token in {self.credential_setting} lacks scope {needed}"
                f" (it has: {provided or 'unknown'})",
                hint=f"add the {needed} scope to the Slack app, reinstall it and update {self.credential_setting}",
                setting=self.credential_setting, needed=needed, provided=provided, **fields,
            )
        if error in _AUTH_ERRORS:
            raise CredentialError(f"Slack rejected the token for {method}: {error}",
                                  hint=f"check {self.credential_setting}", setting=self.credential_setting, **fields)
        if error in _NOT_FOUND:
            raise NotFoundError(f"Slack {method}: {error}",
                                hint="check the id, and that the app is a member of the channel", **fields)
        if error.startswith("invalid_") or error in {"no_text", "msg_too_long", "too_many_attachments"}:
            raise ValidationError(f"Slack rejected {method}: {error}", hint="fix the arguments", **fields)
        raise IntegrationError(f"Slack {method} failed: {error}", **fields)

    # ------------------------------------------------------------------ operations
    def post_message(self, channel: str, text: str, thread_ts: str | None = None,
                     blocks: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """Post a message to a channel (id or name) or a thread.

        Args:
            channel: channel id (C…) or name
            text: message text (mrkdwn); the notification fallback when blocks are given
            thread_ts: reply in the thread of this message
            blocks: Block Kit blocks
        """
        data = self.api("chat.postMessage", http="POST", channel=channel, text=text, thread_ts=thread_ts,
                        blocks=json.dumps(blocks) if blocks else None)
        self.expect(data, "ts", str)
        return {"channel": data.get("channel"), "ts": data["ts"], "message": data.get("message")}

    def list_channels(self, types: str = "public_channel", exclude_archived: bool = True,
                      limit: int = DEFAULT_LIMIT) -> list[dict[str, Any]]:
        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            data = self.api("conversations.list", types=types, exclude_archived=str(exclude_archived).lower(),
                            limit=page_size(limit, 200), cursor=cursor)
            return self.expect(data, "channels", list), _next_cursor(data)

        return self.collect(fetch, limit)

    def history(self, channel: str, limit: int = DEFAULT_LIMIT, oldest: float | None = None) -> list[dict[str, Any]]:
        """Messages of a channel, newest first."""
        def fetch(cursor: str | None) -> tuple[list[Any], str | None]:
            data = self.api("conversations.history", channel=channel, limit=page_size(limit, 200),
                            cursor=cursor, oldest=oldest)
            return self.expect(data, "messages", list), _next_cursor(data)

        return self.collect(fetch, limit)

    def user_info(self, user: str) -> dict[str, Any]:
        return self.expect(self.api("users.info", user=user), "user", dict)

    def auth_test(self) -> dict[str, Any]:
        """Who the token is (team, user, bot): a cheap credential check."""
        data = self.api("auth.test")
        return {k: v for k, v in data.items() if k != "ok"}


def _next_cursor(data: dict[str, Any]) -> str | None:
    meta = data.get("response_metadata") or {}
    return (meta.get("next_cursor") or None) if isinstance(meta, dict) else None
