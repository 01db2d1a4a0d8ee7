"""The pieces of `emergent bench memory` that need no benchmark run: the hot-index probe works
with and without an LTM hot index, queries never repeat (no embedder cache serves them), and the
table prints a result whose optional figures are missing."""

from __future__ import annotations

import math
from types import SimpleNamespace

from emergent.bench import memory


class _FakeHot:
    def __init__(self) -> None:
        self.rebuilt = 0

    def rebuild(self) -> None:
        self.rebuilt += 1

    def memory_bytes(self) -> int:
        return 3 * 2**20


def test_hot_index_figures_are_none_without_a_hot_index_and_measured_with_one() -> None:
    assert memory._hot_index(SimpleNamespace()) == (None, None)
    hot = _FakeHot()
    mib, rebuild_s = memory._hot_index(SimpleNamespace(hot=hot))
    assert mib == 3.0 and rebuild_s is not None and rebuild_s >= 0 and hot.rebuilt == 1


def test_recall_overhead_questions_are_distinct() -> None:
    qs = memory._questions(500)
    assert len(set(qs)) == 500 and qs == memory._questions(500)


def test_table_prints_a_result_without_hot_index_or_floor() -> None:
    r = {"size": 2000, "stm_p50_us": 1.0, "raw_redis_p50_us": 1.0, "stm_p99_us": 2.0, "raw_redis_p99_us": 2.0,
         "stm_p99_ratio": 1.0, "stm_set_p99_us": 1.0, "raw_set_p99_us": 1.0, "stm_get_p99_us": 1.0,
         "raw_get_p99_us": 1.0, "sqlite_stm_p99_us": 1.0, "raw_sqlite_p99_us": 1.0, "sqlite_stm_p99_ratio": 1.0,
         "local_stm_p99_us": 0.5, "ltm_p50_ms": 3.0, "raw_lance_p50_ms": 1.0, "ltm_p95_ms": 4.0,
         "raw_lance_p95_ms": 2.0, "recall_vs_raw_lance_p95": 2.0, "exact_numpy_p95_ms": 1.0, "exact_overlap": 1.0,
         "index_rss_mb": None, "index_rebuild_s": None, "embedder": "hashing", "ingest_per_s": 9.0,
         "embed_per_s": 10.0, "ingest_ratio": 0.9, "recall_with_embed_p95_ms": 6.0, "query_embed_p95_ms": 3.0,
         "recall_overhead_ratio": 2.0, "cold_recall_s": 1.0, "cold_floor_s": None, "cold_recall_floor_ratio": None,
         "cross_process_visibility_ms_p95": 50.0, "cross_process_visibility_misses": 0,
         "cross_process_visibility_trials": 20, "load_avg_1m": 0.5, "cpus": 2}
    rows = {name: (ours, base, note) for name, ours, base, note in memory.table(r)}
    assert rows["LTM recall p95 (ms) @ 2,000"][2].startswith("2.00x raw LanceDB top-10 (≤ 1.0x")
    assert rows["cold start: first recall (s)"] == (1.0, None, "- bare onnxruntime, same model, one query (≤ 2x)")
    assert rows["recall p95 incl. query embedding (ms) @ 1,000"][2] == "2.00x embedding the query alone (≤ 1.5x)"
    assert rows["hot index memory (MiB) @ 2,000"] == (None, None, "no hot index")
    assert memory._x(math.nan, "≤ 1x") == "- (≤ 1x)"
