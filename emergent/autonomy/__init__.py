"""The autonomy gate: permission matrix, confidence thresholds, approvals, overrides, pause and
suspension, and the hash-chained audit trail. See :class:`emergent.autonomy.service.Autonomy`."""

from __future__ import annotations

from typing import Any

_LAZY = {
    "Autonomy": "emergent.autonomy.service",
    "AuditLog": "emergent.audit",
    "ApprovalQueue": "emergent.autonomy.approvals",
    "Rule": "emergent.autonomy.policy",
    "Request": "emergent.autonomy.policy",
    "Decision": "emergent.autonomy.policy",
    "Matrix": "emergent.autonomy.policy",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'emergent.autonomy' has no attribute {name!r}")


__all__ = sorted(_LAZY)
