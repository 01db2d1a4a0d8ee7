"""The ANN index as the LTM builds it: HNSW-SQ, scope bitmaps, few delta segments, light reads."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from emergent.memory.ltm import LongTermMemory, build_filter
from emergent.memory.types import Kind, MemoryRecord, Scope
from emergent.stores.lance import IndexPolicy, LanceStore

DIM = 32


def _records(start: int, n: int, rng: np.random.Generator, agent: str = "a") -> list[MemoryRecord]:
    now = time.time()
    out = []
    for i in range(start, start + n):
        v = rng.standard_normal(DIM).astype(np.float32)
        out.append(MemoryRecord(id=f"{i:024x}", text=f"memory number {i} about topic{i % 7}", kind=Kind.EPISODIC,
                                importance=0.5, scope=Scope(agent, "u"), created_at=now + i, last_accessed=now + i,
                                stability=1.0, meta={"i": i}, vector=v / np.linalg.norm(v)))
    return out


def test_ann_index_bitmaps_and_rebuild_keep_search_exact_enough(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    policy = IndexPolicy(ann_threshold=300, optimize_after=50, optimize_growth=0.0, max_ann_segments=1)
    ltm = LongTermMemory(LanceStore(tmp_path / "lance"), "test-32", DIM, policy=policy)
    recs = _records(0, 300, rng) + _records(300, 20, rng, agent="other")
    ltm.add(recs[:300])
    kinds = {i.columns[0]: str(i.index_type) for i in ltm.table.list_indices()}
    assert "HNSW" in kinds["vector"].upper() and kinds["agent"] == "Bitmap" and kinds["session_id"] == "Bitmap"
    ltm.add(recs[300:])  # 20 rows: left unindexed, still found by exact scan
    more = _records(320, 60, rng)
    ltm.add(more)  # 80 unindexed >= 50: optimize() appends a delta segment
    done = ltm.store.maintain(ltm.table, ltm.policy)  # 2 segments > 1: rebuilt in one piece
    assert done.get("ann") == "rebuilt"
    assert ltm.table.index_stats("vector_idx").num_indices == 1
    mine = [r for r in (*recs, *more) if r.scope.agent == "a"]
    matrix = np.stack([r.vector for r in mine])
    where = build_filter(Scope("a"))
    overlap = []
    for r in mine[::20]:
        truth = {mine[i].id for i in np.argsort(-(matrix @ r.vector))[:10]}
        got = ltm.vector_search(r.vector, where, 50, light=True)
        assert all(c.record.scope.agent == "a" for c in got)
        overlap.append(len(truth & {c.record.id for c in got[:10]}) / 10)
    assert np.mean(overlap) >= 0.9


def test_light_search_reads_no_text_until_completed(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ltm = LongTermMemory(LanceStore(tmp_path / "lance"), "test-32", DIM)
    recs = _records(0, 40, rng)
    ltm.add(recs)
    where = build_filter(Scope("a", "u"))
    light = ltm.text_search("topic3", where, 5, light=True)
    assert light and all(c.record.text == "" and c.row_id is not None for c in light)
    full = ltm.complete(light, Scope("a", "u"))
    by_id = {r.id: r for r in recs}
    for c in light:
        assert full[c.record.id].text == by_id[c.record.id].text
        assert full[c.record.id].meta == by_id[c.record.id].meta and full[c.record.id].importance == 0.5
    ltm.delete_where(f"id = '{light[0].record.id}'")  # gone before completion: dropped, not invented
    assert light[0].record.id not in ltm.complete(light, Scope("a", "u"))
