"""Finding elements on a live page: candidates of an element, resolving a target, the page's inventory.

- :func:`locator_for` turns a :class:`~emergent.browser.model.Candidate` into a Playwright locator
  (inside its ``<iframe>`` when ``frame`` is set).
- :func:`resolve` finds a :class:`~emergent.browser.model.Target` on a page: its candidates in order,
  the first that matches exactly one element wins; it waits for late content up to a timeout.
- :func:`describe` is the other direction: the candidates an element can be found by (test id, role and
  accessible name, label, placeholder, alt, title, text, then a CSS path), each verified on the live page
  to find that very element, and its :class:`~emergent.browser.model.Fingerprint`.
- :func:`inventory` lists every visible actionable or textual element with its fingerprint and a unique
  CSS candidate (what self-healing searches), in one ``evaluate``.

The element facts are read by one JavaScript function, :data:`FINGERPRINT_JS`, which the recorder also
injects into pages to describe what a person clicks. The role and accessible-name computation in it is a
deliberately small subset of ARIA (implicit roles of common tags; name from aria-labelledby, aria-label,
label, alt, title, text, placeholder): every role candidate is verified by Playwright's own
``get_by_role`` before it is kept, so an approximation costs a candidate, never a wrong one.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from emergent.browser.model import KIND_ORDER, Candidate, Fingerprint, Target
from emergent.errors import NotFoundError

if TYPE_CHECKING:
    from playwright.async_api import ElementHandle, Frame, Locator, Page

#: at most this many elements in an inventory
MAX_INVENTORY = 5000
#: longest text kept in a fingerprint / a text candidate
MAX_TEXT = 200
#: an inventory stops looking after this long (ms) in the page: a huge DOM gives a partial list, not a stall
INVENTORY_BUDGET_MS = 2000
#: the wait for late content goes in slices of at most this long (ms) between passes over the candidates
SLICE_MS = 250

# The shared element-facts library: defines window-independent helpers and returns the facts of one element.
_LIB_JS = r"""
const IMPLICIT = {A: 'link', BUTTON: 'button', SELECT: 'combobox', TEXTAREA: 'textbox', H1: 'heading',
  H2: 'heading', H3: 'heading', H4: 'heading', H5: 'heading', H6: 'heading', IMG: 'img', TABLE: 'table',
  TR: 'row', TD: 'cell', TH: 'columnheader', LI: 'listitem', UL: 'list', OL: 'list', NAV: 'navigation',
  MAIN: 'main', OUTPUT: 'status', OPTION: 'option', DIALOG: 'dialog', P: 'paragraph', ARTICLE: 'article',
  HEADER: 'banner', FOOTER: 'contentinfo', ASIDE: 'complementary', FORM: 'form', SECTION: 'region',
  SUMMARY: 'button', PROGRESS: 'progressbar', TBODY: 'rowgroup', THEAD: 'rowgroup', IFRAME: 'iframe'};
const INPUT_ROLE = {checkbox: 'checkbox', radio: 'radio', submit: 'button', button: 'button', reset: 'button',
  image: 'button', search: 'searchbox', number: 'spinbutton', range: 'slider', text: 'textbox',
  email: 'textbox', tel: 'textbox', url: 'textbox', '': 'textbox'};
const ACTIONABLE_ROLES = new Set(['link', 'button', 'checkbox', 'radio', 'textbox', 'searchbox', 'spinbutton',
  'slider', 'combobox', 'listbox', 'option', 'tab', 'menuitem', 'switch']);
const TEXTUAL = new Set(['H1', 'H2', 'H3', 'H4', 'H5', 'H6', 'P', 'TD', 'TH', 'LI', 'SPAN', 'OUTPUT', 'LABEL',
  'DD', 'DT', 'STRONG', 'EM', 'B', 'I', 'SMALL', 'CODE', 'PRE', 'CAPTION', 'LEGEND', 'FIGCAPTION', 'DIV',
  'BLOCKQUOTE', 'SUMMARY', 'TIME', 'MARK']);
const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
const clip = (s) => { s = norm(s); return s.length > 200 ? s.slice(0, 200) : s; };
function roleOf(el) {
  const explicit = el.getAttribute('role');
  if (explicit) return explicit.split(/\s+/)[0];
  const tag = el.tagName;
  if (tag === 'INPUT') {
    const t = (el.getAttribute('type') || '').toLowerCase();
    if (t === 'hidden' || t === 'password' || t === 'file' || t === 'date' || t === 'color') return null;
    return INPUT_ROLE[t] || 'textbox';
  }
  if (tag === 'A') return el.hasAttribute('href') ? 'link' : null;
  if (tag === 'IMG') return el.getAttribute('alt') === '' ? 'presentation' : 'img';
  if (tag === 'SELECT') return (el.multiple || el.size > 1) ? 'listbox' : 'combobox';
  if (tag === 'SECTION' || tag === 'FORM') return (el.getAttribute('aria-label') || el.getAttribute('aria-labelledby')) ? IMPLICIT[tag] : null;
  return IMPLICIT[tag] || null;
}
function labelOf(el) {
  const by = el.getAttribute('aria-labelledby');
  if (by) {
    const t = by.split(/\s+/).map((id) => { const n = el.ownerDocument.getElementById(id); return n ? n.textContent : ''; }).join(' ');
    if (norm(t)) return clip(t);
  }
  if (el.labels && el.labels.length) return clip(Array.from(el.labels).map((l) => l.innerText || l.textContent).join(' '));
  const wrap = el.closest && el.closest('label');
  if (wrap && wrap !== el) return clip(wrap.innerText || wrap.textContent);
  return null;
}
function nameOf(el, role) {
  const byIds = el.getAttribute('aria-labelledby');
  if (byIds) { const l = labelOf(el); if (l) return l; }
  const aria = el.getAttribute('aria-label');
  if (norm(aria)) return clip(aria);
  const tag = el.tagName;
  if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA') {
    const t = (el.getAttribute('type') || '').toLowerCase();
    if (tag === 'INPUT' && (t === 'submit' || t === 'button' || t === 'reset')) return clip(el.value || (t === 'submit' ? 'Submit' : t === 'reset' ? 'Reset' : ''));
    if (tag === 'INPUT' && t === 'image') return clip(el.getAttribute('alt') || el.getAttribute('title') || 'Submit');
    const l = labelOf(el);
    if (l) return l;
    return clip(el.getAttribute('title') || el.getAttribute('placeholder') || '');
  }
  if (tag === 'IMG') return clip(el.getAttribute('alt') || el.getAttribute('title') || '');
  if (tag === 'IFRAME') return clip(el.getAttribute('title') || '');
  const fromContent = ['link', 'button', 'heading', 'cell', 'columnheader', 'option', 'listitem', 'tab',
                       'menuitem', 'checkbox', 'radio', 'row', 'status', 'paragraph'];
  if (fromContent.includes(role)) {
    const t = clip(el.innerText !== undefined ? el.innerText : el.textContent);
    if (t) return t;
  }
  return clip(el.getAttribute('title') || '');
}
function visible(el) {
  const r = el.getBoundingClientRect();
  if (r.width <= 0 && r.height <= 0) return false;
  const s = el.ownerDocument.defaultView.getComputedStyle(el);
  return s.visibility !== 'hidden' && s.display !== 'none';
}
function esc(s) { return CSS.escape(s); }
function uniqueIn(doc, sel, el) {
  try { const m = doc.querySelectorAll(sel); return m.length === 1 && m[0] === el; } catch (e) { return false; }
}
function cssPath(el) {
  const doc = el.ownerDocument;
  const tid = el.getAttribute('data-testid');
  if (el.id && uniqueIn(doc, '#' + esc(el.id), el)) return '#' + esc(el.id);
  if (tid && uniqueIn(doc, '[data-testid="' + tid.replace(/["\\]/g, '\\$&') + '"]', el)) return '[data-testid="' + tid.replace(/["\\]/g, '\\$&') + '"]';
  const parts = [];
  let cur = el;
  while (cur && cur.nodeType === 1 && cur !== doc.documentElement) {
    if (cur !== el && cur.id && uniqueIn(doc, '#' + esc(cur.id), cur)) { parts.unshift('#' + esc(cur.id)); break; }
    const tag = cur.tagName.toLowerCase();
    const parent = cur.parentElement;
    let part = tag;
    if (parent) {
      const same = Array.from(parent.children).filter((c) => c.tagName === cur.tagName);
      if (same.length > 1) part += ':nth-of-type(' + (same.indexOf(cur) + 1) + ')';
    }
    parts.unshift(part);
    const sel = parts.join(' > ');
    if (uniqueIn(doc, sel, el)) return sel;
    cur = parent;
  }
  const sel = parts.join(' > ');
  return uniqueIn(doc, sel, el) ? sel : 'html > ' + sel;
}
const SAFE_VALUE = new Set(['submit', 'button', 'reset', 'checkbox', 'radio', 'image']);
function attrsOf(el) {
  const out = {};
  for (const a of ['id', 'name', 'type', 'placeholder', 'href', 'title', 'alt', 'aria-label', 'data-testid',
                   'role', 'for', 'class', 'action', 'src']) {
    const v = el.getAttribute(a);
    if (v !== null && v !== '') out[a] = v.slice(0, 300);
  }
  const t = (el.getAttribute('type') || '').toLowerCase();
  if (el.tagName === 'OPTION' || (el.tagName === 'INPUT' && SAFE_VALUE.has(t)) || el.tagName === 'BUTTON') {
    const v = el.getAttribute('value');
    if (v) out.value = v.slice(0, 300);
  }
  return out;
}
function headingBefore(el, heads) {
  let best = null;
  for (const h of heads) {
    if (h === el || h.contains(el)) continue;
    if (h.compareDocumentPosition(el) & Node.DOCUMENT_POSITION_FOLLOWING) best = h; else break;
  }
  return best ? clip(best.innerText || best.textContent) : null;
}
function textOf(el) {
  const tag = el.tagName;
  if (tag === 'INPUT' || tag === 'TEXTAREA' || tag === 'SELECT') return null;
  return clip(el.innerText !== undefined ? el.innerText : el.textContent) || null;
}
function facts(el, heads, roleIndex) {
  const role = roleOf(el);
  const name = role ? nameOf(el, role) : null;
  return {
    tag: el.tagName.toLowerCase(), role: role, name: name || null, text: textOf(el), label: labelOf(el),
    heading: headingBefore(el, heads), attrs: attrsOf(el), path: cssPath(el),
    index: roleIndex === undefined ? null : roleIndex,
    visible: visible(el),
  };
}
function headsOf(doc) { return Array.from(doc.querySelectorAll('h1,h2,h3,h4,h5,h6,legend')); }
function roleIndexOf(el) {
  const role = roleOf(el);
  if (!role) return null;
  let i = 0;
  for (const o of el.ownerDocument.querySelectorAll('*')) { if (o === el) return i; if (roleOf(o) === role) i++; }
  return null;
}
function actionable(el) {
  const role = roleOf(el);
  if (role && ACTIONABLE_ROLES.has(role)) return true;
  const tag = el.tagName;
  if (tag === 'INPUT' || tag === 'SELECT' || tag === 'TEXTAREA' || tag === 'BUTTON') return true;
  return el.hasAttribute('onclick') || (el.hasAttribute('tabindex') && el.getAttribute('tabindex') !== '-1');
}
function textual(el) {
  if (!TEXTUAL.has(el.tagName)) return false;
  for (const c of el.childNodes) if (c.nodeType === 3 && norm(c.textContent)) return true;
  return false;
}
function pointTarget(el) {
  let cur = el;
  while (cur && cur.nodeType === 1) { if (actionable(cur)) return cur; cur = cur.parentElement; }
  return el;
}
"""

#: ``(el) => facts``: what one element looks like (tag, role, name, text, label, heading, attrs, path,
#: index, visible). Also installed in recorded pages as ``window.__emergentFacts``.
FINGERPRINT_JS = "(el) => {" + _LIB_JS + "\nreturn facts(el, headsOf(el.ownerDocument), roleIndexOf(el)); }"

_INVENTORY_JS = "([limit, budgetMs]) => {" + _LIB_JS + r"""
const out = [];
const t0 = performance.now();
let seen = 0;
const roleCount = {};
function walk(doc, frame) {
  const heads = headsOf(doc);
  for (const el of doc.body ? doc.body.querySelectorAll('*') : []) {
    if (out.length >= limit) return;
    if (++seen % 64 === 0 && performance.now() - t0 > budgetMs) return;  // bounded in time, not only count
    const role = roleOf(el);
    let idx = null;
    if (role) { const key = (frame || '') + '|' + role; idx = roleCount[key] || 0; roleCount[key] = idx + 1; }
    if (el.tagName === 'IFRAME') {
      let inner = null;
      try { inner = el.contentDocument; } catch (e) { inner = null; }
      if (inner && !frame) walk(inner, cssPath(el));
      continue;
    }
    if (el.tagName === 'SCRIPT' || el.tagName === 'STYLE' || el.tagName === 'NOSCRIPT') continue;
    if (!(actionable(el) || textual(el))) continue;
    if (!visible(el) && !(el.tagName === 'INPUT' && (el.type === 'file' || el.type === 'checkbox' || el.type === 'radio'))) continue;
    const f = facts(el, heads, idx);
    f.frame = frame;
    out.push(f);
  }
}
walk(document, null);
return out;
}"""

_AT_POINT_JS = "([x, y]) => {" + _LIB_JS + r"""
const hit = document.elementFromPoint(x, y);
if (!hit) return null;
return pointTarget(hit);
}"""

_FIND_TEXT_JS = "(needle) => {" + _LIB_JS + r"""
const want = norm(needle).toLowerCase();
const hits = [];
const t0 = performance.now();
let seen = 0;
for (const el of document.body ? document.body.querySelectorAll('*') : []) {
  if (hits.length >= 50) break;
  if (++seen % 64 === 0 && performance.now() - t0 > 2000) break;
  if (!visible(el) || el.tagName === 'SCRIPT' || el.tagName === 'STYLE') continue;
  const role = roleOf(el);
  const vals = [labelOf(el), el.getAttribute('placeholder'), el.getAttribute('aria-label'), el.getAttribute('alt'),
                el.getAttribute('title'), role ? nameOf(el, role) : null];
  if (textual(el) || actionable(el)) vals.push(textOf(el));
  if (vals.some((v) => v && norm(v).toLowerCase().includes(want))) hits.push(el);
}
// keep the innermost: drop an element containing another hit
return hits.filter((el) => !hits.some((o) => o !== el && el.contains(o)));
}"""


#: (elements, element) -> [count, position]: a plain loop and ===, which a page cannot override (it can
#: replace Array.prototype.indexOf)
_POSITION_JS = "(els, t) => { let at = -1; for (let i = 0; i < els.length; i++) { if (els[i] === t) { at = i; break; } } " \
               "return [els.length, at]; }"


def _pw_error() -> type[Exception]:
    from playwright.async_api import Error

    return Error


def locator_for(scope: Page | Frame, cand: Candidate) -> Locator:
    """The Playwright locator of ``cand`` on ``scope`` (inside ``cand.frame`` when it names an iframe),
    ``nth`` applied."""
    base: Any = scope.frame_locator(cand.frame) if cand.frame else scope
    k = cand.kind
    if k == "role":
        loc = base.get_by_role(cand.value, name=cand.name, exact=cand.exact) if cand.name is not None \
            else base.get_by_role(cand.value)
    elif k == "label":
        loc = base.get_by_label(cand.value, exact=cand.exact)
    elif k == "placeholder":
        loc = base.get_by_placeholder(cand.value, exact=cand.exact)
    elif k == "text":
        loc = base.get_by_text(cand.value, exact=cand.exact)
    elif k == "alt":
        loc = base.get_by_alt_text(cand.value, exact=cand.exact)
    elif k == "title":
        loc = base.get_by_title(cand.value, exact=cand.exact)
    elif k == "testid":
        loc = base.get_by_test_id(cand.value)
    else:
        loc = base.locator(cand.value)
    return loc.nth(cand.nth) if cand.nth is not None else loc  # type: ignore[no-any-return]


async def _check(scope: Page | Frame, cand: Candidate, visible: bool) -> tuple[Locator | None, str]:
    """(the locator, "") when ``cand`` finds exactly one (visible) element now, else (None, why not)."""
    try:
        if cand.nth is not None:
            base = locator_for(scope, cand.model_copy(update={"nth": None}))
            n = await base.count()
            if n <= cand.nth:
                return None, f"{n} matches, no #{cand.nth}"
            loc = base.nth(cand.nth)
        else:
            loc = locator_for(scope, cand)
            n = await loc.count()
            if n != 1:
                return None, f"{n} matches"
        if visible and not await loc.is_visible():
            return None, "hidden"
        return loc, ""
    except _pw_error() as exc:
        msg = (getattr(exc, "message", None) or str(exc)).split("\n")[0]
        return None, f"error: {msg[:200]}"


async def resolve(scope: Page | Frame, target: Target, *, timeout_ms: int,
                  visible: bool = True) -> tuple[Locator, Candidate, int]:
    """The first candidate of ``target`` that finds exactly one (visible) element: (locator, candidate, its
    index). Passes over the candidates at once, then waits for late content in slices of at most
    :data:`SLICE_MS` until ``timeout_ms``; NotFoundError listing what each candidate found otherwise."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max(0, timeout_ms) / 1000
    why: list[str] = []
    while True:
        why = []
        for i, cand in enumerate(target.candidates):
            loc, reason = await _check(scope, cand, visible)
            if loc is not None:
                return loc, cand, i
            why.append(f"{cand.describe()}: {reason}")
        remaining = deadline - loop.time()
        if remaining <= 0:
            break
        step = min(remaining, SLICE_MS / 1000)
        started = loop.time()
        try:
            any_of = locator_for(scope, target.candidates[0])
            for cand in target.candidates[1:]:
                any_of = any_of.or_(locator_for(scope, cand))
            await any_of.first.wait_for(state="visible" if visible else "attached", timeout=step * 1000)
        except _pw_error():
            pass
        # something is there but not unique (or the wait returned at once): do not spin
        spent = loop.time() - started
        if spent < 0.05:
            await asyncio.sleep(min(0.05, max(0.0, deadline - loop.time())))
    tried = "; ".join(why)
    raise NotFoundError(f"no element for {target.describe()} within {timeout_ms} ms: {tried}",
                        hint="check the page is the one you expect (session.screenshot()), or find the element "
                             "again with session.find(text) / session.describe_at(x, y)",
                        tried=[c.describe() for c in target.candidates])


def _fingerprint(facts: dict[str, Any]) -> Fingerprint:
    return Fingerprint(tag=str(facts.get("tag") or ""), role=facts.get("role"), name=facts.get("name") or None,
                       text=facts.get("text") or None, label=facts.get("label") or None,
                       heading=facts.get("heading") or None,
                       attrs={str(k): str(v) for k, v in (facts.get("attrs") or {}).items()},
                       path=facts.get("path"), index=facts.get("index"))


def candidates_from(facts: dict[str, Any], frame: str | None = None) -> list[Candidate]:
    """The candidates an element with these facts may be found by, in :data:`KIND_ORDER` (unverified)."""
    out: list[Candidate] = []
    attrs = facts.get("attrs") or {}
    tag = facts.get("tag") or ""
    if attrs.get("data-testid"):
        out.append(Candidate(kind="testid", value=attrs["data-testid"], frame=frame))
    role, name = facts.get("role"), facts.get("name")
    if role and role not in ("presentation", "none", "generic", "paragraph") and name:
        out.append(Candidate(kind="role", value=role, name=name, frame=frame))
    if facts.get("label") and tag in ("input", "select", "textarea"):
        out.append(Candidate(kind="label", value=facts["label"], frame=frame))
    if attrs.get("placeholder"):
        out.append(Candidate(kind="placeholder", value=attrs["placeholder"], frame=frame))
    if attrs.get("alt"):
        out.append(Candidate(kind="alt", value=attrs["alt"], frame=frame))
    if attrs.get("title"):
        out.append(Candidate(kind="title", value=attrs["title"], frame=frame))
    text = facts.get("text")
    if text and len(text) <= 80 and tag not in ("input", "select", "textarea", "html", "body"):
        out.append(Candidate(kind="text", value=text, frame=frame))
    if role and role not in ("presentation", "none") and not name:
        out.append(Candidate(kind="role", value=role, frame=frame))  # role alone: kept only with nth
    if facts.get("path"):
        out.append(Candidate(kind="css", value=facts["path"], frame=frame))
    order = {k: i for i, k in enumerate(KIND_ORDER)}
    out.sort(key=lambda c: order[c.kind])  # stable: keeps the named role before the bare one
    return out


async def _frame_css(handle: ElementHandle) -> str | None:
    """The CSS of the ``<iframe>`` holding ``handle`` in its parent document (None: the top page)."""
    frame = await handle.owner_frame()
    if frame is None or frame.parent_frame is None:
        return None
    el = await frame.frame_element()
    try:
        facts = await el.evaluate(FINGERPRINT_JS)
        return str(facts["path"])
    finally:
        await el.dispose()


async def _position(page: Page, handle: ElementHandle, cand: Candidate,
                    truth: Locator | None) -> tuple[int, int]:
    """(how many elements ``cand`` finds, the position of the described element among them, -1: absent).

    With ``truth`` (the locator the caller described) everything runs in Playwright's own selector engine,
    whose isolated world a page's scripts cannot reach: ``cand.and_(truth)`` is the same element or nothing.
    ``evaluate_all`` would query in the page's main world, where a page can override ``getAttribute`` and
    friends and make a candidate for another element look right (H5's attack)."""
    loc = locator_for(page, cand)
    if truth is not None and not cand.frame:
        n = await loc.count()
        for i in range(min(n, 50)):
            one = loc if n == 1 else loc.nth(i)
            if await one.and_(truth).count() == 1:
                return n, i
        return n, -1
    n, at = await loc.evaluate_all(_POSITION_JS, handle)
    return int(n), int(at)


async def _verify(page: Page, handle: ElementHandle, cands: list[Candidate],
                  truth: Locator | None = None) -> list[Candidate]:
    """The candidates that find ``handle``'s element on ``page``: unique ones as they are, others with the
    ``nth`` that picks it; those that miss it are dropped. Scores fall with rank (1.0, 0.9, ...)."""
    kept: list[Candidate] = []
    seen: set[tuple[Any, ...]] = set()
    for cand in cands:
        try:
            n, at = await _position(page, handle, cand, truth)
        except _pw_error():
            continue
        if at < 0:
            continue
        if cand.kind == "role" and cand.name is None and n > 1 and kept:
            continue  # a bare role with an index is worse than what we have
        c = cand if n == 1 else cand.model_copy(update={"nth": at})
        key = (c.kind, c.value, c.name, c.nth, c.frame)
        if key in seen:
            continue
        seen.add(key)
        kept.append(c)
    # unique ones first (within the robustness order), then those needing nth
    kept.sort(key=lambda c: c.nth is not None)
    return [c.model_copy(update={"score": round(1.0 - 0.1 * i, 2)}) for i, c in enumerate(kept)]


async def _describe_handle(page: Page, handle: ElementHandle, truth: Locator | None = None) -> Target:
    facts = await handle.evaluate(FINGERPRINT_JS)
    frame = await _frame_css(handle)
    cands = await _verify(page, handle, candidates_from(facts, frame), truth)
    if not cands:  # cannot happen for a connected element (its CSS path finds it); be explicit anyway
        raise NotFoundError("the element cannot be described: no locator finds it again",
                            hint="the element may have been removed from the page; try again once it settles")
    fp = _fingerprint(facts)
    return Target(candidates=cands[:20], fingerprint=fp, description=cands[0].describe())


def _page_of(locator: Locator) -> Page:
    return locator.page


async def describe(locator: Locator, *, timeout_ms: int = 5000) -> Target:
    """The ranked, verified candidates and the fingerprint of the one element ``locator`` finds."""
    try:
        handle = await locator.element_handle(timeout=timeout_ms)
    except _pw_error() as exc:
        msg = (getattr(exc, "message", None) or str(exc)).split("\n")[0]
        raise NotFoundError(f"cannot describe the element: {msg}",
                            hint="the locator must find exactly one element on the page") from None
    try:
        truth = locator if locator.page.main_frame == await handle.owner_frame() else None
        return await _describe_handle(_page_of(locator), handle, truth)
    finally:
        await handle.dispose()


async def describe_at(page: Page, x: float, y: float) -> Target:
    """The element at viewport point (x, y) (its nearest actionable ancestor), described."""
    js = await page.evaluate_handle(_AT_POINT_JS, [x, y])
    handle = js.as_element()
    if handle is None:
        await js.dispose()
        raise NotFoundError(f"no element at ({x:.0f}, {y:.0f})",
                            hint="the point must be inside the page's viewport (see page.viewport_size)")
    try:
        return await _describe_handle(page, handle)
    finally:
        await handle.dispose()


async def find_by_text(page: Page, text: str) -> list[Target]:
    """The elements whose text, label, placeholder, alt, title or accessible name contains ``text``
    (case-insensitive), innermost first in document order, described (at most 50)."""
    arr = await page.evaluate_handle(_FIND_TEXT_JS, text)
    try:
        props = await arr.get_properties()
        out: list[Target] = []
        for key in sorted(props, key=lambda k: int(k) if k.isdigit() else 1 << 30):
            h = props[key].as_element()
            if h is None:
                continue
            try:
                out.append(await _describe_handle(page, h))
            except NotFoundError:
                pass
            finally:
                await h.dispose()
        return out
    finally:
        await arr.dispose()


async def inventory(scope: Page | Frame) -> list[tuple[Fingerprint, Candidate]]:
    """Every visible actionable or textual element (≤ :data:`MAX_INVENTORY`, ≤ :data:`INVENTORY_BUDGET_MS`
    of work in the page) of the page and its
    same-origin iframes: its fingerprint and one unique CSS candidate (``frame`` set inside an iframe)."""
    rows = await scope.evaluate(_INVENTORY_JS, [MAX_INVENTORY, INVENTORY_BUDGET_MS])
    out: list[tuple[Fingerprint, Candidate]] = []
    for f in rows:
        path = f.get("path")
        if not path:
            continue
        out.append((_fingerprint(f), Candidate(kind="css", value=path, frame=f.get("frame"))))
    return out
