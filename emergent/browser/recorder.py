"""Recording a session into a replayable :class:`~emergent.browser.model.Script`.

Two sources feed one :class:`Recorder`:

- the session's own API (``session.click(...)``, ``fill``, ``select``, ...): the session describes the element
  (:func:`emergent.browser.locators.describe`, before acting, since a click may navigate away) and adds the
  action;
- the page itself: :data:`LISTENER_JS` (installed with ``context.expose_binding`` + ``add_init_script``)
  reports clicks, changes (fill / select / check) and Enter presses a person makes directly in the page
  (headed, or ``page.mouse`` / ``page.keyboard`` in tests), described in the page by the same JavaScript
  as ``describe``. Events that arrive while an API action runs (and shortly after) are the API action's
  own echo and are dropped, so nothing is recorded twice.

Secrets: a fill whose value is a configured secret's value, or that goes into an ``input[type=password]``,
or that the caller marks ``secret=NAME``, becomes ``${secrets.NAME}`` and its value is never kept — not in
the script, not in the recorder. ``param=NAME`` turns a value into ``${params.NAME}`` with the recorded
value as the parameter's default.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any

from emergent.browser.locators import _LIB_JS
from emergent.browser.model import NAME, Action, Param, Script, Target
from emergent.errors import StateConflictError, ValidationError

#: in-page listener: reports what a person does to ``window.__emergentRecord`` (the exposed binding)
LISTENER_JS = "(() => {\nif (window.__emergentListening) return; window.__emergentListening = true;\n" + _LIB_JS + r"""
const send = (kind, el, value, submits) => {
  try { window.__emergentRecord({kind: kind, facts: facts(el, headsOf(el.ownerDocument), roleIndexOf(el)),
                                 value: value, submits: !!submits}); } catch (e) {}
};
const typable = (el) => el.tagName === 'TEXTAREA' || (el.tagName === 'INPUT' &&
  !['checkbox', 'radio', 'submit', 'button', 'reset', 'image', 'file', 'hidden'].includes((el.type || '').toLowerCase()));
document.addEventListener('click', (e) => {
  if (!e.isTrusted) return;
  const el = pointTarget(e.target);
  if (!el || el === document.body || el === document.documentElement) return;
  if (el.tagName === 'SELECT' || el.tagName === 'OPTION' || typable(el)) return;
  if (el.tagName === 'INPUT' && ['checkbox', 'radio', 'file'].includes((el.type || '').toLowerCase())) return;
  if (el.tagName === 'LABEL' && el.control) return;  // the control's change event records it
  const t = (el.getAttribute('type') || '').toLowerCase();
  const submits = !!el.form && ((el.tagName === 'BUTTON' && (t === '' || t === 'submit')) ||
                                (el.tagName === 'INPUT' && (t === 'submit' || t === 'image')));
  send('click', el, null, submits);
}, true);
document.addEventListener('change', (e) => {
  if (!e.isTrusted) return;
  const el = e.target;
  if (!el || !el.tagName) return;
  const t = (el.type || '').toLowerCase();
  if (el.tagName === 'SELECT') {
    const opt = el.selectedOptions && el.selectedOptions[0];
    send('select', el, opt ? (norm(opt.label || opt.textContent) || opt.value) : el.value, false);
  } else if (t === 'checkbox' || t === 'radio') {
    send(el.checked ? 'check' : 'uncheck', el, null, false);
  } else if (t !== 'file' && (el.tagName === 'TEXTAREA' || el.tagName === 'INPUT')) {
    send('fill', el, el.value, false);
  }
}, true);
document.addEventListener('keydown', (e) => {
  if (!e.isTrusted || e.key !== 'Enter') return;
  const el = e.target;
  if (!el || !el.tagName || !typable(el)) return;
  send('fill', el, el.value, false);  // a change event may not come before the form submits
  send('press', el, 'Enter', !!el.form);
}, true);
})();"""

#: page events within this long (s) after an API action ended are taken as its echo
ECHO_S = 0.35


def _ident(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower()
    if not s or not (s[0].isalpha() or s[0] == "_"):
        s = "secret_" + s
    return s[:60]


class Recorder:
    """Collects a session's actions; :meth:`script` turns them into a Script."""

    def __init__(self, name: str, secrets: Mapping[str, str] | None = None) -> None:
        if not NAME.match(name or ""):
            raise ValidationError(f"script name {name!r} must be lower-case letters, digits, '_' or '-', starting "
                                  "with a letter", hint="e.g. record('portal-login')", field="name")
        self.name = name
        self._secret_values = {v: k for k, v in (secrets or {}).items() if v}
        self.actions: list[Action] = []
        self.params: dict[str, Param] = {}
        self.started = time.monotonic()
        self._busy = 0
        self._quiet_until = 0.0
        self._last_api: Action | None = None
        self.stopped = False

    # ------------------------------------------------------------------ API actions
    def api_begin(self) -> None:
        self._busy += 1

    def api_end(self) -> None:
        self._busy = max(0, self._busy - 1)
        self._quiet_until = time.monotonic() + ECHO_S
        self._last_api = self.actions[-1] if self.actions else None

    def echo(self, target: Target | None = None) -> bool:
        """True when a page event is an API action's echo: one arrives while an API action runs, or shortly
        after it on the same element."""
        if self._busy > 0:
            return True
        last = self._last_api
        return (time.monotonic() < self._quiet_until and last is not None and target is not None
                and _same(last.target, target))

    @property
    def secrets(self) -> list[str]:
        """The secrets a replay of what was recorded needs."""
        return sorted({n for a in self.actions for n in re.findall(r"\$\{secrets\.([A-Za-z_][A-Za-z0-9_]*)\}",
                                                                  a.value or "")})

    def add(self, action: Action, *, param: str | None = None, secret: str | None = None) -> Action:
        """Record ``action`` (its ``value`` the raw value used). A secret's value is replaced by a reference
        (see the module docstring); ``param`` declares a parameter. Returns the action as recorded."""
        if self.stopped:
            raise StateConflictError("this recording has stopped", hint="start another with session.record(NAME)")
        value = action.value
        if action.kind == "fill" and value is not None:
            name = secret or self._secret_values.get(value)
            if name is None and _is_password(action.target):
                name = _secret_name(action.target)
            if name is not None:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise ValidationError(f"secret name {name!r} is not an identifier", field="secret",
                                          hint="use letters, digits and '_' (e.g. portal_password)")
                action = action.model_copy(update={"value": "${secrets." + name + "}"})
                param = None
        if param is not None and action.value is not None:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", param):
                raise ValidationError(f"parameter name {param!r} is not an identifier", field="param",
                                      hint="use letters, digits and '_' (e.g. email)")
            self.params.setdefault(param, Param(name=param, default=value))
            action = action.model_copy(update={"value": "${params." + param + "}"})
        elif action.value is not None and "${" in action.value and "${secrets." not in action.value:
            # a literal that looks like a reference would be read as one at replay: refuse it
            raise ValidationError("a recorded value contains '${', which scripts read as a reference",
                                  hint="record it as a parameter (param=NAME) instead", field="value")
        # drop a fill that the next fill of the same element supersedes (typing, then Enter)
        if self.actions and action.kind == "fill" and self.actions[-1].kind == "fill" and \
                _same(self.actions[-1].target, action.target):
            self.actions[-1] = action
        else:
            self.actions.append(action)
        return action

    def add_page_event(self, kind: str, target: Target, value: str | None, submits: bool) -> Action | None:
        """An event from the in-page listener (None: dropped as an API action's echo or a repeat)."""
        if self.stopped or self.echo(target):
            return None
        if kind == "fill" and self.actions and self.actions[-1].kind == "fill" and \
                _same(self.actions[-1].target, target) and self.actions[-1].value == value:
            return None
        act = Action(kind=kind, target=target, value=value, submits=submits)  # type: ignore[arg-type]
        return self.add(act)

    def script(self, description: str = "") -> Script:
        if not self.actions:
            raise ValidationError("nothing was recorded", hint="act on the page (goto, click, fill, ...) "
                                                               "between record() and stop()")
        return Script(name=self.name, description=description, params=list(self.params.values()),
                      actions=list(self.actions))


def _is_password(target: Target | None) -> bool:
    fp = target.fingerprint if target else None
    return bool(fp and fp.tag == "input" and fp.attrs.get("type", "").lower() == "password")


def _secret_name(target: Target | None) -> str:
    fp = target.fingerprint if target else None
    if fp is None:
        return "password"
    for source in (fp.label, fp.attrs.get("name"), fp.attrs.get("id"), fp.attrs.get("placeholder")):
        if source:
            return _ident(source)
    return "password"


def _same(a: Target | None, b: Target | None) -> bool:
    if a is None or b is None:
        return False
    pa = a.fingerprint.path if a.fingerprint else None
    pb = b.fingerprint.path if b.fingerprint else None
    if pa and pb:
        return pa == pb and a.candidates[-1].frame == b.candidates[-1].frame
    return a.candidates[0] == b.candidates[0]


def page_event_target(facts: dict[str, Any], frame: str | None) -> Target:
    """A target from the in-page facts (unverified candidates; the session verifies them when it can)."""
    from emergent.browser.locators import _fingerprint, candidates_from

    cands = candidates_from(facts, frame)
    return Target(candidates=cands[:20], fingerprint=_fingerprint(facts), description=cands[0].describe())
