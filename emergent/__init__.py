"""Emergent: a Jupyter-centric research workstation for an autonomous AI assistant.

The public API is re-exported lazily so ``import emergent`` stays cheap (no torch, no UI, no
playwright): ``Workstation``, ``Memory``, ``Scope``, ``Kind``, ``errors``.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from emergent import errors

__version__ = "0.1.0"

# Third-party notices that are about our own, deliberate use and that users cannot act on: lancedb
# warns in every forked child (our sandbox forks before exec, and the sandbox's own child would
# print it into a tool's stderr and a notebook's output). The filter is inherited by forked children.
warnings.filterwarnings("ignore", message="lancedb fork support is experimental", category=RuntimeWarning)

_LAZY = {
    "Workstation": "emergent.workstation",
    "Settings": "emergent.config",
    "Memory": "emergent.memory.service",
    "Scope": "emergent.memory.types",
    "Kind": "emergent.memory.types",
    "FakeClock": "emergent.clock",
}

if TYPE_CHECKING:  # pragma: no cover
    from emergent.clock import FakeClock
    from emergent.config import Settings
    from emergent.memory.service import Memory
    from emergent.memory.types import Kind, Scope
    from emergent.workstation import Workstation


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emergent' has no attribute {name!r}")


def load_ipython_extension(ipython: Any) -> None:
    """``%load_ext emergent``: register the magics (see emergent.magics)."""
    from emergent.magics import load_ipython_extension as _load

    _load(ipython)


__all__ = ["FakeClock", "Kind", "Memory", "Scope", "Settings", "Workstation", "__version__", "errors"]
