"""Helpers shared by the routers: JSON-safe values, the 202 description."""

from __future__ import annotations

import dataclasses
import datetime as _dt
import enum
import math
from typing import Any

from emergent.api.errors import PROBLEM, Problem

#: an operation that may wait for a person's approval documents its 202 (problem details with ``approval``)
PENDING: dict[int | str, dict[str, Any]] = {
    202: {"model": Problem, "content": {PROBLEM: {}},
          "description": "the action waits for a person's approval: problem details with the approval id"}}


def jsonable(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON can carry it: non-finite floats become null, unknown objects their text."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if depth > 32:
        return str(value)
    if isinstance(value, dict):
        return {str(k): jsonable(v, depth + 1) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [jsonable(v, depth + 1) for v in value]
    if isinstance(value, enum.Enum):
        return jsonable(value.value, depth + 1)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, _dt.datetime | _dt.date):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)}, depth + 1)
    to_dict = getattr(value, "to_dict", None) or getattr(value, "model_dump", None)
    if callable(to_dict):
        try:
            return jsonable(to_dict(), depth + 1)
        except Exception:  # noqa: BLE001 - fall back to the text
            pass
    try:
        import numpy as np

        if isinstance(value, np.generic):
            return jsonable(value.item(), depth + 1)
        if isinstance(value, np.ndarray):
            return jsonable(value.tolist(), depth + 1)
    except ImportError:  # pragma: no cover
        pass
    return str(value)
