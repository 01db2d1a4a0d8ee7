"""What a short-term memory shared by the processes of a workspace must promise, with real processes.

Runs on every shared backend: SQLiteSTM (the embedded default, one file in the workspace) and
RedisSTM (a real redis-server). Other processes are real interpreters (``subprocess``) or real
forks (``multiprocessing``), never threads pretending to be processes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emergent.clock import FakeClock
from emergent.errors import ConfigError, StoreUnavailableError
from emergent.memory.stm import LocalSTM, RedisSTM
from emergent.memory.stm_sqlite import SQLiteSTM
from emergent.memory.types import Kind, MemoryRecord, Scope

ROOT = Path(__file__).resolve().parents[2]

# The other process: opens the same store from a JSON spec and does one of a few things.
CHILD = r"""
import json, sys, threading
import numpy as np
from emergent.memory.types import Kind, MemoryRecord, Scope

spec = json.loads(sys.argv[1])


def rec(id, agent="a"):
    return MemoryRecord(id=id, text="from child " + id, kind=Kind.EPISODIC, importance=0.5, scope=Scope(agent),
                        created_at=0.0, last_accessed=0.0, stability=1.0, meta={"pid": 1},
                        vector=np.full(8, 0.5, dtype=np.float32))


if spec["backend"] == "sqlite":
    from emergent.memory.stm_sqlite import SQLiteSTM
    stm = SQLiteSTM(spec["path"], spec["max_items"], spec["max_evicted"])
else:
    import redis
    from emergent.memory.stm import RedisSTM
    stm = RedisSTM(redis.Redis.from_url(spec["url"]), spec["ns"], spec["max_items"], spec["max_evicted"])

mode = spec["mode"]
if mode == "put":
    for id in spec["ids"]:
        stm.put(rec(id), spec.get("ttl", 600.0))
        print(id, flush=True)
elif mode == "get":
    print(json.dumps({id: (r.text if (r := stm.get("a", id)) is not None else None) for id in spec["ids"]}))
elif mode == "churn":  # replace, delete and add items another process has already scanned
    for id in spec["replace"] + spec["add"]:
        stm.put(rec(id), 600.0)
    stm.delete("a", spec["delete"])
elif mode == "forever":  # acknowledge each put only after it returned
    i = 0
    while True:
        id = "k%07d" % i
        stm.put(rec(id), 600.0)
        sys.stdout.write(id + "\n")
        sys.stdout.flush()
        i += 1
elif mode == "threads":
    print("ready", flush=True)
    sys.stdin.readline()
    evicted, errors = [0] * len(spec["threads"]), []

    def work(t, ids):
        try:
            for id in ids:
                evicted[t] += stm.put(rec(id), 600.0)
        except Exception as exc:
            errors.append(repr(exc))

    threads = [threading.Thread(target=work, args=(t, ids)) for t, ids in enumerate(spec["threads"])]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    print(json.dumps({"evicted": sum(evicted), "errors": errors}), flush=True)
stm.close()
"""


def rec(id: str, agent: str = "a", text: str | None = None) -> MemoryRecord:
    return MemoryRecord(id=id, text=text or f"from parent {id}", kind=Kind.EPISODIC, importance=0.5,
                        scope=Scope(agent), created_at=0.0, last_accessed=0.0, stability=1.0, meta={},
                        vector=np.full(8, 0.25, dtype=np.float32))


class Shared:
    """Opens the backend under test in this process and describes it to child processes."""

    def __init__(self, backend: str, tmp_path: Path, redis_url: str | None) -> None:
        self.backend = backend
        self.spec = {"backend": backend, "path": str(tmp_path / "ws" / "stm.db"), "url": redis_url,
                     "ns": "emergent:shared-test", "max_items": 100_000, "max_evicted": 100_000}
        self.opened: list[object] = []

    def open(self, max_items: int | None = None, max_evicted: int | None = None) -> SQLiteSTM | RedisSTM:
        mi, me = max_items or self.spec["max_items"], max_evicted or self.spec["max_evicted"]
        stm: SQLiteSTM | RedisSTM
        if self.backend == "sqlite":
            stm = SQLiteSTM(self.spec["path"], mi, me)
        else:
            import redis

            stm = RedisSTM(redis.Redis.from_url(self.spec["url"]), self.spec["ns"], mi, me)
        self.opened.append(stm)
        return stm

    def argv(self, **spec: object) -> list[str]:
        return [sys.executable, "-c", CHILD, json.dumps({**self.spec, **spec})]

    def run(self, **spec: object) -> str:
        done = subprocess.run(self.argv(**spec), cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def popen(self, **spec: object) -> subprocess.Popen[str]:
        return subprocess.Popen(self.argv(**spec), cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def check_integrity(self) -> None:
        if self.backend == "sqlite":
            with sqlite3.connect(self.spec["path"]) as conn:
                assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


@pytest.fixture(params=["sqlite", "redis"])
def shared(request, tmp_path):
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    s = Shared(request.param, tmp_path, url)
    yield s
    for stm in s.opened:
        stm.close()  # type: ignore[attr-defined]


def test_processes_see_each_others_puts(shared):
    mine = shared.open()
    mine.put(rec("p1"), 600)
    assert json.loads(shared.run(mode="get", ids=["p1"])) == {"p1": "from parent p1"}
    shared.run(mode="put", ids=["c1", "c2"])
    got = mine.get("a", "c1")
    assert got is not None and got.text == "from child c1" and got.meta == {"pid": 1}
    assert [r.id for r in mine.scan("a")][:2] == ["c2", "c1"]
    assert "a" in mine.agents()


def test_items_outlive_the_process_that_wrote_them(shared):
    ids = [f"m{i}" for i in range(20)]
    assert shared.run(mode="put", ids=ids).split() == ids  # the writer exited
    fresh = shared.open()
    assert sorted(r.id for r in fresh.scan("a")) == sorted(ids)


@pytest.mark.parametrize("acknowledged", [37, 401])
def test_a_process_killed_right_after_put_returned_loses_nothing(shared, acknowledged):
    child = shared.popen(mode="forever")
    seen: list[str] = []
    try:
        while len(seen) < acknowledged:
            line = child.stdout.readline()
            assert line, child.stderr.read()
            seen.append(line.strip())
        os.kill(child.pid, signal.SIGKILL)  # mid-stream: the next put may be half done
        child.wait(30)
        rest = child.stdout.read()  # through the same buffer readline() filled
    finally:
        if child.poll() is None:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    seen += rest.split()  # printed before the kill landed: those puts had returned too
    shared.check_integrity()
    stm = shared.open()
    stored = {r.id for r in stm.scan("a")}
    assert [i for i in seen if i not in stored] == []
    assert len(stored) - len(seen) in (0, 1)  # at most the put in flight, never a partial one


def test_concurrent_writers_keep_the_bound_and_lose_no_evicted_item(shared):
    procs, threads, per_thread, bound = 2, 4, 120, 50
    ids = [[[f"p{p}t{t}i{i:03d}" for i in range(per_thread)] for t in range(threads)] for p in range(procs)]
    children = [shared.popen(mode="threads", threads=ids[p], max_items=bound) for p in range(procs)]
    try:
        for c in children:
            assert c.stdout.readline().strip() == "ready", c.stderr.read()
        for c in children:  # start together: both open the store first (a fresh file for SQLite)
            c.stdin.write("go\n")
            c.stdin.flush()
        results = [json.loads(c.communicate(timeout=180)[0]) for c in children]
    finally:
        for c in children:
            if c.poll() is None:
                c.kill()
    assert [r["errors"] for r in results] == [[], []]
    stm = shared.open(max_items=bound)
    live = [r.id for r in stm.scan("a")]
    evicted = [r.id for r in stm.drain_evicted("a")]
    everything = {i for p in ids for t in p for i in t}
    assert len(live) == bound
    assert sum(r["evicted"] for r in results) == len(evicted) == len(everything) - bound
    assert sorted(live + evicted) == sorted(everything)  # no loss, no duplicate
    shared.check_integrity()


def test_a_short_ttl_expires_for_every_process(shared):
    # 2 s: the writer's exit and this open must come within it on a loaded machine (0.3 s did not)
    shared.run(mode="put", ids=["brief"], ttl=2.0)
    returned = time.monotonic()
    stm = shared.open()
    assert stm.get("a", "brief") is not None
    time.sleep(max(0.0, returned + 2.2 - time.monotonic()))  # the put came before the writer returned
    assert stm.get("a", "brief") is None
    assert stm.scan("a") == []


def _put_in_fork(stm: SQLiteSTM | RedisSTM, n: int) -> None:
    for i in range(n):
        stm.put(rec(f"fork{i}"), 600)


def test_a_forked_child_can_use_the_instance_it_inherited(shared):
    stm = shared.open()
    stm.put(rec("before"), 600)  # the parent's connection is open when it forks
    child = multiprocessing.get_context("fork").Process(target=_put_in_fork, args=(stm, 30))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    stm.put(rec("after"), 600)
    assert {r.id for r in stm.scan("a")} == {"before", "after", *(f"fork{i}" for i in range(30))}
    shared.check_integrity()


# ------------------------------------------------------------------- the embedded stores only
@pytest.mark.parametrize("backend", ["local", "sqlite"])
def test_expired_items_are_parked_for_consolidation(backend, tmp_path):
    clock = FakeClock(1000.0)
    stm = LocalSTM(10, clock=clock.now) if backend == "local" else SQLiteSTM(tmp_path / "stm.db", 10, clock=clock.now)
    stm.put(rec("old"), ttl_s=5)
    stm.put(rec("new"), ttl_s=500)
    clock.advance(10)
    assert [r.id for r in stm.scan("a")] == ["new"]
    assert [r.id for r in stm.drain_evicted("a")] == ["old"]
    assert stm.agents() == ["a"]
    stm.close()


def test_evicted_items_beyond_the_cap_are_counted_not_dropped_silently(tmp_path):
    stm = SQLiteSTM(tmp_path / "stm.db", max_items=2, max_evicted=3)
    for i in range(10):
        stm.put(rec(f"r{i}"), 600)
    h = stm.health()
    assert (h["items"], h["evicted"], h["evicted_dropped"]) == (2, 3, 5)
    assert [r.id for r in stm.drain_evicted("a")] == ["r5", "r6", "r7"]  # the newest evicted are kept
    stm.close()


def test_a_writer_that_cannot_get_the_lock_says_so_and_writes_nothing(tmp_path):
    path = tmp_path / "stm.db"
    stm = SQLiteSTM(path, busy_timeout_s=0.2)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
        "c.execute('BEGIN IMMEDIATE'); print('locked', flush=True); sys.stdin.readline()"), str(path)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreUnavailableError, match=str(path)) as info:
            stm.put(rec("x"), 600)
        assert "Nothing was written" in info.value.hint
    finally:
        holder.communicate("\n", timeout=10)
    assert stm.get("a", "x") is None
    stm.put(rec("x"), 600)  # the lock is free again
    assert stm.get("a", "x") is not None
    stm.close()


def test_a_scan_after_another_process_changed_items_returns_exactly_what_is_stored(shared):
    """A scan reads only what changed since this instance's last one: what another process
    replaced, deleted, added or pushed out over the bound must all show, and nothing stale."""
    stm = shared.open(max_items=12)
    for i in range(10):
        stm.put(rec(f"p{i}"), 600.0)
    assert [r.id for r in stm.scan("a")] == [f"p{i}" for i in reversed(range(10))]
    assert [(r.id, r.text) for r in stm.scan("a")] == [(r.id, r.text) for r in stm.scan("a")]  # the same answer
    shared.run(mode="churn", max_items=12, replace=["p3"], delete=[], add=["c1"])  # only newer items
    got = stm.scan("a")
    assert [r.id for r in got] == ["c1", "p3", "p9", "p8", "p7", "p6", "p5", "p4", "p2", "p1", "p0"]
    assert got[1].text == "from child p3"
    shared.run(mode="churn", max_items=12, replace=[], delete=["p5", "p7"], add=["c2", "c3", "c4"])
    got = stm.scan("a")
    # 10 + 4 added = 14 > 12: the two oldest (p0, p1) were evicted; p5 and p7 deleted after that
    assert [r.id for r in got] == ["c4", "c3", "c2", "c1", "p3", "p9", "p8", "p6", "p4", "p2"]
    assert {r.id: r.text for r in got}["p3"] == "from child p3"
    assert {r.id: r.text for r in got}["p9"] == "from parent p9"
    stm.put(rec("p9", text="replaced here"), 600.0)
    assert [r.text for r in stm.scan("a")][0] == "replaced here"


def test_a_scan_of_an_unchanged_store_decodes_nothing(shared):
    """A full short-term memory is scanned by every recall: unchanged items are not decoded again."""
    stm = shared.open()
    for i in range(50):
        stm.put(rec(f"i{i}"), 600.0)
    decoded: list[str] = []
    inner = stm._decode
    stm._decode = lambda value, agent, id=None: (decoded.append(id), inner(value, agent, id))[1]  # type: ignore[method-assign]
    first = stm.scan("a")
    assert len(first) == 50 and len(decoded) == 50
    decoded.clear()
    assert [r.id for r in stm.scan("a")] == [r.id for r in first] and decoded == []
    stm.put(rec("i7", text="changed"), 600.0)
    stm.put(rec("new"), 600.0)
    again = stm.scan("a")
    assert sorted(decoded) == ["i7", "new"]
    assert [r.id for r in again][:2] == ["new", "i7"] and again[1].text == "changed" and len(again) == 51


def test_a_full_memory_is_scanned_without_listing_every_item_again(tmp_path):
    """Every put into a full memory evicts its oldest item: the scan after it reads only the new
    item and drops the evicted one, with no full listing, and answers as a fresh instance does."""
    shared = Shared("sqlite", tmp_path, None)
    try:
        _full_memory_scans(shared)
    finally:
        for opened in shared.opened:
            opened.close()  # type: ignore[attr-defined]


def _full_memory_scans(shared: Shared) -> None:
    stm = shared.open(max_items=50)
    for i in range(50):
        stm.put(rec(f"i{i}"), 600.0)
    assert len(stm.scan("a")) == 50
    listed: list[str] = []
    conn = stm._conn()
    stm._db = _Tracing(conn, listed)
    decoded: list[str] = []
    inner = stm._decode
    stm._decode = lambda value, agent, id=None: (decoded.append(id), inner(value, agent, id))[1]  # type: ignore[method-assign]
    stm.put(rec("n1"), 600.0)
    stm.put(rec("i3", text="replaced"), 600.0)  # a replaced item is not evicted at its old position
    got = stm.scan("a")
    assert sorted(decoded) == ["i3", "n1"] and not any("ORDER BY seq DESC" in q for q in listed)
    fresh = shared.open(max_items=50)
    want = [(r.id, r.text) for r in fresh.scan("a")]
    assert [(r.id, r.text) for r in got] == want and len(want) == 50
    assert [w[0] for w in want][:2] == ["i3", "n1"] and "i0" not in dict(want) and "i1" in dict(want)
    shared.run(mode="churn", max_items=50, replace=[], delete=[], add=[f"c{i}" for i in range(60)])
    got = stm.scan("a")  # another process evicted everything this one listed: the same answer
    assert [(r.id, r.text) for r in got] == [(r.id, r.text) for r in shared.open(max_items=50).scan("a")]
    assert [r.id for r in got] == [f"c{i}" for i in reversed(range(10, 60))]
    stm.delete("a", ["c30"])  # a removal out of order still lists again
    assert "c30" not in [r.id for r in stm.scan("a")] and len(stm.scan("a")) == 49


class _Tracing:
    """A sqlite3 connection that records the statements it runs."""

    def __init__(self, conn: sqlite3.Connection, seen: list[str]) -> None:
        self._conn, self._seen = conn, seen

    def execute(self, sql, *args):
        self._seen.append(sql)
        return self._conn.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self._conn, name)


def test_a_file_of_layout_2_gets_the_eviction_floor_and_keeps_its_items(tmp_path):
    path = tmp_path / "stm.db"
    stm = SQLiteSTM(path, max_items=5)
    for i in range(3):
        stm.put(rec(f"old{i}"), 600.0)
    stm.close()
    with sqlite3.connect(path) as conn:  # back to layout 2: no floor column
        conn.execute("ALTER TABLE stm_agents DROP COLUMN floor")
        conn.execute("PRAGMA user_version = 2")
    stm = SQLiteSTM(path, max_items=5)
    assert [r.id for r in stm.scan("a")] == ["old2", "old1", "old0"]
    for i in range(4):
        stm.put(rec(f"new{i}"), 600.0)
    assert [r.id for r in stm.scan("a")] == ["new3", "new2", "new1", "new0", "old2"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("SELECT floor, removed FROM stm_agents WHERE agent = 'a'").fetchone() == (2, 0)
    stm.close()


def test_a_file_of_layout_1_is_carried_over_and_keeps_its_items(tmp_path):
    """Layout 2 adds the removal counter and the covering index; a layout-1 file keeps every item."""
    path = tmp_path / "stm.db"
    with sqlite3.connect(path) as conn:
        for stmt in LAYOUT_1:
            conn.execute(stmt)
        conn.execute("PRAGMA user_version = 1")
    from emergent.memory import _codec

    with sqlite3.connect(path) as conn:
        for i in range(3):
            r = rec(f"old{i}")
            (seq,) = conn.execute("INSERT INTO stm_agents (agent, seq) VALUES ('a', 1) ON CONFLICT (agent) DO UPDATE "
                                  "SET seq = seq + 1 RETURNING seq").fetchone()
            conn.execute("INSERT INTO stm_items (agent, id, seq, expires, value) VALUES (?, ?, ?, ?, ?)",
                         ("a", r.id, seq, time.time() + 600, _codec.encode(r)))
    stm = SQLiteSTM(path)
    assert [r.id for r in stm.scan("a")] == ["old2", "old1", "old0"]
    stm.delete("a", ["old1"])
    assert [r.id for r in stm.scan("a")] == ["old2", "old0"]
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 3
        assert conn.execute("SELECT removed FROM stm_agents WHERE agent = 'a'").fetchone()[0] == 1
    stm.close()


LAYOUT_1 = (
    "CREATE TABLE stm_items (rid INTEGER PRIMARY KEY, agent TEXT NOT NULL, id TEXT NOT NULL, seq INTEGER NOT NULL, "
    "expires REAL NOT NULL, value BLOB NOT NULL, UNIQUE (agent, id))",
    "CREATE INDEX stm_items_recent ON stm_items (agent, seq)",
    "CREATE TABLE stm_evicted (n INTEGER PRIMARY KEY, agent TEXT NOT NULL, value BLOB NOT NULL)",
    "CREATE INDEX stm_evicted_agent ON stm_evicted (agent, n)",
    "CREATE TABLE stm_agents (agent TEXT PRIMARY KEY, seq INTEGER NOT NULL DEFAULT 0, items INTEGER NOT NULL "
    "DEFAULT 0, evicted INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID",
    "CREATE TABLE stm_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID",
    "CREATE TRIGGER stm_items_ins AFTER INSERT ON stm_items BEGIN INSERT INTO stm_agents (agent, items) "
    "VALUES (NEW.agent, 1) ON CONFLICT (agent) DO UPDATE SET items = items + 1; END",
    "CREATE TRIGGER stm_items_del AFTER DELETE ON stm_items BEGIN UPDATE stm_agents SET items = items - 1 "
    "WHERE agent = OLD.agent; END",
    "CREATE TRIGGER stm_evicted_ins AFTER INSERT ON stm_evicted BEGIN INSERT INTO stm_agents (agent, evicted) "
    "VALUES (NEW.agent, 1) ON CONFLICT (agent) DO UPDATE SET evicted = evicted + 1; END",
    "CREATE TRIGGER stm_evicted_del AFTER DELETE ON stm_evicted BEGIN UPDATE stm_agents SET evicted = evicted - 1 "
    "WHERE agent = OLD.agent; END",
)


def test_a_file_from_a_newer_layout_is_refused(tmp_path):
    path = tmp_path / "stm.db"
    SQLiteSTM(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version = 99")
    with pytest.raises(ConfigError, match="layout 99"):
        SQLiteSTM(path)


def test_health_reports_wal_and_the_counts(tmp_path):
    stm = SQLiteSTM(tmp_path / "stm.db", max_items=1)
    stm.put(rec("a1"), 600)
    stm.put(rec("a2"), 600)
    h = stm.health()
    assert (h["ok"], h["journal_mode"], h["synchronous"], h["items"], h["evicted"]) == (True, "wal", "normal", 1, 1)
    stm.close()
