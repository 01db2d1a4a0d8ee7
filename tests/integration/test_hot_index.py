"""The hot recall index: what recall reads answers exactly what LanceDB holds, in every process."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from emergent import Workstation
from emergent.memory.hot import HotIndex
from emergent.memory.lexical import BM25, tokens
from emergent.memory.types import Scope


def _child(home, body: str) -> str:
    script = textwrap.dedent(f"""
        from emergent import Workstation
        ws = Workstation.open({str(home)!r}, embedder="hashing")
        mem = ws.memory
    """) + textwrap.dedent(body) + "\nws.close()\n"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.strip()


def test_a_write_is_recallable_the_moment_it_is_reported_stored(home):
    with Workstation.open(home, embedder="hashing") as ws:
        mem = ws.memory
        mem.ingest([f"routine note {i} about calibration" for i in range(30)], scope="lab")
        mem.recall("calibration", scope="lab")  # the partition is loaded and current
        rec = mem.remember("the centrifuge in room 4 is broken", tier="ltm", scope="lab")
        assert mem.recall("centrifuge broken", scope="lab", k=1)[0].id == rec.id
        [new] = mem.ingest(["the spectrometer needs argon"], scope="lab")
        assert mem.recall("spectrometer argon", scope="lab", k=1)[0].id == new


def test_another_process_write_is_recallable_here_without_reopening(home):
    with Workstation.open(home, embedder="hashing") as ws:
        mem = ws.memory
        mem.ingest(["first note about orchids"], scope="lab")
        assert mem.recall("orchids", scope="lab", k=1)  # loaded before the other process writes
        other = _child(home, 'print(mem.ingest(["a note about volcanoes from another process"], scope="lab")[0])')
        assert mem.recall("volcanoes another process", scope="lab", k=1)[0].id == other


def test_a_memory_forgotten_by_another_process_is_never_answered_again(home):
    with Workstation.open(home, embedder="hashing") as ws:
        mem = ws.memory
        ids = mem.ingest(["secret plan for the grant", "public plan for the picnic"], scope="lab")
        assert ids[0] in [h.id for h in mem.recall("plan grant", scope="lab")]
        _child(home, f"mem.forget({ids[0]!r}, principal=ws.principal, scope='lab')")
        assert ids[0] not in [h.id for h in mem.recall("plan grant", scope="lab")]
        assert [h.id for h in mem.recall("plan", scope="lab")] == [ids[1]]


def test_forget_and_consolidation_archive_leave_the_index_at_once(ws, me):
    mem = ws.memory
    ids = mem.ingest(["alpha about kiwis", "beta about kiwis", "gamma about kiwis"], scope="x")
    mem.recall("kiwis", scope="x")
    mem.forget(ids[1], principal=me, scope="x")
    assert sorted(h.id for h in mem.recall("kiwis", scope="x")) == sorted([ids[0], ids[2]])
    recs = mem.ltm.get_many([ids[0]], Scope("x"))
    mem.ltm.move_to_archive(recs, "test", time.time())
    assert [h.id for h in mem.recall("kiwis", scope="x")] == [ids[2]]


def test_sigkill_mid_ingest_leaves_no_answer_the_store_does_not_hold(home):
    script = textwrap.dedent(f"""
        from emergent import Workstation
        ws = Workstation.open({str(home)!r}, embedder="hashing")
        i = 0
        while True:
            ws.memory.ingest([f"batch {{i}} item {{j}} about glaciers" for j in range(40)], scope="lab")
            ws.memory.recall("glaciers", scope="lab")
            print(i, flush=True)
            i += 1
    """)
    with Workstation.open(home, embedder="hashing") as ws:
        ws.memory.ingest(["seed about glaciers"], scope="lab")
        ws.memory.recall("glaciers", scope="lab")
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        done = -1
        deadline = time.time() + 60
        while done < 3 and time.time() < deadline:
            done = int(proc.stdout.readline())
        time.sleep(0.03)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        hits = ws.memory.recall("glaciers batch item", scope="lab", k=50)
        stored = ws.memory.ltm.present_ids([h.id for h in hits])
        assert {h.id for h in hits} == stored
        assert ws.memory.ltm.hot.parts["lab"].live == ws.memory.ltm.count("agent = 'lab'")


def test_vector_stage_equals_exact_search_over_the_scope(home):
    with Workstation.open(home, embedder="hashing") as ws:
        mem = ws.memory
        texts = [f"note {i} on topic {i % 7} with word{i % 13}" for i in range(400)]
        mem.ingest(texts[:200], scope="a/u1")
        mem.ingest(texts[200:], scope="a/u2")
        q = mem.embedder.embed(["topic 3 word5"])[0]
        part, vec, _ = mem.ltm.hot.search(Scope("a", "u1"), q, "topic 3 word5", None, None, None, 10)
        rows = mem.ltm.records("user_id = 'u1'")
        m = np.stack([r.vector / np.linalg.norm(r.vector) for r in rows])
        truth = [rows[i].id for i in np.argsort(-(m @ (q / np.linalg.norm(q))))[:10]]
        assert [part.ids[h.pos] for h in vec] == truth


def test_ann_partition_answers_like_exact_search_and_respects_the_scope(home):
    with Workstation.open(home, embedder="hashing") as ws:
        mem = ws.memory
        rng = np.random.default_rng(1)
        centers = rng.standard_normal((20, mem.ltm.dim)).astype(np.float32)
        for user in ("u1", "u2"):
            recs = [mem._record(f"memory {user} {i}", "semantic", 0.5, f"a/{user}", None, None) for i in range(2500)]
            for r in recs:
                r.vector = centers[rng.integers(20)] + rng.standard_normal(mem.ltm.dim).astype(np.float32)
            mem.ltm.add(recs)
        exact = mem.ltm.hot
        ann = HotIndex(mem.ltm, exact_max=1000)
        overlap = []
        for _ in range(30):
            q = (centers[rng.integers(20)] + rng.standard_normal(mem.ltm.dim)).astype(np.float32)
            pe, ve, _ = exact.search(Scope("a", "u2"), q, "memory", None, None, None, 10)
            pa, va, _ = ann.search(Scope("a", "u2"), q, "memory", None, None, None, 10)
            assert pa.ann is not None and pa.vec is None
            assert all(pa.record(h.pos).scope.user == "u2" for h in va)
            overlap.append(len({pa.ids[h.pos] for h in va} & {pe.ids[h.pos] for h in ve}) / 10)
        assert np.mean(overlap) >= 0.9
        [new] = mem.ingest(["zebra quagga okapi"], scope="a/u2")  # appended to the graph in place
        q = mem.embedder.embed(["zebra quagga okapi"])[0]
        pa, va, ta = ann.search(Scope("a", "u2"), q, "zebra", None, None, None, 3)
        assert pa.ids[va[0].pos] == new and pa.ids[ta[0].pos] == new


def test_many_deletes_compact_the_partition_and_answers_stay_right(ws, me):
    mem = ws.memory
    ids = mem.ingest([f"item {i} about {'cats' if i % 2 else 'dogs'}" for i in range(1200)], scope="z")
    mem.recall("cats", scope="z")
    mem.forget(ids[:900], principal=me, scope="z")
    part = mem.ltm.hot.parts["z"]
    assert part.size == part.live == 300
    hits = mem.recall("dogs", scope="z", k=20)
    assert hits and all(h.id in set(ids[900:]) for h in hits)


def test_rewind_reloads_the_index_from_the_restored_table(ws, me):
    mem = ws.memory
    first = mem.ingest(["before the rewind: lemons"], scope="r")
    version = mem.ltm.table.version
    mem.ingest(["after the rewind: limes"], scope="r")
    assert len(mem.recall("rewind", scope="r")) == 2
    mem.rewind(version=version, principal=me)
    assert [h.id for h in mem.recall("rewind", scope="r")] == first


def test_bm25_scores_within_the_mask_and_ranks_the_rare_term_first():
    index = BM25()
    for i, text in enumerate(["the cat sat", "a cat ran", "dogs bark loudly", "the cat and the okapi"]):
        index.add(i, text)
    mask = np.ones(4, bool)
    docs, scores = index.top(tokens("okapi cat"), mask, 4)
    assert docs[0] == 3 and len(docs) == 3
    mask[3] = False
    assert 3 not in index.top(tokens("okapi cat"), mask, 4)[0]
    assert tokens("Running memories") == ["run", "memori"]


@pytest.mark.parametrize("n", [0, 1])
def test_empty_and_single_memory_scopes_answer_without_error(ws, n):
    mem = ws.memory
    if n:
        mem.ingest(["only one"], scope="s")
    assert len(mem.recall("one", scope="s")) == n


def test_a_new_process_answers_from_the_snapshot_when_the_table_is_unchanged(home):
    with Workstation.open(home, embedder="hashing") as ws:
        ids = ws.memory.ingest(["snapshot note about quartz", "snapshot note about basalt"], scope="geo")
        ws.memory.recall("quartz", scope="geo")
    assert (home / "cache" / "hot" / "geo.npz").exists()
    out = _child(home, """
        hits = mem.recall("quartz", scope="geo", k=1)
        print(hits[0].id, mem.ltm.hot.loaded_snapshots, mem.ltm.hot.rebuilds)
    """)
    assert out.split() == [ids[0], "1", "0"]


def test_a_snapshot_of_an_older_version_is_caught_up_and_a_damaged_one_is_ignored(home):
    with Workstation.open(home, embedder="hashing") as ws:
        first = ws.memory.ingest(["granite is igneous"], scope="geo")
        ws.memory.recall("granite", scope="geo")
    _child(home, f"mem.ltm.hot.snapshot_dir = None\nmem.forget({first[0]!r}, principal=ws.principal, scope='geo')\n"
           "mem.ingest(['marble is metamorphic'], scope='geo')")
    out = _child(home, 'print(";".join(h.text for h in mem.recall("granite marble", scope="geo")))')
    assert out == "marble is metamorphic"
    (home / "cache" / "hot" / "geo.npz").write_bytes(b"not a snapshot")
    out = _child(home, 'print(";".join(h.text for h in mem.recall("marble", scope="geo")))')
    assert out == "marble is metamorphic"


def test_a_snapshot_write_killed_halfway_leaves_debris_that_the_next_save_removes(home):
    with Workstation.open(home, embedder="hashing") as ws:
        ws.memory.ingest(["a note on feldspar"], scope="geo")
        ws.memory.recall("feldspar", scope="geo")
        snapshots = home / "cache" / "hot"
        snapshots.mkdir(parents=True, exist_ok=True)
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, check=True).stdout.strip()
        debris = snapshots / f"geo.npz.{dead}.tmp"
        debris.write_bytes(b"half a snapshot")
    assert not debris.exists() and (snapshots / "geo.npz").exists()
    assert _child(home, 'print(mem.recall("feldspar", scope="geo")[0].text)') == "a note on feldspar"


def test_a_failing_hot_index_falls_back_to_lancedb_and_says_so(ws, monkeypatch, caplog):
    mem = ws.memory
    [kept] = mem.ingest(["the falcon nests on the cathedral tower"], scope="birds")
    mem.ingest(["sparrows eat seeds"], scope="birds")

    def broken(*args, **kwargs):
        raise MemoryError("no room for the index")

    monkeypatch.setattr(mem.ltm.hot, "partition", broken)
    with caplog.at_level("WARNING", logger="emergent.memory"):
        hits = mem.recall("falcon tower", scope="birds", k=1)
    assert [h.id for h in hits] == [kept] and mem.index_failures == 1
    assert "falls back to LanceDB" in caplog.text


def test_a_damaged_store_is_not_hidden_by_the_fallback(ws, monkeypatch):
    from emergent.errors import StoreCorruptError

    mem = ws.memory
    mem.ingest(["a note"], scope="s")

    def damaged(*args, **kwargs):
        raise StoreCorruptError("LanceDB table memories.lance is damaged", path="memories.lance")

    monkeypatch.setattr(mem.ltm.hot, "partition", damaged)
    with pytest.raises(StoreCorruptError):
        mem.recall("note", scope="s")


def test_with_the_hot_index_off_recall_answers_from_lancedb(home):
    with Workstation.open(home, embedder="hashing") as ws:
        mem = ws.memory
        mem.config = mem.config.model_copy(update={"hot_index": False})
        ids = mem.ingest(["basalt columns at the coast", "granite in the highlands"], scope="geo")
        assert mem.recall("basalt coast", scope="geo", k=1)[0].id == ids[0]
        assert not mem.ltm.hot.parts


def test_recall_racing_forgets_and_compaction_never_answers_a_forgotten_or_mismatched_memory(ws, me):
    import threading

    mem = ws.memory
    texts = [f"episode {i} about comets and telescopes number {i}" for i in range(1600)]
    ids = mem.ingest(texts, scope="sky", kind="episodic")
    text_of = dict(zip(ids, texts, strict=True))
    mem.recall("comets", scope="sky")
    gone: set[str] = set()
    problems: list[str] = []
    stop = threading.Event()

    def reader() -> None:
        while not stop.is_set():
            before = set(gone)
            for h in mem.recall("comets telescopes", scope="sky", k=20, touch=False):
                if h.id in before:
                    problems.append(f"forgotten {h.id} answered")
                if h.text != text_of[h.id]:
                    problems.append(f"{h.id} answered with another memory's text")

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for start in range(0, 1200, 100):  # deletes past half the partition compact it (positions move)
        batch = ids[start:start + 100]
        mem.forget(batch, principal=me, scope="sky")
        gone.update(batch)
    stop.set()
    for t in threads:
        t.join()
    assert mem.ltm.hot.parts["sky"].generation > 1 and not problems, problems[:3]


def test_recalled_memories_carry_when_they_happened_and_when_they_were_learned(ws):
    mem = ws.memory
    [old] = mem.ingest([{"text": "the bridge opened in spring", "at": "2021-04-01"}], scope="city")
    hit = mem.recall("bridge opened", scope="city", k=1)[0]
    stored = mem.ltm.get(old, Scope("city"))
    assert hit.id == old and hit.record.event_time == stored.created_at < stored.learned_at
    assert hit.record.learned_at == stored.learned_at


def test_a_snapshot_of_an_older_format_is_rebuilt_from_lancedb(home):
    with Workstation.open(home, embedder="hashing") as ws:
        ids = ws.memory.ingest(["format note about quartz", "format note about basalt"], scope="geo")
        ws.memory.recall("quartz", scope="geo")
    path = home / "cache" / "hot" / "geo.npz"
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    header = json.loads(bytes(arrays["header"]).decode())
    assert header["format"] == 3
    arrays["header"] = np.frombuffer(json.dumps({**header, "format": 2}).encode(), np.uint8)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)
    out = _child(home, """
        hits = mem.recall("quartz", scope="geo", k=1)
        print(hits[0].id, mem.ltm.hot.loaded_snapshots, mem.ltm.hot.rebuilds)
    """)
    assert out.split() == [ids[0], "0", "1"]
