"""Analyzers: read telemetry and analytics, emit signals with their evidence.

Each analyzer runs one SQL query over another capability's table (tool calls, memory operations,
approvals, job runs) and emits a :class:`Signal` when a figure passes its target. The evidence holds
the numbers *and the query that produced them*, so anyone can re-run it. An analyzer whose table is
missing (a capability not installed) is skipped and reported, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from emergent.registry import Registry


@dataclass(frozen=True)
class Targets:
    window_days: float = 7.0
    tool_failure_rate: float = 0.05
    tool_p95_latency_ms: float = 2000.0
    min_calls: int = 20
    recall_hit_rate: float = 0.6
    min_recalls: int = 20
    memory_writes_per_day: float = 5000.0
    approval_friction: float = 0.95
    min_approvals: int = 10
    job_failure_rate: float = 0.2
    min_runs: int = 3


@dataclass(frozen=True)
class Signal:
    kind: str
    subject: str
    value: float
    target: float
    summary: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.kind}:{self.subject}"

    @property
    def severity(self) -> float:
        """How far past the target, as a ratio (>1 is worse)."""
        if self.kind in ("low_recall_hit_rate",):
            return self.target / self.value if self.value > 0 else 10.0
        return self.value / self.target if self.target > 0 else 10.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": self.severity}


@dataclass
class Context:
    sql: Any
    now: float
    targets: Targets = field(default_factory=Targets)

    @property
    def since(self) -> float:
        return self.now - self.targets.window_days * 86400.0


Analyzer = Callable[[Context], list[Signal]]
ANALYZERS: Registry[Analyzer] = Registry("analyzer", group="emergent.analyzers")


def _query(ctx: Context, sql: str, **params: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    with ctx.sql.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(sa.text(sql), {"since": ctx.since, **params})]
    return rows, {"query": " ".join(sql.split()), "params": {"since": ctx.since, **params}}


TOOL_SQL = """SELECT tool, COUNT(*) AS calls,
  SUM(CASE WHEN outcome <> 'ok' THEN 1 ELSE 0 END) AS failures,
  SUM(CASE WHEN outcome = 'circuit_open' THEN 1 ELSE 0 END) AS circuit_open,
  SUM(CASE WHEN outcome = 'timeout' THEN 1 ELSE 0 END) AS timeouts,
  AVG(latency_ms) AS mean_latency_ms, MAX(latency_ms) AS max_latency_ms
FROM tool_calls WHERE at >= :since GROUP BY tool ORDER BY tool"""


def tools(ctx: Context) -> list[Signal]:
    rows, ev = _query(ctx, TOOL_SQL)
    t = ctx.targets
    out = []
    for r in rows:
        if r["calls"] < t.min_calls:
            continue
        numbers = {k: (float(v) if isinstance(v, float) else v) for k, v in r.items()}
        rate = r["failures"] / r["calls"]
        if rate > t.tool_failure_rate:
            out.append(Signal("tool_failure_rate", r["tool"], rate, t.tool_failure_rate,
                              f"tool {r['tool']} fails {rate:.0%} of {r['calls']} calls (target ≤ "
                              f"{t.tool_failure_rate:.0%})", {**ev, "numbers": numbers}))
        if r["circuit_open"]:
            out.append(Signal("circuit_open", r["tool"], float(r["circuit_open"]), 0.0,
                              f"the circuit breaker of {r['tool']} refused {r['circuit_open']} calls",
                              {**ev, "numbers": numbers}))
        p95 = _p95(ctx, r["tool"])
        if p95 > t.tool_p95_latency_ms:
            out.append(Signal("tool_latency", r["tool"], p95, t.tool_p95_latency_ms,
                              f"tool {r['tool']} p95 latency {p95:.0f} ms (target ≤ {t.tool_p95_latency_ms:.0f} ms)",
                              {**ev, "numbers": {**numbers, "p95_latency_ms": p95}}))
    return out


def _p95(ctx: Context, tool: str) -> float:
    rows, _ = _query(ctx, "SELECT latency_ms FROM tool_calls WHERE at >= :since AND tool = :tool "
                          "ORDER BY latency_ms", tool=tool)
    xs = [r["latency_ms"] for r in rows]
    return float(xs[min(len(xs) - 1, int(0.95 * len(xs)))]) if xs else 0.0


MEMORY_SQL = """SELECT op, COUNT(*) AS calls, SUM(count) AS items,
  SUM(CASE WHEN hit THEN 1 ELSE 0 END) AS hits, AVG(latency_ms) AS mean_latency_ms
FROM memory_ops WHERE at >= :since GROUP BY op ORDER BY op"""


def memory(ctx: Context) -> list[Signal]:
    rows, ev = _query(ctx, MEMORY_SQL)
    t = ctx.targets
    by_op = {r["op"]: r for r in rows}
    out = []
    rec = by_op.get("recall")
    if rec and rec["calls"] >= t.min_recalls:
        rate = (rec["hits"] or 0) / rec["calls"]
        if rate < t.recall_hit_rate:
            out.append(Signal("low_recall_hit_rate", "memory", rate, t.recall_hit_rate,
                              f"only {rate:.0%} of {rec['calls']} recalls found anything (target ≥ "
                              f"{t.recall_hit_rate:.0%})", {**ev, "numbers": by_op}))
    writes = sum((by_op.get(op) or {}).get("items") or 0 for op in ("remember", "ingest"))
    per_day = writes / t.window_days
    if per_day > t.memory_writes_per_day:
        out.append(Signal("memory_growth", "memory", per_day, t.memory_writes_per_day,
                          f"memory grows by {per_day:.0f} items/day (target ≤ {t.memory_writes_per_day:.0f})",
                          {**ev, "numbers": by_op}))
    return out


APPROVALS_SQL = """SELECT tool, actor, COUNT(*) AS decided,
  SUM(CASE WHEN status = 'approved' THEN 1 ELSE 0 END) AS approved
FROM approvals WHERE created_at >= :since AND status IN ('approved', 'rejected')
GROUP BY tool, actor ORDER BY tool, actor"""


def approvals(ctx: Context) -> list[Signal]:
    rows, ev = _query(ctx, APPROVALS_SQL)
    t = ctx.targets
    out = []
    for r in rows:
        rate = r["approved"] / r["decided"]
        if r["decided"] >= t.min_approvals and rate >= t.approval_friction:
            out.append(Signal("approval_friction", f"{r['actor']}|{r['tool']}", rate, t.approval_friction,
                              f"{r['approved']} of {r['decided']} approvals of {r['tool']} for {r['actor']} were "
                              "granted: the question costs time and changes nothing", {**ev, "numbers": r}))
    return out


JOBS_SQL = """SELECT job, COUNT(*) AS runs, SUM(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed
FROM job_runs WHERE started_at >= :since GROUP BY job ORDER BY job"""


def jobs(ctx: Context) -> list[Signal]:
    rows, ev = _query(ctx, JOBS_SQL)
    t = ctx.targets
    return [Signal("job_failures", r["job"], r["failed"] / r["runs"], t.job_failure_rate,
                   f"scheduled job {r['job']} failed {r['failed']} of {r['runs']} runs", {**ev, "numbers": r})
            for r in rows if r["runs"] >= t.min_runs and r["failed"] / r["runs"] > t.job_failure_rate]


for _name, _fn in (("tools", tools), ("memory", memory), ("approvals", approvals), ("jobs", jobs)):
    ANALYZERS.register(_name, _fn)


def run_analyzers(sql: Any, now: float, targets: Targets | None = None,
                  names: list[str] | None = None) -> tuple[list[Signal], dict[str, str]]:
    """All signals, and the analyzers that were skipped with the reason."""
    ctx = Context(sql, now, targets or Targets())
    signals: list[Signal] = []
    skipped: dict[str, str] = {}
    for name in names or ANALYZERS.names():
        try:
            signals += ANALYZERS.get(name)(ctx)
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            skipped[name] = f"table not available: {str(exc.orig).splitlines()[0]}"
    return signals, skipped
