"""E-mail: send over SMTP (``smtplib``), list and read over IMAP (``imaplib``).

Settings: ``EMERGENT_SMTP_HOST``/``_PORT``/``_USER``/``_PASSWORD``/``_FROM`` and ``_SECURITY``
(``starttls`` default, ``ssl``, or ``none`` for a local relay); ``EMERGENT_IMAP_HOST``/``_PORT``/
``_USER``/``_PASSWORD``/``_SECURITY`` (``ssl`` default, ``starttls``, ``none``). Mail servers have no
HTTP 429: a 4xx SMTP reply (421 "try again later", 45x) is raised as a retryable
:class:`IntegrationUnavailableError`; a rejected login as a :class:`CredentialError` naming the
variables.
"""

from __future__ import annotations

import email.policy
import imaplib
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import getaddresses, make_msgid
from typing import Any

from emergent.errors import (
    CredentialError,
    IntegrationError,
    IntegrationUnavailableError,
    MalformedResponseError,
    NotFoundError,
    ValidationError,
)
from emergent.tools.integrations._http import require

_SECURITY = ("starttls", "ssl", "none")


class Email:
    name = "email"
    title = "E-mail"
    credential_setting = "EMERGENT_SMTP_USER / EMERGENT_SMTP_PASSWORD"
    operations = {"send": "external", "list_messages": "read", "read_message": "read"}

    def __init__(self, s: Any, *, timeout: float | None = None, ssl_context: ssl.SSLContext | None = None) -> None:
        self.s = s
        self.timeout = timeout or s.http_timeout_s
        self.ssl_context = ssl_context or ssl.create_default_context()

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> Email:
        return cls(s, **kwargs)

    def close(self) -> None:
        """Connections are opened per call; nothing to close."""

    # ------------------------------------------------------------------ SMTP
    def send(self, to: list[str], subject: str, body: str, cc: list[str] | None = None,
             html: str | None = None, reply_to: str | None = None) -> dict[str, Any]:
        """Send a message over SMTP.

        Args:
            to: recipient addresses
            subject: subject line
            body: plain-text body
            cc: carbon-copy addresses
            html: an HTML alternative of the body
            reply_to: Reply-To address
        """
        s = self.s
        host = require(s.smtp_host, "EMERGENT_SMTP_HOST", "SMTP", "a server")
        sender = require(s.smtp_from or s.smtp_user, "EMERGENT_SMTP_FROM", "SMTP", "a sender address")
        recipients = [a for _, a in getaddresses([*to, *(cc or [])]) if "@" in a]
        if not recipients or len(recipients) < len(to) + len(cc or []):
            raise ValidationError(f"not every recipient is an e-mail address: {[*to, *(cc or [])]}",
                                  hint="pass addresses such as ada@example.org")
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, ", ".join(to), subject
        msg["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1])
        if cc:
            msg["Cc"] = ", ".join(cc)
        if reply_to:
            msg["Reply-To"] = reply_to
        msg.set_content(body)
        if html:
            msg.add_alternative(html, subtype="html")
        refused = self._deliver(host, msg, recipients)
        return {"message_id": msg["Message-ID"], "accepted": [r for r in recipients if r not in refused],
                "refused": sorted(refused)}

    def _security(self, value: str, setting: str) -> str:
        if value not in _SECURITY:
            raise ValidationError(f"{setting}={value!r} is not one of {', '.join(_SECURITY)}")
        return value

    def _deliver(self, host: str, msg: EmailMessage, recipients: list[str]) -> dict[str, Any]:
        s = self.s
        mode = self._security(s.smtp_security, "EMERGENT_SMTP_SECURITY")
        try:
            if mode == "ssl":
                conn: smtplib.SMTP = smtplib.SMTP_SSL(host, s.smtp_port, timeout=self.timeout, context=self.ssl_context)
            else:
                conn = smtplib.SMTP(host, s.smtp_port, timeout=self.timeout)
            with conn:
                if mode == "starttls":
                    conn.starttls(context=self.ssl_context)
                if s.smtp_user:
                    password = require(s.smtp_password, "EMERGENT_SMTP_PASSWORD", "SMTP", "a password")
                    conn.login(s.smtp_user, password)
                return conn.send_message(msg, to_addrs=recipients)
        except smtplib.SMTPAuthenticationError as exc:
            raise CredentialError(f"the SMTP server {host} refused the login of {s.smtp_user!r}: {_reply(exc)}",
                                  hint="check EMERGENT_SMTP_USER and EMERGENT_SMTP_PASSWORD",
                                  integration=self.name, setting=self.credential_setting) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise IntegrationError(f"the SMTP server {host} does not support {exc}",
                                   hint="set EMERGENT_SMTP_SECURITY to match the server (starttls | ssl | none)",
                                   integration=self.name) from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise ValidationError(f"the SMTP server {host} refused every recipient: {sorted(exc.recipients)}",
                                  integration=self.name) from None
        except smtplib.SMTPResponseException as exc:
            cls = IntegrationUnavailableError if 400 <= exc.smtp_code < 500 else IntegrationError
            raise cls(f"the SMTP server {host} answered {exc.smtp_code}: {_reply(exc)}",
                      integration=self.name, status=exc.smtp_code) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise IntegrationUnavailableError(f"SMTP server {host}:{s.smtp_port} could not be reached: {exc}",
                                              hint="check EMERGENT_SMTP_HOST and EMERGENT_SMTP_PORT",
                                              integration=self.name) from None

    # ------------------------------------------------------------------ IMAP
    def _imap(self) -> imaplib.IMAP4:
        s = self.s
        host = require(s.imap_host, "EMERGENT_IMAP_HOST", "IMAP", "a server")
        user = require(s.imap_user, "EMERGENT_IMAP_USER", "IMAP", "a user name")
        password = require(s.imap_password, "EMERGENT_IMAP_PASSWORD", "IMAP", "a password")
        mode = self._security(s.imap_security, "EMERGENT_IMAP_SECURITY")
        try:
            if mode == "ssl":
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(host, s.imap_port, ssl_context=self.ssl_context,
                                                        timeout=self.timeout)
            else:
                conn = imaplib.IMAP4(host, s.imap_port, timeout=self.timeout)
                if mode == "starttls":
                    conn.starttls(ssl_context=self.ssl_context)
        except OSError as exc:
            raise IntegrationUnavailableError(f"IMAP server {host}:{s.imap_port} could not be reached: {exc}",
                                              hint="check EMERGENT_IMAP_HOST and EMERGENT_IMAP_PORT",
                                              integration=self.name) from None
        try:
            conn.login(user, password)
        except imaplib.IMAP4.error as exc:
            conn.shutdown()
            raise CredentialError(f"the IMAP server {host} refused the login of {user!r}: {exc}",
                                  hint="check EMERGENT_IMAP_USER and EMERGENT_IMAP_PASSWORD",
                                  integration=self.name, setting="EMERGENT_IMAP_USER / EMERGENT_IMAP_PASSWORD") from None
        return conn

    def _select(self, conn: imaplib.IMAP4, folder: str) -> None:
        typ, data = conn.select(_quote(folder), readonly=True)
        if typ != "OK":
            raise NotFoundError(f"IMAP folder {folder!r} cannot be opened: {_text(data)}",
                                hint="folder names are case-sensitive except INBOX", integration=self.name)

    def list_messages(self, folder: str = "INBOX", criteria: str = "ALL", limit: int = 20) -> list[dict[str, Any]]:
        """Headers of the newest messages matching IMAP SEARCH ``criteria`` (e.g. ``UNSEEN``,
        ``FROM "ada@example.org"``, ``SINCE 1-Nov-2026``), newest first; read-only."""
        conn = self._imap()
        try:
            self._select(conn, folder)
            typ, data = conn.uid("SEARCH", criteria)
            if typ != "OK":
                raise ValidationError(f"IMAP SEARCH {criteria!r} failed: {_text(data)}",
                                      hint="use RFC 3501 search keys", integration=self.name)
            uids = (data[0] or b"").split()[::-1][:limit]
            if not uids:
                return []
            fields = "BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE MESSAGE-ID)]"
            typ, data = conn.uid("FETCH", b",".join(uids).decode(), f"(UID FLAGS {fields})")
            out = [self._header_row(item) for item in data if isinstance(item, tuple)]
            return sorted(out, key=lambda r: -r["uid"])
        finally:
            conn.logout()

    def read_message(self, uid: int, folder: str = "INBOX") -> dict[str, Any]:
        """One message by UID: headers and its plain-text body (HTML stripped of tags if that is all)."""
        conn = self._imap()
        try:
            self._select(conn, folder)
            typ, data = conn.uid("FETCH", str(uid), "(BODY.PEEK[])")
            raw = next((item[1] for item in data if isinstance(item, tuple)), None)
            if typ != "OK" or raw is None:
                raise NotFoundError(f"no message with UID {uid} in {folder!r}", integration=self.name)
        finally:
            conn.logout()
        msg = BytesParser(policy=email.policy.default).parsebytes(raw)
        part = msg.get_body(preferencelist=("plain", "html"))
        text = part.get_content().replace("\r\n", "\n") if part is not None else ""
        if part is not None and part.get_content_subtype() == "html":
            text = re.sub(r"<[^>]+>", "", text)
        return {"uid": uid, "from": str(msg["From"] or ""), "to": str(msg["To"] or ""),
                "subject": str(msg["Subject"] or ""), "date": str(msg["Date"] or ""),
                "message_id": str(msg["Message-ID"] or ""), "text": text}

    def _header_row(self, item: tuple[bytes, bytes]) -> dict[str, Any]:
        meta, raw = item
        m = re.search(rb"UID (\d+)", meta)
        if m is None:
            raise MalformedResponseError(f"IMAP FETCH answer without a UID: {meta[:80]!r}", integration=self.name)
        flags = re.search(rb"FLAGS \(([^)]*)\)", meta)
        headers = BytesParser(policy=email.policy.default).parsebytes(raw, headersonly=True)
        return {"uid": int(m.group(1)), "from": str(headers["From"] or ""), "to": str(headers["To"] or ""),
                "subject": str(headers["Subject"] or ""), "date": str(headers["Date"] or ""),
                "message_id": str(headers["Message-ID"] or ""),
                "seen": bool(flags and b"\\Seen" in flags.group(1))}


def _quote(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(data: Any) -> str:
    return " ".join(d.decode(errors="replace") if isinstance(d, bytes) else str(d) for d in (data or []))


def _reply(exc: smtplib.SMTPResponseException) -> str:
    err = exc.smtp_error
    return err.decode(errors="replace") if isinstance(err, bytes) else str(err)
