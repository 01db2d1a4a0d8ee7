"""Integration operations as tools: one ``@tool`` per (vendor, operation), whose arguments are the
client method's typed parameters and whose :class:`ToolContext` supplies the settings. A client is
built per call (so a changed credential takes effect at once) and closed afterwards."""

from __future__ import annotations

import inspect
from typing import Any, get_type_hints

from emergent.tools.spec import NO_RETRY, RetryPolicy, SideEffect, ToolContext, ToolSpec, tool

VERSION = "1.0.0"
#: the argument the permission matrix matches resource patterns against, first found wins
RESOURCE_PARAMS = ("channel", "repo", "project", "key", "team_key", "team_id", "issue_id", "incident_id",
                   "service_id", "page_id", "parent_page_id", "block_id", "data_source_id", "space_id",
                   "folder", "event")
READ_RETRY = RetryPolicy(attempts=3, initial=0.2, max_wait=5.0)


def integration_settings(ctx: ToolContext) -> Any:
    """The integrations part of the context's settings; from the environment when the call has none."""
    s = ctx.settings
    if s is None:
        from emergent.config import IntegrationSettings

        return IntegrationSettings()
    return getattr(s, "integrations", s)


def _wrap(cls: Any, op: str) -> Any:
    method = getattr(cls, op)
    hints = get_type_hints(method)
    sig = inspect.signature(method)
    params = [p for name, p in sig.parameters.items() if name != "self"]
    params.append(inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=ToolContext))

    def run(*args: Any, ctx: ToolContext, **kwargs: Any) -> Any:
        client = cls.from_settings(integration_settings(ctx))
        try:
            return getattr(client, op)(*args, **kwargs)
        finally:
            client.close()

    run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
    run.__annotations__ = {**hints, "ctx": ToolContext}
    run.__doc__ = inspect.getdoc(method) or f"{cls.title}: {op.replace('_', ' ')}."
    run.__name__ = run.__qualname__ = f"{cls.name}_{op}"
    run.__module__ = cls.__module__
    return run, [p.name for p in params]


def specs_for(cls: Any) -> list[ToolSpec]:
    """The ToolSpecs of one integration class (one per entry of ``cls.operations``)."""
    out = []
    for op, level in cls.operations.items():
        run, names = _wrap(cls, op)
        read = SideEffect(level) is SideEffect.READ
        out.append(tool(run, name=f"{cls.name}.{op}", version=VERSION, side_effect=level,
                        permissions=("net", f"integration:{cls.name}"), timeout=120.0,
                        retry=READ_RETRY if read else NO_RETRY,
                        resource=next((n for n in RESOURCE_PARAMS if n in names), None),
                        tags=("integration", cls.name)))
    return out
