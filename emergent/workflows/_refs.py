"""References and conditions of workflow steps, resolved against a run's inputs and outputs (no eval)."""

from __future__ import annotations

import json
from typing import Any

from emergent.workflows.spec import REF, TYPES


class Missing(Exception):  # noqa: N818 - internal signal, turned into a step's failure naming it
    pass


def lookup(path: str, inputs: dict[str, Any], outputs: dict[str, Any], item: Any) -> Any:
    parts = path.split(".")
    if parts[0] == "inputs":
        value, rest = inputs.get(parts[1]), parts[2:]
    elif parts[0] == "steps":
        value, rest = outputs.get(parts[1]), parts[3:]
    else:
        value, rest = item, parts[1:]
    for p in rest:
        if value is None:
            return None  # a skipped step's output (or a null) reads None all the way down
        if isinstance(value, dict) and p in value:
            value = value[p]
        elif isinstance(value, list | tuple) and p.lstrip("-").isdigit() and -len(value) <= int(p) < len(value):
            value = value[int(p)]
        else:
            keys = f" (keys: {', '.join(map(str, list(value)[:10]))})" if isinstance(value, dict) else ""
            raise Missing(f"${{{path}}}: {p!r} is not in {type(value).__name__}{keys}")
    return value


def resolve(value: Any, inputs: dict[str, Any], outputs: dict[str, Any], item: Any) -> Any:
    """``value`` with its references replaced: a whole-string reference keeps the value's type."""
    if isinstance(value, str):
        if "${" not in value:
            return value
        m = REF.fullmatch(value.strip())
        if m is not None:
            return lookup(m.group(1).strip(), inputs, outputs, item)
        return REF.sub(lambda mm: text(lookup(mm.group(1).strip(), inputs, outputs, item)), value)
    if isinstance(value, dict):
        return {k: resolve(v, inputs, outputs, item) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, inputs, outputs, item) for v in value]
    return value


def text(v: Any) -> str:
    return v if isinstance(v, str) else json.dumps(v, ensure_ascii=False, default=str)


def holds(op: str, left: Any, right: Any) -> bool:
    """A condition, without eval."""
    if op == "truthy":
        return bool(left)
    if op == "falsy":
        return not left
    if op == "eq":
        return bool(left == right)
    if op == "ne":
        return bool(left != right)
    if op == "in":
        return left in right if right is not None else False
    compare = {"gt": lambda a, b: a > b, "ge": lambda a, b: a >= b, "lt": lambda a, b: a < b,
               "le": lambda a, b: a <= b}[op]
    return bool(compare(left, right))


def type_ok(expected: str, value: Any) -> bool:
    if expected == "any":
        return True
    if expected == "number" and isinstance(value, bool):
        return False
    return isinstance(value, TYPES[expected])


__all__ = ["Missing", "holds", "lookup", "resolve", "text", "type_ok"]
