"""Slack Web API client against a local server checked with Slack's Swagger 2.0 description."""

from __future__ import annotations

import pytest
from vendor_harness import Raw, Swagger2Validator, instance, spec

from emergent.errors import CredentialError, MissingScopeError, NotFoundError, RateLimitedError
from emergent.tools.integrations import Slack

DOC = "slack/subset.json"


def ok(path: str, **fields):
    """A success body shaped by the documented 200 schema of ``path``."""
    doc = spec(DOC)
    operation = next(iter(doc["paths"][path].values()))
    return instance(doc, operation["responses"]["200"]["schema"], **fields)


def channel(cid: str, name: str) -> dict:
    return instance(spec(DOC), "#/definitions/objs_conversation", id=cid, name=name)


@pytest.fixture
def slack(vendor_server):
    server = vendor_server(Swagger2Validator(spec(DOC), ""))
    waits: list[float] = []
    client = Slack("xoxb-test", server.url, sleep=waits.append)
    yield server, client, waits
    client.close()


def test_post_message_sends_form_fields_with_bearer_token(slack) -> None:
    server, client, _ = slack
    server.route("POST", "/chat.postMessage", lambda req, p: (200, ok(
        "/chat.postMessage", channel=req.form["channel"], ts="1700000000.000100")))
    out = client.post_message("C0123ABCD", "deploy finished", thread_ts="1699999999.000001",
                              blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*done*"}}])
    assert out["ts"] == "1700000000.000100" and out["channel"] == "C0123ABCD"
    call = server.calls[0]
    assert call.headers["Authorization"] == "Bearer xoxb-test"
    assert call.headers["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_list_channels_follows_cursors(slack) -> None:
    server, client, _ = slack

    def page(req, p):
        if req.args.get("cursor") == "dXNlcjpVMDYx":
            return 200, ok("/conversations.list", channels=[channel("C03OPS0000", "ops")],
                           response_metadata={"next_cursor": ""})
        return 200, ok("/conversations.list", channels=[channel("C01GENERAL", "general"), channel("C02RANDOM0", "random")],
                       response_metadata={"next_cursor": "dXNlcjpVMDYx"})

    server.route("GET", "/conversations.list", page)
    assert [c["name"] for c in client.list_channels(limit=10)] == ["general", "random", "ops"]
    assert server.calls[0].args["exclude_archived"] == ["true"]
    assert server.calls[1].args["cursor"] == ["dXNlcjpVMDYx"]


def test_missing_scope_names_needed_and_provided(slack) -> None:
    server, client, _ = slack
    # Slack documents this answer on its scopes page, not in the 2020 Web API description (whose
    # error enum for chat.postMessage omits missing_scope), so it is sent unchecked.
    body = '{"ok": false, "error": "missing_scope", "needed": "chat:write", "provided": "channels:read"}'
    server.route("POST", "/chat.postMessage", lambda req, p: (200, Raw(body, "application/json")))
    with pytest.raises(MissingScopeError) as err:
        client.post_message("C0123ABCD", "hi")
    assert err.value.needed == "chat:write" and err.value.provided == "channels:read"
    assert "EMERGENT_SLACK_TOKEN" in str(err.value)


def test_invalid_auth_and_unknown_channel_are_told_apart(slack) -> None:
    server, client, _ = slack
    server.route("GET", "/auth.test", lambda req, p: (200, {"ok": False, "error": "invalid_auth"}))
    server.route("GET", "/conversations.history", lambda req, p: (200, {"ok": False, "error": "channel_not_found"}))
    with pytest.raises(CredentialError, match="EMERGENT_SLACK_TOKEN"):
        client.auth_test()
    with pytest.raises(NotFoundError, match="channel_not_found"):
        client.history("C0404NOPE")


def test_ratelimited_waits_retry_after_then_gives_up(slack) -> None:
    server, client, waits = slack
    answers = iter([(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"}),
                    (200, ok("/auth.test", user_id="U0123ABCD", team="acme"))])
    server.route("GET", "/auth.test", lambda req, p: next(answers))
    assert client.auth_test()["team"] == "acme" and waits == [1.0]
    server.route("GET", "/auth.test", lambda req, p: (429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "120"}))
    with pytest.raises(RateLimitedError, match="120 s"):
        client.auth_test()  # longer than EMERGENT_HTTP_MAX_WAIT_S: no point in waiting


def test_history_and_user_info(slack) -> None:
    server, client, _ = slack
    message = instance(spec(DOC), "#/definitions/objs_message", text="hello", ts="1700000000.000100")
    server.route("GET", "/conversations.history", lambda req, p: (200, ok(
        "/conversations.history", messages=[message], has_more=False, pin_count=0)))
    server.route("GET", "/users.info", lambda req, p: (200, ok(
        "/users.info", user=instance(spec(DOC), "#/definitions/objs_user", id=req.args["user"], name="ada"))))
    assert [m["text"] for m in client.history("C0123ABCD", oldest=1699990000.5)] == ["hello"]
    assert server.calls[0].args["oldest"] == ["1699990000.5"]
    assert client.user_info("U0123ABCD")["name"] == "ada"
