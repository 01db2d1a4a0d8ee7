"""Bi-temporal memories: when a memory happened (event time, ``at``) apart from when it was learned.

Time filters and temporal reasoning use the event time; the forgetting curve, short-term lifetimes
and archiving count from the last access, which starts at the learned time. Items of one ``ingest``
call get distinct, ordered learned times ``ITEM_STEP_S`` apart.
"""

import numpy as np
import pytest

from emergent import FakeClock, Workstation
from emergent.memory import _codec
from emergent.memory.types import ITEM_STEP_S, Kind, MemoryRecord, Scope

YEAR = 365 * 86400.0


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def ws(home, clock):
    w = Workstation.open(home, embedder="hashing", clock=clock)
    yield w
    w.close()


def test_a_memory_knows_when_it_happened_and_when_it_was_learned(ws, clock):
    rec = ws.memory.remember("The field station flooded", at=clock.now() - YEAR)
    assert rec.event_time == rec.created_at == clock.now() - YEAR
    assert rec.learned_at == rec.last_accessed == clock.now()
    assert rec.public()["learned_at"] == clock.now()
    stored = ws.memory.get(rec.id)
    assert (stored.event_time, stored.learned_at) == (clock.now() - YEAR, clock.now())


def test_a_memory_without_at_happened_when_it_was_learned(ws, clock):
    rec = ws.memory.remember("The coffee machine is fixed", tier="ltm")
    assert rec.event_time == rec.learned_at == rec.last_accessed == clock.now()
    assert ws.memory.get(rec.id).learned_at == clock.now()


def test_items_of_one_ingest_get_distinct_ordered_learned_times(ws, clock):
    now = clock.now()
    ids = ws.memory.ingest([f"turn {i} of the conversation" for i in range(5)])
    recs = [ws.memory.get(i) for i in ids]
    assert [r.learned_at for r in recs] == [now + i * ITEM_STEP_S for i in range(5)]
    assert [r.last_accessed for r in recs] == [r.learned_at for r in recs]
    assert [r.event_time for r in recs] == [r.learned_at for r in recs]  # no 'at': it happened when learned
    assert len({r.event_time for r in recs}) == 5


def test_ingest_keeps_the_given_event_times_and_orders_the_learned_ones(ws, clock):
    now = clock.now()
    ids = ws.memory.ingest([{"text": "second note", "at": now - 100}, {"text": "first note", "at": now - 200},
                            "undated note"])
    recs = [ws.memory.get(i) for i in ids]
    assert [r.event_time for r in recs] == [now - 100, now - 200, now + 2 * ITEM_STEP_S]
    assert [r.learned_at for r in recs] == [now, now + ITEM_STEP_S, now + 2 * ITEM_STEP_S]
    assert ids[0][:12] == f"{int((now - 100) * 1000):012x}"  # ids stay ordered by event time


def test_ingesting_year_old_notes_archives_nothing_at_the_next_consolidation(ws, clock, me):
    ids = ws.memory.ingest([{"text": f"lab note {i} about sample {i}", "at": clock.now() - YEAR + i * 3600}
                            for i in range(50)])
    report = ws.memory.consolidate(principal=me)
    assert report.archived == 0
    assert ws.memory.ltm.count() == 50
    assert ws.memory.get(ids[0]).event_time < clock.now() - YEAR + 1


def test_decay_counts_from_the_learned_time_not_the_event_time(ws, clock, me):
    ws.memory.ingest([{"text": f"lab note {i}", "at": clock.now() - YEAR, "importance": 0.1} for i in range(3)])
    clock.advance(days=3 * 365)  # unused for three years: below the floor whenever it happened
    assert ws.memory.consolidate(principal=me).archived == 3


def test_a_backdated_memory_lives_in_stm_as_long_as_a_new_one_of_its_importance(ws, clock):
    old = ws.memory.remember("Jolene started at Google", at=clock.now() - YEAR, importance=0.4)
    new = ws.memory.remember("Jolene likes hiking", importance=0.4)
    ttl = ws.memory.config.stm_ttl_s
    clock.advance(ttl - 1)
    assert {r.id for r in ws.memory.stm.scan("default")} == {old.id, new.id}
    clock.advance(2)
    assert ws.memory.stm.scan("default") == []


def test_time_filters_use_the_event_time(ws, clock):
    old = ws.memory.remember("rivers flooded the valley", at=clock.now() - YEAR, tier="ltm")
    new = ws.memory.remember("rivers are low this week", tier="ltm")
    assert [h.id for h in ws.memory.recall("rivers", until=clock.now() - 86400)] == [old.id]
    assert [h.id for h in ws.memory.recall("rivers", since=clock.now() - 86400)] == [new.id]


def test_merging_duplicates_keeps_the_earliest_learned_time(ws, clock, me):
    first = ws.memory.remember("calibrate the sonde before each dive", importance=0.9, tier="ltm")
    clock.advance(days=2)
    ws.memory.remember("calibrate the sonde before each dive", importance=0.9)
    assert ws.memory.consolidate(principal=me).merged == 1
    merged = ws.memory.get(first.id)
    assert merged.learned_at == first.learned_at
    assert merged.last_accessed == clock.now()  # the duplicate's access is the latest


def test_duplicates_merged_in_one_promotion_keep_the_earliest_learned_time(ws, clock, me):
    first = ws.memory.remember("the sonde needs calibrating before each dive", importance=0.7)
    clock.advance(days=1)
    ws.memory.remember("the sonde needs calibrating before each dive", importance=0.95)
    report = ws.memory.consolidate(principal=me)
    assert (report.promoted, report.merged) == (1, 1)
    (row,) = ws.memory.ltm.records()
    assert row.importance == pytest.approx(0.95) and row.learned_at == first.learned_at


def test_statistics_count_strength_from_the_learned_time(ws, clock):
    ws.memory.ingest([{"text": f"field note {i}", "at": clock.now() - YEAR} for i in range(4)])
    ws.memory.remember("an old short-term note", at=clock.now() - YEAR)
    stats = ws.memory.stats()
    assert stats.totals["mean_strength"] == pytest.approx(1.0)  # all learned just now, whenever they happened


def test_a_backdated_short_term_memory_survives_a_backup_and_restore(ws, clock):
    note = ws.memory.remember("Jolene started at Google", at=clock.now() - YEAR, importance=0.4)
    info = ws.backup(by=ws.principal)
    clock.advance(3600)
    ws.restore(info.id, by=ws.principal)
    (back,) = ws.memory.stm.scan("default")
    assert (back.id, back.event_time, back.learned_at) == (note.id, note.event_time, note.learned_at)
    clock.advance(ws.memory.config.stm_ttl_s - 7200)  # refilled with what was left of its lifetime
    assert [r.id for r in ws.memory.stm.scan("default")] == [note.id]


# ------------------------------------------------------------------------------ the STM codec
def _rec(**changes):
    base = dict(id="0" * 24, text="a note", kind=Kind.EPISODIC, importance=0.5, scope=Scope("a", "u"),
                created_at=100.0, last_accessed=250.0, stability=3.0, learned_at=200.0,
                vector=np.ones(4, dtype=np.float32))
    return MemoryRecord(**{**base, **changes})


def test_the_stm_codec_carries_the_learned_time():
    back = _codec.decode(_codec.encode(_rec()))
    assert (back.created_at, back.learned_at, back.last_accessed) == (100.0, 200.0, 250.0)


def test_items_written_by_the_old_codec_read_as_learned_at_their_last_access():
    import json
    import struct

    rec = _rec()
    header = json.dumps([rec.id, rec.text, "episodic", 0.5, "a", "u", None, 100.0, 250.0, 3.0, 0, {}, []]).encode()
    old = struct.pack("<I", len(header)) + header + rec.vector.tobytes()
    back = _codec.decode(old)
    assert (back.event_time, back.learned_at, back.last_accessed) == (100.0, 250.0, 250.0)
    assert back.vector.tolist() == [1.0] * 4


def test_a_record_built_without_a_learned_time_was_learned_at_its_last_access():
    rec = MemoryRecord(id="x", text="t", kind=Kind.SEMANTIC, importance=0.5, scope=Scope(), created_at=1.0,
                       last_accessed=5.0, stability=1.0)
    assert rec.learned_at == 5.0
