"""Adversarial tests of the hot recall index (emergent/memory/hot.py) and what surrounds it.

Each test is one attack. A test that fails names a guarantee of docs/decisions.md 54-62 or
docs/security.md that the attack broke; a passing one is an attack that held.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from emergent import Workstation
from emergent.memory.types import Scope


def _ids(hits) -> set[str]:
    return {h.id for h in hits}


# ------------------------------------------------------------------ (2) coherence across restores
def test_restore_of_a_backup_whose_table_version_coincides_leaves_another_process_answering_a_deleted_memory(home):
    """A reader whose partition is at version N must not keep answering after a restore brings in a
    table that is also at version N but holds other memories (version numbers restart on restore)."""
    ws = Workstation.open(home, embedder="hashing")
    me = ws.principal
    [x] = ws.memory.ingest(["x note about kiwis"], scope="lab")
    b0 = ws.backup(by=me)
    [y] = ws.memory.ingest(["y note about kiwis"], scope="lab")
    b1 = ws.backup(by=me)
    ws.restore(b0.id, by=me)
    [z] = ws.memory.ingest(["z note about kiwis"], scope="lab")  # a second timeline reaches the same version
    version_z = ws.memory.ltm.latest_version()
    reader = Workstation.open(home, embedder="hashing")
    try:
        assert _ids(reader.memory.recall("kiwis note", scope="lab")) == {x, z}
        ws.restore(b1.id, by=me)
        assert ws.memory.ltm.latest_version() == version_z  # the scenario: same number, other content
        assert set(ws.memory.ltm.scan(None, ["id"]).column("id").to_pylist()) == {x, y}
        hits = reader.memory.recall("kiwis note", scope="lab")
        assert z not in _ids(hits), "the reader answers a memory the store no longer holds"
        assert _ids(hits) == {x, y}
    finally:
        for w in (reader, ws):  # the reader's table handle points at files the restore moved away
            with contextlib.suppress(Exception):
                w.close()


# ------------------------------------------------------------------ (2) coherence of what is answered
def test_consolidation_merge_provenance_is_what_recall_returns(ws, me):
    """A merge adds the duplicate's id to the survivor's sources (provenance); recall answers the
    survivor from the hot index, which must carry the sources the store holds."""
    mem = ws.memory
    [keep] = mem.ingest(["the reactor coolant pump is rated for 300 bar"], scope="plant")
    mem.recall("coolant pump", scope="plant")  # the partition is loaded
    dup = mem.remember("the reactor coolant pump is rated for 300 bar", scope="plant", importance=0.95)
    report = mem.consolidate(principal=me, archive=False)
    assert report.merged == 1
    stored = mem.ltm.get(keep, Scope("plant"))
    assert dup.id in stored.sources
    [hit] = mem.recall("coolant pump rated", scope="plant", k=1)
    assert hit.id == keep
    assert hit.record.sources == stored.sources, "recall answers the survivor without its merged provenance"
    assert hit.record.meta == stored.meta


def test_a_merge_in_another_process_reaches_this_process_recall(home):
    with Workstation.open(home, embedder="hashing") as ws:
        mem = ws.memory
        [keep] = mem.ingest(["the north gate code changes every monday"], scope="site")
        mem.recall("gate code", scope="site")
        with Workstation.open(home, embedder="hashing") as other:
            dup = other.memory.remember("the north gate code changes every monday", scope="site",
                                        importance=0.95, meta={"source": "guard"})
            assert other.memory.consolidate(principal=other.principal, archive=False).merged == 1
        mem.ltm.latest_version()  # this handle reads the newest version (its own reads may lag 1 s)
        stored = mem.ltm.get(keep, Scope("site"))
        [hit] = mem.recall("gate code monday", scope="site", k=1)
        assert hit.id == keep and dup.id in stored.sources
        assert hit.record.sources == stored.sources and hit.record.meta == stored.meta


# ------------------------------------------------------------------ (5) forget by filter racing a sync
def test_forget_by_filter_racing_another_process_ingest_and_a_recall_thread_never_leaves_a_ghost(home, monkeypatch):
    """forget(scope=...) lists the doomed ids, then deletes by the filter. If, between the two, another
    process adds a matching memory and a recall in this process syncs the partition, the delete
    removes that memory from the store too: the index must not keep answering it."""
    with Workstation.open(home, embedder="hashing") as ws, Workstation.open(home, embedder="hashing") as other:
        mem = ws.memory
        me = ws.principal
        mem.ingest(["old lab note about kiwis"], scope="lab/u1")
        mem.recall("kiwis", scope="lab/u1")
        ltm = mem.ltm
        real_scan = type(ltm).scan
        injected: list[str] = []

        def scan(self, where=None, columns=None):
            out = real_scan(self, where, columns)
            if columns == ["id", "agent"] and not injected:  # delete_where listed its doomed rows
                injected.extend(other.memory.ingest(["new lab note about kiwis"], scope="lab/u1"))
                t = threading.Thread(target=lambda: mem.recall("kiwis", scope="lab/u1"))  # a reader thread
                t.start()
                t.join()
            return out

        monkeypatch.setattr(type(ltm), "scan", scan)
        mem.forget(scope="lab/u1", kinds=["semantic"], principal=me)
        monkeypatch.setattr(type(ltm), "scan", real_scan)
        held = set(ltm.scan("agent = 'lab'", ["id"]).column("id").to_pylist())
        hits = _ids(mem.recall("kiwis lab note", scope="lab/u1"))
        assert hits <= held, f"recall answers {hits - held} which the store does not hold"


# ------------------------------------------------------------------ (3) governance with Deferred stores
# (bytes overwritten inside an open database are found by `emergent audit verify`, not at write time:
# docs/security.md, "What the audit trail detects")
@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_forget_refuses_when_the_database_is_deleted_or_damaged_under_the_open_process(home, damage):
    """Memory's audit trail is a Deferred proxy resolved at the first audited action. When the database
    is deleted, truncated or overwritten after the principal was issued (the SQLite connection is
    already open), forget must fail before anything is deleted: its intent must be durable."""
    with Workstation.open(home, embedder="hashing") as ws:
        ids = ws.memory.ingest(["a note that must survive", "another note"], scope="lab")
    ws2 = Workstation.open(home, embedder="hashing")
    try:
        mem = ws2.memory
        assert mem.recall("note survive", scope="lab")
        principal = ws2.principal
        # (issuing the principal opens the directory and the audit trail: memory's own handles to them
        # are still the Deferred proxies, resolved at the first audited action)
        db = home / "emergent.db"
        if damage == "delete":
            db.unlink()
        elif damage == "truncate":
            with open(db, "r+b") as fh:
                fh.truncate(0)
        else:
            with open(db, "r+b") as fh:
                fh.seek(100)
                fh.write(os.urandom(8192))
        refused = 0
        for call in (lambda: mem.forget(ids[0], principal=principal, scope="lab"),
                     lambda: mem.forget(scope="lab", kinds=["semantic"], principal=principal)):
            try:
                call()
            except Exception:
                refused += 1
        held = set(mem.ltm.scan(None, ["id"]).column("id").to_pylist())
        assert refused == 2 and held == set(ids), f"forget ran without a durable audit entry (held {held})"
    finally:
        with contextlib.suppress(Exception):
            ws2.close()


def test_an_agent_principal_cannot_forget_or_rewind_through_the_lazy_directory(home):
    with Workstation.open(home, embedder="hashing") as ws:
        [secret] = ws.memory.ingest(["the other agent's secret"], scope="bob")
    with Workstation.open(home, embedder="hashing") as ws2:
        mem = ws2.memory
        assert secret in _ids(mem.recall("secret", scope="bob"))
        spy = ws2.principals.agent("alice", created_by=ws2.principal)
        from emergent.errors import PrincipalError, ScopeError

        with pytest.raises(ScopeError):
            mem.forget(secret, principal=spy, scope="bob")
        with pytest.raises(PrincipalError):
            mem.rewind(version=1, principal=spy)
        assert secret in _ids(mem.recall("secret", scope="bob"))


# ------------------------------------------------------------------ (2) two commits in one mtime tick
def test_a_commit_sharing_the_directory_mtime_of_the_last_check_is_still_seen(home, monkeypatch):
    """Decision 54: "a checkout_latest when it changed or changed within the last 50 ms (directory
    mtimes are stamped with a coarse clock: two commits can share one)". Simulated: every commit
    below stamps ``_versions/`` with the same coarse tick (as a 1 s or 2 s granularity filesystem
    does, or a 4 ms jiffy when the reader's check falls between two commits of one tick)."""
    from emergent.memory.hot import HotIndex

    real = HotIndex._stamp
    tick: dict[str, int] = {}

    def coarse(self):
        value = real(self)
        return None if value is None else tick.setdefault(self.ltm.path, value)

    with Workstation.open(home, embedder="hashing") as ws, Workstation.open(home, embedder="hashing") as other:
        monkeypatch.setattr(HotIndex, "_stamp", coarse)
        mem = ws.memory
        mem.ingest(["first note about orchids"], scope="lab")
        assert mem.recall("orchids", scope="lab", k=1)  # a full check: the partition is current
        [new] = other.memory.ingest(["a note about volcanoes from the other writer"], scope="lab")
        time.sleep(0.1)  # the tick is now older than FRESH_S
        hits = mem.recall("volcanoes other writer", scope="lab", k=1)
        assert hits and hits[0].id == new, "a write reported stored is not recallable in this process"


# ------------------------------------------------------------------ (2) snapshots
def test_a_snapshot_saved_by_a_process_that_missed_a_forget_never_answers_it(home):
    with Workstation.open(home, embedder="hashing") as ws:
        ids = ws.memory.ingest(["secret plan for the grant", "public plan for the picnic"], scope="lab")
    a = Workstation.open(home, embedder="hashing")
    assert ids[0] in _ids(a.memory.recall("plan grant", scope="lab", touch=False))
    with Workstation.open(home, embedder="hashing") as b:
        b.memory.forget(ids[0], principal=b.principal, scope="lab")
    a.close()  # saves a snapshot of a partition that never saw the forget
    assert _snapshot(home, "lab").exists()
    with Workstation.open(home, embedder="hashing") as c:
        assert ids[0] not in _ids(c.memory.recall("plan grant", scope="lab"))


def _snapshot(home: Path, agent: str) -> Path:
    return home / "cache" / "hot" / f"{agent}.npz"


def _rewrite(path: Path, **changes) -> None:
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: data[k] for k in data.files}
    arrays.update(changes)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "short_column", "wrong_dim", "pickled", "bad_codes",
                                    "bm25_short", "empty"])
def test_a_malformed_snapshot_with_a_valid_header_never_changes_what_recall_answers(home, damage):
    with Workstation.open(home, embedder="hashing") as ws:
        ids = ws.memory.ingest([f"note {i} about {'cats' if i % 2 else 'dogs'}" for i in range(40)], scope="lab/u1")
        other = ws.memory.ingest(["note about cats of user two"], scope="lab/u2")
        ws.memory.recall("cats", scope="lab/u1")
    path = _snapshot(home, "lab")
    assert path.exists()
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(path.stat().st_size))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        with np.load(path, allow_pickle=False) as data:
            n = len(data["col_alive"])
            dim = data["vec"].shape[1]
        if damage == "short_column":
            _rewrite(path, col_user=np.zeros(n - 3, np.int32))
        elif damage == "wrong_dim":
            _rewrite(path, vec=np.ones((n, dim // 2), np.float32))
        elif damage == "pickled":
            _rewrite(path, col_kind=np.array([object()] * n, dtype=object))
        elif damage == "bad_codes":
            _rewrite(path, col_user=np.full(n, 99, np.int32))
        elif damage == "bm25_short":
            with np.load(path, allow_pickle=False) as data:
                keys = [k for k in data.files if k.startswith("bm25")]
            assert keys
            _rewrite(path, **{k: np.zeros(0, np.load(path)[k].dtype) for k in keys})
    with Workstation.open(home, embedder="hashing") as ws:
        hits = ws.memory.recall("note about cats", scope="lab/u1", k=50)
        assert _ids(hits) == set(ids), "a damaged snapshot was not ignored: recall answers other than the store"
        assert not (_ids(hits) & set(other)), "a damaged snapshot leaked another user's memory"
        assert all(h.record.scope.user == "u1" for h in hits)
        assert _ids(ws.memory.recall("note", scope="lab/u2", k=50)) == set(other)
        stored = ws.memory.ltm.scan("user_id = 'u1'", ["id", "text"]).to_pylist()
        by_id = {r["id"]: r["text"] for r in stored}
        assert all(by_id[h.id] == h.record.text for h in hits)


@pytest.mark.parametrize("agent", [".", "..", "...", "a.npz.1.tmp", "-", "@:+"])
def test_agent_names_allowed_by_scope_keep_their_snapshot_inside_the_cache(home, agent):
    with Workstation.open(home, embedder="hashing") as ws:
        [mid] = ws.memory.ingest(["a note about lanterns"], scope=Scope(agent))
        ws.memory.recall("lanterns", scope=Scope(agent))
    cache = (home / "cache" / "hot").resolve()
    for f in (home / "cache" / "hot").iterdir():
        assert f.resolve().parent == cache
    assert not list(home.parent.glob("*.npz")) and not list(home.glob("*.npz"))
    with Workstation.open(home, embedder="hashing") as ws:
        assert _ids(ws.memory.recall("lanterns", scope=Scope(agent))) == {mid}
        assert not ws.memory.recall("lanterns", scope=Scope("a"))


# ------------------------------------------------------------------ (1) scope isolation
def test_recall_never_crosses_users_or_sessions_whose_names_collide(ws, me):
    """User and session names share one code table in a partition: a user named like another user's
    session (and the reverse) must still be told apart, with every filter."""
    mem = ws.memory
    layout = {("alice", "bob"): "ep", ("bob", "alice"): "ep", ("bob", "bob"): "ep", ("alice", "alice"): "ep",
              ("carol", None): "x"}
    owned: dict[tuple, list[str]] = {}
    for (user, session), _ in layout.items():
        scope = Scope("shared", user, session)
        owned[(user, session)] = mem.ingest(
            [{"text": f"meeting notes kiwi {user} {session} {i}", "at": 1_600_000_000 + i * 60} for i in range(15)],
            scope=scope, kind="episodic")
    mem.remember("meeting notes kiwi stm item of bob", scope=Scope("shared", "bob", "alice"))
    checks = [Scope("shared", "alice"), Scope("shared", "bob"), Scope("shared", "alice", "bob"),
              Scope("shared", "bob", "alice"), Scope("shared", "carol"), Scope("shared", "alice", "carol"),
              Scope("shared", "dave"), Scope("shared", "dave", "alice")]
    for phase in ("fresh", "compacted"):
        for scope in checks:
            for kw in ({}, {"kinds": ["episodic"]}, {"kinds": ["semantic"]},
                       {"since": 1_600_000_000 + 300, "until": 1_600_000_000 + 600}):
                for h in mem.recall("meeting notes kiwi bob alice", scope=scope, k=100, **kw):
                    assert scope.contains(h.record.scope), (phase, scope, kw, h.record.scope)
                    if h.record.tier.value == "ltm":
                        assert h.id in owned[(h.record.scope.user, h.record.scope.session)]
        # forget enough to compact the partition (positions and code tables rebuilt)
        filler = mem.ingest([f"filler {i}" for i in range(1100)], scope=Scope("shared", "zed"))
        mem.recall("filler", scope=Scope("shared", "zed"))
        mem.forget(filler, principal=me, scope=Scope("shared", "zed"))
    assert mem.ltm.hot.parts["shared"].generation > 1


def test_a_recall_only_process_never_recreates_a_database_deleted_after_memory_opened_lazily(home):
    """Decision 61 moved the integrity check of emergent.db to first use: the op-log flush at close
    must still refuse a vanished database rather than start an empty one beside the other stores."""
    with Workstation.open(home, embedder="hashing") as ws:
        ws.memory.ingest(["a note about comets"], scope="lab")
    ws2 = Workstation.open(home, embedder="hashing")
    assert ws2.memory.recall("comets", scope="lab")
    assert "sql" not in ws2.__dict__
    (home / "emergent.db").unlink()
    for suffix in ("-wal", "-shm"):
        (home / f"emergent.db{suffix}").unlink(missing_ok=True)
    with contextlib.suppress(Exception):
        ws2.close()
    assert not (home / "emergent.db").exists(), "an empty database was created in place of the vanished one"
