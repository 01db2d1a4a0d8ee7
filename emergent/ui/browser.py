"""Browser widgets: ``SelectorBuilder`` (find an element on a live page and the locators that name it)
and ``AutomationDesigner`` (compose saved scripts and templates into a workflow, save it, run it).

``SelectorBuilder(ws.browser, by=ws.principal, url=...)`` shows a screenshot of a session's page. Click
a point on it (through ``ipyevents`` when installed; else type x/y and press **Pick**) or type a text
and press **Find**: the element's candidate locators are listed, most robust first, each with how
many elements it matches right now. **Test** counts the chosen candidate live and outlines what it
finds on a fresh screenshot; **Use** sets ``builder.target`` (a :class:`~emergent.browser.model.Target`:
the chosen candidate first, the others after it, with the element's fingerprint for healing).
**Do** steps an action (click, fill, select, check, press) on the target through the session, which
records it when the session records (``record=`` or ``session.record(name)``): recording by stepping
actions from the widget, for machines without a display.

``AutomationDesigner(ws.browser, ws.workflows, by=ws.principal)`` lists the saved scripts and
templates; add them in order, preview the workflow's YAML (:func:`emergent.browser.designer.to_workflow`),
**Save workflow** (``workflows.register``) or **Run** it (``workflows.run``, through the gate).

Every button acts as ``by`` (the principal the widget was given, never a name); an error is shown in
the widget (its message and hint), never a traceback.
"""

from __future__ import annotations

import contextlib
import html
import struct
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets

from emergent.errors import EmergentError, ValidationError
from emergent.principals import Principal
from emergent.ui.marketplace import require_principal

#: tags a person acts on: preferred when a text is found on a label or heading too
ACTIONABLE = frozenset({"input", "button", "select", "textarea", "a", "option", "summary"})
_OK = "color:#1a7f37"
_BAD = "color:#cf222e"


def _error(exc: BaseException) -> str:
    """An error as the widget shows it: the message and, for our errors, the hint."""
    hint = getattr(exc, "hint", None) if isinstance(exc, EmergentError) else None
    msg = getattr(exc, "message", None) or str(exc)
    out = f"<div style='{_BAD}'><b>{html.escape(type(exc).__name__)}</b>: {html.escape(str(msg))}"
    if hint:
        out += f"<br><i>hint: {html.escape(str(hint))}</i>"
    return out + "</div>"


def _guarded(status: widgets.HTML, fn: Callable[[], Any]) -> Any:
    """Run one button's work; show an error in ``status`` instead of raising it into the front-end."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a widget shows every failure, it never raises into the comm
        status.value = _error(exc)
        return None


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) of a PNG from its header."""
    if len(data) < 24 or data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValidationError("the screenshot is not a PNG", hint="take it with session.screenshot()")
    w, h = struct.unpack(">II", data[16:24])
    return int(w), int(h)


class SelectorBuilder(widgets.VBox):
    """Point at an element of a live page (click its screenshot, or type a text) and get its ranked
    locators; test one live; use it. See the module docstring."""

    def __init__(self, service: Any, *, by: Principal, session: Any = None, url: str | None = None) -> None:
        self.service = service
        self.by = require_principal(by, "SelectorBuilder(ws.browser, by=ws.principal, url=...)")
        self._owns = session is None
        if session is None:
            session = service.open(url, by=self.by)
        elif isinstance(session, str):
            session = service.session(session, by=self.by)
        elif url is not None:
            session.goto(url)
        self.session = session
        self.target: Any = None  # set by Use
        self.found: Any = None  # the Target the last Pick/Find described
        self.counts: list[int] = []
        self.image = widgets.Image(format="png", layout=widgets.Layout(max_width="100%", border="1px solid #d0d7de"))
        self.url_box = widgets.Text(placeholder="URL", description="url", layout=widgets.Layout(width="60%"))
        self.go_button = widgets.Button(description="Go", tooltip="navigate the session (allow-listed hosts only)")
        self.refresh_button = widgets.Button(description="Refresh", tooltip="take a new screenshot")
        self.x_box = widgets.IntText(value=0, description="x", layout=widgets.Layout(width="140px"))
        self.y_box = widgets.IntText(value=0, description="y", layout=widgets.Layout(width="140px"))
        self.pick_button = widgets.Button(description="Pick", tooltip="the element at (x, y) of the screenshot")
        self.text_box = widgets.Text(placeholder="text, label or placeholder", description="text")
        self.find_button = widgets.Button(description="Find", tooltip="elements showing this text")
        self.matches = widgets.Dropdown(options=[], description="element", layout=widgets.Layout(width="60%"))
        self.choices = widgets.RadioButtons(options=[], description="locators", layout=widgets.Layout(width="95%"))
        self.test_button = widgets.Button(description="Test", tooltip="count live and outline what it finds")
        self.use_button = widgets.Button(description="Use", button_style="primary",
                                         tooltip="builder.target = this locator (the others as alternatives)")
        self.action = widgets.Dropdown(options=["click", "fill", "select", "check", "uncheck", "press"],
                                       value="click", description="action", layout=widgets.Layout(width="220px"))
        self.value_box = widgets.Text(placeholder="value (fill/select/press)", description="value")
        self.do_button = widgets.Button(description="Do", button_style="warning",
                                        tooltip="act on the target through the session (recorded when recording)")
        self.status = widgets.HTML()
        self.go_button.on_click(lambda _: _guarded(self.status, lambda: self.go(self.url_box.value)))
        self.refresh_button.on_click(lambda _: _guarded(self.status, self.refresh))
        self.pick_button.on_click(lambda _: _guarded(self.status, lambda: self.pick(self.x_box.value,
                                                                                      self.y_box.value)))
        self.find_button.on_click(lambda _: _guarded(self.status, lambda: self.find(self.text_box.value)))
        self.test_button.on_click(lambda _: _guarded(self.status, self.test))
        self.use_button.on_click(lambda _: _guarded(self.status, self.use))
        self.do_button.on_click(lambda _: _guarded(self.status, lambda: self.do(self.action.value,
                                                                                  self.value_box.value)))
        self.matches.observe(lambda ch: _guarded(self.status, lambda: self._chose_match(ch["new"])), names="value")
        self._found_list: list[Any] = []
        self._quiet = False
        self.events: Any = None
        try:
            from ipyevents import Event
        except ImportError:  # the jupyter extra brings it; without it, x/y + Pick do the same
            pass
        else:
            self.events = Event(source=self.image, watched_events=["click"])
            self.events.on_dom_event(lambda ev: _guarded(self.status, lambda: self.on_click_event(ev)))
        super().__init__([
            widgets.HBox([self.url_box, self.go_button, self.refresh_button]), self.image,
            widgets.HBox([self.x_box, self.y_box, self.pick_button]),
            widgets.HBox([self.text_box, self.find_button]), self.matches, self.choices,
            widgets.HBox([self.test_button, self.use_button]),
            widgets.HBox([self.action, self.value_box, self.do_button]), self.status])
        _guarded(self.status, self.refresh)

    # ------------------------------------------------------------------ the page
    def refresh(self) -> None:
        """A new screenshot of the session's page."""
        self.image.value = self.session.screenshot()
        page = self.session.page
        self.url_box.value = page.url
        self.status.value = f"<span>{html.escape(page.url)}</span>"

    def go(self, url: str) -> dict[str, Any]:
        out: dict[str, Any] = self.session.goto(url)
        self.refresh()
        return out

    def viewport_point(self, x: float, y: float) -> tuple[float, float]:
        """A point of the screenshot (image pixels) as a point of the viewport (CSS pixels)."""
        if not self.image.value:
            return x, y
        w, h = png_size(bytes(self.image.value))
        size = self.session.page.viewport_size or {"width": w, "height": h}
        return x * size["width"] / w, y * size["height"] / h

    def on_click_event(self, event: dict[str, Any]) -> None:
        """An ipyevents click on the screenshot: ``arrayX/arrayY`` are image pixels (else the position in
        the displayed box, scaled to the image)."""
        if "arrayX" in event and "arrayY" in event:
            x, y = float(event["arrayX"]), float(event["arrayY"])
        else:
            w, h = png_size(bytes(self.image.value))
            x = float(event.get("relativeX", 0)) * w / max(float(event.get("boundingRectWidth") or w), 1.0)
            y = float(event.get("relativeY", 0)) * h / max(float(event.get("boundingRectHeight") or h), 1.0)
        self.x_box.value, self.y_box.value = int(x), int(y)
        self.pick(x, y)

    # ------------------------------------------------------------------ finding
    def pick(self, x: float, y: float) -> Any:
        """Describe the element at (x, y) of the screenshot; its locators are listed."""
        vx, vy = self.viewport_point(x, y)
        self._set_found([])  # a failed pick leaves no stale element chosen
        self._set_found([self.session.describe_at(vx, vy)])
        return self.found

    def find(self, text: str) -> list[Any]:
        """The elements showing ``text`` (text, label or placeholder); the first one's locators are listed."""
        if not text.strip():
            raise ValidationError("type the text to look for", hint="e.g. the button's label or a field's label")
        found = list(self.session.find(text))
        self._set_found(found)
        if not found:
            self.status.value = f"<span style='{_BAD}'>no element shows {html.escape(repr(text))}</span>"
        return found

    def _set_found(self, found: list[Any]) -> None:
        """List the elements found; choose the first one a person can act on (a field, a button, a link)
        over its label or a heading showing the same text."""
        self._found_list = found
        first = next((i for i, t in enumerate(found) if t.fingerprint is not None
                      and t.fingerprint.tag.lower() in ACTIONABLE), 0)
        self._quiet = True
        try:
            self.matches.options = [(f"{i + 1}. {t.describe()}", i) for i, t in enumerate(found)]
            self.matches.value = first if found else None
        finally:
            self._quiet = False
        if found:
            self._show(found[first])
        else:
            self.found, self.counts, self.choices.options = None, [], []

    def _chose_match(self, index: int | None) -> None:
        if self._quiet or index is None or index >= len(self._found_list):
            return
        self._show(self._found_list[index])

    def _show(self, target: Any) -> None:
        from emergent.browser.model import Target

        self.found = target
        self.counts = [self.session.count(Target.of(c)) for c in target.candidates]
        self.choices.options = [(f"{c.describe()} · {n} match{'es' if n != 1 else ''}", i)
                                for i, (c, n) in enumerate(zip(target.candidates, self.counts, strict=True))]
        self.choices.value = 0 if target.candidates else None
        fp = target.fingerprint
        what = f"&lt;{html.escape(fp.tag)}&gt; {html.escape(fp.name or fp.text or '')}" if fp else ""
        self.status.value = f"{len(target.candidates)} locator(s) for {what}"

    # ------------------------------------------------------------------ testing and using
    def chosen(self) -> Any:
        """The chosen candidate."""
        if self.found is None or self.choices.value is None:
            raise ValidationError("no element chosen yet", hint="click the screenshot (or Pick at x/y) or Find a text")
        return self.found.candidates[self.choices.value]

    def test(self) -> int:
        """Count the chosen candidate live and outline what it finds on a fresh screenshot."""
        from emergent.browser.model import Target

        cand = self.chosen()
        n: int = self.session.count(Target.of(cand))
        if n >= 1:
            self.image.value = self.session.highlight(Target.of(cand))
        style = _OK if n == 1 else _BAD
        verdict = "matches exactly one element" if n == 1 else (f"matches {n} elements: pick another" if n
                                                                else "matches nothing now")
        self.status.value = f"<span style='{style}'>{html.escape(cand.describe())} {verdict}</span>"
        return n

    def use(self) -> Any:
        """``builder.target``: the chosen candidate first, the others after it, with the fingerprint."""
        from emergent.browser.model import Target

        cand = self.chosen()
        rest = [c for c in self.found.candidates if c != cand]
        self.target = Target(candidates=[cand, *rest], fingerprint=self.found.fingerprint,
                             description=self.found.description or cand.describe())
        self.status.value = f"<span style='{_OK}'>builder.target = {html.escape(cand.describe())}</span>"
        return self.target

    def do(self, action: str, value: str = "") -> dict[str, Any]:
        """Step ``action`` on the target (Use first; else the chosen candidate) through the session."""
        target = self.target if self.target is not None else self.use()
        s = self.session
        if action in ("fill", "select", "press") and not value:
            raise ValidationError(f"{action} needs a value", hint="type it in the value box")
        if action == "click":
            out = s.click(target)
        elif action == "fill":
            out = s.fill(target, value)
        elif action == "select":
            out = s.select(target, value)
        elif action in ("check", "uncheck"):
            out = s.check(target, action == "check")
        elif action == "press":
            out = s.press(target, value)
        else:
            raise ValidationError(f"unknown action {action!r}", hint="click, fill, select, check, uncheck or press")
        self.target = None  # the page may have changed: pick the next element afresh
        self.refresh()  # the value is not echoed: it may be a password
        self.status.value = (f"<span style='{_OK}'>{html.escape(action)} {html.escape(target.describe())}: done"
                             "</span>")
        return dict(out or {})

    def close(self) -> None:
        """Close the session when the builder opened it; then the widget."""
        if getattr(self, "_owns", False):
            with contextlib.suppress(EmergentError):
                self.session.close()
        if getattr(self, "events", None) is not None:
            self.events.close()
        super().close()


class AutomationDesigner(widgets.VBox):
    """Compose saved scripts and extraction templates into a workflow; preview, save or run it."""

    def __init__(self, service: Any, workflows: Any, *, by: Principal) -> None:
        self.service = service
        self.workflows = workflows
        self.by = require_principal(by, "AutomationDesigner(ws.browser, ws.workflows, by=ws.principal)")
        self.parts: list[Any] = []
        self.workflow: Any = None
        self.last_run: Any = None
        self.name_box = widgets.Text(value="browser-automation", description="name")
        self.scripts = widgets.Dropdown(options=[], description="script")
        self.templates = widgets.Dropdown(options=[], description="template")
        self.add_script_button = widgets.Button(description="Add script")
        self.add_template_button = widgets.Button(description="Add template")
        self.url_box = widgets.Text(placeholder="url for the extraction (default: the template's)", description="url")
        self.pages_box = widgets.BoundedIntText(value=0, min=0, max=10_000, description="max pages",
                                                tooltip="pages (or scrolls) the extraction reads; 0: all")
        self.steps = widgets.Select(options=[], rows=6, description="steps", layout=widgets.Layout(width="70%"))
        self.up_button = widgets.Button(description="Up")
        self.down_button = widgets.Button(description="Down")
        self.remove_button = widgets.Button(description="Remove")
        self.inputs_box = widgets.Textarea(placeholder="inputs, one NAME=VALUE a line", description="inputs",
                                           layout=widgets.Layout(width="70%"))
        self.preview_button = widgets.Button(description="Preview")
        self.save_button = widgets.Button(description="Save workflow", button_style="primary")
        self.run_button = widgets.Button(description="Run", button_style="warning")
        self.refresh_button = widgets.Button(description="Refresh")
        self.yaml = widgets.HTML()
        self.status = widgets.HTML()
        g = self.status
        self.add_script_button.on_click(lambda _: _guarded(g, lambda: self.add_script(self.scripts.value)))
        self.add_template_button.on_click(lambda _: _guarded(g, lambda: self.add_template(
            self.templates.value, url=self.url_box.value or None, max_pages=self.pages_box.value or None)))
        self.up_button.on_click(lambda _: _guarded(g, lambda: self.move(self.steps.value, -1)))
        self.down_button.on_click(lambda _: _guarded(g, lambda: self.move(self.steps.value, 1)))
        self.remove_button.on_click(lambda _: _guarded(g, lambda: self.remove(self.steps.value)))
        self.preview_button.on_click(lambda _: _guarded(g, self.preview))
        self.save_button.on_click(lambda _: _guarded(g, self.save))
        self.run_button.on_click(lambda _: _guarded(g, self.run))
        self.refresh_button.on_click(lambda _: _guarded(g, self.refresh))
        super().__init__([
            widgets.HBox([self.name_box, self.refresh_button]),
            widgets.HBox([self.scripts, self.add_script_button]),
            widgets.HBox([self.templates, self.add_template_button]), widgets.HBox([self.url_box, self.pages_box]),
            widgets.HBox([self.steps, widgets.VBox([self.up_button, self.down_button, self.remove_button])]),
            self.inputs_box, widgets.HBox([self.preview_button, self.save_button, self.run_button]),
            self.status, self.yaml])
        _guarded(self.status, self.refresh)

    def refresh(self) -> None:
        """Reload the saved scripts and templates (names with an active version)."""
        store = self.service.store
        self.scripts.options = sorted({r["name"] for r in store.list("script", status="active")})
        self.templates.options = sorted({r["name"] for r in store.list("template", status="active")})

    # ------------------------------------------------------------------ composing
    def _changed(self) -> None:
        from emergent.browser.designer import ScriptStep

        self.steps.options = [(f"{i + 1}. {'replay' if isinstance(p, ScriptStep) else 'extract'} "
                               f"{p.script if isinstance(p, ScriptStep) else p.template}", i)
                              for i, p in enumerate(self.parts)]
        self.workflow = None

    def add_script(self, name: str | None, **params: Any) -> None:
        from emergent.browser.designer import ScriptStep

        if not name:
            raise ValidationError("no script chosen", hint="record and save one first (ws.browser.open(..., record=))")
        self.service.script(name)  # exists and has an active version
        self.parts.append(ScriptStep(name, params=params))
        self._changed()

    def add_template(self, name: str | None, *, url: str | None = None, max_pages: int | None = None) -> None:
        from emergent.browser.designer import ExtractStep

        if not name:
            raise ValidationError("no template chosen", hint="save one first (ws.browser.save_template)")
        self.service.template(name)
        self.parts.append(ExtractStep(name, url=url, max_pages=max_pages))
        self._changed()

    def move(self, index: int | None, by: int) -> None:
        if index is None:
            raise ValidationError("no step selected", hint="select a step in the list")
        j = index + by
        if 0 <= j < len(self.parts):
            self.parts[index], self.parts[j] = self.parts[j], self.parts[index]
            self._changed()
            self.steps.value = j

    def remove(self, index: int | None) -> None:
        if index is None:
            raise ValidationError("no step selected", hint="select a step in the list")
        del self.parts[index]
        self._changed()

    def inputs(self) -> dict[str, Any]:
        """The inputs box as a dict (``NAME=VALUE`` a line)."""
        out: dict[str, Any] = {}
        for line in self.inputs_box.value.splitlines():
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not name.strip():
                raise ValidationError(f"input line {line!r} is not NAME=VALUE", hint="e.g. email=ada@example.org")
            out[name.strip()] = value.strip()
        return out

    def build(self) -> Any:
        from emergent.browser.designer import to_workflow

        self.workflow = to_workflow(self.name_box.value.strip(), self.parts, service=self.service)
        return self.workflow

    def preview(self) -> str:
        """The workflow's YAML (shown below the buttons)."""
        text: str = self.build().to_yaml()
        self.yaml.value = f"<pre>{html.escape(text)}</pre>"
        needed = [k for k, v in self.workflow.inputs.items() if v is None and k not in self.inputs()]
        self.status.value = (f"<span style='{_BAD}'>needs input(s): {html.escape(', '.join(needed))}</span>"
                             if needed else f"<span style='{_OK}'>{len(self.parts)} step(s), valid</span>")
        return text

    def save(self) -> Any:
        """Register the workflow under its name (``workflows.register``, as ``by``)."""
        wf = self.workflows.register(self.build(), by=self.by)
        self.preview()
        self.status.value = (f"<span style='{_OK}'>saved workflow {html.escape(wf.name)}: run it with "
                             f"ws.workflows.run({wf.name!r}, ...)</span>")
        return wf

    def run(self) -> Any:
        """Run the workflow through the gate as ``by`` and show how it ended."""
        wf = self.build()
        run = self.workflows.run(wf, self.inputs(), principal=self.by)
        self.last_run = run
        status = str(getattr(run.status, "value", run.status))
        style = _OK if status == "completed" else _BAD
        extra = f": {html.escape(str(run.error))}" if getattr(run, "error", None) else ""
        counts = []
        for key, value in (getattr(run, "outputs", None) or {}).items():
            counts.append(f"{html.escape(key)}: {len(value) if isinstance(value, list) else html.escape(str(value))}")
        self.status.value = (f"<span style='{style}'>run {html.escape(run.id)} {html.escape(status)}{extra}</span>"
                             + (f"<br>{'; '.join(counts)}" if counts else ""))
        return run
