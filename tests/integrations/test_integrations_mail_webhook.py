"""E-mail over a local SMTP server (aiosmtpd) that delivers into a local IMAP server (pymap, an
IMAP4rev1 server with an in-memory backend), and the signed webhook against a receiver that
verifies every signature."""

from __future__ import annotations

import imaplib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from vendor_harness import Raw

from emergent.config import IntegrationSettings
from emergent.errors import (
    CredentialError,
    IntegrationUnavailableError,
    NotFoundError,
    RateLimitedError,
    ValidationError,
)
from emergent.tools.integrations import Email, Webhook, connect
from emergent.tools.integrations.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign, verify_signature

IMAP_USER, IMAP_PASSWORD = "demouser", "demopass"
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ---------------------------------------------------------------------- IMAP: pymap
@pytest.fixture(scope="module")
def imap_port() -> Iterator[int]:
    """pymap's IMAP server with its demo mailbox (4 messages in INBOX) on a free port."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", "from pymap.main import main; main()", "--host", "127.0.0.1", "--port", str(port), "dict", "--demo-data",
                             "--demo-user", IMAP_USER, "--demo-password", IMAP_PASSWORD],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 15
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None:
                pytest.fail(f"pymap did not start: {proc.stderr.read().decode()[-500:] if proc.stderr else ''}")
            time.sleep(0.05)
    yield port
    proc.terminate()
    proc.wait(5)


# ---------------------------------------------------------------------- SMTP: aiosmtpd
class Delivering:
    """An aiosmtpd handler that delivers each accepted message into the IMAP INBOX (APPEND)."""

    def __init__(self, imap_port: int) -> None:
        self.imap_port = imap_port
        self.envelopes: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope) -> str:
        if b"Subject: defer" in envelope.content:
            return "451 4.3.0 Mailbox busy, try again later"
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        conn = imaplib.IMAP4("127.0.0.1", self.imap_port)
        conn.login(IMAP_USER, IMAP_PASSWORD)
        conn.append("INBOX", None, None, envelope.content)
        conn.logout()
        return "250 2.0.0 Message accepted for delivery"


def authenticate(server, session, envelope, mechanism, auth_data) -> AuthResult:
    ok = auth_data.login == b"bot@example.org" and auth_data.password == b"smtp-secret"
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def mail(imap_port: int) -> Iterator[tuple[Email, Delivering]]:
    handler = Delivering(imap_port)
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), authenticator=authenticate,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    settings = IntegrationSettings(
        smtp_host="127.0.0.1", smtp_port=controller.port, smtp_security="none", smtp_user="bot@example.org",
        smtp_password="smtp-secret", smtp_from="bot@example.org", imap_host="127.0.0.1", imap_port=imap_port,
        imap_user=IMAP_USER, imap_password=IMAP_PASSWORD, imap_security="none", http_timeout_s=5)
    yield connect("email", settings), handler
    controller.stop()


def test_send_over_smtp_then_find_and_read_it_over_imap(mail) -> None:
    client, handler = mail
    out = client.send(["ada@example.org"], "Weekly report", "All green.\n", cc=["Bob <bob@example.org>"],
                      html="<p>All <b>green</b>.</p>")
    assert out["accepted"] == ["ada@example.org", "bob@example.org"] and out["refused"] == []
    sender, rcpts, content = handler.envelopes[0]
    assert sender == "bot@example.org" and rcpts == ["ada@example.org", "bob@example.org"]
    assert b"Subject: Weekly report" in content and out["message_id"].encode() in content
    newest = client.list_messages(limit=2)
    assert newest[0]["subject"] == "Weekly report" and newest[0]["uid"] > newest[1]["uid"]
    message = client.read_message(newest[0]["uid"])
    assert message["text"] == "All green.\n" and message["from"] == "bot@example.org"


def test_imap_search_criteria_and_unknown_folder(mail) -> None:
    client, _ = mail
    unseen = client.list_messages(criteria="UNSEEN", limit=50)
    assert all(not m["seen"] for m in unseen)
    assert {m["uid"] for m in unseen} < {m["uid"] for m in client.list_messages(limit=50)}
    with pytest.raises(NotFoundError, match="'Archive/2019'"):
        client.list_messages(folder="Archive/2019")


def test_wrong_passwords_name_the_settings(mail, imap_port: int) -> None:
    client, _ = mail
    bad_smtp = Email(client.s.model_copy(update={"smtp_password": "nope"}))
    with pytest.raises(CredentialError, match="EMERGENT_SMTP_USER and EMERGENT_SMTP_PASSWORD"):
        bad_smtp.send(["ada@example.org"], "x", "y")
    bad_imap = Email(client.s.model_copy(update={"imap_password": "nope"}))
    with pytest.raises(CredentialError, match="EMERGENT_IMAP_USER and EMERGENT_IMAP_PASSWORD"):
        bad_imap.list_messages()
    with pytest.raises(CredentialError, match="EMERGENT_SMTP_HOST is not set"):
        Email(IntegrationSettings()).send(["ada@example.org"], "x", "y")


def test_temporary_smtp_failure_is_retryable_and_bad_address_is_refused(mail) -> None:
    client, _ = mail
    with pytest.raises(IntegrationUnavailableError, match="451") as err:
        client.send(["ada@example.org"], "defer", "later")
    assert err.value.retryable
    with pytest.raises(ValidationError, match="not every recipient"):
        client.send(["not-an-address"], "x", "y")


# ---------------------------------------------------------------------- webhook
class SignatureChecker:
    """No vendor description: the receiver's contract is the signature, checked on every request."""

    def __init__(self, secret: str) -> None:
        self.secret = secret

    def bind(self, base_url: str) -> None:
        pass

    def check(self, request, response) -> list[str]:
        if response is not None:
            return []
        try:
            verify_signature(self.secret, dict(request.headers), request.get_data())
        except (CredentialError, ValidationError) as exc:
            return [str(exc)]
        return [] if request.mimetype == "application/json" else [f"content type {request.mimetype}"]


def test_webhook_posts_signed_json_and_retries_429(vendor_server) -> None:
    server = vendor_server(SignatureChecker("whsec"))
    answers = iter([(429, {}, {"Retry-After": "0"}), (202, Raw("queued", "text/plain"))])
    server.route("POST", "/hooks/in", lambda req, p: next(answers))
    hook = Webhook(server.url + "/hooks/in", "whsec")
    out = hook.send("experiment.finished", {"id": 7, "winner": "B"})
    assert out["status"] == 202 and out["response"] == "queued"
    body = server.calls[1].json()
    assert body["event"] == "experiment.finished" and body["payload"] == {"id": 7, "winner": "B"}
    assert server.calls[0].headers["X-Emergent-Delivery"] == server.calls[1].headers["X-Emergent-Delivery"]


def test_webhook_signature_checks_refuse_tampering_and_replay() -> None:
    body, ts = b'{"event":"x"}', str(int(time.time()))
    good = {SIGNATURE_HEADER: sign("s3cret", ts, body), TIMESTAMP_HEADER: ts}
    verify_signature("s3cret", good, body)
    with pytest.raises(CredentialError, match="does not match"):
        verify_signature("s3cret", good, body + b" ")
    with pytest.raises(ValidationError, match="old"):
        verify_signature("s3cret", good, body, now=time.time() + 3600)
    with pytest.raises(ValidationError, match="not signed"):
        verify_signature("s3cret", {}, body)


def test_webhook_receiver_rejection_and_missing_settings(vendor_server) -> None:
    server = vendor_server(SignatureChecker("whsec"))
    server.route("POST", "/hooks/in", lambda req, p: (429, {}, {"Retry-After": "3600"}))
    with pytest.raises(RateLimitedError, match="3600 s"):
        Webhook(server.url + "/hooks/in", "whsec").send("x", {})
    with pytest.raises(CredentialError, match="EMERGENT_WEBHOOK_SECRET is not set"):
        connect("webhook", IntegrationSettings(webhook_url=server.url))
    with pytest.raises(ValidationError, match="JSON"):
        Webhook(server.url + "/hooks/in", "whsec").send("x", {"when": object()})
