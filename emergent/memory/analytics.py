"""Memory analytics: what is stored where, how strong it still is, and how recall performs.

:func:`memory_stats` (what ``Memory.stats()`` returns) reads every tier (short-term items, the
long-term table, the archive) and the operation log (this process's recent samples from
``Memory.operations()`` plus the ``memory_ops`` SQL table, which other processes on the workspace
write too) into polars DataFrames. Strength is the forgetting curve's retention now
(:func:`emergent.memory.decay.retention` of the time since last access and the stability).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl
import sqlalchemy as sa

from emergent.clock import iso
from emergent.memory import decay

if TYPE_CHECKING:  # pragma: no cover
    from emergent.memory.service import Memory

BINS = 10
OPS_WINDOW = 10_000  # most recent operations read from SQL
_COLS = ["kind", "agent", "user_id", "session_id", "stability", "last_accessed", "importance"]
_REC_SCHEMA = {"tier": pl.String, "kind": pl.String, "agent": pl.String, "user_id": pl.String,
               "session_id": pl.String, "stability": pl.Float64, "last_accessed": pl.Float64,
               "importance": pl.Float64}
_OPS_SCHEMA = {"at": pl.Float64, "op": pl.String, "scope": pl.String, "count": pl.Int64,
               "latency_ms": pl.Float64, "hit": pl.Boolean}


@dataclass
class MemoryStatsReport:
    """Statistics of one memory at one moment; frames for notebooks, text and dicts for the rest."""

    at: float
    counts: pl.DataFrame  # tier, kind, agent, scope, n
    strength: pl.DataFrame  # tier, bin, lo, hi, n
    latency: pl.DataFrame  # op, n, p50_ms, p95_ms, mean_ms
    hits: pl.DataFrame  # op, calls, hits, hit_rate
    totals: dict[str, Any]

    # ---------------------------------------------------------------- views
    def _by(self, column: str) -> pl.DataFrame:
        return self.counts.group_by(column).agg(pl.col("n").sum()).sort(["n", column], descending=[True, False])

    @property
    def by_kind(self) -> pl.DataFrame:
        return self._by("kind")

    @property
    def by_scope(self) -> pl.DataFrame:
        return self._by("scope")

    @property
    def by_tier(self) -> pl.DataFrame:
        order = {"stm": 0, "ltm": 1, "archive": 2}
        return self._by("tier").sort(pl.col("tier").replace_strict(order, default=9))

    # ---------------------------------------------------------------- output
    def summary(self) -> str:
        t = self.totals
        lines = [
            f"Memory statistics at {iso(self.at)}",
            f"  memories   {t['stm']} short-term, {t['ltm']} long-term, {t['archive']} archived "
            f"({t['total']} total) in {t['scopes']} scope(s) of {t['agents']} agent(s)",
        ]
        if t["total"]:
            kinds = " · ".join(f"{r['kind']} {r['n']}" for r in self.by_kind.iter_rows(named=True))
            lines.append(f"  by kind    {kinds}")
            lines.append(f"  strength   mean {t['mean_strength']:.2f} over live memories; histogram (live):")
            live = self.strength.filter(pl.col("tier") != "archive").group_by("bin", "lo").agg(pl.col("n").sum())
            top = max(1, int(live["n"].max() or 1))  # type: ignore[arg-type]
            for r in live.sort("lo").iter_rows(named=True):
                lines.append(f"    {r['bin']:>9}  {'#' * round(30 * r['n'] / top):<30} {r['n']}")
        if t["recalls"]:
            lines.append(f"  recall     {t['recall_hit_rate']:.0%} of {t['recalls']} recalls returned something")
        if t.get("embed_cache_hit_rate") is not None:
            lines.append(f"  embeddings cache hit rate {t['embed_cache_hit_rate']:.0%}")
        if self.latency.height:
            lines.append(f"  latency    {'op':<12}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}")
            for r in self.latency.iter_rows(named=True):
                lines.append(f"             {r['op']:<12}{r['n']:>7}{r['p50_ms']:>10.2f}{r['p95_ms']:>10.2f}")
        else:
            lines.append("  latency    no operations recorded yet")
        return "\n".join(lines)

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "totals": self.totals,
            "by_tier": self.by_tier.to_dicts(),
            "by_kind": self.by_kind.to_dicts(),
            "by_scope": self.by_scope.to_dicts(),
            "counts": self.counts.to_dicts(),
            "strength": self.strength.to_dicts(),
            "latency": self.latency.to_dicts(),
            "hits": self.hits.to_dicts(),
        }

    def __str__(self) -> str:
        return self.summary()


# ------------------------------------------------------------------------------ collection
def _stm_frame(memory: Memory) -> pl.DataFrame:
    rows = [
        {"tier": "stm", "kind": r.kind.value, "agent": r.scope.agent, "user_id": r.scope.user,
         "session_id": r.scope.session, "stability": r.stability, "last_accessed": r.last_accessed,
         "importance": r.importance}
        for agent in memory.stm.agents() for r in memory.stm.scan(agent)
    ]
    return pl.DataFrame(rows, schema=_REC_SCHEMA)


def _table_frame(table: Any, tier: str) -> pl.DataFrame:
    n = table.count_rows()
    if not n:
        return pl.DataFrame(schema=_REC_SCHEMA)
    arrow = table.search().select(_COLS).limit(n).to_arrow()
    frame = pl.from_arrow(arrow.select(_COLS))
    assert isinstance(frame, pl.DataFrame)
    return frame.with_columns(pl.lit(tier).alias("tier")).select(
        [pl.col(c).cast(t) for c, t in _REC_SCHEMA.items()])


def records_frame(memory: Memory) -> pl.DataFrame:
    """One row per memory in every tier, with its scope key and current strength."""
    frame = pl.concat([_stm_frame(memory), _table_frame(memory.ltm.table, "ltm"),
                       _table_frame(memory.ltm.archive, "archive")])
    now = memory.clock.now()
    elapsed = (pl.lit(now) - pl.col("last_accessed")).clip(lower_bound=0.0)
    return frame.with_columns(
        pl.concat_str(["agent", "user_id", "session_id"], separator="/", ignore_nulls=True).alias("scope"),
        # decay.retention, vectorised: exp(-elapsed / (stability * DAY))
        (-elapsed / (pl.col("stability") * decay.DAY)).exp().alias("strength"),
    )


def _histogram(frame: pl.DataFrame) -> pl.DataFrame:
    idx = (pl.col("strength") * BINS).floor().cast(pl.Int64).clip(0, BINS - 1)
    counted = frame.group_by("tier", idx.alias("i")).agg(pl.len().cast(pl.Int64).alias("n"))
    tiers = pl.DataFrame({"tier": ["stm", "ltm", "archive"]})
    grid = tiers.join(pl.DataFrame({"i": list(range(BINS))}), how="cross")
    out = grid.join(counted, on=["tier", "i"], how="left").with_columns(pl.col("n").fill_null(0))
    return out.with_columns(
        (pl.col("i") / BINS).alias("lo"), ((pl.col("i") + 1) / BINS).alias("hi"),
        pl.format("{}-{}", (pl.col("i") / BINS).round(1), ((pl.col("i") + 1) / BINS).round(1)).alias("bin"),
    ).select("tier", "bin", "lo", "hi", "n")


def ops_frame(memory: Memory) -> pl.DataFrame:
    """Recent operations: this process's samples and the SQL log, without duplicates."""
    local = pl.DataFrame([{"at": o.at, "op": o.op, "scope": o.scope, "count": o.count,
                           "latency_ms": o.latency_ms, "hit": o.hit} for o in memory.operations()],
                         schema=_OPS_SCHEMA)
    frames = [local]
    if memory.sql is not None:
        from emergent.memory.tables import memory_ops as t

        q = sa.select(t.c.at, t.c.op, t.c.scope, t.c["count"], t.c.latency_ms, t.c.hit) \
            .order_by(t.c.seq.desc()).limit(OPS_WINDOW)
        with memory.sql.connect() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
        frames.append(pl.DataFrame(rows, schema=_OPS_SCHEMA))
    return pl.concat(frames).unique(maintain_order=True).sort("at")


def _latency(ops: pl.DataFrame) -> pl.DataFrame:
    return ops.group_by("op").agg(
        pl.len().cast(pl.Int64).alias("n"),
        pl.col("latency_ms").quantile(0.5, "linear").alias("p50_ms"),
        pl.col("latency_ms").quantile(0.95, "linear").alias("p95_ms"),
        pl.col("latency_ms").mean().alias("mean_ms"),
    ).sort("op")


def _hits(ops: pl.DataFrame) -> pl.DataFrame:
    return ops.filter(pl.col("hit").is_not_null()).group_by("op").agg(
        pl.len().cast(pl.Int64).alias("calls"),
        pl.col("hit").cast(pl.Int64).sum().alias("hits"),
        pl.col("hit").cast(pl.Float64).mean().alias("hit_rate"),
    ).sort("op")


def memory_stats(memory: Memory) -> MemoryStatsReport:
    """Counts by tier/kind/scope, strength histogram, hit rates and latencies of ``memory``."""
    records = records_frame(memory)
    counts = records.group_by("tier", "kind", "agent", "scope").agg(pl.len().cast(pl.Int64).alias("n")) \
        .sort("tier", "kind", "scope")
    ops = ops_frame(memory)
    hits = _hits(ops)
    by_tier = dict(records.group_by("tier").len().iter_rows())
    recall = hits.filter(pl.col("op") == "recall")
    live = records.filter(pl.col("tier") != "archive")
    cache = getattr(memory.embedder, "hits", None), getattr(memory.embedder, "misses", None)
    totals: dict[str, Any] = {
        "stm": int(by_tier.get("stm", 0)), "ltm": int(by_tier.get("ltm", 0)),
        "archive": int(by_tier.get("archive", 0)), "total": records.height,
        "agents": records["agent"].n_unique(), "scopes": records["scope"].n_unique(),
        "mean_strength": float(live["strength"].mean()) if live.height else 0.0,  # type: ignore[arg-type]
        "operations": ops.height,
        "recalls": int(recall["calls"].sum()) if recall.height else 0,
        "recall_hit_rate": float(recall["hit_rate"][0]) if recall.height else None,
        "embed_cache_hit_rate": (cache[0] / (cache[0] + cache[1]))
        if isinstance(cache[0], int) and isinstance(cache[1], int) and cache[0] + cache[1] else None,
    }
    return MemoryStatsReport(memory.clock.now(), counts, _histogram(records), _latency(ops), hits, totals)


def operation_totals(sql: Any, since: float) -> list[dict[str, Any]]:
    """Per operation in the ``memory_ops`` log of the workspace's SQL store ``sql``, at or after
    ``since``: ``op``, ``calls``, ``items`` (memories written or returned), ``hits``,
    ``mean_latency_ms``; by op. The read other services use (never the table itself)."""
    from emergent.memory.tables import memory_ops as t

    q = (sa.select(t.c.op, sa.func.count().label("calls"), sa.func.sum(t.c["count"]).label("items"),
                   sa.func.sum(sa.case((t.c.hit.is_(True), 1), else_=0)).label("hits"),
                   sa.func.avg(t.c.latency_ms).label("mean_latency_ms"))
         .where(t.c.at >= since).group_by(t.c.op).order_by(t.c.op))
    with sql.connect() as conn:
        rows = conn.execute(q).mappings().all()
    return [{"op": r["op"], "calls": int(r["calls"]), "items": int(r["items"] or 0), "hits": int(r["hits"] or 0),
             "mean_latency_ms": float(r["mean_latency_ms"] or 0.0)} for r in rows]
