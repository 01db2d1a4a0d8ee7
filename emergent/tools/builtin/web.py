"""``http_get``: fetch a URL from an allow-listed host (redirects are followed only to allowed hosts)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urljoin, urlsplit

from emergent.errors import PermissionDenied, TransientError, ValidationError
from emergent.tools.spec import RetryPolicy, ToolContext, tool

MAX_BYTES = 1_000_000


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


@tool(name="http_get", version="1.0.0", permissions=("net",), retry=RetryPolicy(attempts=3), timeout=60,
      resource="url", tags=("web",))
def http_get(url: str, ctx: ToolContext, headers: dict[str, str] | None = None,
             timeout: float = 20.0) -> dict[str, Any]:
    """Fetch a URL with GET (hosts must be on the allow-list).

    Args:
        url: http or https URL
        headers: extra request headers
        timeout: seconds to wait for the answer
    """
    import httpx

    allowed = _allowed(ctx)
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for _ in range(6):
            _check_host(url, allowed)
            try:
                resp = client.get(url, headers=headers)
            except httpx.TransportError as exc:
                raise TransientError(f"GET {url} failed: {exc}", hint="the host did not answer") from exc
            if resp.is_redirect and "location" in resp.headers:
                url = urljoin(url, resp.headers["location"])
                continue
            if resp.status_code == 429 or resp.status_code >= 500:
                raise TransientError(f"GET {url} answered {resp.status_code}", status=resp.status_code)
            body = resp.content[:MAX_BYTES]
            return {"url": str(resp.url), "status": resp.status_code, "headers": dict(resp.headers),
                    "text": body.decode(resp.encoding or "utf-8", "replace"),
                    "truncated": len(resp.content) > MAX_BYTES}
    raise ValidationError(f"too many redirects fetching {url}", field="url")


TOOLS = [http_get]
