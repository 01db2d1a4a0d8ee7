"""``http_get``: fetch a URL from an allow-listed host (redirects are followed only to allowed hosts).

The body is streamed and reading stops after :data:`MAX_BYTES` (one byte more tells that it was
truncated), so a huge answer costs at most about that much memory; it asks for an uncompressed
body and inflates gzip/deflate in bounded steps when a server compresses anyway. The tool reads
the network, so a paused workspace (or a suspended principal) stops it for agents and services.
"""

from __future__ import annotations

import codecs
import time
import zlib
from collections.abc import Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

from emergent.errors import PermissionDenied, TimeoutExceeded, TransientError, ValidationError
from emergent.tools.spec import RetryPolicy, ToolContext, tool

MAX_BYTES = 1_000_000
CHUNK = 64 * 1024
MAX_TIMEOUT = 60.0
_REFUSED_HEADERS = frozenset({"host", "accept-encoding", "content-length", "transfer-encoding", "connection"})


def _allowed(ctx: ToolContext) -> list[str]:
    tools_cfg = getattr(ctx.settings, "tools", None)
    return [h.lower() for h in getattr(tools_cfg, "http_allow_hosts", [])]


def _check_host(url: str, allowed: list[str]) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError(f"{url!r} is not an http(s) URL", field="url")
    host = parts.hostname.lower()
    port_host = f"{host}:{parts.port}" if parts.port else host
    if not any(host == a or port_host == a or (a.startswith("*.") and host.endswith(a[1:])) for a in allowed):
        raise PermissionDenied(f"host {host!r} is not on http_get's allow-list",
                               hint="add it to EMERGENT_TOOLS__HTTP_ALLOW_HOSTS (a JSON list) or "
                                    "emergent.toml [tools] http_allow_hosts", host=host)


def _inflate(raw: Iterator[bytes], encoding: str) -> Iterator[bytes]:
    """Decompress gzip/deflate in pieces of at most CHUNK bytes (a small compressed chunk can
    expand a thousandfold)."""
    d = zlib.decompressobj(wbits=47 if "gzip" in encoding else 15)  # 47: gzip or zlib header
    for piece in raw:
        data = d.decompress(piece, CHUNK)
        while True:
            if data:
                yield data
            if not d.unconsumed_tail:
                break
            data = d.decompress(d.unconsumed_tail, CHUNK)


def _read_capped(resp: Any, url: str, deadline: float) -> tuple[bytes, bool]:
    """At most MAX_BYTES of the decoded body and whether there was more."""
    encoding = resp.headers.get("content-encoding", "identity").strip().lower()
    raw = resp.iter_raw(CHUNK)
    if encoding in ("", "identity"):
        chunks: Iterator[bytes] = raw
    elif encoding in ("gzip", "x-gzip", "deflate"):
        chunks = _inflate(raw, encoding)
    else:
        raise ValidationError(f"GET {url} answered with content-encoding {encoding!r}, which http_get does not "
                              "decode", hint="fetch an uncompressed resource", field="url")
    buf = bytearray()
    try:
        for chunk in chunks:
            buf += chunk
            if len(buf) > MAX_BYTES:
                return bytes(buf[:MAX_BYTES]), True
            if time.monotonic() > deadline:
                raise TimeoutExceeded(f"GET {url} was still sending after the timeout",
                                      hint="pass a larger timeout or fetch a smaller resource", url=url)
    except zlib.error as exc:
        raise ValidationError(f"GET {url}: the {encoding} body does not decompress: {exc}", field="url") from None
    return bytes(buf), False


def _text(body: bytes, charset: str | None) -> str:
    try:
        codecs.lookup(charset or "utf-8")
    except LookupError:
        charset = "utf-8"
    return body.decode(charset or "utf-8", "replace")


@tool(name="http_get", version="1.1.0", permissions=("net",), retry=RetryPolicy(attempts=3), timeout=MAX_TIMEOUT + 5,
      resource="url", resource_kind="url", tags=("web",))
def http_get(url: str, ctx: ToolContext, headers: dict[str, str] | None = None,
             timeout: float = 20.0) -> dict[str, Any]:
    """Fetch a URL with GET (hosts must be on the allow-list); at most 1 MB of the body is returned.

    Args:
        url: http or https URL
        headers: extra request headers (not Host, Accept-Encoding or framing headers)
        timeout: seconds for the whole answer, body included (at most 60)
    """
    import httpx

    if not 0 < timeout <= MAX_TIMEOUT:
        raise ValidationError(f"timeout must be between 0 and {MAX_TIMEOUT:g} seconds, got {timeout!r}",
                              field="timeout")
    bad = sorted(k for k in (headers or {}) if k.lower() in _REFUSED_HEADERS)
    if bad:
        raise ValidationError(f"http_get sets {', '.join(bad)} itself", hint="leave these headers out",
                              field="headers")
    send = {**(headers or {}), "Accept-Encoding": "identity"}
    allowed = _allowed(ctx)
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for _ in range(6):
            _check_host(url, allowed)
            try:
                with client.stream("GET", url, headers=send) as resp:
                    if resp.is_redirect and "location" in resp.headers:
                        url = urljoin(url, resp.headers["location"])
                        continue
                    if resp.status_code == 429 or resp.status_code >= 500:
                        raise TransientError(f"GET {url} answered {resp.status_code}", status=resp.status_code)
                    body, truncated = _read_capped(resp, url, deadline)
                    return {"url": str(resp.url), "status": resp.status_code, "headers": dict(resp.headers),
                            "text": _text(body, resp.charset_encoding), "truncated": truncated}
            except httpx.TransportError as exc:
                raise TransientError(f"GET {url} failed: {exc}", hint="the host did not answer") from exc
    raise ValidationError(f"too many redirects fetching {url}", field="url")


TOOLS = [http_get]
