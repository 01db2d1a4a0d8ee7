"""Tools: a versioned registry, a runner with wrappers (retry, breaker, approval, audit,
telemetry), a sandbox and the built-in tools. Integrations live in ``emergent.tools.integrations``.

``from emergent.tools import tool, SideEffect, ToolContext`` is all a tool author needs.
"""

from __future__ import annotations

from typing import Any

from emergent.tools.spec import NO_RETRY, RetryPolicy, SideEffect, ToolContext, ToolSpec, tool

_LAZY = {
    "ToolRegistry": "emergent.tools.registry",
    "ToolRunner": "emergent.tools.runner",
    "ToolService": "emergent.tools.service",
    "Sandbox": "emergent.tools.sandbox",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emergent.tools' has no attribute {name!r}")


__all__ = ["NO_RETRY", "RetryPolicy", "SideEffect", "ToolContext", "ToolRegistry", "ToolRunner", "ToolService",
           "ToolSpec", "Sandbox", "tool"]
