"""The host allow-list of a browser context: what a session may reach, and the audit of what it may not.

:func:`host_allowed` decides one URL against the patterns (``host``, ``host:port``, ``*.example.org``;
case-insensitive, IDNA-normalised; the host is what the URL's authority really names, so
``http://127.0.0.1@evil.org/`` is ``evil.org``). Only ``http``, ``https``, ``about:blank``/``about:srcdoc``,
``data:`` and same-list ``blob:`` URLs pass.

:class:`HostGuard` routes every request of a context (``context.route("**/*")``):

- a request to a host off the list is aborted (``blockedbyclient``) and audited ``browser.blocked``
  {url, resource_type, frame: main|sub|popup, reason} — navigations, iframes, sub-resources, pop-ups;
- **redirects**: Playwright does not route the hops of a redirect (verified on Chromium 1.65: after a
  302 the next request reaches the network without passing the route handler). So the guard fetches
  each routed request itself without following redirects (``route.fetch(max_redirects=0)``) and a 3xx
  whose ``Location`` is off the list is blocked. The browser is never handed a 3xx (it would fetch the
  next hop unrouted, and a server could answer it differently from what the guard was shown): a
  document's redirect is answered with a page that replaces itself with the next hop's URL, a navigation
  of its own that is routed and checked again (≤ 10 hops); a sub-resource's chain is fetched here hop
  by hop, each checked, and the final answer is handed on;
- a main-frame navigation is also put to the policy (``browser.navigate``, read, resource=url): deny or
  ask blocks it, naming the rule;
- a pop-up whose page is blocked is closed; WebSockets are routed too (``route_web_socket``) and closed
  when off the list; service workers are blocked by the context (``service_workers="block"``);
- as a last line, a main frame that ever commits a URL off the list (a path nobody routed) is audited and
  sent to ``about:blank``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

if TYPE_CHECKING:
    from playwright.async_api import BrowserContext, Frame, Page, Request, Route, WebSocketRoute

log = logging.getLogger(__name__)

REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_HOPS = 10
#: the largest download the guard hands on (bytes)
MAX_DOWNLOAD_BYTES = 32 << 20
DEFAULT_PORTS = {"http": 80, "https": 443}


def _idna(host: str) -> str:
    host = host.strip().rstrip(".").lower()
    if not host or host.startswith("["):
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        return host


def _split_pattern(pattern: str) -> tuple[str, int | None]:
    p = pattern.strip().lower()
    if "://" in p:
        p = p.split("://", 1)[1]
    p = p.split("/", 1)[0]
    if p.startswith("["):  # [v6]:port
        end = p.find("]")
        host, rest = p[1:end], p[end + 1:]
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if p.count(":") == 1:
        host, _, port = p.partition(":")
        return _idna(host), int(port) if port.isdigit() else None
    return _idna(p), None


def host_allowed(url: str, patterns: Sequence[str]) -> bool:
    """True when ``url`` may be reached under ``patterns`` (see the module docstring)."""
    if not isinstance(url, str):
        return False
    low = url.strip().lower()
    if low in ("about:blank", "about:srcdoc") or low.startswith("data:"):
        return True
    if low.startswith("blob:"):
        return host_allowed(url.strip()[5:], patterns)
    # as a WHATWG parser (Chromium) reads it: tabs and newlines removed, C0/space trimmed, and in http(s) a
    # backslash is a slash (so 'http://evil\\@allowed/' is evil, not allowed)
    url = re.sub(r"[\t\n\r]", "", url).strip("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x0b\x0c\x0e\x0f"
                                             "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d"
                                             "\x1e\x1f ")
    if low.startswith(("http:", "https:")):
        url = url.replace("\\", "/")
    try:
        parts = urlsplit(url)
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            return False
        host = parts.hostname  # userinfo dropped, lower-cased, [v6] unwrapped
        port = parts.port or DEFAULT_PORTS[scheme]
    except ValueError:
        return False
    if not host:
        return False
    host = _idna(host)
    for pattern in patterns:
        try:
            phost, pport = _split_pattern(pattern)
        except (ValueError, IndexError):
            continue
        if pport is not None and pport != port:
            continue
        if phost.startswith("*."):
            if host.endswith(phost[1:]) and len(host) > len(phost) - 1:
                return True
        elif phost == host:
            return True
    return False


Audit = Callable[[dict[str, Any]], None]
#: (url, suggested file name, body) -> None: store a download (raising refuses it)
OnDownload = Callable[[str, str, bytes], Awaitable[None]]


def attachment_name(disposition: str | None) -> str | None:
    """The file name of a ``Content-Disposition: attachment`` header (None: not an attachment)."""
    if not disposition or not disposition.strip().lower().startswith("attachment"):
        return None
    from urllib.parse import unquote

    m = re.search(r"filename\*\s*=\s*(?:UTF-8|utf-8)''([^;]+)", disposition)
    if m:
        return unquote(m.group(1).strip())
    m = re.search(r'filename\s*=\s*"([^"]*)"', disposition) or re.search(r"filename\s*=\s*([^;]+)", disposition)
    return m.group(1).strip() if m else "download"
Policy = Callable[[str], str | None]  # url -> None (allowed) or why not

#: ``<a download>`` links: Chromium fetches them in its download manager, outside request interception
#: (verified: no route, no request event), so the click is taken over and handed to the guard instead.
DOWNLOAD_LINKS_JS = r"""(() => {
if (window.__emergentDownloads) return; window.__emergentDownloads = true;
document.addEventListener('click', (e) => {
  const a = e.target && e.target.closest ? e.target.closest('a[download]') : null;
  if (!a || !a.href) return;
  e.preventDefault();
  try { window.__emergentDownload(a.href, a.getAttribute('download') || ''); } catch (err) {}
}, true);
})();"""


class HostGuard:
    """Installed on one context; ``audit(data)`` writes a ``browser.blocked`` entry, ``policy(url)`` says
    why a main-frame navigation may not happen (None: it may)."""

    def __init__(self, patterns: Sequence[str], *, audit: Audit, policy: Policy | None = None,
                 timeout_ms: int = 30_000, on_download: OnDownload | None = None) -> None:
        self.on_download = on_download
        self.patterns = tuple(patterns)
        self._audit = audit
        self._policy = policy
        self.timeout_ms = timeout_ms
        self.blocked: list[dict[str, Any]] = []
        self.inflight = 0
        self._orphans = 0  # blocked pop-up navigations whose page was not known yet
        self.pages: list[Page] = []  # pages of the context, the first is the session's own
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hops: dict[str, int] = {}  # a document redirect's next URL → how many hops led to it

    def allowed(self, url: str) -> bool:
        return host_allowed(url, self.patterns)

    # ------------------------------------------------------------------ install
    async def install(self, context: BrowserContext) -> None:
        async def take_download(source: dict[str, Any], url: Any, name: Any) -> None:
            await self.download_link(context, str(url), str(name or ""))

        await context.expose_binding("__emergentDownload", take_download)
        await context.add_init_script(DOWNLOAD_LINKS_JS)
        await context.route("**/*", self._route)
        await context.route_web_socket("**/*", self._websocket)
        context.on("page", self._on_page)

    def watch(self, page: Page) -> None:
        """Watch ``page``'s main frame (the route handler covers requests; this catches a commit nobody routed)."""
        if page in self.pages:
            return
        self.pages.append(page)
        page.on("framenavigated", self._on_navigated)

    def _on_page(self, page: Page) -> None:
        self.watch(page)
        if self._orphans and page.url.startswith("chrome-error:"):
            self._orphans -= 1
            self._spawn(page.close())

    def _close_popup(self, frame: Frame | None) -> None:
        """Close the pop-up a blocked navigation was for (its page may not exist yet: then the next pop-up
        that lands on Chromium's error page is it)."""
        if frame is not None:
            self._spawn(frame.page.close())
        else:
            self._orphans += 1

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ------------------------------------------------------------------ blocking
    def _block(self, url: str, resource_type: str, frame: str, reason: str, **extra: Any) -> dict[str, Any]:
        entry = {"url": url[:2000], "resource_type": resource_type, "frame": frame, "reason": reason, **extra}
        self.blocked.append(entry)
        try:
            self._audit(entry)
        except Exception:  # noqa: BLE001 - the request is blocked whatever happens to its audit entry
            log.exception("could not audit a blocked browser request to %s", url)
            entry["audit_failed"] = True
        return entry

    def _where(self, req: Request) -> tuple[str, Frame | None]:
        try:
            frame = req.frame
        except Exception:  # noqa: BLE001 - no frame yet: a pop-up's first navigation (or a service worker's)
            return ("popup", None) if req.is_navigation_request() else ("sub", None)
        if frame.parent_frame is not None:
            return "sub", frame
        if self.pages and frame.page is not self.pages[0]:
            return "popup", frame
        return "main", frame

    def last_block(self, url: str | None = None) -> dict[str, Any] | None:
        for entry in reversed(self.blocked):
            if url is None or entry["url"] == url or entry.get("requested") == url:
                return entry
        return None

    async def _route(self, route: Route) -> None:
        from playwright.async_api import Error

        self.inflight += 1
        try:
            await self._handle(route)
        except Error as exc:  # the page or context closed while the request was answered: nothing to answer
            log.debug("route of %s ended: %s", route.request.url, exc)
            with contextlib.suppress(Error):
                await route.abort("failed")
        finally:
            self.inflight -= 1

    async def settle(self, timeout_s: float = 5.0, *, grace_s: float = 0.05) -> None:
        """Wait (up to ``timeout_s``) until no routed request is being handled; first ``grace_s`` for one
        that is on its way (a click's request reaches the route a moment after the click returns)."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout_s
        await asyncio.sleep(grace_s)
        while self.inflight and loop.time() < end:
            await asyncio.sleep(0.02)

    async def _handle(self, route: Route) -> None:
        from playwright.async_api import Error

        req = route.request
        url = req.url
        rtype = req.resource_type
        where, frame = self._where(req)
        top = where in ("main", "popup") and rtype == "document"
        why = self._why_not(url, top)
        if why is not None:
            self._block(url, rtype, where, why)
            await route.abort("blockedbyclient")
            if where == "popup" and top:
                self._close_popup(frame)
            return
        if not url.lower().startswith(("http:", "https:")):
            await route.continue_()
            return
        try:
            resp = await route.fetch(max_redirects=0, timeout=self.timeout_ms)
        except Error:
            await route.abort("failed")
            return
        if await self._document_redirect(route, resp, url, rtype, where, top, frame):
            return
        if resp.status in REDIRECTS and resp.headers.get("location"):
            resp = await self._follow_chain(route, resp, url, rtype, where, top, frame)
            if resp is None:
                return
        if await self._download(route, resp, url, rtype, where):
            return
        await route.fulfill(response=resp)

    async def _follow_chain(self, route: Route, resp: Any, url: str, rtype: str, where: str, top: bool,
                            frame: Frame | None) -> Any:
        """The final answer of a redirect chain, each hop checked (None: blocked, and the route answered)."""
        from playwright.async_api import Error

        req = route.request
        # a sub-resource (or a re-posted 307/308): the chain is fetched here hop by hop, each hop checked,
        # and the browser is handed the final answer, so it requests nothing the guard did not see
        hop_url, method = url, req.method
        hop = resp
        for _ in range(MAX_HOPS):
            nxt = urljoin(hop_url, hop.headers["location"])
            why = self._why_not(nxt, top)
            if why is not None:
                self._block(nxt, rtype, where, f"redirect: {why}", requested=url)
                await route.abort("blockedbyclient")
                if where == "popup" and top:
                    self._close_popup(frame)
                return None
            if hop is not resp:
                await hop.dispose()
            method = method if hop.status in (307, 308) else "GET"
            if not nxt.lower().startswith(("http:", "https:")):
                break
            try:
                hop = await route.fetch(url=nxt, method=method, max_redirects=0, timeout=self.timeout_ms,
                                        post_data=req.post_data_buffer if method != "GET" else None)
            except Error:
                break
            hop_url = nxt
            if hop.status not in REDIRECTS or not hop.headers.get("location"):
                break
        else:
            self._block(url, rtype, where, f"more than {MAX_HOPS} redirects")
            await route.abort("blockedbyclient")
            return None
        if hop.status in REDIRECTS:  # a hop that could not be fetched: nothing checked to hand on
            self._block(url, rtype, where, "redirect: a hop did not answer")
            await route.abort("failed")
            return None
        return hop

    async def _document_redirect(self, route: Route, resp: Any, url: str, rtype: str, where: str, top: bool,
                                 frame: Frame | None) -> bool:
        """A document's redirect becomes a navigation of its own, which is routed (and checked) again:
        Chromium does not route the hops of a redirect it follows, so handing it a 302 would let a server
        answer the next hop differently from what the guard was shown (and reach an off-list host).
        True when the request was answered here."""
        req = route.request
        hops = self._hops.pop(url, 0)
        if not (resp.status in REDIRECTS and resp.headers.get("location") and rtype == "document"
                and (resp.status in (301, 302, 303) or req.method == "GET")):
            return False
        nxt = urljoin(url, resp.headers["location"])
        why = self._why_not(nxt, top) if hops < MAX_HOPS else f"more than {MAX_HOPS} redirects"
        await resp.dispose()
        if why is not None:
            self._block(nxt, rtype, where, f"redirect: {why}", requested=url)
            await route.abort("blockedbyclient")
            if where == "popup" and top:
                self._close_popup(frame)
            return True
        if len(self._hops) > 1000:
            self._hops.clear()
        self._hops[nxt] = hops + 1
        target = json.dumps(nxt).replace("<", "\\u003c")
        await route.fulfill(status=200, content_type="text/html; charset=utf-8",
                            body=f"<!doctype html><script>location.replace({target})</script>")
        return True

    async def _download(self, route: Route, resp: Any, url: str, rtype: str, where: str) -> bool:
        """An attachment response: stored by the session (True: the request is answered)."""
        name = attachment_name(resp.headers.get("content-disposition"))
        if name is not None and self.on_download is not None and resp.status < 300:
            size = resp.headers.get("content-length", "")
            if size.isdigit() and int(size) > MAX_DOWNLOAD_BYTES:
                self._block(url, rtype, where, f"download larger than {MAX_DOWNLOAD_BYTES >> 20} MB")
                await resp.dispose()
                await route.abort("blockedbyclient")
                return True
            # a download: stored by the session (Chromium's own download path is not used; see decisions)
            try:
                await self.on_download(url, name, await resp.body())
            except Exception:  # noqa: BLE001 - refused (e.g. its audit entry could not be written)
                log.exception("download of %s refused", url)
                await route.abort("blockedbyclient")
                return True
            await route.fulfill(status=204, body=b"")
            return True
        return False

    def _why_not(self, url: str, top: bool) -> str | None:
        if not self.allowed(url):
            return "host not on the browser allow-list"
        if top and url.strip().lower().startswith("data:"):
            return "a data: URL may not be opened as a page (its script would run outside the policy)"
        if top and self._policy is not None and url.lower().startswith(("http:", "https:")):
            return self._policy(url)
        return None

    async def download_link(self, context: BrowserContext, url: str, name: str) -> None:
        """An ``<a download>`` link clicked in a page: checked (hop by hop) like any request, then stored."""
        from playwright.async_api import Error

        self.inflight += 1
        try:
            hop_url = url
            for _ in range(MAX_HOPS):
                why = self._why_not(hop_url, False)
                if why is not None:
                    self._block(hop_url, "download", "main", why if hop_url == url else f"redirect: {why}",
                                requested=url)
                    return
                try:
                    resp = await context.request.get(hop_url, max_redirects=0, timeout=self.timeout_ms)
                except Error as exc:
                    log.warning("download of %s failed: %s", hop_url, exc)
                    return
                if resp.status in REDIRECTS and resp.headers.get("location"):
                    hop_url = urljoin(hop_url, resp.headers["location"])
                    await resp.dispose()
                    continue
                if resp.status >= 400 or self.on_download is None:
                    return
                size = resp.headers.get("content-length", "")
                if size.isdigit() and int(size) > MAX_DOWNLOAD_BYTES:
                    self._block(hop_url, "download", "main", f"download larger than {MAX_DOWNLOAD_BYTES >> 20} MB")
                    return
                fname = attachment_name(resp.headers.get("content-disposition")) or name or \
                    urlsplit(hop_url).path.rsplit("/", 1)[-1] or "download"
                await self.on_download(hop_url, fname, await resp.body())
                return
            self._block(url, "download", "main", f"more than {MAX_HOPS} redirects")
        finally:
            self.inflight -= 1

    async def _websocket(self, ws: WebSocketRoute) -> None:
        url = ws.url
        http = "http" + url[2:] if url.lower().startswith("ws") else url
        if self.allowed(http):
            ws.connect_to_server()
            return
        self._block(url, "websocket", "main", "host not on the browser allow-list")
        await ws.close(code=1008, reason="blocked by the browser allow-list")

    def _on_navigated(self, frame: Frame) -> None:
        url = frame.url
        if frame.parent_frame is not None:
            return
        if url.startswith("chrome-error:"):
            if self._orphans and self.pages and frame.page is not self.pages[0]:
                self._orphans -= 1
                self._spawn(frame.page.close())
            return
        if self.allowed(url):
            return
        page = frame.page
        where = "popup" if self.pages and page is not self.pages[0] else "main"
        self._block(url, "document", where, "committed outside the allow-list without passing the guard")
        if where == "popup":
            self._spawn(page.close())
        else:
            self._spawn(page.goto("about:blank"))
