"""Attacks on the fault guarantees around short-term memory: a full disk and a kill -9 in the middle
of a consolidation, a full disk while a LanceDB table is created, Redis lost under the CLI.

Real processes (subprocess + SIGKILL), a real redis-server (tests/conftest.py's ``redis_url``) and a
real small filesystem (tests/faults/conftest.py's ``small_disk``); no mocks.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from emergent import Workstation
from emergent.errors import EmergentError

ROOT = Path(__file__).resolve().parents[2]
PY = sys.executable
STM_BOUND = {"stm_max_items": 5}  # a tiny short-term memory: most items are evicted, for consolidation to promote


def _texts(n: int, tag: str = "") -> list[str]:
    return [f"important {tag} fact {i}: zebra{i} orchid{i * 7} quartz{i * 13} violin{i * 31}" for i in range(n)]


def _where(ws: Workstation, ids: list[str]) -> dict[str, list[str]]:
    """Each id's places: 'ltm' (once per stored row) and 'stm' (live, or evicted and not yet promoted)."""
    mem = ws.memory
    agent = mem.default_scope.agent
    rows = [r.id for r in mem.ltm.get_many(ids, mem.default_scope)]
    parked = {r.id for r in mem.stm.inner.promoting_evicted(agent).__enter__()} if hasattr(mem.stm, "inner") else set()
    out: dict[str, list[str]] = {i: ["ltm"] * rows.count(i) for i in ids}
    for i in ids:
        if mem.stm.get(agent, i) is not None or i in parked:
            out[i].append("stm")
    return out


# ------------------------------------------------------------------ attack: full disk mid-consolidation
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_attack_full_disk_during_consolidation_drops_no_evicted_memory(small_disk, tmp_path: Path, backend: str,
                                                                       request: pytest.FixtureRequest) -> None:
    """Consolidation used to drain the evicted items (a committed delete) before writing them to
    LanceDB: a full disk under long-term memory then lost every evicted item that `remember` had
    reported as stored, for good (15 of 20 here)."""
    extra = {"redis_url": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    ws = Workstation.open(tmp_path / "home", embedder="hashing", lance_uri=str(small_disk.path / "lance"),
                          memory=STM_BOUND, **extra)
    assert ws.memory.stm.name == backend
    ws.memory.ingest(["a seed memory: the long-term table exists"])
    ids = [ws.memory.remember(t, importance=0.9).id for t in _texts(20)]
    small_disk.fill()
    try:
        with pytest.raises(EmergentError) as info:
            ws.memory.consolidate(principal=ws.principal)
        assert "full" in info.value.message and info.value.hint
    finally:
        small_disk.drain()
    report = ws.memory.consolidate(principal=ws.principal)
    assert report.promoted == 20
    places = _where(ws, ids)
    assert {i: p for i, p in places.items() if p != ["ltm"]} == {}, "lost or duplicated"
    ws.close()


# ------------------------------------------------------------------ attack: kill -9 mid-consolidation
_CONSOLIDATE = textwrap.dedent("""
    import sys
    from emergent import Workstation
    ws = Workstation.open(sys.argv[1], embedder="hashing", redis_url=sys.argv[2], memory={"stm_max_items": 5})
    mem = ws.memory
    print("start", flush=True)
    mem.consolidate(principal=ws.principal)
    print("done", flush=True)
""")


def test_attack_kill_9_during_consolidation_keeps_every_memory_exactly_once(tmp_path: Path, redis_url: str) -> None:
    """SIGKILL the consolidating process once the evicted items have left Redis's evicted list: each
    memory must still be somewhere (then, after the next consolidation, in LTM exactly once). The
    per-item duplicate search of a promotion takes seconds for 300 items, so the kill lands between
    the read of the evicted list and the long-term commit."""
    import redis

    home = tmp_path / "home"
    ws = Workstation.open(home, embedder="hashing", redis_url=redis_url, memory=STM_BOUND)
    ws.memory.ingest(["a seed memory: the long-term table is not empty"])
    ids = [ws.memory.remember(t, importance=0.9).id for t in _texts(300, "k")]
    key = f"{ws.redis_namespace}:stm:{{{ws.memory.default_scope.agent}}}:evicted"
    ws.close()
    client = redis.Redis.from_url(redis_url)
    assert client.llen(key) == 295
    proc = subprocess.Popen([PY, "-c", _CONSOLIDATE, str(home), redis_url], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "start"
        deadline = time.time() + 60
        while client.llen(key) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.002)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(10)
    ws = Workstation.open(home, embedder="hashing", redis_url=redis_url, memory=STM_BOUND)
    places = _where(ws, ids)
    assert [i for i, p in places.items() if not p] == [], "memories reported as remembered are gone"
    ws.memory.consolidate(principal=ws.principal)
    places = _where(ws, ids)
    assert {i: p for i, p in places.items() if p != ["ltm"]} == {}
    assert ws.memory.ltm.count() == 301
    assert ws.audit.verify().ok
    ws.close()


# ------------------------------------------------------------------ attack: full disk creating a table
def test_attack_full_disk_while_creating_a_lance_table_leaves_a_store_that_opens(small_disk, tmp_path: Path) -> None:
    """A full disk during the first long-term write left an `<table>.lance` directory with no
    committed version: LanceDB lists such a table but cannot open it, so every later memory write,
    in this process and in every new one, failed with a bare ValueError ("Table 'emergent_meta' was
    not found") until someone deleted the directory by hand."""
    lance = str(small_disk.path / "lance")
    ws = Workstation.open(tmp_path / "home", embedder="hashing", lance_uri=lance)
    small_disk.fill()
    try:
        with pytest.raises(EmergentError, match="full"):
            ws.memory.remember("written on a full disk", tier="ltm")
    finally:
        small_disk.drain()
    kept = ws.memory.remember("written once space is back", tier="ltm")
    assert ws.memory.get(kept.id).text == "written once space is back"
    ws.close()
    other = Workstation.open(tmp_path / "home", embedder="hashing", lance_uri=lance)
    assert other.memory.ltm.count() == 1
    assert [h.id for h in other.memory.recall("space is back", k=1)] == [kept.id]
    other.close()


# ------------------------------------------------------------------ attack: full disk mid-erasure
@pytest.mark.parametrize("backend", ["sqlite", "redis"])
def test_attack_full_disk_during_erasure_drops_no_memory_that_was_not_erased(small_disk, tmp_path: Path, backend: str,
                                                                             request: pytest.FixtureRequest) -> None:
    extra = {"redis_url": request.getfixturevalue("redis_url")} if backend == "redis" else {}
    ws = Workstation.open(tmp_path / "home", embedder="hashing", lance_uri=str(small_disk.path / "lance"),
                          memory=STM_BOUND, **extra)
    ws.memory.ingest(["a seed memory: the long-term table exists"])
    ids = [ws.memory.remember(t, importance=0.9).id for t in _texts(20, "e")]
    doomed, kept = ids[0], ids[1:]  # ids[0] is evicted (the bound keeps the newest 5)
    small_disk.fill()
    try:
        with pytest.raises(EmergentError):
            ws.memory.erase([doomed], principal=ws.principal)
    finally:
        small_disk.drain()
    # the failed erasure already took the erased item out of short-term memory: a consolidation
    # before the retry promotes the others, never it
    ws.memory.consolidate(principal=ws.principal)
    assert _where(ws, [doomed])[doomed] == [], "an item being erased came back into long-term memory"
    ws.memory.erase([doomed], principal=ws.principal)
    ws.memory.consolidate(principal=ws.principal)
    places = _where(ws, ids)
    assert places[doomed] == []
    assert {i: places[i] for i in kept if places[i] != ["ltm"]} == {}, "memories nobody erased are gone"
    ws.close()


# ------------------------------------------------------------------ a run killed after its long-term commit
def test_an_item_a_killed_consolidation_already_stored_is_not_merged_into_itself(tmp_path: Path) -> None:
    """A consolidation killed after its LanceDB commit and before it removed the items from short-term
    memory leaves them in both. The next run used to find each one's nearest neighbour in long-term
    memory (itself) and merge it there: its access count doubled and its own id became its source."""
    from emergent.memory.types import Tier

    ws = Workstation.open(tmp_path / "home", embedder="hashing", memory=STM_BOUND)
    try:
        mem = ws.memory
        agent = mem.default_scope.agent
        ids = [mem.remember(t, importance=0.9).id for t in _texts(8, "m")]

        class Killed(Exception):
            pass

        with pytest.raises(Killed), mem.stm.promoting_evicted(agent) as evicted:
            assert len(evicted) == 3
            mem.ltm.upsert([r.with_(tier=Tier.LTM) for r in evicted])  # the killed run's commit
            before = {r.id: r.access_count for r in evicted}
            raise Killed  # ...and nothing after it: the items stay evicted in short-term memory
        report = mem.consolidate(principal=ws.principal)
        assert report.merged == 0
        stored = {r.id: r for r in mem.ltm.get_many(ids, mem.default_scope)}
        assert sorted(stored) == sorted(ids) and mem.ltm.count() == len(ids)  # each once
        for i, n in before.items():
            assert stored[i].access_count == n and i not in stored[i].sources, stored[i]
        assert _where(ws, ids) == {i: ["ltm"] for i in ids}
    finally:
        ws.close()
