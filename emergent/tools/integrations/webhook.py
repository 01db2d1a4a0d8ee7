"""A generic outgoing webhook: JSON POSTed to ``EMERGENT_WEBHOOK_URL``, signed with HMAC-SHA256.

The receiver checks ``X-Emergent-Signature: sha256=<hex>`` = HMAC(secret, ``<timestamp>.<body>``)
with the ``X-Emergent-Timestamp`` header (Unix seconds) inside a tolerance, as Stripe and Slack do
for theirs; :func:`verify_signature` is that check. Each delivery carries ``X-Emergent-Delivery``
(a UUID) so a receiver can drop duplicates after a retry.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from emergent.errors import CredentialError, ValidationError
from emergent.tools.integrations._http import HttpIntegration, require

SIGNATURE_HEADER = "X-Emergent-Signature"
TIMESTAMP_HEADER = "X-Emergent-Timestamp"
DELIVERY_HEADER = "X-Emergent-Delivery"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp``."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def verify_signature(secret: str, headers: Mapping[str, str], body: bytes, *, tolerance_s: float = 300,
                     now: float | None = None) -> None:
    """Raise unless ``headers`` carry a valid, fresh signature of ``body`` (for receivers)."""
    lower = {k.lower(): v for k, v in headers.items()}
    timestamp, signature = lower.get(TIMESTAMP_HEADER.lower()), lower.get(SIGNATURE_HEADER.lower())
    if not timestamp or not signature:
        raise ValidationError("webhook request is not signed", hint=f"send {SIGNATURE_HEADER} and {TIMESTAMP_HEADER}")
    try:
        age = abs((time.time() if now is None else now) - float(timestamp))
    except ValueError:
        raise ValidationError(f"webhook timestamp {timestamp!r} is not a number") from None
    if age > tolerance_s:
        raise ValidationError(f"webhook timestamp is {age:.0f} s old (tolerance {tolerance_s:.0f} s)",
                              hint="check both clocks; replayed requests are refused")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise CredentialError("webhook signature does not match the body",
                              hint="both sides must use the same EMERGENT_WEBHOOK_SECRET", setting="EMERGENT_WEBHOOK_SECRET")


class Webhook(HttpIntegration):
    name = "webhook"
    title = "Webhook"
    credential_setting = "EMERGENT_WEBHOOK_SECRET"
    base_url_setting = "EMERGENT_WEBHOOK_URL"
    operations = {"send": "external"}

    def __init__(self, url: str, secret: str, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self.url = url
        self._secret = secret

    @classmethod
    def from_settings(cls, s: Any, **kwargs: Any) -> Webhook:
        url = require(s.webhook_url, "EMERGENT_WEBHOOK_URL", cls.title, "a target URL")
        secret = require(s.webhook_secret, cls.credential_setting, cls.title, "a signing secret")
        return cls(url, secret, **{**cls.http_options(s), **kwargs})

    def send(self, event: str, payload: dict[str, Any]) -> dict[str, Any]:
        """POST ``{"event", "payload", "sent_at"}`` signed; returns the receiver's status and body.

        Args:
            event: event name, e.g. experiment.finished
            payload: JSON-serialisable data
        """
        try:
            body = json.dumps({"event": event, "payload": payload, "sent_at": time.time()},
                              separators=(",", ":"), sort_keys=True).encode()
        except (TypeError, ValueError) as exc:
            raise ValidationError(f"webhook payload is not JSON-serialisable: {exc}") from None
        delivery = str(uuid.uuid4())

        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: ts,
                   SIGNATURE_HEADER: sign(self._secret, ts, body), DELIVERY_HEADER: delivery}
        resp = self.request("POST", self.url, content=body, headers=headers)
        return {"status": resp.status_code, "delivery": delivery, "response": resp.text[:2000]}
