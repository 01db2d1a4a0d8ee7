"""The hot index's compact layout (issue 12, "Memory at the physical limit"): ids as 12-byte keys,
strings in buffers, BM25 postings in one block. Every test checks that the compact form answers
exactly what the plain form (a dict, a list of str, float frequencies) would."""

from __future__ import annotations

import io
import json
import random

import numpy as np
import pytest

from emergent.memory.hot import Blobs, Partition
from emergent.memory.lexical import BM25, tokens
from emergent.memory.types import Scope

DIM = 8


def _hex(ms: int, rng: random.Random) -> str:
    return f"{ms:012x}{rng.randrange(1 << 48):012x}"


def _row(id_: str, rng: random.Random, **kw) -> dict:
    row = {"id": id_, "text": f"note {rng.randrange(1000)} about {rng.choice(['kiwis', 'lemons', 'okapis'])}",
           "kind": "episodic", "importance": 0.5, "stability": 1.0, "created_at": rng.random() * 1e9,
           "learned_at": 1.0, "last_accessed": 2.0, "access_count": 0, "user_id": None, "session_id": None,
           "payload": None, "meta": "{}", "sources": "[]",
           "vector": [rng.random() - 0.5 for _ in range(DIM)]}
    row.update(kw)
    return row


def _roundtrip(part: Partition) -> Partition:
    buf = io.BytesIO()
    np.savez(buf, **part.to_arrays())
    buf.seek(0)
    again = Partition(part.agent, part.dim, part.exact_max, part.ef_search)
    with np.load(buf, allow_pickle=False) as data:
        again.from_arrays(data)
    return again


def test_ids_in_time_order_are_found_without_any_index_beside_the_keys():
    rng = random.Random(1)
    part = Partition("a", DIM, 10_000, 32)
    ids = [_hex(1_700_000_000_000 + i, rng) for i in range(500)]
    for start in range(0, 500, 50):
        part.append([_row(i, rng) for i in ids[start:start + 50]])
    assert part._order is None and not part._recent  # new_id's ids start with their time
    assert [part.pos.get(i) for i in ids] == list(range(500))
    assert part.find_many([*ids[::7], "f" * 24, "nope"]).tolist() == [*range(0, 500, 7), -1, -1]
    assert [part.ids[p] for p in range(500)] == ids
    with pytest.raises(IndexError):
        part.ids[500]


def test_ids_out_of_order_ids_of_other_forms_and_reappended_ids_are_found_at_their_live_row():
    rng = random.Random(2)
    part = Partition("a", DIM, 10_000, 32)
    truth: dict[str, int] = {}
    odd = ["memory-1", "ABCDEF0123456789ABCDEF01", "0123456789abcdef0123456", "0" * 24, "00" * 11 + " 1"]
    for step in range(40):
        batch = [_hex(rng.randrange(1 << 40), rng) for _ in range(rng.randrange(1, 40))]
        if step < len(odd):
            batch.append(odd[step])
        part.append([_row(i, rng) for i in batch])
        for i in batch:
            truth[i] = part.size - len(batch) + batch.index(i)
        if step % 3 == 2:  # forget some, and store some of them again (a new row, a new position)
            doomed = rng.sample(sorted(truth), 10)
            assert part.remove(doomed) == 10
            for i in doomed:
                del truth[i]
            back = doomed[:4]
            part.append([_row(i, rng) for i in back])
            truth.update({i: part.size - 4 + k for k, i in enumerate(back)})
    assert part._order is not None  # keys out of order: the argsort beside them is used
    assert {i: part.pos.get(i) for i in truth} == truth
    assert part.find_many(list(truth)).tolist() == list(truth.values())
    assert all(part.ids[p] == i for i, p in truth.items())
    assert part.live == len(truth) == len(part.pos) and sorted(part.pos) == sorted(truth)
    again = _roundtrip(part)
    assert {i: again.pos.get(i) for i in truth} == truth and again.pos.get("memory-2") is None


def test_a_moved_row_leaves_its_old_position_and_answers_with_its_new_text():
    rng = random.Random(3)
    part = Partition("a", DIM, 10_000, 32)
    first = _hex(1_800_000_000_000, rng)
    part.append([_row(first, rng, text="about kiwis"), _row(_hex(1_800_000_000_001, rng), rng)])
    part.append([_row(first, rng, text="about lemons now")])  # changed text: removed and appended again
    assert part.pos[first] == 2 and not part.cols["alive"][0]
    assert part.record(2).text == "about lemons now" and part.record(2).id == first
    hits = part.text_top(tokens("lemons"), part.mask(Scope("a"), None, None, None), 5)
    assert [h.pos for h in hits] == [2]


def test_blobs_hold_defaults_without_bytes_and_read_back_every_string():
    meta = Blobs("{}")
    meta.extend(["{}", "", "{}"])
    assert meta.start is None and [meta[i] for i in range(3)] == ["{}"] * 3  # no per-row arrays yet
    values = ["{}", '{"k": "ü 漢字 \\ud83d"}', "x" * 5000, "{}", '{"speaker": "Caroline"}']
    meta.extend(values)
    assert [meta[i] for i in range(3, 8)] == values and meta[-1] == values[-1]
    meta.set(4, "{}")
    meta.set(6, '{"a": 1}')
    assert meta[4] == "{}" and meta[6] == '{"a": 1}' and meta.waste > 0
    for _ in range(600):  # rewrites past half the buffer repack it
        meta.set(5, "y" * rng_len(_))
    assert meta.waste <= max(1 << 20, meta.used // 2) and meta[5] == "y" * rng_len(599)
    kept = meta.take(np.array([0, 5, 6, 7]))
    assert [kept[i] for i in range(4)] == ["{}", "y" * rng_len(599), '{"a": 1}', values[-1]]
    with pytest.raises(IndexError):
        kept[4]


def rng_len(i: int) -> int:
    return 3000 + (i * 37) % 2000


def test_compressed_texts_read_back_exactly_and_survive_compaction_and_snapshots():
    rng = random.Random(4)
    speakers = ["Caroline", "Melanie", "Jon", "Gina"]
    texts = [f"{rng.choice(speakers)}: I went to the {rng.choice(['museum', 'beach', 'LGBTQ support group'])} "
             f"on {rng.randrange(1, 28)} May and it was {rng.choice(['great', 'so moving', 'exhausting'])}! "
             f"{'Ünïcödé ✓' if rng.random() < 0.1 else ''}" for _ in range(3000)]
    texts[5] = ""
    blobs = Blobs("")
    blobs.extend(texts)
    plain = blobs.used
    assert blobs.compress() and blobs.used < 0.7 * plain
    assert [blobs[i] for i in range(3000)] == texts
    blobs.extend(["appended after compression"])
    blobs.set(7, "rewritten after compression")
    texts += ["appended after compression"]
    texts[7] = "rewritten after compression"
    keep = np.arange(0, 3001, 3)
    kept = blobs.take(keep)
    assert [kept[i] for i in range(len(keep))] == [texts[p] for p in keep]
    arrays = blobs.to_arrays("text")
    again = Blobs.from_arrays(arrays, "text", 3001, "")
    assert [again[i] for i in range(3001)] == texts


def test_blobs_refuse_a_snapshot_whose_rows_fall_outside_the_buffer():
    blobs = Blobs("")
    blobs.extend(["alpha", "beta"])
    arrays = blobs.to_arrays("text")
    arrays["text_size"] = np.array([5, 400], np.uint32)
    with pytest.raises(ValueError):
        Blobs.from_arrays(arrays, "text", 2, "")
    with pytest.raises(ValueError):
        Blobs.from_arrays(blobs.to_arrays("text"), "text", 3, "")


def _reference_bm25(docs: list[list[str]], query: list[str], mask: np.ndarray, k1: float, b: float) -> dict[int, float]:
    """BM25 as the textbook writes it, in float64 with exact term frequencies."""
    held = [i for i in range(len(docs)) if mask[i]]
    avgdl = np.mean([len(docs[i]) for i in held])
    out: dict[int, float] = {}
    for term in dict.fromkeys(query):
        having = [i for i in held if term in docs[i]]
        if not having:
            continue
        idf = np.log1p((len(held) - len(having) + 0.5) / (len(having) + 0.5))
        for i in having:
            tf = docs[i].count(term)
            out[i] = out.get(i, 0.0) + idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(docs[i]) / avgdl))
    return out


def test_bm25_term_frequencies_beyond_a_byte_score_exactly():
    texts = ["okapi " * 300 + "kiwi", "okapi kiwi lemon", "lemon " * 254 + "okapi", "kiwi " * 255, "lemon"]
    index = BM25()
    for i, t in enumerate(texts):
        index.add(i, t)
    mask = np.ones(len(texts), bool)
    ref = _reference_bm25([tokens(t) for t in texts], ["okapi", "lemon", "kiwi"], mask, index.k1, index.b)
    docs, scores = index.scores(["okapi", "lemon", "kiwi"], mask)
    assert dict(zip(docs.tolist(), scores.tolist(), strict=True)) == pytest.approx(ref, rel=1e-6)
    assert index.postings("okapi")[1].tolist() == [300.0, 1.0, 1.0]
    again = BM25.from_arrays(index.to_arrays())
    assert again.postings("okapi")[1].tolist() == [300.0, 1.0, 1.0]
    kept = index.take(np.array([0, 2]))
    assert kept.postings("okapi")[1].tolist() == [300.0, 1.0] and kept.postings("kiwi")[0].tolist() == [0]


def test_bm25_block_and_tail_answer_like_the_textbook_through_merges_and_compaction(monkeypatch):
    monkeypatch.setattr(BM25, "MERGE_MIN", 40)  # merge every few documents
    rng = random.Random(5)
    words = [f"w{i}" for i in range(60)]
    texts = [" ".join(rng.choice(words[: rng.randrange(3, 60)]) for _ in range(rng.randrange(0, 15)))
             for _ in range(400)]
    index = BM25(1.2, 0.75)
    for i, t in enumerate(texts):
        index.add(i, t)
        if i in (0, 57, 399):
            mask = np.random.default_rng(i).random(i + 1) < 0.8
            query = rng.sample(words, 4)
            docs, scores = index.scores(query, mask)
            ref = _reference_bm25([tokens(x) for x in texts[: i + 1]], query, mask, 1.2, 0.75)
            assert dict(zip(docs.tolist(), scores.tolist(), strict=True)) == pytest.approx(ref, rel=1e-5)
    assert index._tail_n < len(index._docs)  # most postings live in the block
    keep = np.flatnonzero(np.random.default_rng(9).random(400) < 0.5)
    kept = index.take(keep)
    fresh = BM25(1.2, 0.75)
    for j, p in enumerate(keep.tolist()):
        fresh.add(j, texts[p])
    mask = np.ones(len(keep), bool)
    for w in words:
        assert [x.tolist() for x in kept.postings(w)] == [x.tolist() for x in fresh.postings(w)]
        assert [x.tolist() for x in kept.scores([w, "w1"], mask)] == [x.tolist() for x in fresh.scores([w, "w1"], mask)]


def test_a_large_partition_round_trips_its_snapshot_with_graph_compressed_texts_and_odd_ids():
    rng = random.Random(6)
    part = Partition("a", DIM, 300, 32)
    ids = [_hex(1_700_000_000_000 + i, rng) for i in range(1500)] + ["legacy-id"]
    rows = [_row(i, rng, text=f"Caroline: the support group on {k % 28} May was {['great', 'moving'][k % 2]} "
                          f"and we talked about {rng.choice(['adoption', 'painting', 'camping'])}",
                 meta=json.dumps({"dia_id": f"D1:{k}", "speaker": "Caroline"}), user_id=f"u{k % 3}")
            for k, i in enumerate(ids)]
    part.append(rows)
    part.remove(ids[100:160])
    assert part.ann is not None and part.text.zdict is not None and part.meta.zdict is not None
    again = _roundtrip(part)
    for p in np.flatnonzero(part.cols["alive"][: part.size]).tolist():
        assert again.record(p) == part.record(p)
    assert again.pos.get("legacy-id") == 1500 and again.pos.get(ids[120]) is None
    mask = again.mask(Scope("a", "u1"), None, None, None)
    assert [(h.pos, h.score) for h in again.text_top(tokens("camping may"), mask, 10)] == \
        [(h.pos, h.score) for h in part.text_top(tokens("camping may"), mask, 10)]


def test_random_writes_keep_every_row_findable_with_its_own_fields():
    """A model (a dict of id -> row) against the partition under appends, moves, updates, removals and
    the compaction they trigger."""
    rng = random.Random(7)
    part = Partition("a", DIM, 200, 32)
    model: dict[str, dict] = {}
    clock = 1_750_000_000_000
    for _ in range(120):
        op = rng.random()
        if op < 0.5 or not model:
            batch = []
            for _ in range(rng.randrange(1, 30)):
                clock += rng.randrange(1, 5)
                id_ = _hex(clock - (rng.randrange(10**6) if rng.random() < 0.2 else 0), rng)
                if rng.random() < 0.05:
                    id_ = f"imported-{clock}"
                batch.append(_row(id_, rng, meta=rng.choice(["{}", json.dumps({"n": clock})]),
                                  sources=rng.choice(["[]", json.dumps([id_])])))
            if model and rng.random() < 0.5:  # a stored id written again with another text
                id_ = rng.choice(sorted(model))
                batch.append({**model[id_], "text": "moved " + str(clock)})
            part.append(batch)
            model.update({r["id"]: r for r in batch})
        elif op < 0.8:
            doomed = rng.sample(sorted(model), min(len(model), rng.randrange(1, 60)))
            assert part.remove(doomed) == len(doomed)
            for i in doomed:
                del model[i]
        else:
            changed = [{**model[i], "meta": json.dumps({"merged": True}), "sources": "[]", "access_count": 3}
                       for i in rng.sample(sorted(model), min(len(model), 10))]
            part.update(changed)
            model.update({r["id"]: r for r in changed})

    def agree() -> None:
        assert part.live == len(model) == len(part.pos)
        for id_, row in model.items():
            rec = part.record(part.pos[id_])
            assert (rec.id, rec.text, rec.meta, rec.sources, rec.access_count) == \
                (id_, row["text"], json.loads(row["meta"]), json.loads(row["sources"]), row["access_count"])

    agree()
    more = [_row(_hex(clock + 10 + k, rng), rng) for k in range(1100)]
    part.append(more)
    model.update({r["id"]: r for r in more})
    doomed = sorted(model)[: len(model) * 3 // 4]  # most of it forgotten: the partition is compacted
    assert part.size > 1024 and part.remove(doomed) == len(doomed)
    for i in doomed:
        del model[i]
    assert part.generation > 1 and part.size == part.live
    agree()


def test_the_footprint_is_measured_in_fresh_processes_and_broken_down():
    from emergent.bench.memory import bench_hot_footprint

    r = bench_hot_footprint(3000)
    parts = r["index_parts_mb"]
    # differences of two resident-set readings: at 3,000 rows the build grows the process by a few MiB,
    # a load from the snapshot by less than one (arenas the warm-up left are reused), within the noise
    assert r["index_rss_mb"] > 0 and r["index_snapshot_rss_mb"] >= -1.0
    assert r["index_estimate_mb"] > 0
    assert {"vectors_f32", "columns", "ids", "text", "meta", "bm25_postings"} <= set(parts)
    assert parts["sources"] == 0.0  # every row's sources are [] : no bytes, no per-row arrays


def test_a_snapshot_holding_one_id_on_two_live_rows_is_refused():
    rng = random.Random(8)
    part = Partition("a", DIM, 10_000, 32)
    part.append([_row(_hex(1_700_000_000_000 + i, rng), rng) for i in range(20)] + [_row("legacy", rng)])
    arrays = part.to_arrays()
    keys = arrays["col_key"].copy()
    keys[7] = keys[3]
    for bad in ({"col_key": keys}, {"strings": np.frombuffer(json.dumps(
            {"names": [None], "odd": [[20, "legacy"], [4, "legacy"]]}).encode(), np.uint8)}):
        again = Partition("a", DIM, 10_000, 32)
        with pytest.raises(ValueError):
            again.from_arrays({**arrays, **bad})
