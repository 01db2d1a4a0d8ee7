"""Analyzers: read telemetry and analytics, emit signals with their evidence.

Each analyzer reads one figure of another capability through that capability's own read method
(tool telemetry, memory operations, decided approvals, job runs: the :class:`Sources` the
Workstation wires), never its tables, and emits a :class:`Signal` when a figure passes its target.
The evidence holds the numbers *and the call that produced them* (``query``), so anyone can re-run
it in a notebook. An analyzer whose source is not wired, or whose table is missing (a capability not
installed), is skipped and reported, never fatal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa

from emergent.registry import Registry

#: (control values, candidate values, result) of a past experiment in one config namespace
PastExperiment = tuple[dict[str, Any], dict[str, Any], dict[str, Any]]


@dataclass(frozen=True)
class Sources:
    """The read methods of other services that the analyzers (and impact analysis) use; None: that
    capability is not available here. Each takes the start of the window (epoch seconds)."""

    tool_calls: Callable[[float], list[dict[str, Any]]] | None = None  # Telemetry.window
    tool_latencies: Callable[[str, float], list[float]] | None = None  # Telemetry.latencies(tool, since)
    memory_ops: Callable[[float], list[dict[str, Any]]] | None = None  # memory.analytics.operation_totals
    approvals: Callable[[float], Sequence[Any]] | None = None  # ApprovalQueue.decided
    job_runs: Callable[[float], list[dict[str, Any]]] | None = None  # JobService.run_totals
    experiments: Callable[[str], list[PastExperiment]] | None = None  # impact.past_experiments(namespace)


#: how to re-run each read in a notebook (recorded as the evidence's ``query``)
CALLS = {"tool_calls": "ws.tools.telemetry.window(since={since!r})",
         "tool_latencies": "ws.tools.telemetry.latencies({tool!r}, since={since!r})",
         "memory_ops": "emergent.memory.analytics.operation_totals(ws.sql, since={since!r})",
         "approvals": "ws.autonomy.approvals.decided(since={since!r})",
         "job_runs": "ws.jobs.run_totals(since={since!r})"}


class SourceMissing(LookupError):
    """An analyzer's source is not wired (the capability is not available)."""


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
    sources: Sources
    now: float
    targets: Targets = field(default_factory=Targets)

    @property
    def since(self) -> float:
        return self.now - self.targets.window_days * 86400.0

    def read(self, source: str, *args: Any) -> tuple[Any, dict[str, Any]]:
        """``source``'s rows for this window (``args`` come before the window's start), and the
        evidence: the call that re-runs the read, and its parameters."""
        fn = getattr(self.sources, source)
        if fn is None:
            raise SourceMissing(source)
        params = {**({"tool": args[0]} if args else {}), "since": self.since}
        return fn(*args, self.since), {"query": CALLS[source].format(**params), "params": params}


Analyzer = Callable[[Context], list[Signal]]
ANALYZERS: Registry[Analyzer] = Registry("analyzer", group="emergent.analyzers")


def tools(ctx: Context) -> list[Signal]:
    rows, ev = ctx.read("tool_calls")
    t = ctx.targets
    out = []
    for r in rows:
        if r["calls"] < t.min_calls:
            continue
        numbers = dict(r)
        rate = r["failures"] / r["calls"]
        if rate > t.tool_failure_rate:
            out.append(Signal("tool_failure_rate", r["tool"], rate, t.tool_failure_rate,
                              f"tool {r['tool']} fails {rate:.0%} of {r['calls']} calls (target ≤ "
                              f"{t.tool_failure_rate:.0%})", {**ev, "numbers": numbers}))
        if r["circuit_open"]:
            out.append(Signal("circuit_open", r["tool"], float(r["circuit_open"]), 0.0,
                              f"the circuit breaker of {r['tool']} refused {r['circuit_open']} calls",
                              {**ev, "numbers": numbers}))
        p95, p95_ev = _p95(ctx, r["tool"])
        if p95 > t.tool_p95_latency_ms:
            out.append(Signal("tool_latency", r["tool"], p95, t.tool_p95_latency_ms,
                              f"tool {r['tool']} p95 latency {p95:.0f} ms (target ≤ {t.tool_p95_latency_ms:.0f} ms)",
                              {**p95_ev, "numbers": {**numbers, "p95_latency_ms": p95}}))
    return out


def _p95(ctx: Context, tool: str) -> tuple[float, dict[str, Any]]:
    xs, ev = ctx.read("tool_latencies", tool)
    return (float(xs[min(len(xs) - 1, int(0.95 * len(xs)))]) if xs else 0.0), ev


def memory(ctx: Context) -> list[Signal]:
    rows, ev = ctx.read("memory_ops")
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


def approvals(ctx: Context) -> list[Signal]:
    decided, ev = ctx.read("approvals")
    counts: dict[tuple[str, str], dict[str, Any]] = {}
    for a in decided:  # approved and then used ("consumed") counts as approved
        c = counts.setdefault((a.tool, a.actor), {"tool": a.tool, "actor": a.actor, "decided": 0, "approved": 0})
        c["decided"] += 1
        c["approved"] += a.status in ("approved", "consumed")
    t = ctx.targets
    out = []
    for r in (counts[k] for k in sorted(counts)):
        rate = r["approved"] / r["decided"]
        if r["decided"] >= t.min_approvals and rate >= t.approval_friction:
            out.append(Signal("approval_friction", f"{r['actor']}|{r['tool']}", rate, t.approval_friction,
                              f"{r['approved']} of {r['decided']} approvals of {r['tool']} for {r['actor']} were "
                              "granted: the question costs time and changes nothing", {**ev, "numbers": r}))
    return out


def jobs(ctx: Context) -> list[Signal]:
    rows, ev = ctx.read("job_runs")
    t = ctx.targets
    return [Signal("job_failures", r["job"], r["failed"] / r["runs"], t.job_failure_rate,
                   f"scheduled job {r['job']} failed {r['failed']} of {r['runs']} runs", {**ev, "numbers": r})
            for r in rows if r["runs"] >= t.min_runs and r["failed"] / r["runs"] > t.job_failure_rate]


for _name, _fn in (("tools", tools), ("memory", memory), ("approvals", approvals), ("jobs", jobs)):
    ANALYZERS.register(_name, _fn)


def run_analyzers(sources: Sources, now: float, targets: Targets | None = None,
                  names: list[str] | None = None) -> tuple[list[Signal], dict[str, str]]:
    """All signals, and the analyzers that were skipped with the reason."""
    ctx = Context(sources, now, targets or Targets())
    signals: list[Signal] = []
    skipped: dict[str, str] = {}
    for name in names or ANALYZERS.names():
        try:
            signals += ANALYZERS.get(name)(ctx)
        except SourceMissing as exc:
            skipped[name] = f"no {exc.args[0]} source here (capability not available)"
        except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
            skipped[name] = f"table not available: {str(exc.orig).splitlines()[0]}"
    return signals, skipped
