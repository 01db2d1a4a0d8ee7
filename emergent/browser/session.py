"""Browser sessions: Playwright on this machine's Chromium, one isolated context per session, behind the
host allow-list, every navigation and action audited under the principal that asked.

:class:`BrowserService` owns one Chromium (launched on first use) and a private event loop
(:class:`~emergent.browser._loop.LoopThread`), so its blocking methods work anywhere — a script, a thread,
or a notebook cell whose own loop is running — and its async twins (``aopen``, ``areplay``, ``aextract``)
let code already in a loop await the same work. Each session is a fresh ``BrowserContext``
(``accept_downloads``, service workers blocked, :class:`~emergent.browser.guard.HostGuard` routing every
request) with one page; it belongs to the principal who opened it.

Every action is audited *before* it happens (``audit.append(..., durable=True)``: an audit write that
fails raises and the action does not happen). Downloads land in
``<workspace>/files/downloads/<session>/<name>``; uploads read a file under ``<workspace>/files`` through
the file tools' jail (no absolute paths, no ``..``, no symbolic links).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast

from emergent.browser import locators
from emergent.browser._loop import LoopThread
from emergent.browser.guard import HostGuard, host_allowed
from emergent.browser.model import Action, Candidate, ExtractionTemplate, ReplayResult, Script, Target
from emergent.browser.recorder import LISTENER_JS, Recorder, page_event_target
from emergent.browser.store import BrowserStore, next_version
from emergent.errors import (
    ConfigError,
    EmergentError,
    MissingExtraError,
    NotFoundError,
    OperationalError,
    PermissionDenied,
    PrincipalError,
    StateConflictError,
    TimeoutExceeded,
    ValidationError,
)

if TYPE_CHECKING:
    import polars
    from playwright.async_api import Browser, BrowserContext, Locator, Page, Playwright

    from emergent.principals import Principal
    from emergent.providers.llm import ChatModel

T = TypeVar("T")
#: the largest file a session stores
MAX_DOWNLOAD_BYTES = 32 << 20
#: after a replay's last step: how long a request it set off may take to be sent, then to be answered
REPLAY_GRACE_S = 0.25
REPLAY_SETTLE_S = 5.0
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
_SUBMITS_JS = """(el) => { const t = (el.getAttribute('type') || '').toLowerCase();
  return !!el.form && ((el.tagName === 'BUTTON' && (t === '' || t === 'submit')) ||
                       (el.tagName === 'INPUT' && (t === 'submit' || t === 'image'))); }"""
_HIGHLIGHT_JS = """(el) => { const r = el.getBoundingClientRect(); const d = document.createElement('div');
  d.id = '__emergent_highlight'; Object.assign(d.style, {position: 'fixed', left: (r.left - 3) + 'px',
  top: (r.top - 3) + 'px', width: (r.width + 6) + 'px', height: (r.height + 6) + 'px',
  outline: '3px solid #e3342f', zIndex: 2147483647, pointerEvents: 'none'}); document.body.appendChild(d); }"""
_OPTIONS_JS = """(el) => Array.from(el.options || []).map((o) => [(o.label || o.textContent || '').trim(), o.value])"""
_UNHIGHLIGHT_JS = "() => { const d = document.getElementById('__emergent_highlight'); if (d) d.remove(); }"


def _pw_error() -> tuple[type[Exception], ...]:
    from playwright.async_api import Error

    return (Error,)


def _short(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    text = text.split("\nCall log:")[0].strip()
    return text.splitlines()[0][:500] if text else type(exc).__name__


def _translate(exc: BaseException, what: str) -> EmergentError:
    """Our error for a Playwright one (its message kept, never its traceback)."""
    from playwright.async_api import TimeoutError as PWTimeout

    if isinstance(exc, PWTimeout):
        return TimeoutExceeded(f"{what} timed out: {_short(exc)}",
                               hint="the page may still be loading or the element is covered or disabled; check "
                                    "session.screenshot(), or pass a longer timeout")
    return OperationalError(f"{what} failed: {_short(exc)}",
                            hint="check the page with session.screenshot() and the target with session.count()")


def scrub_trace(path: Path, secrets: Mapping[str, str]) -> int:
    """Replace every secret's value in a Playwright trace (the fill parameters, request bodies, DOM snapshots)
    by ``(secret NAME)``: raw, JSON-escaped and URL-encoded forms. Returns how many members changed."""
    import json
    import os
    import zipfile
    from urllib.parse import quote, quote_plus

    forms: list[tuple[bytes, bytes]] = []
    for name, value in secrets.items():
        if not value:
            continue
        for variant in {value, json.dumps(value)[1:-1], quote_plus(value), quote(value, safe="")}:
            forms.append((variant.encode(), f"(secret {name})".encode()))
    forms.sort(key=lambda f: -len(f[0]))
    if not forms:
        return 0
    tmp = path.with_suffix(".scrub.tmp")
    changed = 0
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = src.read(info)
            new = data
            for old, repl in forms:
                new = new.replace(old, repl)
            changed += new != data
            dst.writestr(info, new)
    os.replace(tmp, path)
    return changed


def _sanitise(name: str) -> str:
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name.replace("\\", "/")).name).lstrip(".")[:120]
    return base or "download"


class BrowserService:
    """Browser automation for one workspace (see the module docstring)."""

    def __init__(self, sql: Any, *, audit: Any, clock: Any, workspace: Path, autonomy: Any = None,
                 executable: str = "/usr/bin/chromium", headless: bool = True,
                 allow_hosts: Sequence[str] = ("127.0.0.1", "localhost"), secrets: Mapping[str, str] | None = None,
                 timeout_ms: int = 10_000, navigation_timeout_ms: int = 30_000, trace: bool = True,
                 max_sessions: int = 8, llm: Callable[[], ChatModel | None] | None = None) -> None:
        self.sql = sql
        self.audit = audit
        self.clock = clock
        self.workspace = Path(workspace)
        self.autonomy = autonomy
        self.executable = executable
        self.headless = headless
        self.allow_hosts = tuple(allow_hosts)
        self.secrets = dict(secrets or {})
        self.timeout_ms = timeout_ms
        self.navigation_timeout_ms = navigation_timeout_ms
        self.trace = trace
        self.max_sessions = max_sessions
        self._llm = llm
        self.store = BrowserStore(sql, clock=clock)
        self.loop = LoopThread()
        self._pw: Playwright | None = None
        self._browser: Browser | None = None
        self._launch_lock: asyncio.Lock | None = None
        self._sessions: dict[str, BrowserSession] = {}
        self._lock = threading.Lock()
        self._closed = False

    # ------------------------------------------------------------------ plumbing
    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise StateConflictError("the browser service is closed", hint="open the workstation again")
        return self.loop.run(coro)

    async def _await(self, coro: Coroutine[Any, Any, T]) -> T:
        return await asyncio.wrap_future(self.loop.submit(coro))

    def _audit(self, kind: str, by: Principal, data: dict[str, Any]) -> None:
        self.audit.append(kind, by, data, durable=True)

    def _who(self, by: Any) -> Principal:
        """``by`` verified: a Principal, and (with the autonomy service) one this workspace's directory issued
        (an unsealed hand-built Principal is refused)."""
        from emergent.principals import Principal

        if not isinstance(by, Principal):
            raise PrincipalError(f"by must be a Principal, got {type(by).__name__}",
                                 hint="pass ws.principal, or an agent's principal from ws.principals")
        directory = getattr(self.autonomy, "principals", None)
        if directory is not None:
            return cast(Principal, directory.verify(by))
        return by

    def _policy_block(self, by: Principal, url: str) -> str | None:
        """Why the policy refuses ``by`` navigating to ``url`` (None: it allows it)."""
        if self.autonomy is None:
            return None
        d = self.autonomy.decide_for(by, "browser.navigate", "read", resource=url)
        if d.effect == "allow":
            return None
        rule = f"rule {d.rule_id}" if d.rule_id else f"the {d.source} decision"
        return f"policy {d.effect} by {rule}: {d.reason}"

    def _blocked_error(self, url: str, reason: str) -> PermissionDenied:
        if reason.startswith("policy") or "policy" in reason.split(":")[0]:
            hint = "change or remove that rule, or add an allow rule for browser.navigate on this URL"
        else:
            hint = ("add the host to the allow-list (EMERGENT_BROWSER__ALLOW_HOSTS, e.g. '[\"example.org\"]', "
                    "or [browser] allow_hosts in emergent.toml)")
        return PermissionDenied(f"navigation to {url} blocked: {reason}", hint=hint, url=url)

    async def _get_browser(self) -> Browser:
        if self._launch_lock is None:
            self._launch_lock = asyncio.Lock()
        async with self._launch_lock:
            if self._browser is not None and self._browser.is_connected():
                return self._browser
            try:
                from playwright.async_api import async_playwright
            except ImportError:
                raise MissingExtraError("browser automation", "browser", "playwright") from None
            if self._pw is None:
                self._pw = await async_playwright().start()
            try:
                self._browser = await self._pw.chromium.launch(executable_path=self.executable,
                                                               headless=self.headless, args=ARGS)
            except _pw_error() as exc:
                raise ConfigError(f"cannot start Chromium at {self.executable}: {_short(exc)}",
                                  hint="install Debian's chromium package, or set EMERGENT_BROWSER__EXECUTABLE; "
                                       "headless=false needs a display") from None
            return self._browser

    async def _context(self, by: Principal, label: str) -> tuple[BrowserContext, HostGuard, Page]:
        browser = await self._get_browser()
        ctx = await browser.new_context(accept_downloads=True, service_workers="block",
                                        viewport={"width": 1280, "height": 800})
        ctx.set_default_timeout(self.timeout_ms)
        ctx.set_default_navigation_timeout(self.navigation_timeout_ms)
        guard = HostGuard(self.allow_hosts,
                          audit=lambda d: self._audit("browser.blocked", by, {"session": label, **d}),
                          policy=lambda url: self._policy_block(by, url), timeout_ms=self.navigation_timeout_ms)
        await guard.install(ctx)
        page = await ctx.new_page()
        guard.watch(page)
        return ctx, guard, page

    async def _guarded_goto(self, page: Page, guard: HostGuard, url: str, by: Principal, label: str,
                            *, wait_until: str = "load") -> Any:
        """Navigate ``page`` to ``url``: checked (host list, policy) and audited first; blocked → PermissionDenied."""
        if not isinstance(url, str) or not url.strip():
            raise ValidationError("a URL is required", hint="e.g. session.goto('https://example.org/')", field="url")
        if not re.match(r"^(https?:|about:blank$)", url.strip(), re.I):
            raise ValidationError(f"URL {url!r} is not http(s)", field="url",
                                  hint="give an absolute http:// or https:// URL (data:, file: and other schemes "
                                       "are not opened)")
        why = None if host_allowed(url, self.allow_hosts) else "host not on the browser allow-list"
        if why is None and url.lower().startswith("http"):
            why = self._policy_block(by, url)
        if why is not None:
            entry = {"url": url, "resource_type": "document", "frame": "main", "reason": why}
            guard.blocked.append(entry)
            self._audit("browser.blocked", by, {"session": label, **entry})
            raise self._blocked_error(url, why)
        self._audit("browser.navigate", by, {"session": label, "url": url})
        before = len(guard.blocked)
        try:
            try:
                return await page.goto(url, wait_until=wait_until)  # type: ignore[arg-type]
            except _pw_error() as exc:  # an earlier blocked load's error page committing late: once more
                if "interrupted by another navigation" not in str(exc):
                    raise
                return await page.goto(url, wait_until=wait_until)  # type: ignore[arg-type]
        except _pw_error() as exc:
            if len(guard.blocked) > before or "ERR_BLOCKED_BY_CLIENT" in str(exc):
                entry = guard.blocked[-1] if len(guard.blocked) > before else {"url": url, "reason": "blocked"}
                with contextlib.suppress(*_pw_error()):  # let Chromium's error page commit before the next goto
                    await page.wait_for_url(lambda u: u.startswith("chrome-error:"), timeout=1500)
                raise self._blocked_error(entry["url"], entry["reason"]) from None
            raise _translate(exc, f"opening {url}") from None

    def _files(self, path: str) -> tuple[str, bytes]:
        """(file name, bytes) of ``path`` under <workspace>/files, through the file tools' jail."""
        from emergent.tools.builtin._common import read_bytes, rel_parts

        if not isinstance(path, str):
            raise ValidationError("an upload path must be a string", field="path",
                                  hint="a path relative to the workspace's files directory, e.g. 'reports/a.pdf'")
        parts = rel_parts(path)
        data = read_bytes(cast(Any, SimpleNamespace(workspace=self.workspace)), path)
        return parts[-1], data

    def _model(self) -> ChatModel | None:
        if self._llm is None:
            return None
        try:
            return self._llm()
        except EmergentError:
            return None

    # ------------------------------------------------------------------ sessions
    def open(self, url: str | None = None, *, by: Principal, record: str | None = None) -> BrowserSession:
        """A new isolated session (optionally at ``url``; ``record=NAME`` starts recording)."""
        return self._run(self._open(url, by, record))

    async def aopen(self, url: str | None = None, *, by: Principal, record: str | None = None) -> BrowserSession:
        return await self._await(self._open(url, by, record))

    async def _open(self, url: str | None, by: Principal, record: str | None) -> BrowserSession:
        by = self._who(by)
        with self._lock:
            if len(self._sessions) >= self.max_sessions:
                raise StateConflictError(f"{len(self._sessions)} browser sessions are open (the limit is "
                                         f"{self.max_sessions})", hint="close one (session.close()), or raise "
                                                                       "EMERGENT_BROWSER__MAX_SESSIONS")
            sid = uuid.uuid4().hex[:12]
            self._sessions[sid] = cast(Any, None)  # reserve the slot
        try:
            self._audit("browser.open", by, {"session": sid, "url": url, "record": record})
            ctx, guard, page = await self._context(by, sid)
        except BaseException:
            with self._lock:
                self._sessions.pop(sid, None)
            raise
        s = BrowserSession(self, sid, by, ctx, guard, page)
        with self._lock:
            self._sessions[sid] = s
        try:
            if record:
                await s._arecord(record)
            if url:
                await s._agoto(url)
        except BaseException:
            await s._aclose()
            raise
        return s

    def session(self, session_id: str, *, by: Principal) -> BrowserSession:
        """The open session ``session_id``; PermissionDenied when it is not ``by``'s."""
        by = self._who(by)
        s = self._sessions.get(session_id)
        if s is None:
            raise NotFoundError(f"no open browser session {session_id!r}",
                                hint="browser.sessions() lists the open ones; open one with browser.open(url)")
        if s.principal != by:
            raise PermissionDenied(f"browser session {session_id} belongs to {s.principal.key}, not {by.key}",
                                   hint="open your own session (sessions are never shared between principals)")
        return s

    def close_session(self, session_id: str, *, by: Principal) -> None:
        """Close a session: its owner may, and a person may close anyone's (audited under ``by``)."""
        by = self._who(by)
        s = self._sessions.get(session_id)
        if s is None:
            raise NotFoundError(f"no open browser session {session_id!r}",
                                hint="browser.sessions() lists the open ones")
        if s.principal != by and not by.is_human:
            raise PermissionDenied(f"browser session {session_id} belongs to {s.principal.key}; {by.key} may not "
                                   "close it", hint="a person may close any session; agents only their own")
        self._run(s._aclose(by=by))

    def sessions(self, *, by: Principal | None = None) -> list[dict[str, Any]]:
        out = []
        for s in list(self._sessions.values()):
            if s is None or (by is not None and s.principal != by):
                continue
            out.append(s.info())
        return out

    # ------------------------------------------------------------------ replay
    def replay(self, script: str | Script, params: dict[str, str] | None = None, *, by: Principal,
               version: str | None = None, heal: bool = True, trace: bool | None = None,
               propose: bool = True) -> ReplayResult:
        """Replay a saved (or given) script in a fresh context; see the contract in the module docstring."""
        return self._run(self._replay(script, params, by, version, heal, trace, propose))

    async def areplay(self, script: str | Script, params: dict[str, str] | None = None, *, by: Principal,
                      version: str | None = None, heal: bool = True, trace: bool | None = None,
                      propose: bool = True) -> ReplayResult:
        return await self._await(self._replay(script, params, by, version, heal, trace, propose))

    def _check_inputs(self, sc: Script, params: Mapping[str, str]) -> None:
        unknown = sorted(set(params) - {p.name for p in sc.params})
        if unknown:
            raise ValidationError(f"script {sc.name} has no parameter {', '.join(unknown)}", field="params",
                                  hint=f"its parameters: {', '.join(p.name for p in sc.params) or 'none'}")
        missing = [p.name for p in sc.params if p.default is None and p.name not in params]
        if missing:
            raise ValidationError(f"script {sc.name} needs the parameter(s) {', '.join(missing)}", field="params",
                                  hint="pass params={" + ", ".join(f"{m!r}: ..." for m in missing) + "}")
        absent = [n for n in sc.secrets if n not in self.secrets]
        if absent:
            raise ValidationError(f"script {sc.name} needs the secret(s) {', '.join(absent)}, which are not "
                                  "configured", field="secrets",
                                  hint="set EMERGENT_BROWSER__SECRETS='{\"" + absent[0] + "\": \"...\"}' (or [browser] "
                                       "secrets in emergent.toml)")

    async def _replay(self, script: str | Script, params: dict[str, str] | None, by: Principal,
                      version: str | None, heal: bool, trace: bool | None, propose: bool) -> ReplayResult:
        from emergent.browser.replay import replay_script

        by = self._who(by)
        sc = script if isinstance(script, Script) else self.store.script(script, version)
        if not isinstance(script, Script) and version is not None:
            (row,) = [r for r in self.store.list("script", name=sc.name) if r["version"] == sc.version] or [{}]
            state = row.get("status")
            if state == "rejected" or (state == "proposed" and not by.is_human):
                raise PermissionDenied(f"version {sc.version} of script {sc.name} is {state}",
                                       hint="replay the active version (leave version out); a person may try a "
                                            "proposed one before accepting it")
        params = {str(k): str(v) for k, v in (params or {}).items()}
        self._check_inputs(sc, params)
        self._audit("browser.replay", by, {"script": sc.name, "version": sc.version, "params": sorted(params),
                                           "heal": heal})
        run_id = self.store.start_run(sc, by=by.key)
        label = f"replay:{run_id}"
        started = time.monotonic()
        trace_on = self.trace if trace is None else trace
        trace_rel = f"browser/traces/{run_id}.zip" if trace_on else None
        result: ReplayResult | None = None
        ctx, guard, page = await self._context(by, label)
        try:
            if trace_on:
                await ctx.tracing.start(screenshots=True, snapshots=True)

            def on_step(i: int, action: Action, desc: str) -> None:
                self._audit("browser.action", by, {"session": label, "run": run_id, "step": i,
                                                   "action": action.kind, "target": desc, "url": page.url,
                                                   "submits": action.submits})

            async def navigate(p: Page, url: str) -> None:
                await self._guarded_goto(p, guard, url, by, label)

            async def extract(p: Page, name: str) -> list[dict[str, Any]]:
                from emergent.browser.extract import extract_rows

                t = self.store.template(name)
                return await extract_rows(p, t, timeout_ms=self.timeout_ms)

            outcomes, outputs, healed = await replay_script(
                page, sc, params=params, secrets=self.secrets, timeout_ms=self.timeout_ms, heal=heal,
                model=self._model() if heal else None, on_step=on_step, extract=extract, navigate=navigate,
                files=self._files)
            # what the last step set off (a click's fetch, a form's post) is answered before the context
            # closes: closing at once cancelled it, and the replayed click did nothing (seen in CI)
            await guard.settle(REPLAY_SETTLE_S, grace_s=REPLAY_GRACE_S)
            failed = [o for o in outcomes if o.status == "failed"]
            status: Literal["completed", "failed"] = "failed" if failed else "completed"
            error = f"step {failed[0].index} ({failed[0].kind}): {failed[0].error}" if failed else None
            proposed = None
            if healed is not None and propose and status == "completed":
                newest = max((r["version"] for r in self.store.list("script", name=sc.name)),
                             key=lambda v: tuple(int(x) for x in v.split(".")), default=sc.version)
                new = healed.model_copy(update={"version": next_version(newest), "healed_from": sc.version})
                self._audit("browser.save", by, {"kind": "script", "name": new.name, "version": new.version,
                                                 "status": "proposed", "healed_from": sc.version, "run": run_id})
                proposed = self.store.save(new, by=by.key, status="proposed", note=f"healed by run {run_id}").version
            result = ReplayResult(run_id=run_id, script=sc.name, version=sc.version, status=status,
                                  steps=outcomes, outputs=outputs, proposed_version=proposed, trace=trace_rel,
                                  error=error, duration_s=round(time.monotonic() - started, 3))
        except BaseException as exc:
            result = ReplayResult(run_id=run_id, script=sc.name, version=sc.version, status="failed",
                                  trace=trace_rel, error=f"{type(exc).__name__}: {exc}"[:2000],
                                  duration_s=round(time.monotonic() - started, 3))
            raise
        finally:
            if trace_on and trace_rel:
                path = self.workspace / trace_rel
                path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    await ctx.tracing.stop(path=str(path))
                    await asyncio.to_thread(scrub_trace, path, {n: self.secrets[n] for n in sc.secrets
                                                                if n in self.secrets})
                except (OSError, ValueError):  # a trace that cannot be scrubbed is not kept
                    path.unlink(missing_ok=True)
                    if result is not None:
                        result = result.model_copy(update={"trace": None})
                except _pw_error():
                    if result is not None:
                        result = result.model_copy(update={"trace": None})
            await ctx.close()
            if result is not None:
                self.store.finish_run(result)
        return result

    # ------------------------------------------------------------------ extraction
    def extract(self, template: str | ExtractionTemplate, *, by: Principal, url: str | None = None,
                session: str | None = None, max_pages: int | None = None) -> polars.DataFrame:
        """Rows of ``template`` as a polars DataFrame: on a session's page, or a fresh context at ``url``
        (default: the template's url)."""
        return self._run(self._extract(template, by, url, session, max_pages))

    async def aextract(self, template: str | ExtractionTemplate, *, by: Principal, url: str | None = None,
                       session: str | None = None, max_pages: int | None = None) -> polars.DataFrame:
        return await self._await(self._extract(template, by, url, session, max_pages))

    async def _extract(self, template: str | ExtractionTemplate, by: Principal, url: str | None,
                       session: str | None, max_pages: int | None) -> polars.DataFrame:
        from emergent.browser.extract import to_frame

        by = self._who(by)
        t = template if isinstance(template, ExtractionTemplate) else self.store.template(template)
        if session is not None:
            if url is not None:
                raise ValidationError("give url or session, not both", field="url",
                                      hint="session: its current page; url: a fresh page at that URL")
            s = self.session(session, by=by)
            return await s._serial(s._aextract(t, max_pages))
        where = url or t.url
        if not where:
            raise ValidationError(f"template {t.name} has no url and none was given", field="url",
                                  hint="pass url=..., or extract from a session's page (session=ID)")
        label = f"extract:{uuid.uuid4().hex[:12]}"
        self._audit("browser.open", by, {"session": label, "url": where, "template": t.name})
        ctx, guard, page = await self._context(by, label)
        try:
            await self._guarded_goto(page, guard, where, by, label)
            rows = await self._rows(page, t, by, label, max_pages)
        finally:
            await ctx.close()
        return to_frame(rows, t)

    async def _rows(self, page: Page, t: ExtractionTemplate, by: Principal, label: str,
                    max_pages: int | None) -> list[dict[str, Any]]:
        from emergent.browser.extract import extract_rows

        self._audit("browser.action", by, {"session": label, "action": "extract", "target": t.name,
                                           "url": page.url, "max_pages": max_pages})
        try:
            rows = await extract_rows(page, t, timeout_ms=self.timeout_ms, max_pages=max_pages)
        except _pw_error() as exc:
            raise _translate(exc, f"extracting {t.name}") from None
        return self._scrub_rows(rows)

    def _scrub_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """A configured secret's value never comes back out of a page: a page may echo what was typed into
        it, and whoever reads the rows (an agent through ``browser.extract``) must not learn the value."""
        forms = sorted(((v, f"(secret {k})") for k, v in self.secrets.items() if v and len(v) >= 4),
                       key=lambda f: -len(f[0]))
        if not forms:
            return rows
        for row in rows:
            for key, val in row.items():
                if isinstance(val, str) and any(v in val for v, _ in forms):
                    for v, shown in forms:
                        val = val.replace(v, shown)
                    row[key] = val
        return rows

    # ------------------------------------------------------------------ saved scripts and templates
    def _may_save(self, kind: str, name: str, by: Principal, status: str) -> None:
        """Agents and services may save active versions only of names nobody else has saved: a newer active
        version of someone else's script or template would replace it unreviewed (save it as proposed)."""
        if by.is_human or status != "active":
            return
        others = {r["created_by"] for r in self.store.list(cast(Any, kind), name=name)} - {by.key}
        if others:
            raise PermissionDenied(f"{by.key} may not save an active version of the {kind} {name!r} "
                                   f"(saved by {', '.join(sorted(others))})",
                                   hint="save it with status='proposed': a person accepts it")

    def save_script(self, script: Script, *, by: Principal, status: str = "active") -> Script:
        by = self._who(by)
        self._may_save("script", script.name, by, status)
        self._audit("browser.save", by, {"kind": "script", "name": script.name, "version": script.version,
                                         "status": status, "digest": script.digest()})
        return cast(Script, self.store.save(script, by=by.key, status=status))

    def save_template(self, t: ExtractionTemplate, *, by: Principal, status: str = "active") -> ExtractionTemplate:
        by = self._who(by)
        self._may_save("template", t.name, by, status)
        self._audit("browser.save", by, {"kind": "template", "name": t.name, "version": t.version,
                                         "status": status, "digest": t.digest()})
        return cast(ExtractionTemplate, self.store.save(t, by=by.key, status=status))

    def _decide(self, verb: str, kind: str, name: str, version: str, by: Principal, status: str) -> None:
        by = self._who(by)
        if kind not in ("script", "template"):
            raise ValidationError(f"kind {kind!r} is not script or template", field="kind",
                                  hint="accept('script', NAME, VERSION)")
        if not by.is_human:
            raise PermissionDenied(f"{by.key} may not {verb} a proposed {kind}: only a person decides",
                                   hint="a person reviews proposals (emergent browser accept NAME VERSION)")
        self._audit(f"browser.{verb}", by, {"kind": kind, "name": name, "version": version})
        self.store.set_status(cast(Any, kind), name, version, status, expect="proposed")

    def accept(self, kind: str, name: str, version: str, *, by: Principal) -> None:
        """A proposed version becomes active (people only)."""
        self._decide("accept", kind, name, version, by, "active")

    def reject(self, kind: str, name: str, version: str, *, by: Principal) -> None:
        self._decide("reject", kind, name, version, by, "rejected")

    def scripts(self) -> list[dict[str, Any]]:
        return self.store.list("script")

    def templates(self) -> list[dict[str, Any]]:
        return self.store.list("template")

    def script(self, name: str, version: str | None = None) -> Script:
        return self.store.script(name, version)

    def template(self, name: str, version: str | None = None) -> ExtractionTemplate:
        return self.store.template(name, version)

    def runs(self, *, script: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        return self.store.runs(script=script, limit=limit)

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        """Close every session, the browser, Playwright and the loop (idempotent)."""
        if self._closed:
            return
        with contextlib.suppress(Exception):  # closing: carry on with the rest
            self.loop.run(self._shutdown(), timeout=30)
        self._closed = True
        self.loop.close()

    async def _shutdown(self) -> None:
        for s in list(self._sessions.values()):
            if s is not None:
                with contextlib.suppress(Exception):
                    await s._aclose(audit=False)
        if self._browser is not None:
            with contextlib.suppress(Exception):
                await self._browser.close()
        if self._pw is not None:
            await self._pw.stop()
        self._browser = self._pw = None


TargetLike = str | Candidate | Target


class BrowserSession:
    """One isolated browser context and its page, used by the principal who opened it."""

    def __init__(self, service: BrowserService, sid: str, principal: Principal, context: BrowserContext,
                 guard: HostGuard, page: Page) -> None:
        self.id = sid
        self.principal = principal
        self.service = service
        self.context = context
        self.guard = guard
        self._page = page
        self.recorder: Recorder | None = None
        self.opened_at = service.clock.now() if hasattr(service.clock, "now") else time.time()
        self._downloads: list[str] = []
        self._closed = False
        self._listening = False
        self._events = 0  # page events being handled
        self._serial_lock: asyncio.Lock | None = None  # made on the loop thread at first use
        guard.on_download = self._store_download

    # ------------------------------------------------------------------ basics
    @property
    def page(self) -> Page:
        return self._page

    @property
    def pages(self) -> list[Page]:
        return [p for p in self.context.pages if not p.is_closed()]

    def switch(self, page_index: int) -> dict[str, Any]:
        """Act on the ``page_index``-th open page of the session (pop-ups it opened come after the first)."""
        pages = self.pages
        if not 0 <= page_index < len(pages):
            raise ValidationError(f"no page {page_index}: the session has {len(pages)} open", field="page_index",
                                  hint="session.pages lists them")
        self._page = pages[page_index]
        return {"url": self._page.url, "pages": len(pages)}

    def info(self) -> dict[str, Any]:
        return {"id": self.id, "principal": self.principal.key, "url": self._page.url,
                "title": self._title_cached(), "recording": self.recorder.name if self.recorder else None,
                "opened_at": self.opened_at}

    def _title_cached(self) -> str:
        return getattr(self, "_title", "")

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise StateConflictError(f"browser session {self.id} is closed", hint="open another with browser.open()")
        return self.service._run(self._serial(coro))

    async def _serial(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` alone on this session: one page has one focus, so two actions from two threads
        interleaved would type one field's text into the other (Playwright's fill focuses, then inserts).
        Closing does not wait here: it ends the context, and an action in flight fails as closed."""
        if self._serial_lock is None:
            self._serial_lock = asyncio.Lock()
        async with self._serial_lock:
            return await coro

    def _audit(self, kind: str, data: dict[str, Any]) -> None:
        self.service._audit(kind, self.principal, {"session": self.id, **data})

    # ------------------------------------------------------------------ navigation
    def goto(self, url: str) -> dict[str, Any]:
        """Open ``url`` in the session's page: {url, status, title}; blocked → PermissionDenied (audited)."""
        return self._run(self._agoto(url))

    async def _agoto(self, url: str) -> dict[str, Any]:
        resp = await self.service._guarded_goto(self._page, self.guard, url, self.principal, self.id)
        if self.recorder is not None:
            self.recorder.add(Action(kind="navigate", value=url))
        return await self._state(resp.status if resp is not None else None)

    async def _state(self, status: int | None = None) -> dict[str, Any]:
        try:
            self._title = await self._page.title()
        except _pw_error():
            self._title = ""
        return {"url": self._page.url, "status": status, "title": self._title}

    # ------------------------------------------------------------------ actions
    async def _act(self, kind: str, target: TargetLike, fn: Callable[[Locator], Awaitable[Any]], *,
                   shown: str | None = None, value: str | None = None, param: str | None = None,
                   secret: str | None = None, submits: bool | None = None, visible: bool = True,
                   record_kind: str | None = None) -> dict[str, Any]:
        t = Target.of(target)
        self._audit("browser.action", {"action": kind, "target": t.describe(), "value": shown, "url": self._page.url})
        rec = self.recorder
        if rec is not None:
            rec.api_begin()
        try:
            loc, cand, _ = await locators.resolve(self._page, t, timeout_ms=self.service.timeout_ms, visible=visible)
            described = None
            if rec is not None:
                try:
                    described = await locators.describe(loc)
                except NotFoundError:
                    described = t
            if kind in ("click", "press") and submits is None:
                submits = bool(await loc.evaluate(_SUBMITS_JS)) if kind == "click" else False
            try:
                await fn(loc)
            except _pw_error() as exc:
                raise _translate(exc, f"{kind} on {cand.describe()}") from None
            if rec is not None and described is not None:
                rec.add(Action(kind=cast(Any, record_kind or kind), target=described, value=value,
                               submits=bool(submits)), param=param, secret=secret)
        finally:
            if rec is not None:
                rec.api_end()
        out = await self._state()
        out.update({"action": kind, "target": cand.describe(), "submits": bool(submits)})
        return out

    def click(self, target: TargetLike, *, submits: bool | None = None) -> dict[str, Any]:
        return self._run(self._act("click", target, lambda loc: loc.click(), submits=submits))

    def fill(self, target: TargetLike, value: str, *, secret: str | None = None,
             param: str | None = None) -> dict[str, Any]:
        """Type ``value`` into the field; ``value`` may be ``${secrets.NAME}`` (resolved here, never recorded),
        ``secret=NAME`` marks a typed value as that secret, ``param=NAME`` records it as a parameter."""
        if not isinstance(value, str):
            raise ValidationError("a fill value must be a string", field="value", hint="pass text")
        m = re.fullmatch(r"\$\{secrets\.([A-Za-z_][A-Za-z0-9_]*)\}", value)
        if m:
            name = m.group(1)
            if name not in self.service.secrets:
                raise ValidationError(f"secret {name} is not configured", field="value",
                                      hint="set EMERGENT_BROWSER__SECRETS (a JSON object of name: value)")
            secret, value = name, self.service.secrets[name]
        if secret is None:
            secret = next((k for k, v in self.service.secrets.items() if v and v == value), None)
        shown = f"(secret {secret})" if secret else None

        async def type_in(loc: Locator) -> None:
            # an agent types a secret only into a password field: in any other field the page may show it,
            # and the agent could read it back (a person chooses where their secrets go)
            if secret and not self.principal.is_human \
                    and (await loc.get_attribute("type") or "").strip().lower() != "password":
                raise PermissionDenied(f"{self.principal.key} may type the secret {secret} only into a password "
                                       "field", hint="a person can fill it in, or record a script that does")
            await loc.fill(value)

        return self._run(self._act("fill", target, type_in, shown=shown if secret else
                                   (value if len(value) <= 200 else value[:200] + "…"), value=value,
                                   param=param, secret=secret))

    def select(self, target: TargetLike, value: str, *, param: str | None = None) -> dict[str, Any]:
        """Choose an option by its label, else by its value."""
        async def choose(loc: Locator) -> None:
            options = await loc.evaluate(_OPTIONS_JS)
            hit = next((o for o in options if o[0] == value), None) or next((o for o in options if o[1] == value), None)
            if hit is None:
                shown = ", ".join(repr(o[0]) for o in options[:20])
                raise ValidationError(f"no option {value!r} in the list", field="value",
                                      hint=f"choose an option's label or value: {shown}")
            await loc.select_option(value=hit[1])

        return self._run(self._act("select", target, choose, shown=value, value=value, param=param))

    def check(self, target: TargetLike, checked: bool = True) -> dict[str, Any]:
        kind = "check" if checked else "uncheck"
        return self._run(self._act(kind, target, lambda loc: loc.set_checked(checked), visible=False))

    def upload(self, target: TargetLike, path: str) -> dict[str, Any]:
        """Put a workspace file (a path under <workspace>/files) into a file input."""
        name, data = self.service._files(path)

        async def put(loc: Locator) -> None:
            await loc.set_input_files({"name": name, "mimeType": "application/octet-stream", "buffer": data})

        return self._run(self._act("upload", target, put, shown=path, value=path, visible=False))

    def press(self, target: TargetLike, key: str, *, submits: bool = False) -> dict[str, Any]:
        return self._run(self._act("press", target, lambda loc: loc.press(key), shown=key, value=key,
                                   submits=submits))

    def wait(self, target: TargetLike | None = None, *, state: str = "visible",
             timeout_ms: int | None = None) -> dict[str, Any]:
        """Wait for an element's state (visible, hidden, attached, detached) or, without a target, for the
        page's load state (load, domcontentloaded, networkidle)."""
        return self._run(self._await_state(target, state, timeout_ms))

    async def _await_state(self, target: TargetLike | None, state: str, timeout_ms: int | None) -> dict[str, Any]:
        budget = timeout_ms or self.service.timeout_ms
        t = Target.of(target) if target is not None else None
        self._audit("browser.action", {"action": "wait", "target": t.describe() if t else None, "value": state,
                                       "url": self._page.url})
        try:
            if t is None:
                if state not in ("load", "domcontentloaded", "networkidle"):
                    raise ValidationError(f"without a target, state must be load, domcontentloaded or networkidle, "
                                          f"not {state!r}", field="state", hint="or give a target")
                await self._page.wait_for_load_state(state, timeout=budget)  # type: ignore[arg-type]
            elif state in ("visible", "attached"):
                loc, _, _ = await locators.resolve(self._page, t, timeout_ms=budget, visible=state == "visible")
                if self.recorder is not None:
                    self.recorder.add(Action(kind="wait", target=await locators.describe(loc), value=state))
            elif state in ("hidden", "detached"):
                await locators.locator_for(self._page, t.candidates[0]).wait_for(
                    state=cast(Any, state), timeout=budget)
            else:
                raise ValidationError(f"state {state!r} is not visible, hidden, attached or detached", field="state",
                                      hint="e.g. wait('text=Done', state='visible')")
        except _pw_error() as exc:
            raise _translate(exc, f"waiting for {t.describe() if t else state}") from None
        return await self._state()

    # ------------------------------------------------------------------ reading
    def extract(self, template: str | ExtractionTemplate, *, max_pages: int | None = None) -> polars.DataFrame:
        t = template if isinstance(template, ExtractionTemplate) else self.service.store.template(template)
        return self._run(self._aextract(t, max_pages))

    async def _aextract(self, t: ExtractionTemplate, max_pages: int | None) -> polars.DataFrame:
        from emergent.browser.extract import to_frame

        rows = await self.service._rows(self._page, t, self.principal, self.id, max_pages)
        if self.recorder is not None:
            self.recorder.add(Action(kind="extract", value=t.name, output=t.name))
        return to_frame(rows, t)

    def screenshot(self, *, full_page: bool = False) -> bytes:
        return self._run(self._page.screenshot(full_page=full_page, type="png"))

    async def _guarded(self, coro: Coroutine[Any, Any, T], what: str) -> T:
        try:
            return await coro
        except _pw_error() as exc:
            raise _translate(exc, what) from None

    def describe_at(self, x: float, y: float) -> Target:
        return self._run(self._guarded(locators.describe_at(self._page, x, y), f"describing the point ({x}, {y})"))

    def find(self, text: str) -> list[Target]:
        return self._run(self._guarded(locators.find_by_text(self._page, text), f"finding {text!r}"))

    def count(self, target: TargetLike) -> int:
        """How many elements the target's first candidate finds now."""
        t = Target.of(target)
        return self._run(locators.locator_for(self._page, t.candidates[0]).count())

    def candidates(self, target: TargetLike) -> Target:
        """The ranked candidates of the element ``target`` resolves to."""
        async def go() -> Target:
            loc, _, _ = await locators.resolve(self._page, Target.of(target), timeout_ms=self.service.timeout_ms)
            return await locators.describe(loc)

        return self._run(self._guarded(go(), "describing the element"))

    def highlight(self, target: TargetLike) -> bytes:
        """A screenshot with the element outlined."""
        async def go() -> bytes:
            loc, _, _ = await locators.resolve(self._page, Target.of(target), timeout_ms=self.service.timeout_ms)
            await loc.scroll_into_view_if_needed()
            await loc.evaluate(_HIGHLIGHT_JS)
            try:
                return await self._page.screenshot(type="png")
            finally:
                await self._page.evaluate(_UNHIGHLIGHT_JS)

        return self._run(self._guarded(go(), "highlighting the element"))

    def run(self, fn: Callable[[Page], Awaitable[T]]) -> T:
        """Escape hatch: ``await fn(page)`` on the session's loop (not audited action by action)."""
        async def go() -> T:
            return await fn(self._page)

        return self._run(go())

    # ------------------------------------------------------------------ recording
    def record(self, name: str) -> Recorder:
        """Start recording actions (through this API and done directly in the page) as script ``name``."""
        return self._run(self._arecord(name))

    async def _arecord(self, name: str) -> Recorder:
        if self.recorder is not None:
            raise StateConflictError(f"session {self.id} is already recording {self.recorder.name}",
                                     hint="stop() it first")
        rec = Recorder(name, self.service.secrets)
        if not self._listening:
            await self.context.expose_binding("__emergentRecord", self._on_page_event)
            await self.context.add_init_script(LISTENER_JS)
            self._listening = True
        for frame in self._page.frames:
            try:
                await frame.evaluate(LISTENER_JS)
            except _pw_error():
                pass
        if self._page.url not in ("about:blank", ""):
            rec.add(Action(kind="navigate", value=self._page.url))
        self.recorder = rec
        return rec

    async def _on_page_event(self, source: dict[str, Any], payload: dict[str, Any]) -> None:
        self._events += 1
        try:
            await self._page_event(source, payload)
        finally:
            self._events -= 1

    async def _page_event(self, source: dict[str, Any], payload: dict[str, Any]) -> None:
        rec = self.recorder
        if rec is None or rec._busy or not isinstance(payload, dict):
            return
        kind = payload.get("kind")
        if kind not in ("click", "fill", "select", "check", "uncheck", "press"):
            return
        frame = source.get("frame")
        frame_css = None
        if frame is not None and frame.parent_frame is not None:
            try:
                el = await frame.frame_element()
                frame_css = (await el.evaluate(locators.FINGERPRINT_JS))["path"]
            except _pw_error():
                return
        target = page_event_target(payload.get("facts") or {}, frame_css)
        page = source.get("page") or self._page
        kept: list[Candidate] = []
        for c in target.candidates:  # keep the candidates that find one element now (all when none can)
            try:
                if await locators.locator_for(page, c).count() == 1:
                    kept.append(c)
            except _pw_error():
                pass
        if kept:
            target = target.model_copy(update={"candidates": kept, "description": kept[0].describe()})
        value = payload.get("value")
        self._audit("browser.action", {"action": kind, "target": target.describe(), "source": "page",
                                       "value": None if kind == "fill" else value, "url": page.url})
        rec.add_page_event(kind, target, None if value is None else str(value), bool(payload.get("submits")))

    def stop(self, *, save: bool = True, description: str = "") -> Script:
        """Stop recording; the Script (saved, audited browser.save, when ``save``)."""
        rec = self.recorder
        if rec is None:
            raise StateConflictError(f"session {self.id} is not recording", hint="start with session.record(NAME)")

        async def settle() -> None:  # let page events already sent arrive and be handled
            end = time.monotonic() + 3
            await asyncio.sleep(0.05)
            while self._events and time.monotonic() < end:
                await asyncio.sleep(0.02)

        self._run(settle())
        script = rec.script(description)
        rec.stopped = True
        self.recorder = None
        if save:
            script = self.service.save_script(script, by=self.principal)
        return script

    # ------------------------------------------------------------------ downloads
    async def _store_download(self, url: str, suggested: str, body: bytes) -> None:
        """A response the guard saw as an attachment: audited, then written under files/downloads/<session>."""
        if len(body) > MAX_DOWNLOAD_BYTES:
            self.guard._block(url, "download", "main", f"download larger than {MAX_DOWNLOAD_BYTES >> 20} MB")
            raise OperationalError(f"download of {url} refused: {len(body)} bytes",
                                   hint=f"downloads are limited to {MAX_DOWNLOAD_BYTES >> 20} MB")
        name = _sanitise(suggested)
        folder = self.service.workspace / "files" / "downloads" / self.id
        stem, suffix, n = Path(name).stem, Path(name).suffix, 1
        while (folder / name).exists():
            name = f"{stem}-{n}{suffix}"
            n += 1
        rel = f"downloads/{self.id}/{name}"
        self._audit("browser.download", {"url": url, "file": rel, "bytes": len(body)})
        folder.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(body)
        self._downloads.append(rel)

    def downloads(self, *, wait_s: float = 5.0) -> list[str]:
        """Paths (relative to the workspace's files directory) of the files this session downloaded (after the
        requests in flight, up to ``wait_s``, have been handled)."""
        async def settle() -> list[str]:
            await self.guard.settle(wait_s)
            return list(self._downloads)

        return self._run(settle())

    # ------------------------------------------------------------------ closing
    def close(self) -> None:
        if self._closed:
            return
        self._run(self._aclose())

    async def _aclose(self, *, audit: bool = True, by: Principal | None = None) -> None:
        if self._closed:
            return
        if audit:
            who = by or self.principal
            self.service._audit("browser.close", who, {"session": self.id, "url": self._page.url,
                                                       "owner": self.principal.key})
        self._closed = True
        self.recorder = None
        with self.service._lock:
            self.service._sessions.pop(self.id, None)
        await self.context.close()
