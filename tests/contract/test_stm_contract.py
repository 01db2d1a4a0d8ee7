"""One contract, three backends: LocalSTM, SQLiteSTM (a file) and RedisSTM (a real redis-server).

What only a store shared between processes can promise (another process sees a put, a SIGKILL
right after a put loses nothing, concurrent writers keep the bound) is in test_stm_shared.py.
"""

import numpy as np
import pytest

from emergent.clock import FakeClock
from emergent.memory.stm import LocalSTM, RedisSTM
from emergent.memory.stm_sqlite import SQLiteSTM
from emergent.memory.types import Kind, MemoryRecord, Scope


def rec(i: int, agent: str = "a", user: str | None = None, t: float = 0.0) -> MemoryRecord:
    return MemoryRecord(id=f"id{i:04d}", text=f"text {i} é", kind=Kind.EPISODIC, importance=0.5,
                        scope=Scope(agent, user), created_at=t, last_accessed=t, stability=1.0,
                        meta={"n": i}, vector=np.full(4, i, dtype=np.float32))


@pytest.fixture(params=["local", "sqlite", "redis"])
def make_stm(request, tmp_path):
    clock = FakeClock(1000.0)
    made = []

    def make(max_items: int = 100):
        if request.param == "local":
            stm = LocalSTM(max_items, clock=clock.now)
        elif request.param == "sqlite":
            stm = SQLiteSTM(tmp_path / "stm.db", max_items, clock=clock.now)
        else:
            import redis

            url = request.getfixturevalue("redis_url")
            stm = RedisSTM(redis.Redis.from_url(url), "emergent:test", max_items, clock=clock.now)
        made.append(stm)
        return stm

    make.clock = clock
    make.backend = request.param
    yield make
    for stm in made:
        stm.close()


def test_put_then_get_round_trips_every_field(make_stm):
    stm = make_stm()
    r = rec(1, user="u")
    stm.put(r, ttl_s=60)
    got = stm.get("a", r.id)
    assert got is not None
    assert (got.id, got.text, got.kind, got.scope, got.meta) == (r.id, r.text, r.kind, r.scope, r.meta)
    assert np.array_equal(got.vector, r.vector)


def test_get_of_another_agent_sees_nothing(make_stm):
    stm = make_stm()
    stm.put(rec(1, agent="a"), 60)
    assert stm.get("b", "id0001") is None


def test_scan_returns_most_recent_first(make_stm):
    stm = make_stm()
    for i in range(5):
        make_stm.clock.advance(1)
        stm.put(rec(i), 60)
    assert [r.id for r in stm.scan("a")] == [f"id{i:04d}" for i in reversed(range(5))]
    assert len(stm.scan("a", limit=2)) == 2


def test_size_bound_evicts_oldest_into_the_evicted_list(make_stm):
    stm = make_stm(max_items=3)
    for i in range(5):
        make_stm.clock.advance(1)
        stm.put(rec(i), 60)
    assert {r.id for r in stm.scan("a")} == {"id0002", "id0003", "id0004"}
    assert {r.id for r in stm.drain_evicted("a")} == {"id0000", "id0001"}
    assert stm.drain_evicted("a") == []


def test_delete_counts_only_existing_items(make_stm):
    stm = make_stm()
    stm.put(rec(1), 60)
    assert stm.delete("a", ["id0001", "missing"]) == 1
    assert stm.get("a", "id0001") is None


def test_agents_lists_agents_with_items(make_stm):
    stm = make_stm()
    stm.put(rec(1, agent="x"), 60)
    stm.put(rec(2, agent="y"), 60)
    assert stm.agents() == ["x", "y"]


def test_items_expire_after_their_ttl(make_stm):
    stm = make_stm()
    stm.put(rec(1), ttl_s=0.2)
    stm.put(rec(2), ttl_s=60)
    if make_stm.backend == "redis":  # Redis expires keys on its own clock
        import time

        time.sleep(0.35)
    else:
        make_stm.clock.advance(1)
    assert stm.get("a", "id0001") is None
    assert stm.get("a", "id0002") is not None
    assert [r.id for r in stm.scan("a", limit=5)] == ["id0002"]
    assert [r.id for r in stm.scan("a")] == ["id0002"]


def test_empty_store_has_nothing(make_stm):
    stm = make_stm()
    assert stm.agents() == []
    assert stm.scan("a") == []
    assert stm.scan("a", limit=3) == []
    assert stm.get("a", "id0001") is None
    assert stm.drain_evicted("a") == []
    assert stm.delete("a", []) == 0
    assert stm.delete("a", ["id0001"]) == 0


def test_scan_limit_returns_the_newest_items(make_stm):
    stm = make_stm()
    for i in range(5):
        make_stm.clock.advance(1)
        stm.put(rec(i), 60)
    assert [r.id for r in stm.scan("a", limit=2)] == ["id0004", "id0003"]
    assert len(stm.scan("a", limit=10)) == 5


def test_scan_sees_only_the_agent_asked_for(make_stm):
    stm = make_stm()
    stm.put(rec(1, agent="a"), 60)
    stm.put(rec(2, agent="b"), 60)
    assert [r.id for r in stm.scan("a")] == ["id0001"]
    assert [r.id for r in stm.scan("b")] == ["id0002"]


def test_put_of_an_existing_id_replaces_it_and_makes_it_the_newest(make_stm):
    stm = make_stm(max_items=3)
    for i in range(3):
        make_stm.clock.advance(1)
        stm.put(rec(i), 60)
    make_stm.clock.advance(1)
    newer = rec(0).with_(text="replaced")
    assert stm.put(newer, 60) == 0  # a replacement is not a new item: nothing is evicted
    assert [r.id for r in stm.scan("a")] == ["id0000", "id0002", "id0001"]
    assert stm.get("a", "id0000").text == "replaced"
    assert stm.drain_evicted("a") == []


def test_put_returns_how_many_items_the_bound_evicted(make_stm):
    stm = make_stm(max_items=2)
    counts = []
    for i in range(4):
        make_stm.clock.advance(1)
        counts.append(stm.put(rec(i), 60))
    assert counts == [0, 0, 1, 1]


def test_evicted_items_round_trip_every_field(make_stm):
    stm = make_stm(max_items=1)
    first = rec(1, user="u")
    stm.put(first, 60)
    make_stm.clock.advance(1)
    stm.put(rec(2), 60)
    (got,) = stm.drain_evicted("a")
    assert (got.id, got.text, got.kind, got.scope, got.meta, got.importance) == (
        first.id, first.text, first.kind, first.scope, first.meta, first.importance)
    assert np.array_equal(got.vector, first.vector)


def test_drain_evicted_is_per_agent(make_stm):
    stm = make_stm(max_items=1)
    for i, agent in enumerate(["a", "b", "a", "b"]):
        make_stm.clock.advance(1)
        stm.put(rec(i, agent=agent), 60)
    assert [r.id for r in stm.drain_evicted("a")] == ["id0000"]
    assert [r.id for r in stm.drain_evicted("b")] == ["id0001"]
    assert [r.id for r in stm.scan("a")] == ["id0002"]


def test_deleting_every_item_removes_the_agent(make_stm):
    stm = make_stm()
    stm.put(rec(1, agent="x"), 60)
    stm.put(rec(2, agent="x"), 60)
    stm.put(rec(3, agent="y"), 60)
    assert stm.delete("x", ["id0001", "id0002"]) == 2
    assert stm.scan("x") == []
    assert stm.agents() == ["y"]


def test_delete_does_not_cross_agents(make_stm):
    stm = make_stm()
    stm.put(rec(1, agent="x"), 60)
    assert stm.delete("y", ["id0001"]) == 0
    assert stm.get("x", "id0001") is not None


def test_health_reports_an_ok_backend(make_stm):
    stm = make_stm()
    h = stm.health()
    assert h["ok"] is True, h
    assert h["backend"] == make_stm.backend
