"""Replay a recorded :class:`~emergent.browser.model.Script` on a live page, healing broken locators.

:func:`replay_script` is the engine under :meth:`BrowserService.replay
<emergent.browser.session.BrowserService.replay>` (which owns the context, the audit, the trace and
the run record); it works on any Playwright async ``Page``, so the benchmark and the tests drive it
directly.

Before anything runs, every ``${params.NAME}`` must have a value (given or the parameter's default)
and every ``${secrets.NAME}`` a configured secret; otherwise :class:`~emergent.errors.ValidationError`
names them all and no action happens. Secret values are substituted only into the call that types
them: step descriptions, outcomes and errors say ``(secret NAME)``, and any secret value that shows up
in an error text (Playwright echoes some arguments) is replaced by that too.

Each action's element is found by a ladder, inside the action's timeout (``action.timeout_ms`` or
``timeout_ms``) — :func:`find`:

1. the recorded candidates in order (:func:`emergent.browser.locators.resolve`, in short slices: the
   page may still be loading); the first candidate → ``ok``, a later one → ``healed`` by
   ``alternative``;
2. once the page's DOM is loaded, a similarity search over :func:`emergent.browser.locators.inventory`
   against the recorded fingerprint (:func:`emergent.browser.heal.choose`: threshold and margin, never
   a guess) → ``similarity``;
3. when a model is given, once (after half the timeout, or at the end), the model picks among the top
   ten → ``model``.

Slices repeat until the timeout, so content that appears late is still found by its recorded
locators — and is not mistaken for a heal: a later candidate winning makes the earlier ones try once
more, and so do the recorded ones before a similarity or model choice is adopted. Nothing is looked
for while a main-frame navigation is in flight (:class:`NavWatch`), so an element is never taken from
the page that is about to go away. The model's prompt is scrubbed of secret values like the errors. A step that fails (no element, an ambiguous one, a timeout, a blocked navigation) fails
the replay with a message naming the step, what was tried and why it was refused; the remaining
steps are ``skipped``. Healed steps produce a healed copy of the script (same name and version; the
service saves it as a proposal) whose targets lead with what worked, the old candidates kept after.
"""

from __future__ import annotations

import asyncio
import contextlib
import mimetypes
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from emergent.browser import heal as healing
from emergent.browser.model import REF, Action, Candidate, Script, StepOutcome, Target
from emergent.errors import EmergentError, NotFoundError, ValidationError

if TYPE_CHECKING:
    from playwright.async_api import Locator, Page

    from emergent.providers.llm import ChatModel

OnStep = Callable[[int, Action, str], None]
Extract = Callable[["Page", str], Awaitable[list[dict[str, Any]]]]
Navigate = Callable[["Page", str], Awaitable[None]]
Files = Callable[[str], tuple[str, bytes]]
HealedBy = Literal["alternative", "similarity", "model"]

FIRST_SLICE_MS = 250  # the first wait for the recorded candidates; doubled each round up to MAX_SLICE_MS
MAX_SLICE_MS = 1000
MIN_ACT_MS = 1000.0  # the action itself, once its element is found, even when finding it used the budget
FINAL_GRACE_S = 1.0  # the model's one chance, when the timeout ran out before it was asked: page checks' budget
LOAD_STATES = ("load", "domcontentloaded", "networkidle")
ELEMENT_STATES = ("visible", "hidden", "attached", "detached")


# ------------------------------------------------------------------------------ values
def values_for(script: Script, params: Mapping[str, str] | None, secrets: Mapping[str, str] | None) -> dict[str, str]:
    """The parameter values a replay of ``script`` uses (given, else defaults). Raises ValidationError naming
    every missing parameter, unknown parameter and missing secret, before anything runs."""
    given = dict(params or {})
    declared = {p.name: p for p in script.params}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValidationError(f"script {script.name!r} has no parameter(s) {', '.join(unknown)}",
                              hint=f"its parameters: {', '.join(sorted(declared)) or 'none'}", field="params")
    bad = sorted(k for k, v in given.items() if not isinstance(v, str))
    if bad:
        raise ValidationError(f"parameter(s) {', '.join(bad)} must be strings", hint="pass text values",
                              field="params")
    values = {n: given.get(n, p.default) for n, p in declared.items()}
    missing = sorted(n for n, v in values.items() if v is None)
    missing_secrets = [n for n in script.secrets if n not in (secrets or {})]
    if missing or missing_secrets:
        parts = []
        if missing:
            parts.append(f"parameter(s) {', '.join(missing)} (no value and no default)")
        if missing_secrets:
            parts.append(f"secret(s) {', '.join(missing_secrets)} (not configured)")
        raise ValidationError(f"script {script.name!r} cannot run: missing {' and '.join(parts)}",
                              hint=("pass params={'NAME': 'value'}" if missing else "")
                              + (" and " if missing and missing_secrets else "")
                              + ("configure the secret (EMERGENT_BROWSER__SECRETS) under that name"
                                 if missing_secrets else ""),
                              field="params" if missing else "secrets", missing=missing,
                              missing_secrets=missing_secrets)
    return {k: v for k, v in values.items() if v is not None}


def substitute(value: str | None, values: Mapping[str, str], secrets: Mapping[str, str], *,
               reveal: bool) -> str | None:
    """``value`` with ``${params.X}`` replaced; ``${secrets.X}`` by the secret when ``reveal``, else by
    ``(secret X)``."""
    if value is None:
        return None

    def sub(m: Any) -> str:
        kind, name = m.group(1), m.group(2)
        if kind == "params":
            return values[name]
        return secrets[name] if reveal else f"(secret {name})"

    return REF.sub(sub, value)


class _Scrubber:
    """Replaces secret values in a text by ``(secret NAME)``: the script's secrets whatever their length, and
    every other configured secret of 4 characters or more (a page may show one the script never typed)."""

    MIN_OTHER = 4

    def __init__(self, secrets: Mapping[str, str], used: list[str]) -> None:
        names = [n for n in secrets if secrets[n] and (n in used or len(secrets[n]) >= self.MIN_OTHER)]
        self.pairs = sorted(((secrets[n], n) for n in names), key=lambda p: -len(p[0]))

    def __call__(self, text: str) -> str:
        for value, name in self.pairs:
            text = text.replace(value, f"(secret {name})")
        return text


def step_text(action: Action, values: Mapping[str, str], secrets: Mapping[str, str]) -> str:
    """What a step does, for on_step and messages (parameters filled in, secrets named, never shown)."""
    what = action.target.describe() if action.target else ""
    val = substitute(action.value, values, secrets, reveal=False)
    return " ".join(p for p in (action.kind, what, repr(val) if val is not None else "") if p)


# ------------------------------------------------------------------------------ finding elements
@dataclass
class Found:
    locator: Locator
    used: Candidate
    healed_by: HealedBy | None
    target: Target  # the target as it should be recorded now (== the old one when nothing healed)


def _pw_errors() -> tuple[type[BaseException], ...]:
    from playwright.async_api import Error as PlaywrightError

    return (PlaywrightError,)


def _short(exc: BaseException) -> str:
    """A Playwright message without its call log."""
    text = getattr(exc, "message", None) or str(exc)
    return text.split("\nCall log:")[0].strip().splitlines()[0] if text.strip() else type(exc).__name__


class NavWatch:
    """Main-frame navigations in flight on a page (a click that submits or follows a link replaces the
    document a moment later): :func:`find` looks for nothing while one is in flight, so an element is never
    taken — or healed to — from the page that is about to go away."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.pending: set[Any] = set()
        self.idle = asyncio.Event()
        self.idle.set()
        page.on("request", self._request)
        page.on("requestfinished", self._done)
        page.on("requestfailed", self._done)
        page.on("framenavigated", self._committed)

    def _request(self, request: Any) -> None:
        try:
            main = request.is_navigation_request() and request.frame == self.page.main_frame
        except Exception:  # a service worker's request has no frame
            main = False
        if main:
            self.pending.add(request)
            self.idle.clear()

    def _done(self, request: Any) -> None:
        if request in self.pending:
            self.pending.discard(request)
            if not self.pending:
                self.idle.set()

    def _committed(self, frame: Any) -> None:
        if frame == self.page.main_frame:  # a new document: whatever was in flight has landed (or was dropped)
            self.pending.clear()
            self.idle.set()

    @property
    def busy(self) -> bool:
        return not self.idle.is_set()

    async def settled(self, deadline: float) -> None:
        """Until no main-frame navigation is in flight (or ``deadline``, a loop time), then until the
        document's DOM is parsed."""
        loop = asyncio.get_running_loop()
        if not self.idle.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.idle.wait(), timeout=max(0.001, deadline - loop.time()))
            await _dom_loaded(self.page, deadline, loop.time())

    def close(self) -> None:
        for event, fn in (("request", self._request), ("requestfinished", self._done), ("requestfailed", self._done),
                          ("framenavigated", self._committed)):
            with contextlib.suppress(Exception):
                self.page.remove_listener(event, fn)


class _Healer:
    """Steps 2 and 3 of the ladder for one target, remembering why each did not heal (for the message)."""

    def __init__(self, page: Page, target: Target, *, model: ChatModel | None, action: str,
                 nav: NavWatch | None, redact: Callable[[str], str] | None) -> None:
        self.page, self.target, self.model, self.action, self.nav = page, target, model, action, nav
        self.redact = redact
        self.fingerprint = target.fingerprint or healing.implied_fingerprint(target)
        self.similarity = ("not tried (no fingerprint recorded and the locators imply none)"
                           if self.fingerprint is None else "not tried (the page did not finish loading in time)")
        self.model_says = "no model configured" if model is None else "not asked (out of time)"
        self.model_asked = False

    async def attempt(self, deadline: float, *, ask_model: bool) -> Found | None:
        from emergent.browser import locators

        loop = asyncio.get_running_loop()
        if self.nav is not None:
            await self.nav.settled(deadline)
        if self.fingerprint is None or not await _dom_loaded(self.page, deadline, loop.time()):
            return None
        inv = await locators.inventory(self.page)
        if self.nav is not None and self.nav.busy:  # the page started to go away while we looked
            return None
        prints = [fp for fp, _ in inv]
        decision = healing.choose(self.fingerprint, prints)
        self.similarity = decision.reason
        if decision.index is not None:
            got = await _adopt(self.page, self.target, inv[decision.index][1], "similarity")
            if got is not None:
                return got
            self.similarity = "the most similar element could not be located uniquely"
        if self.model is None or self.model_asked or not ask_model:
            return None
        self.model_asked = True
        top = healing.rank(self.fingerprint, prints)[:healing.MODEL_TOP]
        entries = [prints[i] for _, i in top]
        pick, why = await asyncio.to_thread(healing.ask_model, self.model, self.target, self.action, entries,
                                            redact=self.redact)
        self.model_says = why or "the model chose none"
        if pick is None:
            return None
        got = await _adopt(self.page, self.target, inv[top[pick][1]][1], "model")
        if got is None:
            self.model_says = "the model's element could not be located uniquely"
        return got


async def find(page: Page, target: Target, *, timeout_ms: int, heal_on: bool = True,
               model: ChatModel | None = None, action: str = "click", visible: bool = True,
               nav: NavWatch | None = None, redact: Callable[[str], str] | None = None) -> Found:
    """The element ``target`` means on ``page``, by the ladder in the module docstring; NotFoundError (with
    what was tried and why nothing was chosen) when it cannot be found within ``timeout_ms``. ``visible``
    False accepts a hidden element from the recorded candidates (a styled file input). With ``nav``, nothing
    is looked for while the page is being replaced by a navigation."""
    from emergent.browser import locators

    loop = asyncio.get_running_loop()
    start = loop.time()
    deadline = start + timeout_ms / 1000
    if not heal_on:
        if nav is not None:
            await nav.settled(deadline)
        loc, cand, idx = await locators.resolve(page, target, timeout_ms=timeout_ms, visible=visible)
        return Found(loc, cand, None, target)
    healer = _Healer(page, target, model=model, action=action, nav=nav, redact=redact)
    slice_ms = FIRST_SLICE_MS
    last: NotFoundError | None = None
    while True:
        if nav is not None:
            await nav.settled(deadline)
        remaining_ms = (deadline - loop.time()) * 1000
        try:
            loc, cand, idx = await locators.resolve(page, target, timeout_ms=max(1, int(min(slice_ms, remaining_ms))),
                                                    visible=visible)
        except NotFoundError as exc:
            last = exc
        else:
            if idx > 0:  # an element that appeared during the pass: the better candidates may find it now
                loc, cand, idx = await _recheck(page, target, loc, cand, idx, visible)
            if idx == 0:
                return Found(loc, cand, None, target)
            return Found(loc, cand, "alternative", healing.merged(target, [cand]))
        slice_ms = min(slice_ms * 2, MAX_SLICE_MS)
        late = loop.time() - start >= (deadline - start) / 2 or deadline - loop.time() < slice_ms / 1000
        got = await healer.attempt(deadline, ask_model=late)
        if got is not None:
            return got
        if loop.time() >= deadline:
            if model is not None and not healer.model_asked:  # out of time before it was asked: ask now, once
                got = await healer.attempt(loop.time() + FINAL_GRACE_S, ask_model=True)
                if got is not None:
                    return got
            tried = "; ".join(c.describe() for c in target.candidates)
            raise NotFoundError(
                f"no element for {target.describe()} within {timeout_ms} ms: tried {tried} "
                f"(none matched exactly one element); similarity: {healer.similarity}; model: {healer.model_says}",
                hint="the page may have changed: record the step again, or fix its locator and save a new version",
                tried=[c.describe() for c in target.candidates]) from last


async def _recheck(page: Page, target: Target, loc: Locator, cand: Candidate, idx: int,
                   visible: bool) -> tuple[Locator, Candidate, int]:
    """Candidates before ``idx`` tried once more: content that arrives while ``resolve`` goes through the
    candidates one by one is found by a later one first, which is not a heal."""
    from emergent.browser import locators

    try:
        return await locators.resolve(page, target.model_copy(update={"candidates": target.candidates[:idx]}),
                                      timeout_ms=0, visible=visible)
    except NotFoundError:
        return loc, cand, idx


async def _dom_loaded(page: Page, deadline: float, now: float) -> bool:
    try:
        await page.wait_for_load_state("domcontentloaded", timeout=max(1.0, (deadline - now) * 1000))
    except _pw_errors():
        return False
    return True


async def _adopt(page: Page, old: Target, cand: Candidate, how: HealedBy) -> Found | None:
    """The element ``cand`` (from the inventory) as the healed target, when it is exactly one element —
    unless the recorded candidates find an element now (late content that arrived since they were tried:
    nothing to heal)."""
    from emergent.browser import locators

    try:
        loc, used, idx = await locators.resolve(page, old, timeout_ms=0)
    except NotFoundError:
        pass
    else:
        return Found(loc, used, None if idx == 0 else "alternative",
                     old if idx == 0 else healing.merged(old, [used]))
    loc = locators.locator_for(page, cand)
    if await loc.count() != 1:
        return None
    try:
        new = await locators.describe(loc)
    except NotFoundError:  # it went away in the meantime
        return None
    return Found(loc, cand, how, healing.merged(old, new.candidates, new.fingerprint))


# ------------------------------------------------------------------------------ replay
async def replay_script(page: Page, script: Script, *, params: Mapping[str, str] | None, secrets: Mapping[str, str],
                        timeout_ms: int, heal: bool = True, model: ChatModel | None = None,
                        on_step: OnStep | None = None, extract: Extract | None = None,
                        navigate: Navigate | None = None, files: Files | None = None,
                        ) -> tuple[list[StepOutcome], dict[str, list[dict[str, Any]]], Script | None]:
    """Run ``script`` on ``page``: the outcomes (one per action), the rows of its extract actions (by output
    name), and the healed script (None when nothing healed). Usage errors (missing parameters or secrets,
    an upload without ``files``, an extract without ``extract``) raise ValidationError before anything runs;
    a step that fails does not raise: its outcome says why and the rest are skipped. An exception raised by
    ``on_step`` (called before each action: an audit that could not be written) propagates and stops it."""
    values = values_for(script, params, secrets)
    kinds = {a.kind for a in script.actions}
    if "upload" in kinds and files is None:
        raise ValidationError(f"script {script.name!r} uploads files, but no file resolver was given",
                              hint="replay it through BrowserService.replay, which reads uploads from the workspace")
    if "extract" in kinds and extract is None:
        raise ValidationError(f"script {script.name!r} extracts, but no extractor was given",
                              hint="replay it through BrowserService.replay, which runs extraction templates")
    for i, a in enumerate(script.actions):
        if a.kind == "wait" and a.value is not None and a.value not in (*LOAD_STATES, *ELEMENT_STATES):
            raise ValidationError(f"step {i} waits for {a.value!r}, which is not a state",
                                  hint=f"use one of {', '.join((*ELEMENT_STATES, *LOAD_STATES))}", field="value")
    nav = NavWatch(page)
    try:
        outcomes, outputs, healed = await _steps(
            page, script, values, secrets, timeout_ms=timeout_ms, heal=heal, model=model, on_step=on_step,
            extract=extract, navigate=navigate, files=files, nav=nav)
    finally:
        nav.close()
    new_script = None
    if healed:
        actions = [a.model_copy(update={"target": healed[i]}) if i in healed else a
                   for i, a in enumerate(script.actions)]
        new_script = script.model_copy(update={"actions": actions})
    return outcomes, outputs, new_script


async def _steps(page: Page, script: Script, values: Mapping[str, str], secrets: Mapping[str, str], *,
                 timeout_ms: int, heal: bool, model: ChatModel | None, on_step: OnStep | None,
                 extract: Extract | None, navigate: Navigate | None, files: Files | None, nav: NavWatch,
                 ) -> tuple[list[StepOutcome], dict[str, list[dict[str, Any]]], dict[int, Target]]:
    scrub = _Scrubber(secrets, script.secrets)
    outcomes: list[StepOutcome] = []
    outputs: dict[str, list[dict[str, Any]]] = {}
    healed: dict[int, Target] = {}
    failed = False
    for i, action in enumerate(script.actions):
        if failed:
            outcomes.append(StepOutcome(index=i, kind=action.kind, status="skipped"))
            continue
        text = scrub(step_text(action, values, secrets))
        if on_step is not None:
            on_step(i, action, text)
        t0 = time.perf_counter()
        budget = action.timeout_ms or timeout_ms
        try:
            work = _act(page, action, substitute(action.value, values, secrets, reveal=True), budget=budget,
                        heal_on=heal, model=model, extract=extract, navigate=navigate, files=files, outputs=outputs,
                        nav=nav, redact=scrub)
            # a hard stop behind the per-call timeouts (an extraction spans many pages and a navigation has the
            # navigation timeout: their own bounds apply)
            found = await (work if action.kind in ("extract", "navigate")
                           else asyncio.wait_for(work, timeout=budget / 1000 * 2 + 5))
        except Exception as exc:
            if not isinstance(exc, (EmergentError, TimeoutError, *_pw_errors())):
                raise
            failed = True
            if isinstance(exc, EmergentError):
                msg = exc.message
            elif isinstance(exc, _pw_errors()):
                msg = _short(exc)
            else:  # asyncio.wait_for's hard stop
                msg = f"did not finish within {budget * 2 + 5000} ms"
            outcomes.append(StepOutcome(index=i, kind=action.kind, status="failed",
                                        ms=(time.perf_counter() - t0) * 1e3,
                                        error=scrub(f"step {i} ({text}) failed: {msg}")))
            continue
        status: Literal["ok", "healed"] = "ok"
        if found is not None and found.healed_by is not None:
            status = "healed"
            healed[i] = found.target
        outcomes.append(StepOutcome(index=i, kind=action.kind, status=status,
                                    used=found.used if found else None,
                                    healed_by=found.healed_by if found else None,
                                    ms=(time.perf_counter() - t0) * 1e3))
    return outcomes, outputs, healed


async def _act(page: Page, action: Action, value: str | None, *, budget: int, heal_on: bool,
               model: ChatModel | None, extract: Extract | None, navigate: Navigate | None, files: Files | None,
               outputs: dict[str, list[dict[str, Any]]], nav: NavWatch | None = None,
               redact: Callable[[str], str] | None = None) -> Found | None:
    kind = action.kind
    t_end = time.perf_counter() + budget / 1000

    def left() -> float:  # what the element search left of the budget; never less than MIN_ACT_MS
        return max(MIN_ACT_MS, (t_end - time.perf_counter()) * 1000)

    if kind == "navigate":
        assert value is not None
        if navigate is not None:
            await navigate(page, value)
        else:
            await page.goto(value, timeout=budget)
        return None
    if kind == "extract":
        assert extract is not None and value is not None
        outputs[action.output or value] = await extract(page, value)
        return None
    if kind == "wait":
        return await _wait(page, action, budget=budget, heal_on=heal_on, model=model, nav=nav, redact=redact)
    assert action.target is not None
    found = await find(page, action.target, timeout_ms=budget, heal_on=heal_on, model=model, action=kind,
                       visible=kind != "upload", nav=nav, redact=redact)
    loc = found.locator
    if kind == "click":
        await loc.click(timeout=left())
    elif kind == "fill":
        await loc.fill(value or "", timeout=left())
    elif kind == "select":
        await loc.select_option(value, timeout=left())  # matches an option's value or its label
    elif kind in ("check", "uncheck"):
        await loc.set_checked(kind == "check", timeout=left())
    elif kind == "press":
        await loc.press(value or "Enter", timeout=left())
    elif kind == "upload":
        assert files is not None and value is not None
        name, data = files(value)
        mime = mimetypes.guess_type(name)[0] or "application/octet-stream"
        await loc.set_input_files({"name": name, "mimeType": mime, "buffer": data}, timeout=left())
    else:  # pragma: no cover - the model's ActionKind is closed
        raise ValidationError(f"unknown action {kind!r}")
    return found


async def _wait(page: Page, action: Action, *, budget: int, heal_on: bool, model: ChatModel | None,
                nav: NavWatch | None = None, redact: Callable[[str], str] | None = None) -> Found | None:
    state = action.value or ("visible" if action.target else "load")
    if action.target is None:
        if state not in LOAD_STATES:
            state = "load"
        await page.wait_for_load_state(state, timeout=budget)  # type: ignore[arg-type]
        return None
    if state in ("hidden", "detached"):
        from emergent.browser import locators

        cand = action.target.candidates[0]
        await locators.locator_for(page, cand).wait_for(state=state, timeout=budget)  # type: ignore[arg-type]
        return Found(locators.locator_for(page, cand), cand, None, action.target)
    t0 = time.perf_counter()
    found = await find(page, action.target, timeout_ms=budget, heal_on=heal_on, model=model, action="wait",
                       visible=state != "attached", nav=nav, redact=redact)
    if state in ELEMENT_STATES:
        left = max(MIN_ACT_MS, budget - (time.perf_counter() - t0) * 1000)
        await found.locator.wait_for(state=state, timeout=left)  # type: ignore[arg-type]
    return found


__all__ = ["Found", "find", "replay_script", "step_text", "substitute", "values_for"]
