"""The short-term view answers exactly what a pass over the listed records would, after any churn."""

from __future__ import annotations

import random
import re

import numpy as np

from emergent.memory.stm_view import STMView
from emergent.memory.types import Kind, MemoryRecord, Scope

WORDS = ["deploy", "rollback", "cache", "queue", "audit", "token", "schema", "latency", "index", "backup"]


def record(rng: random.Random, i: int) -> MemoryRecord:
    scope = Scope("a", rng.choice([None, "u1", "u2"]), None)
    return MemoryRecord(id=f"m{i}", text=" ".join(rng.choices(WORDS, k=4)) + f" note{i}",
                        kind=rng.choice(list(Kind)), importance=0.5, scope=scope, created_at=float(rng.randint(0, 100)),
                        last_accessed=0.0, stability=1.0, meta={},
                        vector=np.asarray([rng.uniform(-1, 1) for _ in range(6)], np.float32))


def brute(items: list[MemoryRecord], scope: Scope, kinds: list[Kind] | None, lo: float | None, hi: float | None,
          q: np.ndarray, terms: set[str]) -> tuple[list[str], list[float], list[float]]:
    keep = [r for r in items if scope.contains(r.scope) and (not kinds or r.kind in kinds)
            and (lo is None or r.created_at >= lo) and (hi is None or r.created_at < hi)]
    sims = [float(np.asarray(r.vector, np.float32) @ q) for r in keep]
    share = [len(terms & set(re.findall(r"\w+", r.text.lower()))) / len(terms) for r in keep]
    return [r.id for r in keep], sims, share


def test_the_view_matches_a_pass_over_the_records_through_adds_drops_and_replacements():
    rng = random.Random(7)
    view = STMView()
    items = [record(rng, i) for i in range(40)]
    n = 40
    for step in range(60):
        # churn: a new item at the front, a replaced item (a new object) moved to the front, one dropped
        if rng.random() < 0.7:
            items.insert(0, record(rng, n))
            n += 1
        if items and rng.random() < 0.5:
            old = items.pop(rng.randrange(len(items)))
            items.insert(0, old.with_(text=old.text + " replaced", importance=0.9))
        if items and rng.random() < 0.4:
            items.pop(rng.randrange(len(items)))
        scope = rng.choice([Scope("a"), Scope("a", "u1"), Scope("a", "u2"), Scope("b")])
        kinds = rng.choice([None, [Kind.EPISODIC], [Kind.SEMANTIC, Kind.PROCEDURAL]])
        lo, hi = rng.choice([(None, None), (20.0, None), (None, 70.0), (10.0, 50.0)])
        q = np.asarray([rng.uniform(-1, 1) for _ in range(6)], np.float32)
        terms = set(rng.sample(WORDS, 2)) | ({"replaced"} if step % 3 == 0 else set())
        with view.locked:
            slots = view.sync(items)
            slots = slots[view.mask(slots, scope, kinds, lo, hi)]
            got_ids = [view.record(s).id for s in slots]
            got_sims = view.similarity(slots, q).tolist()
            got_share = view.overlap(slots, terms).tolist()
            got_texts = [view.record(s).text for s in slots]
        ids, sims, share = brute(items, scope, kinds, lo, hi, q, terms)
        assert got_ids == ids, step
        assert np.allclose(got_sims, sims, atol=1e-5), step
        assert got_share == share, step
        assert got_texts == [r.text for r in items if r.id in set(ids)], step  # never a replaced item's old text


def test_a_view_forgets_what_is_no_longer_listed():
    rng = random.Random(1)
    view = STMView()
    items = [record(rng, i) for i in range(100)]
    with view.locked:
        view.sync(items)
        view.sync(items[:3])
        assert len(view._slot) == 3
        assert set(view._postings) <= {w for r in items[:3] for w in re.findall(r"\w+", r.text.lower())}
        assert view.sync([]).size == 0 and not view._slot


def test_a_forgotten_short_term_text_leaves_the_recall_view_at_once(tmp_path):
    from emergent import Workstation

    ws = Workstation.open(tmp_path / "home", embedder="hashing")
    try:
        rec = ws.memory.remember("the vault combination is 7-31-44")
        assert [h.id for h in ws.memory.recall("vault combination", k=3)][0] == rec.id
        ws.memory.forget(rec.id, principal=ws.principal)
        held = [r.text for v in ws.memory._stm_views.values() for r in v._rec if r is not None]
        assert not any("vault" in t for t in held)
        assert rec.id not in [h.id for h in ws.memory.recall("vault combination", k=3)]
    finally:
        ws.close()


def test_a_store_keeps_the_scans_of_a_bounded_number_of_agents():
    from emergent.memory.stm import SCANS_KEPT, keep_scan

    cache: dict[str, int] = {}
    for i in range(SCANS_KEPT + 5):
        keep_scan(cache, f"agent{i}", i)
    keep_scan(cache, "agent5", 5)  # listed again: the most recent
    assert len(cache) == SCANS_KEPT and "agent0" not in cache and list(cache)[-1] == "agent5"
