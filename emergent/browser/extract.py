"""Extraction templates on a live page: rows → typed, validated dicts → a polars DataFrame.

A template (:class:`~emergent.browser.model.ExtractionTemplate`) names the rows (a Playwright selector),
the fields of a row (CSS relative to the row, text or an attribute, an optional regex, a type) and how
to reach further pages. :func:`extract_rows` reads every row of a page with **one** ``evaluate`` (not a
round trip per cell), converts and validates the rows with a pydantic model built from the fields
(:func:`row_model`), then follows the pagination:

- ``next``: click the next-page target, wait until the rows change (a new page, or rows appended by a
  "Load more" button: then only the new rows are read), stop when the target is gone or disabled
  (``disabled``, ``aria-disabled="true"``, class ``disabled`` on it or its two nearest ancestors), when
  nothing changes within ``wait_ms`` or when a page repeats one already read;
- ``scroll``: scroll to the end (the window and the last row), wait for more rows, stop when none come:
  after the network has been quiet for ``QUIET_MS`` with no new row, or after ``wait_ms``.

:func:`to_frame` turns the rows into a DataFrame whose dtypes come from the field types;
:func:`template_from_model` writes a template from a pydantic model and selectors;
:func:`learn_template` writes one from a single example row a researcher marks on the page.

Fields are CSS selectors evaluated inside each row (``row.querySelector``; ``:scope > td:nth-child(2)``
works), because all rows are read in the page at once; the rows selector may be any Playwright selector.
Rows inside an iframe are not supported (the error says so when the rows match nothing and the page
has iframes).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import re
import time
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic import BaseModel

from emergent.browser.locators import locator_for
from emergent.browser.model import Candidate, ExtractionTemplate, FieldSpec, FieldType, Pagination, Target
from emergent.errors import EmergentError, NotFoundError, TimeoutExceeded, ValidationError

if TYPE_CHECKING:
    import polars
    from playwright.async_api import Locator, Page

#: the network counts as quiet (an infinite list has nothing more to load) after this long without a request
QUIET_MS = 600
#: how long a next-page target may take to show once the rows are there
NEXT_MS = 250
_POLL_S = 0.025
_PY: dict[str, type] = {"str": str, "int": int, "float": float, "bool": bool, "date": dt.date,
                        "datetime": dt.datetime}
_NUMERIC = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?([eE][+-]?\d+)?$")
_INT = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)$")
_FLOAT = re.compile(r"^[+-]?((\d{1,3}(,\d{3})+|\d+)(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
#: what a table shows for "no value": missing for every type but str
NULLS = frozenset({"-", "\u2013", "\u2014", "n/a", "na", "none", "null", "nan", "?"})
_BOOL = {"yes": True, "no": False, "true": True, "false": False, "y": True, "n": False, "on": True, "off": False}
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")
_PW_PREFIX = re.compile(r"^(role|text|label|placeholder|testid|alt|title|xpath|internal|nth|visible|id|data-testid)"
                        r"\s*=|>>|^//")


# ---------------------------------------------------------------------------------------------- models
def _clean(ftype: str) -> Callable[[Any], Any]:
    """What a cell's text becomes before pydantic converts it: "" → None; numbers lose thousands
    separators; bool words in any case."""

    def clean(v: Any) -> Any:
        if not isinstance(v, str):
            return v
        s = v.strip()
        if s == "" or (ftype != "str" and s.lower() in NULLS):
            return None
        if ftype in ("int", "float"):
            s2 = s.replace("\u2009", "").replace("\u202f", "").replace(" ", "")
            if _NUMERIC.match(s2):
                s2 = s2.replace(",", "")
            if ftype == "int" and re.fullmatch(r"[+-]?\d+\.0*", s2):
                s2 = s2.split(".")[0]
            return s2
        if ftype == "bool":
            low = s.lower()
            if low in _BOOL:
                return _BOOL[low]
            return s
        if ftype == "datetime" and s.endswith("Z"):
            return s[:-1] + "+00:00"
        return s

    return clean


def row_model(t: ExtractionTemplate) -> type[BaseModel]:
    """A pydantic model with one typed field per template field (optional ones default to None).
    Text is cleaned first ("" → None; for every type but str also "n/a", "-", "–", "—", "none", "null", "nan",
    "?"; "1,234" → 1234 for numbers; yes/no/true/false/y/n/on/off → bool)."""
    defs: dict[str, Any] = {}
    for f in t.fields:
        py = _PY[f.type]
        ann: Any = typing.Annotated[py if f.required else py | None, pydantic.BeforeValidator(_clean(f.type))]
        defs[f.name] = (ann, ...) if f.required else (ann, None)
    name = "".join(p.capitalize() for p in re.split(r"[-_]", t.name)) + "Row"
    return pydantic.create_model(name, __config__=pydantic.ConfigDict(extra="forbid", strict=False),
                                 **defs)


def _field_type(annotation: Any, field: str) -> tuple[FieldType, bool]:
    """(type, required) of a pydantic field annotation: X, X | None, Optional[X], Annotated[X, ...]."""
    required = True
    ann = annotation
    while typing.get_origin(ann) is typing.Annotated:
        ann = typing.get_args(ann)[0]
    origin = typing.get_origin(ann)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) != len(typing.get_args(ann)):
            required = False
        if len(args) != 1:
            raise ValidationError(f"field {field!r} has the type {annotation!r}, a union a column cannot hold",
                                  hint="use one of str, int, float, bool, date, datetime (optionally | None)",
                                  field=field)
        ann = args[0]
        while typing.get_origin(ann) is typing.Annotated:
            ann = typing.get_args(ann)[0]
    # order matters: bool is an int, datetime is a date
    for name, py in (("bool", bool), ("int", int), ("float", float), ("datetime", dt.datetime),
                     ("date", dt.date), ("str", str)):
        if ann is py:
            return name, required  # type: ignore[return-value]
    raise ValidationError(f"field {field!r} has the type {annotation!r}, which a column cannot hold",
                          hint="use one of str, int, float, bool, date, datetime (optionally | None)", field=field)


def template_from_model(name: str, model: type[BaseModel], *, rows: str, selectors: Mapping[str, str],
                        attributes: Mapping[str, str] | None = None, pagination: Pagination | None = None,
                        url: str | None = None, patterns: Mapping[str, str] | None = None,
                        description: str = "") -> ExtractionTemplate:
    """A template from a pydantic model (the schema: field names, types, required or ``| None``) and
    locators: ``rows`` (a Playwright selector), ``selectors`` (CSS inside a row per field; ``""``: the row
    itself), ``attributes`` (read an attribute instead of the text), ``patterns`` (a regex per field).
    The template keeps the types and required-ness; the model's own validators are not stored — validate
    the rows with ``model.model_validate(row)`` afterwards when you need them."""
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        raise ValidationError(f"model must be a pydantic BaseModel class, got {model!r}",
                              hint="define class Row(BaseModel): compound: str; ic50: float")
    names = list(model.model_fields)
    extra = [k for k in {**selectors, **(attributes or {}), **(patterns or {})} if k not in model.model_fields]
    if extra:
        raise ValidationError(f"selectors/attributes/patterns name fields the model does not have: {sorted(extra)}",
                              hint=f"the model's fields: {', '.join(names)}", field=extra[0])
    missing = [n for n in names if n not in selectors]
    if missing:
        raise ValidationError(f"no selector for the model's field(s) {missing}",
                              hint="give selectors={field: CSS inside the row} for every field ('' = the row)",
                              field=missing[0])
    fields = []
    for n, info in model.model_fields.items():
        ftype, required = _field_type(info.annotation, n)
        if not info.is_required():
            required = False
        sel = selectors[n]
        _check_field_selector(n, sel or None)
        try:
            fields.append(FieldSpec(name=n, selector=sel or None, attribute=(attributes or {}).get(n),
                                    type=ftype, required=required, pattern=(patterns or {}).get(n)))
        except pydantic.ValidationError as exc:
            raise ValidationError(f"field {n!r}: {exc.errors()[0]['msg']}", hint="fix the field", field=n) from None
    try:
        return ExtractionTemplate(name=name, rows=rows, fields=fields, pagination=pagination or Pagination(),
                                  url=url, description=description)
    except pydantic.ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "template"
        raise ValidationError(f"template {loc}: {err['msg']}", hint=f"fix {loc}", field=loc) from None


def _check_field_selector(field: str, selector: str | None) -> None:
    if selector and _PW_PREFIX.search(selector.strip()):
        raise ValidationError(
            f"field {field!r} has the selector {selector!r}: a field's selector is CSS inside the row "
            "(all rows are read in the page at once)",
            hint="write CSS such as 'td.c-ic50' or ':scope > td:nth-child(3)'; the rows selector may be any "
                 "Playwright selector", field=field)


# ---------------------------------------------------------------------------------------------- reading
#: reads rows [start:] of the matched elements: each field's text or attribute; plus a signature of the list
READ_JS = """
(els, args) => {
  const norm = s => (s == null ? null : String(s).replace(/\\s+/g, ' ').trim());
  const text = el => {
    if (el.matches('input, textarea, select')) return norm(el.value);
    return norm(el.isConnected && el.getClientRects().length ? el.innerText : el.textContent);
  };
  const key = el => (el ? norm(el.textContent).slice(0, 300) : null);
  const out = {href: location.href, doc: performance.timeOrigin, count: els.length, first: key(els[0]), rows: [],
               error: null};
  for (let i = args.start; i < els.length; i++) {
    const row = els[i], vals = [];
    for (const f of args.fields) {
      let el = row;
      if (f.sel) {
        try { el = row.querySelector(f.sel); }
        catch (e) { out.error = {field: f.name, message: String(e.message || e)}; return out; }
      }
      if (!el) { vals.push(null); continue; }
      if (f.attr) {
        let v = el.getAttribute(f.attr);
        if (v != null && (f.attr === 'href' || f.attr === 'src')) {
          try { v = new URL(v, document.baseURI).href; } catch (e) {}
        }
        vals.push(v == null ? null : norm(v));
      } else {
        vals.push(text(el));
      }
    }
    out.rows.push(vals);
  }
  return out;
}
"""

SIGNATURE_JS = """
els => ({href: location.href, doc: performance.timeOrigin, count: els.length,
         first: els.length ? String(els[0].textContent).replace(/\\s+/g, ' ').trim().slice(0, 300) : null,
         height: document.scrollingElement ? document.scrollingElement.scrollHeight : 0})
"""

SCROLL_JS = """
els => {
  const last = els[els.length - 1];
  if (last) last.scrollIntoView({block: 'end'});
  const se = document.scrollingElement || document.documentElement;
  window.scrollTo(0, se.scrollHeight);
  window.dispatchEvent(new Event('scroll'));
  return se.scrollHeight;
}
"""

#: [how many elements, whether the first is disabled (itself or one of its two nearest ancestors)]
NEXT_STATE_JS = """
els => {
  let n = els[0];
  for (let i = 0; i < 3 && n; i++, n = n.parentElement) {
    if (n.disabled || n.getAttribute('aria-disabled') === 'true' || n.classList.contains('disabled'))
      return [els.length, true];
  }
  return [els.length, false];
}
"""


def _pw_error() -> tuple[type[BaseException], type[BaseException]]:
    from playwright.async_api import Error, TimeoutError

    return Error, TimeoutError


async def _read(page: Page, t: ExtractionTemplate, start: int) -> dict[str, Any]:
    err, _ = _pw_error()
    fields = [{"name": f.name, "sel": f.selector, "attr": f.attribute} for f in t.fields]
    try:
        out: dict[str, Any] = await page.locator(t.rows).evaluate_all(READ_JS, {"fields": fields, "start": start})
    except err as exc:
        raise _selector_error(t.rows, exc) from None
    if out.get("error"):
        e = out["error"]
        raise ValidationError(f"field {e['field']!r}: its selector is not valid CSS ({e['message']})",
                              hint="a field's selector is CSS inside the row, e.g. 'td.c-ic50'", field=e["field"])
    return out


def _selector_error(rows: str, exc: BaseException) -> ValidationError:
    msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return ValidationError(f"the rows selector {rows!r} cannot be used: {msg}",
                           hint="give a Playwright selector (CSS like 'table#results tbody tr', or 'role=row')",
                           field="rows")


async def _signature(page: Page, rows: str) -> dict[str, Any] | None:
    err, _ = _pw_error()
    try:
        sig: dict[str, Any] = await page.locator(rows).evaluate_all(SIGNATURE_JS)
        return sig
    except err:  # the page is navigating: its old context is gone
        return None


#: a field's pattern runs on at most this much of a cell, for at most this long: a template (an agent's,
#: inline) may carry a catastrophic regex such as ^(a+)+$, and Python's re cannot be stopped once it
#: backtracks, so patterns run in the ``regex`` package, whose matching takes a timeout
PATTERN_TEXT_MAX = 10_000
PATTERN_TIMEOUT_S = 0.1


def _search(pattern: str, text: str, field: str, where: str) -> Any:
    import regex

    try:
        return regex.search(pattern, text[:PATTERN_TEXT_MAX], timeout=PATTERN_TIMEOUT_S)
    except TimeoutError:
        raise ValidationError(f"field {field!r}: its pattern {pattern!r} took longer than "
                              f"{PATTERN_TIMEOUT_S * 1000:.0f} ms on {where}",
                              hint="simplify the pattern (no nested quantifiers such as (a+)+)",
                              field=field) from None


def _convert(model: type[BaseModel], t: ExtractionTemplate, raw: list[Any], number: int,
             page_no: int) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for f, v in zip(t.fields, raw, strict=True):
        if v is not None and f.pattern:
            m = _search(f.pattern, v, f.name, f"row {number} (page {page_no})")
            v = (m.group(1) if m.groups() else m.group(0)) if m else None
        values[f.name] = v
    try:
        return model.model_validate(values).model_dump()
    except pydantic.ValidationError as exc:
        errors = exc.errors()
        bad = {str(e["loc"][0]) for e in errors if e["loc"]}
        # a field that is not required becomes None when its value does not convert
        optional = {f.name for f in t.fields if not f.required}
        if bad and bad <= optional:
            for n in bad:
                values[n] = None
            return model.model_validate(values).model_dump()
        e = next(e for e in errors if not e["loc"] or str(e["loc"][0]) not in optional)
        name = str(e["loc"][0]) if e["loc"] else "?"
        spec = next((f for f in t.fields if f.name == name), None)
        value = values.get(name)
        what = "is missing" if value is None else f"has the value {value!r}, which is not a {spec.type if spec else '?'}"
        raise ValidationError(
            f"template {t.name!r}: row {number} (page {page_no}), field {name!r} {what} ({e['msg']})",
            hint=(f"check the field's selector {spec.selector!r}" if spec else "check the template")
            + ", give it a pattern, change its type, or mark it required: false",
            row=number, field=name, value=value) from None


async def _wait_rows(page: Page, t: ExtractionTemplate, timeout_ms: int) -> None:
    err, timeout = _pw_error()
    try:
        await page.locator(t.rows).first.wait_for(state="attached", timeout=timeout_ms)
    except timeout:
        frames = await page.locator("iframe, frame").count()
        inside = (f"; the page has {frames} iframe(s): rows inside a frame are not supported, open the frame's "
                  "URL itself") if frames else ""
        raise NotFoundError(f"template {t.name!r}: the rows selector {t.rows!r} matched nothing on {page.url} "
                            f"within {timeout_ms} ms{inside}",
                            hint="check the selector on the page (the page may have changed: learn the template "
                                 "again or fix its rows selector)", name=t.name) from None
    except err as exc:
        raise _selector_error(t.rows, exc) from None


async def _find_next(page: Page, target: Target, net: _Net) -> Locator | None:
    """The next-page element when it is there and enabled, else None. The rows are there already, so the
    pager is looked for at once; only while the document is still loading or requests are in flight is it
    waited for (up to ``NEXT_MS``): a pager that renders after its rows."""
    err, _ = _pw_error()
    deadline = time.monotonic() + NEXT_MS / 1000
    while True:
        for cand in target.candidates:
            loc = locator_for(page, cand)
            try:
                n, off = await loc.evaluate_all(NEXT_STATE_JS)
            except err:
                continue
            if n == 0 or (n > 1 and cand.nth is None):
                continue
            return None if off else (loc if cand.nth is not None else loc.first)
        if time.monotonic() >= deadline:
            return None
        try:
            loading = await page.evaluate("document.readyState") != "complete"
        except err:
            loading = True
        if not loading and not net.inflight:
            return None
        await asyncio.sleep(_POLL_S)


class _Net:
    """Requests in flight on a page and when the last one started or ended (for infinite scroll)."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.inflight: set[Any] = set()
        self.last = time.monotonic()

    def _start(self, req: Any) -> None:
        self.inflight.add(req)
        self.last = time.monotonic()

    def _end(self, req: Any) -> None:
        self.inflight.discard(req)
        self.last = time.monotonic()

    def __enter__(self) -> _Net:
        self.page.on("request", self._start)
        self.page.on("requestfinished", self._end)
        self.page.on("requestfailed", self._end)
        return self

    def __exit__(self, *exc: object) -> None:
        self.page.remove_listener("request", self._start)
        self.page.remove_listener("requestfinished", self._end)
        self.page.remove_listener("requestfailed", self._end)


#: a next-page target that is a form's submit control (a <button> without a type submits too)
SUBMITS_JS = """(el) => { const t = (el.getAttribute('type') || '').toLowerCase();
  return !!el.form && ((el.tagName === 'BUTTON' && (t === '' || t === 'submit')) ||
                       (el.tagName === 'INPUT' && (t === 'submit' || t === 'image'))); }"""


async def extract_rows(page: Page, t: ExtractionTemplate, *, timeout_ms: int, max_pages: int | None = None,
                       on_page: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """The rows of ``t`` on ``page`` (and the pages its pagination reaches, at most ``max_pages``, default the
    template's), converted and validated. ``on_page(page_number, rows_so_far)`` after each page.

    Extraction reads: a next-page target that submits a form is refused, and while it runs a navigation
    that is not a GET (a form posted by a page script the pager's click set off) is aborted."""
    posted: list[str] = []

    async def reads_only(route: Any) -> None:
        req = route.request
        if req.is_navigation_request() and req.method not in ("GET", "HEAD"):
            posted.append(f"{req.method} {req.url}")
            await route.abort("blockedbyclient")
        else:
            await route.fallback()

    def refused() -> ValidationError:
        return ValidationError(f"template {t.name!r}: extraction reads pages, but it set off {posted[0]} "
                               "(a form submission); nothing was sent",
                               hint="point the pagination at a link or button that only shows the next rows")

    await page.route("**/*", reads_only)
    try:
        rows = await _extract_rows(page, t, timeout_ms=timeout_ms, max_pages=max_pages, on_page=on_page)
    except EmergentError:
        if posted:
            raise refused() from None
        raise
    finally:
        with contextlib.suppress(Exception):
            await page.unroute("**/*", reads_only)
    if posted:
        raise refused()
    return rows


async def _extract_rows(page: Page, t: ExtractionTemplate, *, timeout_ms: int, max_pages: int | None,
                        on_page: Callable[[int, int], None] | None) -> list[dict[str, Any]]:
    if max_pages is not None and max_pages < 1:
        raise ValidationError(f"max_pages must be at least 1, got {max_pages}", field="max_pages",
                              hint="leave it out to use the template's pagination.max_pages")
    for f in t.fields:
        _check_field_selector(f.name, f.selector)
    model = row_model(t)
    pag = t.pagination
    limit = max_pages if max_pages is not None else (pag.max_pages if pag.kind != "none" else 1)
    await _wait_rows(page, t, timeout_ms)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    page_no = 1
    got = await _read(page, t, 0)
    with _Net(page) as net:
        while True:
            digest = hashlib.sha256(json.dumps([got["href"] if pag.kind == "none" else "", got["rows"]],
                                               default=str).encode()).hexdigest()
            if got["rows"] and digest in seen:
                break  # the page repeats one already read
            seen.add(digest)
            for raw in got["rows"]:
                out.append(_convert(model, t, raw, len(out) + 1, page_no))
            if on_page is not None:
                on_page(page_no, len(out))
            if pag.kind == "none" or page_no >= limit:
                break
            before = {"doc": got["doc"], "count": got["count"], "first": got["first"]}
            if pag.kind == "next":
                assert pag.next is not None
                nxt = await _find_next(page, pag.next, net)
                if nxt is None:
                    break
                err, timeout = _pw_error()
                with contextlib.suppress(err):
                    if await nxt.evaluate(SUBMITS_JS):
                        raise ValidationError(f"template {t.name!r}: the next-page target {pag.next.describe()} "
                                              "submits a form; extraction only reads",
                                              hint="point the pagination at a link or button that only shows "
                                                   "the next rows", field="pagination.next")
                try:
                    await nxt.click(timeout=timeout_ms)
                except (err, timeout) as exc:
                    raise TimeoutExceeded(f"template {t.name!r}: clicking the next-page target "
                                          f"{pag.next.describe()} failed on {page.url}: "
                                          f"{str(exc).splitlines()[0]}",
                                          hint="check the pagination target, or set max_pages") from None
                start = await _changed(page, t.rows, before, pag.wait_ms, scroll=False, net=net)
            else:
                with contextlib.suppress(_pw_error()[0]):
                    await page.locator(t.rows).evaluate_all(SCROLL_JS)
                net.last = time.monotonic()
                start = await _changed(page, t.rows, before, pag.wait_ms, scroll=True, net=net)
            if start is None:
                break
            page_no += 1
            got = await _read(page, t, start)
            if not got["rows"]:
                break
    return out


async def _changed(page: Page, rows: str, before: dict[str, Any], wait_ms: int, *, scroll: bool,
                   net: _Net) -> int | None:
    """Wait until the rows change: the index to read from (0: a new page; the old count: rows were appended),
    or None when nothing changed within ``wait_ms`` (scroll: also when the network has been quiet)."""
    deadline = time.monotonic() + wait_ms / 1000
    stable: tuple[Any, ...] | None = None
    while True:
        sig = await _signature(page, rows)
        if sig is None or sig["count"] == 0 or (sig["count"], sig["first"]) == (before["count"], before["first"]):
            stable = None  # navigating, no rows yet, or the same rows (an SPA may change the URL first)
        elif scroll and sig["count"] <= before["count"]:
            stable = None  # scrolling only ever adds rows: wait for more
        elif not scroll and sig["doc"] != before["doc"]:  # a new document: complete once its DOM is parsed
            with contextlib.suppress(_pw_error()[0]):
                await page.wait_for_load_state("domcontentloaded", timeout=max(wait_ms, 1))
            return 0
        else:
            now = (sig["href"], sig["count"], sig["first"])
            if stable == now:  # the same on two polls in a row: settled
                appended = scroll or (sig["first"] == before["first"] and sig["count"] > before["count"])
                return before["count"] if appended else 0
            stable = now
        t = time.monotonic()
        if t >= deadline:
            return None
        if scroll and not net.inflight and (t - net.last) * 1000 >= QUIET_MS:
            return None
        await asyncio.sleep(_POLL_S)


# ---------------------------------------------------------------------------------------------- frames
_DTYPES = {"str": "String", "int": "Int64", "float": "Float64", "bool": "Boolean", "date": "Date",
           "datetime": "Datetime"}


def to_frame(rows: Sequence[Mapping[str, Any]], t: ExtractionTemplate) -> polars.DataFrame:
    """The rows as a polars DataFrame, one column per field in the template's order, dtypes from the field
    types (str → String, int → Int64, float → Float64, bool → Boolean, date → Date, datetime → Datetime(us);
    time-zone aware datetimes are converted to UTC and the column is Datetime(us, UTC))."""
    import polars as pl

    schema: dict[str, Any] = {}
    cols: dict[str, list[Any]] = {f.name: [] for f in t.fields}
    for r in rows:
        for f in t.fields:
            cols[f.name].append(r.get(f.name))
    for f in t.fields:
        dtype: Any = getattr(pl, _DTYPES[f.type])
        if f.type == "datetime":
            vals = cols[f.name]
            if any(isinstance(v, dt.datetime) and v.tzinfo is not None for v in vals):
                cols[f.name] = [v.astimezone(dt.UTC) if isinstance(v, dt.datetime) and v.tzinfo
                                else (v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) else v) for v in vals]
                dtype = pl.Datetime("us", "UTC")
            else:
                dtype = pl.Datetime("us")
        schema[f.name] = dtype
    try:
        return pl.DataFrame(cols, schema=schema)
    except (TypeError, ValueError, pl.exceptions.PolarsError) as exc:
        bad = next((f for f in t.fields if not all(v is None or isinstance(v, _PY[f.type]) for v in cols[f.name])),
                   None)
        where = f"column {bad.name!r} ({bad.type}) holds a value of another type" if bad else "the rows do not fit"
        raise ValidationError(f"template {t.name!r}: {where}: {str(exc).splitlines()[0]}",
                              hint="pass rows as extract_rows returns them (converted by the template)",
                              field=bad.name if bad else None) from None


# ---------------------------------------------------------------------------------------------- learning
#: finds the example's values on the page, the repeating row around them, a rows selector and a selector
#: per field inside the row; verified on every row of the group. Returns {error} or the template's parts.
LEARN_JS = r"""
(args) => {
  const norm = s => (s == null ? '' : String(s).replace(/\s+/g, ' ').trim());
  const SKIP = new Set(['SCRIPT', 'STYLE', 'NOSCRIPT', 'TEMPLATE', 'HEAD', 'META', 'LINK', 'TITLE']);
  const text = el => el.matches('input, textarea, select') ? norm(el.value)
                     : norm(el.getClientRects().length ? el.innerText : el.textContent);
  const visible = el => el.getClientRects().length > 0;
  // generated names change between builds: a part that is all digits, starts with a digit or has 3+ digits
  const stable = s => /^[A-Za-z]/.test(s) && !s.split(/[-_]/).some(p => /^\d|\d{3}/.test(p));
  const all = [];
  for (const el of document.body.querySelectorAll('*')) {
    if (all.length >= 20000) break;
    if (!SKIP.has(el.tagName)) all.push(el);
  }
  const cache = new Map();  // innerText needs layout: computed only for elements whose raw text could match
  const T = el => { let t = cache.get(el); if (t === undefined) { t = text(el); cache.set(el, t); } return t; };
  const squash = s => String(s || '').replace(/\s+/g, '').toLowerCase();
  const raws = new Map(all.map(el => [el, squash(el.matches('input, textarea, select') ? el.value : el.textContent)]));
  // 1. the elements holding each value: the deepest whose text is the value, else the deepest containing it
  const found = [];
  for (const [name, raw] of args.example) {
    const v = norm(raw), sv = squash(v);
    const maybe = all.filter(el => raws.get(el).includes(sv));
    let exact = maybe.filter(el => T(el) === v && ![...el.children].some(c => raws.get(c)?.includes(sv) && T(c) === v));
    let partial = false;
    if (!exact.length) {
      exact = maybe.filter(el => T(el).includes(v)
                                 && ![...el.children].some(c => raws.get(c)?.includes(sv) && T(c).includes(v)));
      partial = true;
    }
    const vis = exact.filter(visible);
    const cands = (vis.length ? vis : exact).slice(0, 200);
    if (!cands.length) return {error: 'missing', field: name, value: raw};
    found.push({name, value: v, cands, partial});
  }
  const depth = el => { let d = 0; for (let n = el; n; n = n.parentElement) d++; return d; };
  const lca = (a, b) => { const s = new Set(); for (let n = a; n; n = n.parentElement) s.add(n);
                          for (let n = b; n; n = n.parentElement) if (s.has(n)) return n; return null; };
  // 2. one element per field: the combination whose common ancestor is deepest
  let best = null;
  for (const c0 of found[0].cands) {
    const pick = [c0]; let anc = c0;
    for (const f of found.slice(1)) {
      let bestC = null, bestD = -1;
      for (const c of f.cands) { const a = lca(anc, c); const d = a ? depth(a) : 0; if (d > bestD) { bestD = d; bestC = c; } }
      pick.push(bestC); anc = lca(anc, bestC);
    }
    const d = depth(anc);
    if (!best || d > best.d) best = {pick, anc, d};
  }
  const els = best.pick;
  // 3. the row: the nearest element at or above the common ancestor that repeats among its siblings: its
  //    siblings of the same tag in which the fields are found at the same places (a header row is not one)
  const relPath = (row, el) => {  // positional CSS from the row to el
    const parts = [];
    for (let n = el; n && n !== row; n = n.parentElement) {
      const i = [...n.parentElement.children].indexOf(n) + 1;
      parts.unshift(`${n.tagName.toLowerCase()}:nth-child(${i})`);
    }
    return parts.length ? ':scope > ' + parts.join(' > ') : null;
  };
  const q = (row, sel) => { try { return sel ? row.querySelectorAll(sel) : [row]; } catch (e) { return []; } };
  let node = best.anc;
  if (els.includes(node) && /^(TD|TH)$/.test(node.tagName)) node = node.parentElement;
  let row = null, group = null, fallback = null;
  for (let n = node; n && n !== document.body && n !== document.documentElement; n = n.parentElement) {
    const same = [...n.parentElement.children].filter(s => s.tagName === n.tagName);
    if (same.length < 2) continue;
    const paths = els.map(el => relPath(n, el));
    const sibs = same.filter(s => s === n || paths.some(p => p && q(s, p).length === 1));
    if (sibs.length < 2) continue;
    if (!paths.every(p => sibs.filter(s => q(s, p).length === 1).length * 2 >= sibs.length)) continue;
    if (els.includes(n) && els.length === 1) { if (!fallback) fallback = {n, sibs: same}; continue; }
    row = n; group = sibs; break;
  }
  if (!row && fallback) { row = fallback.n; group = fallback.sibs; }
  if (!row) return {error: 'norows'};
  // 4. a rows selector matching exactly the group: anchored on a stable id and the structure, else a class
  const same = sel => { let m; try { m = document.querySelectorAll(sel); } catch (e) { return false; }
                        return m.length === group.length && group.every(g => [...m].includes(g)); };
  const tag = row.tagName.toLowerCase();
  const shared = [...row.classList].filter(c => group.every(g => g.classList.contains(c)) && stable(c));
  const chain = [];  // from the parent up to an element with a stable id
  let anchor = null;
  for (let n = row.parentElement; n && n !== document.documentElement; n = n.parentElement) {
    if (n.id && stable(n.id)) { anchor = '#' + CSS.escape(n.id); break; }
    chain.unshift(n.tagName.toLowerCase());
  }
  const tries = [];
  const firstPath = els.map(el => relPath(row, el)).find(p => p);
  const has = firstPath ? `${tag}:has(${firstPath.replace(':scope ', '')})` : null;  // rows holding a field there
  if (anchor) tries.push([anchor, ...chain, tag].join(' > '));
  if (anchor && has) tries.push([anchor, ...chain, has].join(' > '));
  for (const c of shared) tries.push(`${tag}.${CSS.escape(c)}`);
  if (anchor) for (const c of shared) tries.push([anchor, ...chain, `${tag}.${CSS.escape(c)}`].join(' > '));
  const full = [];
  for (let n = row.parentElement; n && n !== document.documentElement; n = n.parentElement) {
    const i = n.parentElement ? [...n.parentElement.children].indexOf(n) + 1 : 1;
    full.unshift(n === document.body ? 'body' : `${n.tagName.toLowerCase()}:nth-child(${i})`);
    if (n === document.body) break;
  }
  tries.push([...full, tag].join(' > '));
  if (has) tries.push([...full, has].join(' > '));
  for (const c of shared) tries.push([...full, `${tag}.${CSS.escape(c)}`].join(' > '));
  const rowsSel = tries.find(same);
  if (!rowsSel) return {error: 'norows'};
  // 5. each field's selector inside the row: a class unique in every row, else its position
  const fields = [];
  for (let i = 0; i < els.length; i++) {
    const el = els[i], f = found[i];
    let sel = null;
    if (el !== row) {
      const t = el.tagName.toLowerCase();
      for (const c of [...el.classList].filter(stable)) {
        const s = `${t}.${CSS.escape(c)}`;
        if (row.querySelectorAll(s).length === 1 && row.querySelector(s) === el
            && group.every(g => g.querySelectorAll(s).length <= 1)) { sel = s; break; }
      }
      if (!sel) sel = relPath(row, el);
    }
    const full = T(el);
    let prefix = '', suffix = '';
    if (full !== f.value) { const k = full.indexOf(f.value); prefix = full.slice(0, k); suffix = full.slice(k + f.value.length); }
    fields.push({name: f.name, sel, prefix, suffix});
  }
  const present = fields.map(f => group.filter(g => q(g, f.sel).length >= 1).length);
  return {rows: rowsSel, count: group.length, fields, present, frames: document.querySelectorAll('iframe').length};
}
"""

#: a link or button that goes to the next page (or loads more), visible and enabled
NEXT_JS = r"""
(words) => {
  const norm = s => (s == null ? '' : String(s).replace(/\s+/g, ' ').trim().toLowerCase());
  const want = new Set(words);
  const els = document.querySelectorAll('a, button, [role=button], [role=link], input[type=button], input[type=submit]');
  for (const el of els) {
    if (!el.getClientRects().length) continue;
    const names = [norm(el.innerText || el.value), norm(el.getAttribute('aria-label')), norm(el.getAttribute('title')),
                   norm(el.getAttribute('rel'))];
    if (!names.some(n => want.has(n))) continue;
    let off = false;
    for (let n = el, i = 0; i < 3 && n; i++, n = n.parentElement)
      if (n.disabled || n.getAttribute('aria-disabled') === 'true' || n.classList.contains('disabled')) off = true;
    if (off) continue;
    const role = el.getAttribute('role') || (el.tagName === 'A' ? (el.hasAttribute('href') ? 'link' : null)
                 : 'button');
    const stable = s => /^[A-Za-z]/.test(s) && !s.split(/[-_]/).some(p => /^\d|\d{3}/.test(p));
    const cls = [...el.classList].filter(stable);
    const tag = el.tagName.toLowerCase();
    const css = [];
    if (el.id && stable(el.id)) css.push('#' + CSS.escape(el.id));
    for (const c of cls) css.push(`${tag}.${CSS.escape(c)}`);
    if (el.getAttribute('rel') === 'next') css.push(`${tag}[rel=next]`);
    return {text: (el.innerText || el.value || '').replace(/\s+/g, ' ').trim(),
            label: el.getAttribute('aria-label'), role, css};
  }
  return null;
}
"""
NEXT_WORDS = ("next", "next page", "next ›", "next »", "next →", "›", "»", "→", ">", "more", "load more",
              "show more", "older", "next>")


def _infer(values: list[str | None]) -> tuple[FieldType, bool]:
    """The narrowest type every non-empty value converts to, and whether every row has one."""
    present = [v.strip() for v in values if v is not None and v.strip() != ""]
    have = [v for v in present if v.lower() not in NULLS]
    if not have:
        return "str", len(present) == len(values) and bool(values)
    # a typed column may show "n/a", "-", ... for a missing value; a text column keeps them as text
    required = len(have) == len(values)
    if all(v.lower() in _BOOL and not v.isdigit() for v in have) and any(len(v) > 1 for v in have):
        return "bool", required
    compact = [v.replace("\u2009", "").replace("\u202f", "") for v in have]
    if all(_INT.match(v) for v in compact):
        return "int", required
    if all(_FLOAT.match(v) for v in compact):
        return "float", required
    if all(_DATE.match(v) for v in have):
        try:
            [dt.date.fromisoformat(v) for v in have]
            return "date", required
        except ValueError:
            pass
    if all(_DATETIME.match(v) for v in have):
        try:
            [dt.datetime.fromisoformat(v[:-1] + "+00:00" if v.endswith("Z") else v) for v in have]
            return "datetime", required
        except ValueError:
            pass
    return "str", len(present) == len(values)


async def _guess_pagination(page: Page, t: ExtractionTemplate, timeout_ms: int) -> Pagination:
    err, _ = _pw_error()
    try:
        hit = await page.evaluate(NEXT_JS, list(NEXT_WORDS))
    except err:
        hit = None
    if hit:
        cands: list[Candidate] = []
        name = hit["label"] or hit["text"]
        if hit["role"] and name:
            cands.append(Candidate(kind="role", value=hit["role"], name=name))
        if hit["text"]:
            cands.append(Candidate(kind="text", value=hit["text"]))
        cands += [Candidate(kind="css", value=c) for c in hit["css"]]
        verified = []
        for c in cands:  # keep the ones that find this one element now
            try:
                if await locator_for(page, c).count() == 1:
                    verified.append(c)
            except err:
                continue
        if verified:
            target = Target(candidates=verified, description=f"next page ({hit['text'] or hit['label']})")
            return Pagination(kind="next", next=target)
    # infinite scroll: do more rows come when the page is scrolled to the end?
    before = await _signature(page, t.rows)
    if before is None:
        return Pagination()
    with _Net(page) as net:
        try:
            await page.locator(t.rows).evaluate_all(SCROLL_JS)
        except err:
            return Pagination()
        net.last = time.monotonic()
        start = await _changed(page, t.rows, before, min(timeout_ms, 3000), scroll=True, net=net)
    if start is not None:
        return Pagination(kind="scroll", wait_ms=3000)
    return Pagination()


async def learn_template(page: Page, example: Mapping[str, str], *, name: str,
                         timeout_ms: int = 10_000, pagination: bool = True) -> ExtractionTemplate:
    """A template from one row the researcher marks, as shown on the page (``{"compound": "CMP-0001",
    "ic50": "4.75"}``): the elements holding those texts, the repeating row around them (its selector
    matches exactly that row and its siblings of the same kind), each field's selector inside the row
    (a class unique in every row, else the position), the types inferred from every row's value, and the
    pagination guessed (a visible, enabled link or button named Next/›/»/More: ``next``; else ``scroll``
    when scrolling to the end brings more rows — which loads them on the page). Waits up to ``timeout_ms``
    for the values to show. Raises ValidationError when a value is not on the page or no repeating row
    holds the values."""
    if not example:
        raise ValidationError("the example row is empty", hint='mark one row: {"compound": "CMP-0001", "ic50": "4.75"}',
                              field="example")
    for k, v in example.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(k)):
            raise ValidationError(f"field name {k!r} is not an identifier", field=str(k),
                                  hint="name fields with letters, digits and '_' (e.g. ic50_nm)")
        if not isinstance(v, str) or not v.strip():
            raise ValidationError(f"the example value of {k!r} must be the non-empty text shown, got {v!r}",
                                  field=str(k), hint="copy the text as the page shows it")
    err, timeout = _pw_error()
    pairs = [[k, v] for k, v in example.items()]
    try:
        await page.wait_for_function(
            "vals => { const t = (document.body ? document.body.innerText : '').replace(/\\s+/g, ' ');"
            " return vals.every(v => t.includes(v.replace(/\\s+/g, ' ').trim())); }",
            arg=[v for _, v in pairs], timeout=timeout_ms)
    except timeout:
        pass  # LEARN_JS names the value that is missing
    except err as exc:
        raise ValidationError(f"cannot read the page: {str(exc).splitlines()[0]}", hint="open the page first") from None
    try:
        got: dict[str, Any] = await page.evaluate(LEARN_JS, {"example": pairs})
    except err as exc:
        raise ValidationError(f"cannot read the page: {str(exc).splitlines()[0]}", hint="open the page first") from None
    if got.get("error") == "missing":
        raise ValidationError(f"the value {got['value']!r} of field {got['field']!r} is not on {page.url}",
                              hint="copy the text exactly as the page shows it (rows inside iframes are not "
                                   "supported)", field=got["field"], value=got["value"])
    if got.get("error"):
        raise ValidationError(f"the example's values are not inside a repeating row on {page.url}: "
                              "no element around them repeats among its siblings with the same structure",
                              hint="mark values of one row of a list or table (two or more fields help)")
    t = await _typed(page, name, got, example)
    if pagination:
        t = t.model_copy(update={"pagination": await _guess_pagination(page, t, timeout_ms)})
    return ExtractionTemplate.model_validate(t.model_dump())


async def _typed(page: Page, name: str, got: dict[str, Any], example: Mapping[str, str]) -> ExtractionTemplate:
    """The learned template with each field's type and required-ness inferred from every row's value."""
    fields = []
    for f in got["fields"]:
        pattern = None
        if f["prefix"] or f["suffix"]:
            pattern = "^" + re.escape(f["prefix"]) + "(.+?)" + re.escape(f["suffix"]) + "$"
        fields.append(FieldSpec(name=f["name"], selector=f["sel"], pattern=pattern))
    draft = ExtractionTemplate(name=name, rows=got["rows"], fields=fields, url=page.url)
    raw = (await _read(page, draft, 0))["rows"]
    cols: list[list[str | None]] = [[] for _ in fields]
    for r in raw:
        for i, (f, v) in enumerate(zip(fields, r, strict=True)):
            if v is not None and f.pattern:
                m = _search(f.pattern, v, f.name, "a row of the example's table")
                v = m.group(1) if m else None
            cols[i].append(v)
    typed = [f.model_copy(update=dict(zip(("type", "required"), _infer(col), strict=True)))
             for f, col in zip(fields, cols, strict=True)]
    t = draft.model_copy(update={"fields": typed, "learned_from": {"example": dict(example), "url": page.url,
                                                                   "rows": len(raw)}})
    model = row_model(t)
    for i, r in enumerate(raw):  # every row converts with the inferred types (so the template is usable)
        _convert(model, t, r, i + 1, 1)
    return t
