"""Tool-call telemetry: one SQL row per call, written in batches; statistics per tool version.

Rows are buffered in memory and inserted with one ``executemany`` every ``flush_every`` rows,
every ``flush_interval`` seconds (a daemon thread), before any read, and on close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import sqlalchemy as sa

from emergent.audit import insert_many
from emergent.stores.batching import BatchWriter
from emergent.tools.tables import tool_calls

_COLS = ("at", "call_id", "tool", "version", "actor", "latency_ms", "outcome", "attempts", "error_class", "error")


@dataclass(frozen=True, slots=True)
class ToolStats:
    tool: str
    version: str
    calls: int
    success_rate: float
    p50_ms: float
    p95_ms: float
    last_error: str | None
    last_error_at: float | None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


class Telemetry(BatchWriter):
    thread_name = "telemetry-flush"

    def __init__(self, sql: Any, *, flush_every: int = 1000, flush_interval: float | None = 1.0) -> None:
        super().__init__(flush_every=flush_every, flush_interval=flush_interval)
        self.sql = sql

    def record(self, row: tuple[Any, ...]) -> None:
        """``row`` follows the column order: at, call_id, tool, version, actor, latency_ms, outcome,
        attempts, error_class, error."""
        self._add(row)

    def _write(self, batch: list[Any]) -> None:
        with self.sql.begin() as conn:
            insert_many(conn, tool_calls, _COLS, batch)

    def rows(self, tool: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        self.flush()
        q = sa.select(tool_calls).order_by(tool_calls.c.id.desc()).limit(limit)
        if tool:
            q = q.where(tool_calls.c.tool == tool)
        with self.sql.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def stats(self, tool: str | None = None) -> list[ToolStats]:
        """Calls, success rate, p50/p95 latency and the last error for every tool version."""
        self.flush()
        q = sa.select(tool_calls.c.tool, tool_calls.c.version, tool_calls.c.latency_ms, tool_calls.c.outcome,
                      tool_calls.c.error_class, tool_calls.c.error, tool_calls.c.at).order_by(tool_calls.c.id)
        if tool:
            q = q.where(tool_calls.c.tool == tool)
        groups: dict[tuple[str, str], list[Any]] = {}
        with self.sql.connect() as conn:
            for r in conn.execute(q):
                groups.setdefault((r.tool, r.version), []).append(r)
        out = []
        for (name, version), rows in sorted(groups.items()):
            lat = np.array([r.latency_ms for r in rows])
            ok = sum(1 for r in rows if r.outcome == "ok")
            errs = [r for r in rows if r.outcome != "ok"]
            last = errs[-1] if errs else None
            out.append(ToolStats(name, version, len(rows), ok / len(rows), float(np.percentile(lat, 50)),
                                 float(np.percentile(lat, 95)),
                                 f"{last.error_class}: {last.error}" if last else None,
                                 last.at if last else None))
        return out
