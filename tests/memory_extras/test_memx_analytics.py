"""Memory analytics: counts per tier/kind/scope, strength histogram, hit rate, latencies; the widget."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from emergent import FakeClock, Workstation
from emergent.memory import decay
from emergent.memory.analytics import MemoryStatsReport, records_frame


@pytest.fixture
def clocked(home: Path) -> Iterator[Workstation]:
    clock = FakeClock()
    ws = Workstation.open(home, embedder="hashing", clock=clock)
    yield ws
    ws.close()


def _populate(ws: Workstation) -> None:
    m = ws.memory
    m.ingest(["fact one about lakes", "fact two about rivers", "fact three about buoys"], kind="semantic")
    m.ingest([{"text": "how to calibrate the oxygen sensor", "kind": "procedural"}], scope="bot/ana")
    m.remember("met Ana at the lake", scope="bot/ana")
    m.remember("an unimportant episode", importance=0.1)
    archived = m.ltm.records("text = 'fact three about buoys'")
    m.ltm.move_to_archive(archived, "test", ws.clock.now())


def test_counts_by_tier_kind_and_scope(clocked: Workstation) -> None:
    _populate(clocked)
    s = clocked.memory.stats()
    assert isinstance(s, MemoryStatsReport)
    assert dict(s.by_tier.iter_rows()) == {"stm": 2, "ltm": 3, "archive": 1}
    assert s.by_tier["tier"].to_list() == ["stm", "ltm", "archive"]
    assert dict(s.by_kind.iter_rows()) == {"semantic": 3, "episodic": 2, "procedural": 1}
    assert dict(s.by_scope.iter_rows()) == {"default": 4, "bot/ana": 2}
    want = {"stm": 2, "ltm": 3, "archive": 1, "total": 6, "agents": 2, "scopes": 2}
    assert {k: s.totals[k] for k in want} == want
    assert s.counts.schema["n"] == pl.Int64


def test_strength_is_the_forgetting_curve_now(clocked: Workstation) -> None:
    _populate(clocked)
    clocked.clock.advance(days=3)
    frame = records_frame(clocked.memory)
    now = clocked.clock.now()
    for row in frame.iter_rows(named=True):
        assert math.isclose(row["strength"], decay.retention(now - row["last_accessed"], row["stability"]),
                            rel_tol=1e-9)
    s = clocked.memory.stats()
    assert s.strength.height == 30  # 10 bins x 3 tiers, empty bins included
    assert s.strength["n"].sum() == s.totals["total"]
    assert 0.0 < s.totals["mean_strength"] < 1.0


def test_hit_rate_and_latency_percentiles_merge_process_and_sql_log(clocked: Workstation) -> None:
    m = clocked.memory
    assert m.stats().totals["recall_hit_rate"] is None
    m.ingest(["the lake froze in january"])
    m.recall("lake")
    m.forget(scope="default", kinds=["semantic"], principal=clocked.principal)  # empties LTM: the next recall finds nothing
    m.recall("lake")
    m.flush()  # the samples are now both in memory.operations() and the memory_ops table
    s = m.stats()
    rec = s.hits.filter(pl.col("op") == "recall").row(0, named=True)
    assert (rec["calls"], rec["hits"], rec["hit_rate"]) == (2, 1, 0.5)
    lat = {r["op"]: r for r in s.latency.iter_rows(named=True)}
    assert lat["recall"]["n"] == 2 and lat["recall"]["p50_ms"] <= lat["recall"]["p95_ms"]
    assert set(lat) == {"ingest", "recall", "forget"}
    # a second process on the same workspace sees the logged operations
    other = Workstation.open(clocked.path, embedder="hashing")
    assert other.memory.stats().hits.filter(pl.col("op") == "recall")["calls"].item() == 2
    other.close()


def test_summary_and_dict_are_readable_and_json(clocked: Workstation) -> None:
    _populate(clocked)
    clocked.memory.recall("lakes")
    s = clocked.memory.stats()
    text = s.summary()
    assert "2 short-term, 3 long-term, 1 archived (6 total)" in text
    assert "recall     100% of 1 recalls" in text and "p95 ms" in text
    data = json.loads(json.dumps(s.as_dict()))
    assert data["totals"]["total"] == 6 and {r["tier"] for r in data["by_tier"]} == {"stm", "ltm", "archive"}


def test_empty_memory_has_zero_counts(ws: Workstation) -> None:
    s = ws.memory.stats()
    assert s.totals["total"] == 0 and s.counts.height == 0
    assert "no operations recorded yet" in s.summary()


def test_memory_stats_widget_renders_a_plot_and_refreshes(clocked: Workstation) -> None:
    from emergent.ui.memory_stats import MemoryStats

    _populate(clocked)
    w = MemoryStats(clocked.memory)
    png = w.plot.outputs[0]["data"]["image/png"]
    assert png  # base64 PNG of the matplotlib figure
    assert "2 short-term" in w.totals.value and "by scope" in w.tables.value
    clocked.memory.remember("one more thing")
    w.refresh_button.click()
    assert "3 short-term" in w.totals.value and len(w.plot.outputs) == 1
