"""Adversarial tests of incremental short-term memory scans (docs/decisions.md 91).

``SQLiteSTM.scan`` reads only what changed since this instance's last scan, ``RedisSTM.scan``
decodes only values whose bytes changed, and the service ranks short-term items through an
``STMView`` kept by record identity. Each test is one attack: the answer of an incremental scan (or
recall) must be what a fresh, non-incremental read of the store answers, and what the store no
longer holds must leave this process. Other processes are real interpreters.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emergent.clock import FakeClock
from emergent.errors import StoreResetError
from emergent.memory.stm import SCANS_KEPT, RedisSTM, keep_scan
from emergent.memory.stm_sqlite import _NEXT_SEQ, _UPSERT, SQLiteSTM
from emergent.memory.types import Kind, MemoryRecord, Scope

ROOT = Path(__file__).resolve().parents[2]


def rec(id: str, agent: str = "a", text: str | None = None, user: str | None = None) -> MemoryRecord:
    return MemoryRecord(id=id, text=text or f"text of {id}", kind=Kind.EPISODIC, importance=0.5,
                        scope=Scope(agent, user), created_at=0.0, last_accessed=0.0, stability=1.0, meta={},
                        vector=np.full(8, 0.25, dtype=np.float32))


def listed(stm) -> list[tuple[str, str]]:
    return [(r.id, r.text) for r in stm.scan("a")]


# The other process: opens a store from a JSON spec and does what it says.
CHILD = r"""
import json, random, sys
import numpy as np
from emergent.memory.types import Kind, MemoryRecord, Scope

spec = json.loads(sys.argv[1])


def rec(id, text, agent="a"):
    return MemoryRecord(id=id, text=text, kind=Kind.EPISODIC, importance=0.5, scope=Scope(agent),
                        created_at=0.0, last_accessed=0.0, stability=1.0, meta={},
                        vector=np.full(8, 0.5, dtype=np.float32))


if spec["backend"] == "sqlite":
    from emergent.memory.stm_sqlite import SQLiteSTM
    stm = SQLiteSTM(spec["path"], spec.get("max_items", 2000))
else:
    import redis
    from emergent.memory.stm import RedisSTM
    stm = RedisSTM(redis.Redis.from_url(spec["url"]), spec["ns"], spec.get("max_items", 2000))

mode = spec["mode"]
if mode == "delete":
    print(stm.delete(spec["agent"], spec["ids"]), flush=True)
elif mode == "put":
    for agent, id, text in spec["items"]:
        stm.put(rec(id, text, agent), 600.0)
    print("ok", flush=True)
elif mode == "churn":  # until killed: puts, replacements (some identical), deletes, instant expiry
    rnd = random.Random(spec["seed"])
    n = 0
    print("ready", flush=True)
    while True:
        n += 1
        op = rnd.random()
        id = "c%d" % rnd.randrange(30)
        if op < 0.55:
            stm.put(rec(id, "v%d of %s" % (n, id)), 0.0 if rnd.random() < 0.1 else 600.0)
        elif op < 0.75:
            stm.put(rec(id, "same " + id), 600.0)  # the same value again
        elif op < 0.9:
            stm.delete("a", [id, "c%d" % rnd.randrange(30)])
        else:
            stm.scan("a")  # parks what expired
"""


def child(spec: dict, **extra) -> list[str]:
    return [sys.executable, "-c", CHILD, json.dumps({**spec, **extra})]


def run(spec: dict, **extra) -> str:
    done = subprocess.run(child(spec, **extra), cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(params=["sqlite", "redis"])
def backend(request, tmp_path):
    if request.param == "sqlite":
        spec = {"backend": "sqlite", "path": str(tmp_path / "ws" / "stm.db")}
    else:
        spec = {"backend": "redis", "url": request.getfixturevalue("redis_url"), "ns": "emergent:attack"}
    opened: list = []

    def open_(max_items: int = 2000, clock=None):
        if spec["backend"] == "sqlite":
            stm = SQLiteSTM(spec["path"], max_items, clock=clock)
        else:
            import redis

            stm = RedisSTM(redis.Redis.from_url(spec["url"]), spec["ns"], max_items, clock=clock)
        opened.append(stm)
        return stm

    yield spec, open_
    for stm in opened:
        stm.close()


# ------------------------------------------------------------------ erasure by another process
@pytest.mark.parametrize("stm_backend", ["sqlite", "redis"])
def test_another_process_deleting_every_item_of_an_agent_leaves_no_text_here_after_the_next_recall(
        stm_backend, tmp_path, request):
    """Decision 91: "another process's erasure drops them at this process's next recall of that
    agent". When the erasure leaves the agent with no short-term item at all, the recall found
    nothing to rank and returned before syncing its view: the erased text stayed in this process
    (the recall view, and Redis's decoded scan) for as long as the process lived."""
    from emergent import Workstation

    extra = {"redis_url": request.getfixturevalue("redis_url")} if stm_backend == "redis" else {}
    ws = Workstation.open(tmp_path / "home", embedder="hashing", **extra)
    try:
        secret = ws.memory.remember("the vault combination is 7-31-44")
        assert [h.id for h in ws.memory.recall("vault combination", k=3)] == [secret.id]
        inner = ws.memory.stm.inner
        if stm_backend == "sqlite":
            spec = {"backend": "sqlite", "path": str(inner.path)}
        else:
            spec = {"backend": "redis", "url": extra["redis_url"], "ns": inner.ns}
        assert run(spec, mode="delete", agent=secret.scope.agent, ids=[secret.id]).strip() == "1"
        assert ws.memory.recall("vault combination", k=3) == []
        held = [r.text for v in ws.memory._stm_views.values() for r in v._rec if r is not None]
        assert not any("vault" in t for t in held), "the recall view still holds the erased text"
        if stm_backend == "redis":
            decoded = [r.text for scan in inner._decoded.values() for _v, r in scan.values()]
            assert not any("vault" in t for t in decoded), "the store's decoded scan still holds the erased text"
        else:
            kept = [r.text for lst in inner._listing.values() for r in lst.records()]
            assert not any("vault" in t for t in kept)
    finally:
        ws.close()


# ------------------------------------------------------------------ many agents, threads
def test_concurrent_scans_of_many_agents_do_not_crash_on_the_kept_scans():
    """RedisSTM keeps its decoded scans with ``keep_scan`` and no lock, and recalls run in threads:
    with more agents than SCANS_KEPT, two threads dropping the least recent agent at once raised
    KeyError or 'dictionary changed size during iteration' out of a scan."""
    cache: dict[str, int] = {}
    errors: list[str] = []
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)

    def work(t: int) -> None:
        try:
            for i in range(20_000):
                keep_scan(cache, f"agent{(i * 7 + t) % (SCANS_KEPT * 3)}", i)
        except Exception as exc:  # noqa: BLE001 - the test collects what a scan would have raised
            errors.append(repr(exc))

    try:
        threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)
    assert errors == []
    assert len(cache) == SCANS_KEPT


def test_scans_of_many_agents_from_threads_return_exactly_what_is_stored(backend):
    spec, open_ = backend
    stm = open_()
    agents = [f"g{i}" for i in range(SCANS_KEPT * 2 + 3)]
    for a in agents:
        for j in range(3):
            stm.put(rec(f"{a}-{j}", agent=a), 600.0)
    errors: list[str] = []

    def work(t: int) -> None:
        try:
            for i in range(150):
                a = agents[(i * 5 + t) % len(agents)]
                got = [r.id for r in stm.scan(a)]
                if got != [f"{a}-2", f"{a}-1", f"{a}-0"]:
                    errors.append(f"{a}: {got}")
        except Exception as exc:  # noqa: BLE001
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(t,)) for t in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert errors == []


def test_an_agent_scanned_on_the_fast_path_keeps_its_listing_while_other_agents_cycle(tmp_path):
    """Each store keeps the decoded scans of the SCANS_KEPT most recently *listed* agents. A SQLite
    scan answered from the fast path did not count as a listing: the one agent recalled all the
    time was dropped after SCANS_KEPT others were listed once, and decoded in full again (29 ms for
    a full short-term memory) every time the others came round."""
    stm = SQLiteSTM(tmp_path / "stm.db")
    try:
        for i in range(20):
            stm.put(rec(f"hot{i}", agent="hot"), 600.0)
        for k in range(SCANS_KEPT + 2):
            stm.put(rec(f"x{k}", agent=f"other{k}"), 600.0)
        stm.scan("hot")
        decoded: list[str] = []
        inner = stm._decode
        stm._decode = lambda value, agent, id=None: (decoded.append(agent), inner(value, agent, id))[1]  # type: ignore[method-assign]
        for k in range(SCANS_KEPT + 2):  # the hot agent is recalled between every other listing
            stm.scan(f"other{k}")
            assert len(stm.scan("hot")) == 20
        assert "hot" not in decoded, "the agent scanned every time was dropped from the kept listings"
    finally:
        stm.close()


def test_agents_cycling_past_the_kept_scans_see_every_change_of_another_process(backend):
    """More agents than SCANS_KEPT, scanned round-robin while another process replaces (also with
    the same value), adds and deletes: every scan equals a fresh instance's."""
    spec, open_ = backend
    stm, fresh_ = open_(max_items=4), None
    agents = [f"r{i}" for i in range(SCANS_KEPT + 4)]
    for a in agents:
        for j in range(3):
            stm.put(rec(f"{a}-{j}", agent=a, text=f"first {a}-{j}"), 600.0)
    for a in agents:
        stm.scan(a)
    for rnd in range(3):
        items = [[a, f"{a}-{rnd % 3}", f"round {rnd} {a}"] for a in agents[rnd::3]]
        items += [[a, f"{a}-1", f"first {a}-1"] for a in agents[1::4]]  # identical values again
        items += [[a, f"{a}-n{rnd}", f"new {a}"] for a in agents[::5]]  # over the bound: evictions
        run(spec, mode="put", items=items, max_items=4)
        run(spec, mode="delete", agent=agents[rnd], ids=[f"{agents[rnd]}-2"], max_items=4)
        fresh_ = open_(max_items=4)
        for a in agents:
            assert [(r.id, r.text) for r in stm.scan(a)] == [(r.id, r.text) for r in fresh_.scan(a)], a


# ------------------------------------------------------------------ sequence numbers
def test_a_put_that_took_a_sequence_number_and_rolled_back_is_never_listed(tmp_path):
    path = tmp_path / "stm.db"
    stm = SQLiteSTM(path)
    try:
        stm.put(rec("a1"), 600.0)
        assert [r.id for r in stm.scan("a")] == ["a1"]
        raw = sqlite3.connect(path, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        (seq,) = raw.execute(_NEXT_SEQ, ("a",)).fetchone()
        raw.execute(_UPSERT, ("a", "ghost", seq, time.time() + 600, b"never committed"))
        raw.execute("ROLLBACK")
        raw.close()
        assert [r.id for r in stm.scan("a")] == ["a1"]
        other = SQLiteSTM(path)
        other.put(rec("a2", text="takes the same number"), 600.0)  # reuses the rolled-back number
        other.close()
        assert listed(stm) == [("a2", "takes the same number"), ("a1", "text of a1")]
    finally:
        stm.close()


def test_incremental_scans_match_a_fresh_scan_through_churn_by_processes_killed_mid_write(tmp_path):
    """Processes that put, replace (with new and identical values), delete, expire and park items
    are SIGKILLed mid-write, one after another; after each, this instance's incremental scan (which
    kept scanning during the churn) equals a fresh instance's and the file is intact."""
    spec = {"backend": "sqlite", "path": str(tmp_path / "stm.db")}
    stm = SQLiteSTM(spec["path"], 12)
    try:
        for seed in range(4):
            proc = subprocess.Popen(child(spec, mode="churn", seed=seed, max_items=12), cwd=ROOT,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
                deadline = time.monotonic() + 0.6 + 0.3 * seed
                while time.monotonic() < deadline:
                    got = stm.scan("a")
                    assert len({r.id for r in got}) == len(got) <= 12
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(30)
            finally:
                if proc.poll() is None:
                    proc.kill()
            fresh = SQLiteSTM(spec["path"], 12)
            want = listed(fresh)
            fresh.close()
            assert listed(stm) == want
            with sqlite3.connect(spec["path"]) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        stm.close()


# ------------------------------------------------------------------ expiry and the clock
def test_an_item_expiring_exactly_at_scan_time_is_not_listed_by_an_unchanged_store(tmp_path):
    clock = FakeClock(1000.0)
    stm = SQLiteSTM(tmp_path / "stm.db", clock=clock.now)
    try:
        stm.put(rec("short"), 10.0)
        stm.put(rec("long"), 100.0)
        assert [r.id for r in stm.scan("a")] == ["long", "short"]
        clock.advance(10.0)  # exactly its expiry: expired, as get and every other backend say
        assert stm.get("a", "short") is None
        assert [r.id for r in stm.scan("a")] == ["long"]
        assert [r.id for r in stm.drain_evicted("a")] == ["short"]
        clock.set(900.0)  # the clock goes back: nothing returns, nothing breaks
        assert [r.id for r in stm.scan("a")] == ["long"]
    finally:
        stm.close()


def test_a_replacement_shortening_the_ttl_expires_at_the_new_time(tmp_path):
    clock = FakeClock(1000.0)
    stm = SQLiteSTM(tmp_path / "stm.db", clock=clock.now)
    try:
        stm.put(rec("x"), 600.0)
        assert [r.id for r in stm.scan("a")] == ["x"]
        other = SQLiteSTM(tmp_path / "stm.db", clock=clock.now)
        other.put(rec("x", text="shorter"), 5.0)
        other.close()
        assert listed(stm) == [("x", "shorter")]
        clock.advance(5.0)
        assert stm.scan("a") == []
    finally:
        stm.close()


# ------------------------------------------------------------------ Redis losing its data
def test_redis_flushed_after_a_scan_is_reported_not_answered_from_the_decoded_scan(redis_url):
    import redis

    stm = RedisSTM(redis.Redis.from_url(redis_url), "emergent:attack-flush")
    stm.put(rec("x", text="before the flush"), 600.0)
    assert listed(stm) == [("x", "before the flush")]
    redis.Redis.from_url(redis_url).flushall()
    with pytest.raises(StoreResetError):
        stm.scan("a")
    stm.acknowledge_reset()
    assert stm.scan("a") == []
    stm.put(rec("x", text="after the flush"), 600.0)
    assert listed(stm) == [("x", "after the flush")]
    stm.close()


# ------------------------------------------------------------------ the in-process store
def test_the_in_process_store_ranks_a_replacement_never_the_value_it_replaced(tmp_path):
    from emergent import Workstation

    ws = Workstation.open(tmp_path / "home", embedder="hashing", stm_backend="local")
    try:
        assert ws.memory.stm.name == "local"
        first = ws.memory.remember("the meeting room is the blue room")
        assert [h.id for h in ws.memory.recall("meeting room", k=3)] == [first.id]
        ws.memory.stm.put(first.with_(text="the meeting moved to the green lounge"), 600.0)
        hits = ws.memory.recall("meeting room green lounge", k=3)
        assert [(h.id, h.record.text) for h in hits] == [(first.id, "the meeting moved to the green lounge")]
        assert not any("blue" in h.record.text for h in ws.memory.recall("blue room", k=3))
        ws.memory.stm.put(rec(first.id, agent=first.scope.agent, text="another user's", user="bob"), 600.0)
        assert ws.memory.recall("meeting", k=3, scope=Scope(first.scope.agent, "alice")) == []
    finally:
        ws.close()
