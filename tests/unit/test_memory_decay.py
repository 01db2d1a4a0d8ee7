"""The forgetting curve: pure functions, checked as properties."""

import math

from hypothesis import given
from hypothesis import strategies as st

from emergent.memory import decay

days = st.floats(min_value=0.01, max_value=3650, allow_nan=False)
seconds = st.floats(min_value=0, max_value=10 * 365 * 86400, allow_nan=False)
ret = st.floats(min_value=0, max_value=1, allow_nan=False)
growth = st.floats(min_value=1.01, max_value=5, allow_nan=False)


@given(seconds, days)
def test_retention_is_between_zero_and_one(t, s):
    assert 0.0 <= decay.retention(t, s) <= 1.0


@given(seconds, seconds, days)
def test_retention_never_grows_with_time(t1, t2, s):
    lo, hi = sorted((t1, t2))
    assert decay.retention(hi, s) <= decay.retention(lo, s)


@given(days, ret, growth)
def test_reinforcement_always_increases_stability(s, r, g):
    assert decay.reinforce(s, r, g) > s


@given(days, growth)
def test_reinforcing_near_forgetting_helps_more_than_reinforcing_at_once(s, g):
    assert decay.reinforce(s, 0.1, g) > decay.reinforce(s, 0.9, g)


@given(seconds, days, ret, growth)
def test_a_reinforced_memory_is_at_least_as_strong_later(t, s, r, g):
    assert decay.retention(t, decay.reinforce(s, r, g)) >= decay.retention(t, s)


@given(days, st.floats(min_value=0.001, max_value=0.999))
def test_time_to_floor_inverts_retention(s, floor):
    t = decay.time_to_floor(s, floor)
    assert math.isclose(decay.retention(t, s), floor, rel_tol=1e-9)


def test_recency_halves_every_half_life():
    assert decay.recency(30 * 86400, 30) == 0.5
    assert decay.recency(0, 30) == 1.0


def test_important_memories_start_more_stable():
    assert decay.initial_stability(0.9, 7, 4) > decay.initial_stability(0.1, 7, 4)


def test_stability_stops_at_its_ceiling_however_often_a_memory_is_recalled():
    s = 7.0
    for _ in range(100_000):  # the same memory answering every query of a busy server
        s = decay.reinforce(s, 1.0, 1.8)
    assert s == decay.MAX_STABILITY_DAYS and math.isfinite(decay.time_to_floor(s, 0.05))


def test_an_unbounded_stability_stored_earlier_reads_back_as_the_ceiling():
    """JSON has no infinity: an infinite stability was stored as null and every recall then failed."""
    import numpy as np

    from emergent.memory import _codec
    from emergent.memory.types import Kind, MemoryRecord, Scope

    rec = MemoryRecord(id="m1", text="recalled too often", kind=Kind.EPISODIC, importance=0.5, scope=Scope("a"),
                       created_at=0.0, last_accessed=0.0, stability=math.inf, vector=np.ones(4, np.float32))
    assert _codec.decode(_codec.encode(rec)).stability == decay.MAX_STABILITY_DAYS


def test_a_short_term_memory_recalled_thousands_of_times_is_still_recalled(tmp_path):
    from emergent import Workstation

    ws = Workstation.open(tmp_path / "home", embedder="hashing")
    try:
        rec = ws.memory.remember("the harbour crane lifts forty tonnes")
        for _ in range(2_500):  # as many recalls (~1.4x stability each): past a float's range without the ceiling
            ws.memory.reinforce(rec.id)
        hits = ws.memory.recall("harbour crane", k=1)
        assert hits and hits[0].record.stability == decay.MAX_STABILITY_DAYS
        assert ws.memory.recall("harbour crane", k=1)[0].text.startswith("the harbour crane")
    finally:
        ws.close()
