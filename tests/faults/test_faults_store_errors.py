"""Fault 3: a damaged or full store is an emergent error naming the file and what to do.

Truncated or overwritten ``emergent.db``, a deleted LanceDB data file, a truncated LanceDB manifest,
a full disk: each used to surface as a raw SQLAlchemy/LanceDB error (or a traceback from the CLI)
that named no file and gave no remedy. A 0-byte or deleted ``emergent.db`` in a workspace that
holds data used to reopen silently as a new, empty store; it is refused now.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from emergent import Workstation
from emergent.errors import DiskFullError, StoreCorruptError
from emergent.memory.tables import memory_ops

TEXTS = [f"field note {i}: nitrate in the northern lake" for i in range(40)]


def _workspace(home: Path, *, backup: bool = True) -> None:
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest(TEXTS[:20])
    ws.memory.ingest(TEXTS[20:])
    if backup:
        ws.backup("good", by=ws.principal)
    ws.close()


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
    env.update(EMERGENT_AUDIT_DIR=os.environ["EMERGENT_AUDIT_DIR"], EMERGENT_EMBEDDER="hashing")
    return subprocess.run([str(Path(sys.executable).with_name("emergent")), *args, "--home", str(home)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_truncated_emergent_db_is_named_with_the_remedy(home: Path) -> None:
    _workspace(home)
    db = home / "emergent.db"
    with db.open("r+b") as fh:
        fh.truncate(db.stat().st_size // 2)
    ws = Workstation.open(home, embedder="hashing")
    with pytest.raises(StoreCorruptError, match="emergent.db is truncated") as err:
        _ = ws.sql
    assert err.value.path == str(db) and "emergent backup restore ID" in err.value.hint
    ws.close()
    run = _cli(home, "memory", "stats")  # the CLI says it in two lines, no traceback
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert f"error: the database {db} is truncated" in run.stderr and "hint: restore" in run.stderr


def test_overwritten_emergent_db_is_not_a_database(home: Path) -> None:
    _workspace(home)
    (home / "emergent.db").write_bytes(os.urandom(8192))
    ws = Workstation.open(home, embedder="hashing")
    with pytest.raises(StoreCorruptError, match="is not a SQLite database"):
        _ = ws.sql
    ws.close()


@pytest.mark.parametrize("how", ["deleted", "emptied"])
def test_a_vanished_or_empty_emergent_db_is_refused_not_recreated(home: Path, how: str) -> None:
    _workspace(home)
    db = home / "emergent.db"
    db.unlink() if how == "deleted" else db.write_bytes(b"")
    ws = Workstation.open(home, embedder="hashing")
    with pytest.raises(StoreCorruptError, match="is (missing|empty).*backups/ holds 1 backup") as err:
        _ = ws.memory
    assert "emergent backup restore ID" in err.value.hint and "doctor --repair" in err.value.hint
    ws.close()
    assert not db.exists() or db.stat().st_size == 0  # nothing was created behind the user's back

    # `emergent backup restore` brings the database back from the backup (with its governance state).
    listed = _cli(home, "backup", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    backup_id = __import__("json").loads(listed.stdout)[0]["id"]
    run = _cli(home, "backup", "restore", backup_id, "--yes")
    assert run.returncode == 0, run.stderr
    ws = Workstation.open(home, embedder="hashing")
    assert ws.memory.ltm.count() == len(TEXTS) and [b.id for b in ws.backups(uncatalogued=False)] == [backup_id]
    ws.close()


def test_a_new_workspace_still_opens(home: Path) -> None:
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest(["the first memory of a new workspace"])
    ws.close()
    assert (home / ".emergent-workspace.json").exists()


def test_deleted_lance_data_file_is_named_on_read(home: Path) -> None:
    _workspace(home, backup=False)
    data = sorted((home / "lance" / "memories.lance" / "data").iterdir())
    data[0].unlink()
    ws = Workstation.open(home, embedder="hashing")
    with pytest.raises(StoreCorruptError, match=r"LanceDB table .*memories\.lance is damaged") as err:
        ws.memory.recall("nitrate", k=5)
    assert "emergent backup restore ID" in err.value.hint and "doctor" in err.value.hint
    ws.close()


def test_truncated_lance_manifest_is_named_on_first_use(home: Path) -> None:
    _workspace(home, backup=False)
    versions = home / "lance" / "memories.lance" / "_versions"
    newest = min(versions.glob("*.manifest"), key=lambda p: int(p.stem))  # v2 names count down
    with newest.open("r+b") as fh:
        fh.truncate(newest.stat().st_size // 2)
    ws = Workstation.open(home, embedder="hashing")
    # the tables open on first use (a cold recall from the hot index's snapshot needs no LanceDB);
    # the snapshot names the manifest it was taken at, so a damaged one is never answered from
    with pytest.raises(StoreCorruptError, match=r"memories\.lance") as err:
        ws.memory.recall("nitrate", k=5)
    assert err.value.path.endswith("memories.lance")
    ws.close()


def test_full_disk_on_a_long_term_write_stores_nothing_and_says_so(small_disk) -> None:
    home = small_disk.path / "ws"
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest(TEXTS)
    small_disk.fill()
    with pytest.raises(DiskFullError) as err:
        ws.memory.remember("an important memory on a full disk " * 50, tier="ltm")
    assert err.value.committed_ids == [] and "nothing was written" in err.value.hint
    assert str(home / "lance" / "memories.lance") in str(err.value) and err.value.free_bytes is not None
    assert ws.memory.ltm.count() == len(TEXTS)
    small_disk.drain()
    ws.memory.remember("written once there is room again", tier="ltm")
    assert ws.memory.ltm.count() == len(TEXTS) + 1
    ws.close()


def test_full_disk_on_a_sql_write_names_the_database(small_disk) -> None:
    home = small_disk.path / "ws"
    ws = Workstation.open(home, embedder="hashing")
    _ = ws.sql
    small_disk.fill()
    rows = [{"at": float(i), "op": "filler", "scope": "x" * 200, "count": i, "latency_ms": 0.0, "hit": None,
             "detail": None} for i in range(20_000)]
    full = f"the disk holding the database {home / 'emergent.db'} is full"
    with pytest.raises(DiskFullError, match=full), ws.sql.begin() as conn:
        conn.execute(memory_ops.insert(), rows)
    small_disk.drain()
    with ws.sql.connect() as conn:  # rolled back, and the database is still whole
        assert conn.execute(sa.select(sa.func.count()).select_from(memory_ops)).scalar_one() == 0
        assert conn.exec_driver_sql("PRAGMA quick_check").scalar() == "ok"
    ws.close()
