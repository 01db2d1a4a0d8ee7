"""Tool-call telemetry: one SQL row per call, written in batches; statistics per tool version.

Rows are buffered in memory and inserted with one ``executemany`` every ``flush_every`` rows,
every ``flush_interval`` seconds (a daemon thread), before any read, and on close.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from emergent.audit import insert_many
from emergent.stores.batching import BatchWriter
from emergent.tools.tables import tool_calls

if TYPE_CHECKING:  # pragma: no cover
    from emergent.stores.sql import SQLStore

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

    def __init__(self, sql: SQLStore, *, flush_every: int = 1000, flush_interval: float | None = 1.0) -> None:
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

    # ------------------------------------------------------------------ reads for other services
    def window(self, since: float) -> list[dict[str, Any]]:
        """Per tool, the calls made at or after ``since``: ``tool``, ``calls``, ``failures`` (outcome
        not ok), ``circuit_open``, ``timeouts``, ``mean_latency_ms``, ``max_latency_ms``; by tool name."""
        self.flush()
        t = tool_calls
        q = (sa.select(t.c.tool, sa.func.count().label("calls"),
                       sa.func.sum(sa.case((t.c.outcome != "ok", 1), else_=0)).label("failures"),
                       sa.func.sum(sa.case((t.c.outcome == "circuit_open", 1), else_=0)).label("circuit_open"),
                       sa.func.sum(sa.case((t.c.outcome == "timeout", 1), else_=0)).label("timeouts"),
                       sa.func.avg(t.c.latency_ms).label("mean_latency_ms"),
                       sa.func.max(t.c.latency_ms).label("max_latency_ms"))
             .where(t.c.at >= since).group_by(t.c.tool).order_by(t.c.tool))
        with self.sql.connect() as conn:
            return [{"tool": r.tool, "calls": int(r.calls), "failures": int(r.failures or 0),
                     "circuit_open": int(r.circuit_open or 0), "timeouts": int(r.timeouts or 0),
                     "mean_latency_ms": float(r.mean_latency_ms or 0.0), "max_latency_ms": float(r.max_latency_ms or 0.0)}
                    for r in conn.execute(q)]

    def latencies(self, tool: str, since: float) -> list[float]:
        """The latencies (ms, ascending) of ``tool``'s calls at or after ``since``."""
        self.flush()
        q = (sa.select(tool_calls.c.latency_ms).where(tool_calls.c.at >= since, tool_calls.c.tool == tool)
             .order_by(tool_calls.c.latency_ms))
        with self.sql.connect() as conn:
            return [float(r[0]) for r in conn.execute(q)]
