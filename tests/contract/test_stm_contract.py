"""One contract, two backends: LocalSTM and RedisSTM (a real redis-server)."""

import numpy as np
import pytest

from emergent.clock import FakeClock
from emergent.memory.stm import LocalSTM, RedisSTM
from emergent.memory.types import Kind, MemoryRecord, Scope


def rec(i: int, agent: str = "a", user: str | None = None, t: float = 0.0) -> MemoryRecord:
    return MemoryRecord(id=f"id{i:04d}", text=f"text {i} é", kind=Kind.EPISODIC, importance=0.5,
                        scope=Scope(agent, user), created_at=t, last_accessed=t, stability=1.0,
                        meta={"n": i}, vector=np.full(4, i, dtype=np.float32))


@pytest.fixture(params=["local", "redis"])
def make_stm(request, redis_url):
    clock = FakeClock(1000.0)

    def make(max_items: int = 100):
        if request.param == "local":
            return LocalSTM(max_items, clock=clock.now)
        import redis

        return RedisSTM(redis.Redis.from_url(redis_url), "emergent:test", max_items, clock=clock.now)

    make.clock = clock
    make.backend = request.param
    return make


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
    if make_stm.backend == "local":
        make_stm.clock.advance(1)
    else:
        import time

        time.sleep(0.35)
    assert stm.get("a", "id0001") is None
    assert stm.scan("a") == []
