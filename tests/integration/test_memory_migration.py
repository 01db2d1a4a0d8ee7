"""Long-term memory written by an older emergent (schema 1: no ``learned_at``) is carried over on open."""

import json
import threading

import pyarrow as pa
import pytest

from emergent import FakeClock, Workstation
from emergent.memory.ltm import SCHEMA_VERSION, LongTermMemory
from emergent.providers.embeddings import get_embedder
from emergent.stores.lance import SCHEMA_VERSION_KEY, LanceStore

DAY = 86400.0


def schema_v1(dim: int, *, archive: bool = False) -> pa.Schema:
    """The ``memories`` schema as emergent wrote it before learned times (a frozen copy)."""
    fields = [
        pa.field("id", pa.string(), nullable=False), pa.field("text", pa.string()), pa.field("payload", pa.binary()),
        pa.field("vector", pa.list_(pa.float32(), dim)), pa.field("kind", pa.string()),
        pa.field("importance", pa.float32()), pa.field("stability", pa.float32()), pa.field("strength", pa.float32()),
        pa.field("created_at", pa.float64()), pa.field("last_accessed", pa.float64()),
        pa.field("access_count", pa.int32()), pa.field("agent", pa.string()), pa.field("user_id", pa.string()),
        pa.field("session_id", pa.string()), pa.field("meta", pa.string()), pa.field("sources", pa.string()),
    ]
    if archive:
        fields += [pa.field("archived_at", pa.float64()), pa.field("archive_reason", pa.string())]
    return pa.schema(fields, metadata={SCHEMA_VERSION_KEY: b"1"})


TEXTS = ["The sonde drifted after the firmware update", "Maya moved the group meeting to Thursday",
         "Lake samples showed high nitrate levels"]


def make_old_store(home, now: float) -> list[dict]:
    """A workspace whose long-term memory an emergent of schema 1 wrote: three memories, one archived."""
    ws = Workstation.open(home, embedder="hashing")
    assert ws.sql is not None  # the workspace database exists, long-term memory not yet
    ws.close()
    embedder = get_embedder("hashing")
    store = LanceStore(home / "lance")
    store.set_meta({"embedder": embedder.id, "dim": str(embedder.dim)})
    vectors = embedder.embed(TEXTS)
    rows = [{"id": f"{int((now - 30 * DAY) * 1000) + i:012x}{i:012x}", "text": t, "payload": None,
             "vector": vectors[i].tolist(), "kind": "semantic", "importance": 0.5, "stability": 84.0,
             "strength": 1.0, "created_at": now - 30 * DAY, "last_accessed": now - (3 - i) * DAY, "access_count": i,
             "agent": "default", "user_id": None, "session_id": None, "meta": json.dumps({"n": i}),
             "sources": "[]"} for i, t in enumerate(TEXTS)]
    live = store.db.create_table("memories", schema=schema_v1(embedder.dim))
    live.add(pa.Table.from_pylist(rows[:2], schema=schema_v1(embedder.dim)))
    archive = store.db.create_table("memories_archive", schema=schema_v1(embedder.dim, archive=True))
    archived = [{**rows[2], "archived_at": now - DAY, "archive_reason": "decayed below floor"}]
    archive.add(pa.Table.from_pylist(archived, schema=schema_v1(embedder.dim, archive=True)))
    return rows


def test_opening_an_old_store_adds_learned_times_and_keeps_every_memory(home):
    clock = FakeClock()
    rows = make_old_store(home, clock.now())
    ws = Workstation.open(home, embedder="hashing", clock=clock)
    try:
        mem = ws.memory
        hits = mem.recall("sonde firmware drift", k=1)
        assert hits[0].id == rows[0]["id"]
        for row in rows[:2]:
            rec = mem.get(row["id"])
            assert rec.learned_at == row["last_accessed"]  # the best known learned time of an old row
            assert rec.event_time == row["created_at"] and rec.meta == json.loads(row["meta"])
        archived = mem.ltm.archive.to_arrow().to_pylist()
        assert [r["learned_at"] for r in archived] == [rows[2]["last_accessed"]]
        assert mem.ltm.store.get_meta()["memories_schema"] == str(SCHEMA_VERSION) == "2"
        new = mem.remember("A new memory after the migration", tier="ltm")
        assert mem.get(new.id).learned_at == clock.now()
    finally:
        ws.close()


def test_the_migration_runs_once(home):
    clock = FakeClock()
    make_old_store(home, clock.now())
    first = Workstation.open(home, embedder="hashing", clock=clock)
    assert "learned_at" in first.memory.ltm.table.schema.names  # migrated
    first.close()
    store = LanceStore(home / "lance")
    before = (store.db.open_table("memories").version, store.db.open_table("memories_archive").version)
    ws = Workstation.open(home, embedder="hashing", clock=clock)
    try:
        assert (ws.memory.ltm.table.version, ws.memory.ltm.archive.version) == before
    finally:
        ws.close()


def test_two_processes_migrating_at_once_both_open_the_store(home):
    clock = FakeClock()
    make_old_store(home, clock.now())
    embedder = get_embedder("hashing")
    # Both opened the tables before either added the column (the race of two processes starting together).
    stores = [LanceStore(home / "lance", consistency_s=None) for _ in range(2)]
    tables = [(s.db.open_table("memories"), s.db.open_table("memories_archive")) for s in stores]
    from emergent.memory import ltm as ltm_module

    assert all("learned_at" not in t.schema.names for pair in tables for t in pair)
    ltm_module.migrate_tables(stores[0], *tables[0])
    ltm_module.migrate_tables(stores[1], *tables[1])  # stale view: its add_columns loses the race, and that is fine
    assert tables[1][0].schema.names.count("learned_at") == 1

    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def open_one() -> None:
        try:
            barrier.wait()
            LongTermMemory(LanceStore(home / "lance"), embedder.id, embedder.dim).close()
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("how", ["version", "when"])
def test_rewinding_to_before_the_migration_leaves_memory_writable(home, how):
    clock = FakeClock()
    rows = make_old_store(home, clock.now())
    old_version = LanceStore(home / "lance").db.open_table("memories").version
    ws = Workstation.open(home, embedder="hashing", clock=clock)
    try:
        mem = ws.memory
        assert mem.ltm.table.version > old_version  # migrated
        if how == "version":
            done = mem.rewind(version=old_version, principal=ws.principal)
        else:
            (at,) = [v["timestamp"] for v in mem.ltm.table.list_versions() if v["version"] == old_version]
            done = mem.rewind(at.timestamp(), principal=ws.principal)
        assert done["memories"] == old_version
        assert mem.get(rows[0]["id"]).learned_at == rows[0]["last_accessed"]
        new = mem.remember("written after the rewind", tier="ltm")
        assert mem.get(new.id).learned_at == clock.now()
    finally:
        ws.close()


def test_reembedding_an_old_store_carries_it_over_too(home):
    from emergent.memory.reembed import reembed

    clock = FakeClock()
    rows = make_old_store(home, clock.now())
    assert reembed(home, "hashing") == 3
    ws = Workstation.open(home, embedder="hashing", clock=clock)
    try:
        assert ws.memory.get(rows[1]["id"]).learned_at == rows[1]["last_accessed"]
        assert ws.memory.ltm.archive.to_arrow().column("learned_at").to_pylist() == [rows[2]["last_accessed"]]
    finally:
        ws.close()


def test_a_fresh_store_is_created_at_the_current_schema(home):
    ws = Workstation.open(home, embedder="hashing")
    try:
        assert "learned_at" in ws.memory.ltm.table.schema.names
        assert "learned_at" in ws.memory.ltm.archive.schema.names
        assert ws.memory.ltm.store.get_meta()["memories_schema"] == "2"
    finally:
        ws.close()


@pytest.mark.parametrize("newer", ["3"])
def test_a_store_of_a_newer_schema_is_not_marked_older(home, newer):
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ltm.store.set_meta({"memories_schema": newer})
    ws.close()
    ws = Workstation.open(home, embedder="hashing")
    try:
        assert ws.memory.ltm.store.get_meta()["memories_schema"] == newer
    finally:
        ws.close()
