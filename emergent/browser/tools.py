"""The browser as tools: ``browser.open``, ``browser.act``, ``browser.extract``, ``browser.replay``.

Each tool reaches :class:`~emergent.browser.session.BrowserService` through ``ctx.services.browser``
(built on first use; importing this module never imports Playwright) and acts as ``ctx.principal``:
a session belongs to whoever opened it, so an agent can act only in its own sessions.

Side effects, as the gate sees them:

- ``browser.open`` (read; resource: the URL) opens an isolated session at a URL on the allow-list;
- ``browser.act`` (**external**): an action on a live page may submit a form or upload a file, so an
  agent's click is asked about like any other external action (the default policy: ask a person);
- ``browser.extract`` (read; resource: the URL when given) reads rows through a saved template;
- ``browser.replay`` (**external**; resource: the script's name) replays a saved script.

- ``browser.close`` (read, no network: it works while autonomy is paused) closes one of your sessions, so
  an agent frees what it opened (sessions count against ``max_sessions``).

The four need the permissions ``net`` and ``browser`` and carry the tag ``browser``. Secrets are never
passed as values: write ``${secrets.NAME}`` and the service fills in the configured secret.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any, Literal

from emergent.errors import ToolExecutionError, ValidationError
from emergent.tools.spec import SideEffect, ToolContext, tool

VERSION = "1.0.0"
PERMISSIONS = ("net", "browser")
TAGS = ("browser",)
ActKind = Literal["click", "fill", "select", "check", "uncheck", "upload", "press", "wait"]
#: what each action needs in ``value``
_NEEDS_VALUE = {"fill": "the text to type (or ${secrets.NAME})", "select": "the option's label or value",
                "upload": "a workspace file path under files/", "press": "a key, e.g. Enter"}


def _service(ctx: ToolContext) -> Any:
    services = ctx.services
    if services is None:
        raise ValidationError("the browser tools run through a workstation's tools",
                              hint="call them with ws.tools.call('browser.open', {...}, principal=...)")
    return services.browser


def _target(raw: str | dict[str, Any] | None, action: str) -> Any:
    """A :class:`~emergent.browser.model.Target` from a selector string or its JSON form."""
    from emergent.browser.model import Target

    if raw is None:
        return None
    if isinstance(raw, dict):
        try:
            return Target.model_validate(raw)
        except ValueError as exc:
            raise ValidationError(f"target of {action} is not a target: {str(exc).splitlines()[0]}",
                                  hint='pass a selector string ("label=Email", \'role=button[name="Save"]\', '
                                       "CSS) or a target's JSON ({\"candidates\": [...]})", field="target") from None
    return Target.of(raw)


def _json(value: Any) -> Any:
    """Values of a DataFrame row as JSON data (dates as ISO text, NaN as None)."""
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


def frame_result(frame: Any) -> dict[str, Any]:
    """``{rows, columns, dtypes, count}`` of a polars DataFrame, as JSON data."""
    return {"rows": [_json(r) for r in frame.to_dicts()], "columns": list(frame.columns),
            "dtypes": {c: str(t) for c, t in zip(frame.columns, frame.dtypes, strict=True)},
            "count": frame.height}


@tool(name="browser.open", version=VERSION, side_effect=SideEffect.READ, permissions=PERMISSIONS,
      resource="url", resource_kind="url", tags=TAGS, timeout=120.0)
def browser_open(url: str, ctx: ToolContext) -> dict[str, Any]:
    """Open an isolated browser session at a URL (the host must be on the browser allow-list).

    Args:
        url: an http(s) URL on an allowed host
    """
    svc = _service(ctx)
    session = svc.open(by=ctx.principal)
    try:
        page = session.goto(url)
    except BaseException:
        session.close()
        raise
    return {"session": session.id, "url": page.get("url", url), "title": page.get("title", ""),
            "status": page.get("status")}


@tool(name="browser.act", version=VERSION, side_effect=SideEffect.EXTERNAL, permissions=PERMISSIONS, tags=TAGS,
      timeout=120.0)
def browser_act(session: str, action: ActKind, ctx: ToolContext, target: str | dict[str, Any] | None = None,
                value: str | None = None, submits: bool = False) -> dict[str, Any]:
    """Act on the page of one of your browser sessions: click, fill, select, check, uncheck, upload, press, wait.

    Args:
        session: the session id browser.open returned
        action: click, fill, select, check, uncheck, upload, press or wait
        target: the element: a selector ("label=Email", 'role=button[name="Sign in"]', "text=Next", CSS) or a target's JSON
        value: fill: the text (write ${secrets.NAME} for a secret); select: the option; upload: a workspace path under files/; press: the key; wait: the state (with a target: visible, hidden, attached, detached; without: load, domcontentloaded, networkidle)
        submits: the click or key press submits a form (recorded as such)
    """
    if action in _NEEDS_VALUE and value is None:
        raise ValidationError(f"browser.act {action} needs a value: {_NEEDS_VALUE[action]}", field="value")
    if action != "wait" and target is None:
        raise ValidationError(f"browser.act {action} needs a target",
                              hint='e.g. target="label=Email" or target=\'role=button[name="Sign in"]\'',
                              field="target")
    tgt = _target(target, action)
    s = _service(ctx).session(session, by=ctx.principal)
    if action == "click":
        out = s.click(tgt, submits=True if submits else None)
    elif action == "fill":
        out = s.fill(tgt, value)
    elif action == "select":
        out = s.select(tgt, value)
    elif action in ("check", "uncheck"):
        out = s.check(tgt, action == "check")
    elif action == "upload":
        out = s.upload(tgt, value)
    elif action == "press":
        out = s.press(tgt, value, submits=submits)
    else:
        out = s.wait(tgt, state=value or ("visible" if tgt is not None else "load"))
    return {"session": session, "action": action, **_json(dict(out or {}))}


@tool(name="browser.extract", version=VERSION, side_effect=SideEffect.READ, permissions=PERMISSIONS,
      resource="url", resource_kind="url", tags=TAGS, timeout=300.0)
def browser_extract(ctx: ToolContext, template: str | dict[str, Any] | None = None, url: str | None = None,
                    session: str | None = None, version: str | None = None,
                    max_pages: int | None = None) -> dict[str, Any]:
    """Extract rows with a saved extraction template: from a session's page, a URL, or the template's own URL.

    Args:
        template: the name of a saved template (or a template's JSON)
        url: where to extract (default: the template's url; not with session)
        session: extract from this session's current page instead
        version: the template version (default: the newest active one)
        max_pages: read at most this many pages (pagination or scrolls)
    """
    from emergent.browser.model import ExtractionTemplate

    if template is None:
        raise ValidationError("browser.extract needs a template", field="template",
                              hint="pass the name of a saved template (`emergent browser templates` lists them)")
    if url is not None and session is not None:
        raise ValidationError("give url or session, not both", field="url",
                              hint="session: its current page; url: a fresh page at that URL")
    if max_pages is not None and max_pages < 1:
        raise ValidationError(f"max_pages must be ≥ 1, got {max_pages}", field="max_pages")
    svc = _service(ctx)
    if isinstance(template, dict):
        t: Any = ExtractionTemplate.parse(template)
    else:
        t = svc.template(template, version) if version is not None else template
    frame = svc.extract(t, by=ctx.principal, url=url, session=session, max_pages=max_pages)
    return frame_result(frame)


@tool(name="browser.replay", version=VERSION, side_effect=SideEffect.EXTERNAL, permissions=PERMISSIONS,
      resource="script", tags=TAGS, timeout=900.0)
def browser_replay(script: str, ctx: ToolContext, params: dict[str, str] | None = None,
                   version: str | None = None, heal: bool = True, check: bool = False) -> dict[str, Any]:
    """Replay a saved browser script in a fresh session, healing locators that no longer match.

    Args:
        script: the saved script's name
        params: values of the script's parameters
        version: the script version (default: the newest active one)
        heal: try alternatives, similarity and the model when a locator fails (a healed script is proposed as a new version)
        check: raise when the replay fails (a workflow step then fails) instead of returning the failed result
    """
    svc = _service(ctx)
    result = svc.replay(script, {str(k): str(v) for k, v in (params or {}).items()}, by=ctx.principal,
                        version=version, heal=heal)
    data: dict[str, Any] = result.model_dump(mode="json")
    data["healed"] = result.healed
    if check and result.status != "completed":
        raise ToolExecutionError(f"replay of {result.script} {result.version} failed (run {result.run_id}): "
                                 f"{result.error}", hint=f"`emergent browser runs --script {result.script}` shows "
                                 "the run; its trace shows each step", run=result.run_id, script=result.script)
    return data


@tool(name="browser.close", version=VERSION, side_effect=SideEffect.READ, permissions=("browser",), tags=TAGS,
      timeout=60.0)
def browser_close(session: str, ctx: ToolContext) -> dict[str, Any]:
    """Close one of your browser sessions (its page, cookies and storage are discarded).

    Args:
        session: the session id browser.open returned
    """
    _service(ctx).session(session, by=ctx.principal).close()
    return {"session": session, "closed": True}


TOOLS = [browser_open, browser_act, browser_extract, browser_replay, browser_close]

__all__ = ["TOOLS", "browser_act", "browser_close", "browser_extract", "browser_open", "browser_replay",
           "frame_result"]
