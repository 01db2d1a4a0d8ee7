"""ipywidgets panels: they read and act through the workstation services only (never the stores).

``from emergent.ui import Chat, Dashboard`` (imported on first use: ``import emergent.ui`` stays light)."""

from __future__ import annotations

from typing import Any

_LAZY = {"Chat": "emergent.ui.chat", "Dashboard": "emergent.ui.dashboard", "WorkflowRuns": "emergent.ui.workflows",
         "AgentMonitor": "emergent.ui.agents"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emergent.ui' has no attribute {name!r}")


__all__ = ["AgentMonitor", "Chat", "Dashboard", "WorkflowRuns"]
