"""The shared base of the HTTP integrations: one ``httpx.Client`` per vendor with auth from
settings, bounded retries on 429 (honouring ``Retry-After``) and on 5xx for reads, pagination
helpers, and errors from :mod:`emergent.errors` that name the missing credential or scope.

A vendor subclass sets the class attributes, builds its auth headers in ``from_settings`` and
overrides ``_rate_limit_wait`` / ``_raise_for_error`` where its API signals these differently.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import httpx

from emergent.errors import (
    CredentialError,
    IntegrationError,
    IntegrationUnavailableError,
    MalformedResponseError,
    MissingScopeError,
    NotFoundError,
    RateLimitedError,
    ValidationError,
)

Sleep = Callable[[float], None]
#: what an operation may return at most when the caller gives no limit
DEFAULT_LIMIT = 100
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
_RETRY_5XX = frozenset({502, 503, 504})


def retry_after_seconds(resp: httpx.Response, now: Callable[[], float] = time.time) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    value = resp.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - now())
    except (TypeError, ValueError):
        return None


def require(value: Any, setting: str, integration: str, what: str = "a token") -> Any:
    """``value`` when set, else a :class:`CredentialError` naming the environment variable."""
    if value is None or value == "":
        raise CredentialError(
            f"{integration} needs {what}, and {setting} is not set",
            hint=f"set {setting} in the environment or in emergent.toml [integrations]",
            integration=integration,
            setting=setting,
        )
    if hasattr(value, "get_secret_value"):
        return value.get_secret_value()
    return value


class HttpIntegration:
    """Base of a vendor client: ``request`` / ``call`` with retries, errors and pagination."""

    name: ClassVar[str]
    title: ClassVar[str]
    #: the setting(s) holding the credential, named in every auth error
    credential_setting: ClassVar[str]
    base_url_setting: ClassVar[str]

    def __init__(
        self,
        base_url: str,
        *,
        headers: Mapping[str, str] | None = None,
        auth: httpx.Auth | tuple[str, str] | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        max_wait_s: float = 60.0,
        sleep: Sleep = time.sleep,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not base_url.startswith(("http://", "https://")):
            raise CredentialError(
                f"{self.title} base URL {base_url!r} is not an http(s) URL",
                hint=f"set {self.base_url_setting} to the API root, e.g. https://…",
                integration=self.name,
                setting=self.base_url_setting,
            )
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.max_wait_s = max_wait_s
        self._sleep = sleep
        self.client = httpx.Client(
            base_url=self.base_url + "/",
            headers={"User-Agent": "emergent-integrations/0.1", **(headers or {})},
            auth=auth,
            timeout=timeout,
            transport=transport,
        )

    @staticmethod
    def http_options(settings: Any) -> dict[str, Any]:
        """The client options every vendor takes from :class:`~emergent.config.IntegrationSettings`."""
        return {
            "timeout": settings.http_timeout_s,
            "max_retries": settings.http_max_retries,
            "max_wait_s": settings.http_max_wait_s,
        }

    # ------------------------------------------------------------------ lifecycle
    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> HttpIntegration:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ requests
    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        """Send with bounded retries on rate limits (and 5xx for idempotent methods); raise on errors."""
        method = method.upper()
        for attempt in range(self.max_retries + 1):
            resp = self._send(method, url, **kwargs)
            wait = self._rate_limit_wait(resp)
            transient = wait is None and resp.status_code in _RETRY_5XX and method in _IDEMPOTENT
            if wait is None and not transient:
                if resp.status_code >= 400:
                    self._raise_for_error(resp)
                return resp
            if transient:
                wait = retry_after_seconds(resp) or min(8.0, 0.5 * 2**attempt)
            assert wait is not None
            if attempt == self.max_retries or wait > self.max_wait_s:
                self._give_up(resp, wait, attempt + 1)
            self._sleep(wait)
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        try:
            return self.client.request(method, url, **kwargs)
        except httpx.TimeoutException as exc:
            raise IntegrationUnavailableError(
                f"{self.title} did not answer {method} {url} in time ({exc.__class__.__name__})",
                hint="retry later, or raise EMERGENT_HTTP_TIMEOUT_S",
                integration=self.name,
            ) from exc
        except httpx.TransportError as exc:
            raise IntegrationUnavailableError(
                f"{self.title} at {self.base_url} could not be reached: {exc}",
                hint=f"check {self.base_url_setting} and the network",
                integration=self.name,
            ) from exc

    def _give_up(self, resp: httpx.Response, wait: float, attempts: int) -> None:
        where = f"{resp.request.method} {resp.request.url.path}"
        if resp.status_code in _RETRY_5XX:
            raise IntegrationUnavailableError(
                f"{self.title} answered {resp.status_code} to {where} after {attempts} attempt(s)",
                hint="the service is unavailable; retry later",
                integration=self.name,
                status=resp.status_code,
            )
        raise RateLimitedError(
            f"{self.title} rate-limited {where} after {attempts} attempt(s); it asks to wait {wait:.0f} s",
            hint=f"retry after {wait:.0f} s, or raise EMERGENT_HTTP_MAX_WAIT_S / EMERGENT_HTTP_MAX_RETRIES",
            integration=self.name,
            status=resp.status_code,
            retry_after=wait,
        )

    def _rate_limit_wait(self, resp: httpx.Response) -> float | None:
        """Seconds to wait when ``resp`` says "slow down", else None."""
        if resp.status_code == 429:
            wait = retry_after_seconds(resp)
            return 1.0 if wait is None else wait
        return None

    # ------------------------------------------------------------------ errors
    def _error_detail(self, resp: httpx.Response) -> str:
        try:
            body = resp.json()
        except ValueError:
            return resp.text[:200].strip() or resp.reason_phrase
        if isinstance(body, dict):
            for key in ("message", "error_description", "errorMessages", "error", "errors", "detail"):
                if body.get(key):
                    value = body[key]
                    if isinstance(value, dict):
                        value = value.get("message", value)
                    return str(value)[:300]
        return str(body)[:300]

    def _raise_for_error(self, resp: httpx.Response) -> None:
        status, detail = resp.status_code, self._error_detail(resp)
        where = f"{resp.request.method} {resp.request.url.path}"
        fields: dict[str, Any] = {"integration": self.name, "status": status}
        if status == 401:
            raise CredentialError(
                f"{self.title} rejected the credential for {where}: {detail}",
                hint=f"check {self.credential_setting} (expired, revoked or mistyped?)",
                setting=self.credential_setting, **fields,
            )
        if status == 403:
            raise MissingScopeError(
                f"{self.title} refused {where}: {detail}",
                hint=f"give the credential in {self.credential_setting} the permission this call needs",
                setting=self.credential_setting, needed=None, provided=None, **fields,
            )
        if status == 404:
            raise NotFoundError(
                f"{self.title} has nothing at {where}: {detail}",
                hint="check the names and ids; private resources also answer 404 without access",
                **fields,
            )
        if status in (400, 409, 422):
            raise ValidationError(f"{self.title} rejected {where}: {detail}", hint="fix the arguments", **fields)
        if status >= 500:
            raise IntegrationUnavailableError(
                f"{self.title} failed on {where} ({status}): {detail}", hint="retry later", **fields
            )
        raise IntegrationError(f"{self.title} answered {status} to {where}: {detail}", **fields)

    # ------------------------------------------------------------------ bodies
    def parse(self, resp: httpx.Response) -> Any:
        """The JSON body, or :class:`MalformedResponseError` when it is not JSON."""
        try:
            return resp.json()
        except ValueError:
            raise MalformedResponseError(
                f"{self.title} answered {resp.request.method} {resp.request.url.path} with a body that "
                f"is not JSON ({resp.headers.get('content-type', 'no content-type')}): {resp.text[:80]!r}",
                hint=f"check that {self.base_url_setting} points at the API root",
                integration=self.name,
                status=resp.status_code,
            ) from None

    def call(self, method: str, url: str, **kwargs: Any) -> Any:
        """``request`` then ``parse``."""
        return self.parse(self.request(method, url, **kwargs))

    def expect(self, data: Any, key: str | None, kind: type | tuple[type, ...]) -> Any:
        """``data[key]`` (or ``data``) checked to be ``kind``; otherwise a MalformedResponseError."""
        value = data
        if key is not None:
            value = data.get(key) if isinstance(data, dict) else None
        if not isinstance(value, kind):
            names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
            raise MalformedResponseError(
                f"{self.title} answered without the documented {key or 'body'!r} ({names}); "
                f"got {type(value).__name__}",
                hint="the API version may differ from the one this client speaks",
                integration=self.name,
            )
        return value

    # ------------------------------------------------------------------ pagination
    def paginate_links(
        self, url: str, params: Mapping[str, Any] | None, limit: int, items_key: str | None = None
    ) -> list[Any]:
        """Follow ``Link: <…>; rel="next"`` headers (GitHub, GitLab) until ``limit`` items."""
        items: list[Any] = []
        next_url: str | None = url
        next_params: Mapping[str, Any] | None = params
        seen: set[str] = set()
        while next_url and len(items) < limit:
            resp = self.request("GET", next_url, params=next_params)
            items.extend(self.expect(self.parse(resp), items_key, list))
            next_url, next_params = resp.links.get("next", {}).get("url"), None
            if next_url in seen:
                self._loop(next_url)
            seen.add(str(next_url))
        return items[:limit]

    def collect(self, fetch: Callable[[Any], tuple[list[Any], Any]], limit: int) -> list[Any]:
        """Cursor pagination: ``fetch(cursor) -> (items, next_cursor or None)`` until ``limit``."""
        items: list[Any] = []
        cursor: Any = None
        seen: set[str] = set()
        while True:
            page, cursor = fetch(cursor)
            items.extend(page)
            if cursor in (None, "") or len(items) >= limit:
                return items[:limit]
            if repr(cursor) in seen:
                self._loop(cursor)
            seen.add(repr(cursor))

    def _loop(self, cursor: Any) -> None:
        raise MalformedResponseError(
            f"{self.title} returned the same page cursor twice ({cursor!r}); stopping to avoid a loop",
            integration=self.name,
        )


def page_size(limit: int, maximum: int) -> int:
    """The page size to ask for: ``limit`` capped by the vendor's maximum (at least 1)."""
    return max(1, min(limit, maximum))

