"""Benchmarks: ``emergent bench <area>`` prints our figure beside a baseline measured in the same run.

Each area is a module exposing ``run(args: dict) -> dict`` (the JSON object ``--json`` prints) and,
optionally, ``table(result) -> list[tuple[metric, ours, baseline, target]]`` for the rich table.
Areas register in :data:`BENCHES` by module path (imported only when run), exactly as a third-party
package would through the ``emergent.benches`` entry-point group.

``args`` always carries ``size``, ``data``, ``k`` and ``out`` (``None`` when not given); a bench
reads what it needs and ignores the rest.
"""

from __future__ import annotations

import importlib
import json
import math
import statistics
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import Any

from emergent.errors import ConfigError
from emergent.registry import Registry

Row = tuple[str, Any, Any, Any]

BENCHES: Registry[str] = Registry("benchmark", group="emergent.benches")
for _name in ("memory", "locomo", "tools", "jobs", "graph", "experiments", "assistant", "mcp", "workflows", "browser", "api"):
    BENCHES.register(_name, f"emergent.bench.{_name}")


def load(area: str) -> ModuleType:
    """The module of benchmark ``area``, with a clear error when it is registered but missing."""
    path = BENCHES.get(area)
    try:
        module = importlib.import_module(path)
    except ModuleNotFoundError as exc:
        if exc.name and path.startswith(exc.name):
            raise ConfigError(
                f"benchmark {area!r} is registered as {path!r}, but that module does not exist yet",
                hint=f"available now: {', '.join(available()) or 'none'}",
                area=area,
            ) from None
        raise  # a dependency of the bench is missing: let its own message through
    if not callable(getattr(module, "run", None)):
        raise ConfigError(f"benchmark module {path!r} has no run(args) function", area=area)
    return module


def available() -> list[str]:
    """Registered areas whose module can be found."""
    import importlib.util

    out = []
    for name in BENCHES.names():
        try:
            if importlib.util.find_spec(BENCHES.get(name)) is not None:
                out.append(name)
        except ModuleNotFoundError:
            continue
    return out


def run(area: str, args: dict[str, Any]) -> tuple[dict[str, Any], list[Row]]:
    """Run one benchmark; returns its JSON object (with ``machine``) and its table rows."""
    module = load(area)
    before = machine()
    result = module.run(dict(args))
    after = machine()
    result["machine"] = {**after, "load_avg_1m_before": before["load_avg_1m"]}
    table: Callable[[dict[str, Any]], Sequence[Row]] | None = getattr(module, "table", None)
    rows = list(table(result)) if table else default_rows(result)
    return result, rows


def machine() -> dict[str, Any]:
    """The machine a figure was measured on: CPU model, cores, load averages (our machines differ
    about 3x in absolute speed, which is why every target is a ratio to a same-run baseline)."""
    import os
    import platform

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:  # pragma: no cover - platforms without load averages
        load = (math.nan, math.nan, math.nan)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 0)
    return {"cpu": model, "cores": cores, "load_avg_1m": round(load[0], 2), "load_avg_5m": round(load[1], 2),
            "load_avg_15m": round(load[2], 2), "python": platform.python_version()}


def describe_machine(m: dict[str, Any]) -> str:
    return (f"{m.get('cpu')}, {m.get('cores')} cores, load {m.get('load_avg_1m_before', m.get('load_avg_1m'))} "
            f"before / {m.get('load_avg_1m')} after (1-min average)")


def default_rows(result: dict[str, Any]) -> list[Row]:
    """One row per scalar key when a bench offers no ``table``."""
    return [(k, v, "", "") for k, v in result.items() if isinstance(v, (int, float, str, bool)) or v is None]


# ------------------------------------------------------------------------------ helpers
def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) by linear interpolation; NaN for no samples."""
    if not samples:
        return math.nan
    xs = sorted(samples)
    pos = (len(xs) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def median(samples: Sequence[float]) -> float:
    return statistics.median(samples) if samples else math.nan


def ratio(ours: float, baseline: float) -> float:
    return ours / baseline if baseline else math.nan


def fmt(value: Any) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return "" if value is None else str(value)


def to_json(result: dict[str, Any]) -> str:
    """One JSON object; NaN and infinities become null so any JSON parser accepts it."""

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {str(k): clean(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(result), default=str, allow_nan=False)
