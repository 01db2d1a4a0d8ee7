"""Fault 4: backup and restore leave no debris and no half-states.

A real child process is SIGKILLed at each step of a restore (``emergent.workspace.journal.KILL_AT``, set in the child); opening
the workspace again rolls the restore back (before the restored database was finished) or
completes it (after), says which (a warning, ``ws.recovered``, an audit entry), and leaves no
work directory behind. Killed backups leave nothing on the next open. A damaged manifest is an
IntegrityError, never a UnicodeDecodeError. A work directory of an older version that holds data
moved aside is never removed.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import pytest
import sqlalchemy as sa
import zstandard

from emergent import Workstation
from emergent.errors import BackupError, IntegrityError
from emergent.memory.tables import memory_ops
from emergent.workspace import journal
from emergent.workspace.journal import BACKUP_STEPS, RESTORE_STEPS, RestoreRecovered

BEFORE = [f"backed-up note {i} about the northern lake" for i in range(8)]
AFTER = [f"note {i} written after the backup, about the southern river" for i in range(3)]


def _child(home: Path, body: str, kill_at: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
    env["EMERGENT_AUDIT_DIR"] = os.environ["EMERGENT_AUDIT_DIR"]
    script = (f"import emergent.workspace.journal as _journal\n_journal.KILL_AT = {kill_at!r}\n" if kill_at else "") + \
        "from emergent import Workstation\n" \
             f"ws = Workstation.open({str(home)!r}, embedder='hashing')\n" + textwrap.dedent(body)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=240)


def _marker_rows(ws: Workstation) -> int:
    with ws.sql.connect() as conn:
        return int(conn.execute(sa.select(sa.func.count()).select_from(memory_ops)
                                .where(memory_ops.c.op == "after-backup")).scalar_one())


def _prepared(home: Path) -> str:
    """A workspace with a backup and, after it, more memories and a SQL row the backup lacks."""
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest(BEFORE)
    ws.memory.remember("short-term note kept in the backup", importance=0.4)
    info = ws.backup("before", by=ws.principal)
    ws.memory.ingest(AFTER)
    with ws.sql.begin() as conn:
        conn.execute(memory_ops.insert(), [{"at": 1.0, "op": "after-backup", "scope": "default", "count": 1,
                                            "latency_ms": 0.0, "hit": None, "detail": None}])
    ws.close()
    return info.id


def _debris(home: Path) -> list[Path]:
    return sorted([*home.parent.glob(f".{home.name}-restore-*"), *home.glob(f".{home.name}-restore-*"),
                   *home.glob(journal.JOURNAL), *(home / "backups").glob(".staging-*"),
                   *(home / "backups").glob("*.part")])


@pytest.mark.parametrize("step", RESTORE_STEPS)
def test_restore_killed_at_each_step_is_rolled_back_or_completed_on_the_next_open(home: Path, step: str) -> None:
    backup_id = _prepared(home)
    run = _child(home, f"ws.restore({backup_id!r}, by=ws.principal)\nprint('restored')", f"restore:{step}")
    assert run.returncode == -9, (run.returncode, run.stderr[-2000:])  # it really was killed at that step
    assert (home / journal.JOURNAL).exists()  # the journal says where everything is

    with pytest.warns(RestoreRecovered, match=backup_id):
        ws = Workstation.open(home, embedder="hashing")
    report = ws.recovered
    committed = RESTORE_STEPS.index(step) >= RESTORE_STEPS.index("committed")
    assert report is not None and report.outcome == ("completed" if committed else "rolled back")
    assert report.backup == backup_id
    # Never half: long-term memory and the SQL database come from the same side of the restore.
    if committed:
        assert ws.memory.ltm.count() == len(BEFORE) and _marker_rows(ws) == 0
    else:
        assert ws.memory.ltm.count() == len(BEFORE) + len(AFTER) and _marker_rows(ws) == 1
    assert [b.id for b in ws.backups(uncatalogued=False)] == [backup_id]  # the catalogue is kept either way
    # The audit trail says what happened, and its chain is whole.
    assert ws.audit.verify().ok
    kinds = [(e.kind, e.data.get("phase"), e.data.get("outcome")) for e in ws.audit.entries()]
    if step in ("done", "cleaned"):  # the restore had recorded its end: nothing to add
        assert ("workspace.restored", "done", None) in kinds
    else:
        assert ("workspace.restore", "recovered", report.outcome) in kinds
    assert _debris(home) == []
    # The workspace works, and the same backup restores cleanly now.
    ws.memory.ingest(["written after the recovery"])
    assert ws.memory.recall("northern lake", k=3)
    again = ws.restore(backup_id, by=ws.principal)
    assert again.ltm_rows == len(BEFORE) and _marker_rows(ws) == 0
    ws.close()
    assert _debris(home) == []


def test_a_failed_restore_step_in_process_puts_everything_back(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backup_id = _prepared(home)
    ws = Workstation.open(home, embedder="hashing")
    from emergent.workspace import backup

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(backup, "_finish_sql", broken)  # the restored database cannot be finished
    with pytest.raises(OSError):
        ws.restore(backup_id, by=ws.principal)
    assert ws.memory.ltm.count() == len(BEFORE) + len(AFTER) and _marker_rows(ws) == 1
    assert _debris(home) == []
    phases = [e.data.get("phase") for e in ws.audit.entries() if e.kind == "workspace.restore"]
    assert phases[-2:] == ["intent", "failed"]
    ws.close()


@pytest.mark.parametrize("step", BACKUP_STEPS)
def test_backup_killed_at_each_step_leaves_nothing_after_the_next_open(home: Path, step: str) -> None:
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest(BEFORE)
    ws.close()
    run = _child(home, "print(ws.backup('killed', by=ws.principal).id)", f"backup:{step}")
    assert run.returncode == -9, run.stderr[-2000:]
    left = _debris(home)
    assert left and all(p.name.startswith(".staging-") for p in left)  # what a kill leaves: one staging folder

    ws = Workstation.open(home, embedder="hashing")
    assert ws.recovered is not None and sorted(ws.recovered.cleaned) == [str(p) for p in left]
    assert _debris(home) == []
    archives = sorted((home / "backups").glob("*.tar.zst"))
    if step == "archived":  # the archive was complete (renamed into place): kept, found, verifiable
        assert len(archives) == 1
        [info] = ws.backups()
        assert ws.verify_backup(info.id, by=ws.principal)["counts"]["ltm"] == len(BEFORE)
    else:
        assert archives == [] and ws.backups() == []
    assert ws.backup("after the kill", by=ws.principal).memories == len(BEFORE)
    ws.close()


def test_a_backup_being_written_by_another_process_is_not_debris(home: Path) -> None:
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest(BEFORE)
    staging = home / "backups" / ".staging-inflight"
    staging.mkdir(parents=True)
    with journal.os_lock(home / "backups" / journal.BACKUPS_LOCK, shared=True):  # as a writer holds it
        assert [d.removable for d in journal.find_debris(home)] == [False]
        assert journal.clean_debris(home).cleaned == []
        assert staging.exists()
    assert [d.removable for d in journal.find_debris(home)] == [True]
    ws.close()


def test_a_flipped_manifest_byte_is_an_integrity_error_naming_the_manifest(ws: Workstation) -> None:
    ws.memory.ingest(BEFORE)
    info = ws.backup(by=ws.principal)
    archive = Path(info.path)
    with archive.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as zr, \
            tarfile.open(fileobj=zr, mode="r|") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    with archive.open("wb") as fh, zstandard.ZstdCompressor().stream_writer(fh) as zw, \
            tarfile.open(fileobj=zw, mode="w|") as out:
        for m, body in members:
            if m.name == "manifest.json":
                body = bytearray(body)
                body[10] = 0xFF  # not UTF-8 any more
                body = bytes(body)
            out.addfile(m, io.BytesIO(body))
    with pytest.raises(IntegrityError, match="manifest.json is damaged") as err:
        ws.verify_backup(info.id, by=ws.principal)
    assert "do not restore" in str(err.value)
    with pytest.raises(IntegrityError):
        ws.restore(info.id, by=ws.principal)
    assert ws.memory.ltm.count() == len(BEFORE)
    assert _debris(ws.path) == []


def test_an_older_versions_restore_folder_holding_data_is_kept_and_reported(home: Path) -> None:
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest(BEFORE)
    ws.close()
    holding = home.parent / f".{home.name}-restore-old1"
    (holding / "aside" / "lance").mkdir(parents=True)
    (holding / "aside" / "emergent.db").write_bytes(b"the only copy of the old database")
    copy_only = home.parent / f".{home.name}-restore-old2"
    (copy_only / "x" / "lance").mkdir(parents=True)

    ws = Workstation.open(home, embedder="hashing")
    assert ws.recovered is not None
    assert ws.recovered.cleaned == [str(copy_only)] and not copy_only.exists()
    assert [k["path"] for k in ws.recovered.kept] == [str(holding)]
    assert "only copy" in ws.recovered.kept[0]["why"]
    assert (holding / "aside" / "emergent.db").read_bytes() == b"the only copy of the old database"
    ws.close()
    Workstation.open(home, embedder="hashing").close()  # and on every later open too
    assert holding.exists()


def test_a_restore_running_in_another_process_is_never_rolled_back_under_it(home: Path) -> None:
    backup_id = _prepared(home)
    holder = subprocess.Popen(  # a live restore: it holds the restore lock and has begun its journal
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from pathlib import Path
            from emergent.workspace import journal
            with journal.os_lock(Path({str(home)!r}) / journal.RESTORE_LOCK):
                journal.RestoreJournal(Path({str(home)!r})).begin(backup={backup_id!r}, work="/nonexistent")
                print("holding", flush=True)
                time.sleep(60)
        """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "holding"
        with pytest.raises(BackupError, match=f"a restore of {home} is running in process {holder.pid}"):
            journal.recover(home, lambda: None, wait_s=0.3)
        assert (home / journal.JOURNAL).exists()
        with journal.inspect_only():
            ws = Workstation.open(home, embedder="hashing")
        with pytest.raises(BackupError, match=rf"another restore of .* is running \(process {holder.pid}\)"):
            ws.restore(backup_id, by=ws.principal)
        ws.close()
    finally:
        holder.kill()
        holder.wait()
    # The holder died: its restore is abandoned. No new restore starts over it...
    with journal.inspect_only():
        ws = Workstation.open(home, embedder="hashing")
    with pytest.raises(BackupError, match="has not been recovered") as err:
        ws.restore(backup_id, by=ws.principal)
    assert "emergent doctor --repair" in err.value.hint
    ws.close()
    # ...and the next open recovers it.
    with pytest.warns(RestoreRecovered):
        ws = Workstation.open(home, embedder="hashing")
    assert ws.recovered is not None and ws.recovered.outcome == "rolled back"
    assert ws.memory.ltm.count() == len(BEFORE) + len(AFTER)
    ws.close()
