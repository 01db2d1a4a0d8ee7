"""Attacks on backup, restore, erasure and rewind: malformed archives, a full disk, races with erasure.

Each test is named after the attack; what must hold is the product's promise: bad input gets a clear
error of the ``emergent.errors`` family (never a KeyError or a traceback), a full disk is said to be
a full disk (never a damaged backup), and an erasure is never undone or left half-done behind a
report of success.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import zstandard

from emergent import Workstation
from emergent.errors import DiskFullError, EmergentError, IntegrityError, UsageError

EMERGENT = str(Path(sys.executable).with_name("emergent"))
SECRET = "QX771-heron-passport-of-alice"


def _archive(path: Path, manifest: dict, members: list[tuple[str, bytes]] = ()) -> Path:  # type: ignore[assignment]
    """A zstd tar whose first member is ``manifest`` (self-consistent: whatever the manifest says)."""
    with path.open("wb") as fh, zstandard.ZstdCompressor().stream_writer(fh) as zw, \
            tarfile.open(fileobj=zw, mode="w|") as tar:
        for name, body in [("manifest.json", json.dumps(manifest).encode()), *members]:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return path


def _sha(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EMERGENT_EMBEDDER": "hashing"}
    return subprocess.run([EMERGENT, *args, "--home", str(home)], capture_output=True, text=True, timeout=120,
                          env=env)


# ------------------------------------------------------------------------------ a malformed manifest
MALFORMED_HEADS = [
    {"format": 1, "id": "evil-created", "created_at": "yesterday"},
    {"format": 1, "id": "evil-counts", "created_at": 1.0, "counts": ["ltm"]},
    {"format": 1, "id": "evil-counts-values", "created_at": 1.0, "counts": {"ltm": "many"}},
    {"format": 1, "id": ["not", "a", "string"], "created_at": 1.0},
]


@pytest.mark.parametrize("manifest", MALFORMED_HEADS, ids=lambda m: str(m["id"])[:20])
def test_attack_a_malformed_archive_dropped_in_backups_does_not_break_listing_or_an_erasure(
        ws: Workstation, me, manifest: dict) -> None:
    """One readable archive whose manifest has a wrong type in it (created_at a word, counts a list)
    sits in backups/: listing the backups must skip it (as it skips an unreadable one), and an
    erasure must still finish everything it promises (mark the backups, redact, report done)."""
    secret = ws.memory.remember(f"{SECRET} is her passport", scope="assistant/alice", tier="ltm")
    good = ws.backup(by=me)
    _archive(ws.path / "backups" / "dropped.tar.zst", manifest)

    assert [b.id for b in ws.backups()] == [good.id]
    report = ws.retention.erase(by=me, reason="GDPR art. 17", user="alice")
    assert report.ids == [secret.id] and report.backups_marked == [good.id]
    assert [e.data.get("phase") for e in ws.audit.entries(kind="retention.erase")][-1] == "done"

    listed = _cli(ws.path, "backup", "list")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr[-1500:]


# ------------------------------------------------------------------------------ a lying manifest
def _lying_archives(folder: Path) -> dict[str, Path]:
    stm = b""
    return {
        "no-sql": _archive(folder / "no-sql.tar.zst", {"format": 1, "id": "no-sql", "created_at": 1.0,
                                                        "files": {"stm.bin": _sha(stm)}}, [("stm.bin", stm)]),
        "files-list": _archive(folder / "files-list.tar.zst", {"format": 1, "id": "files-list", "created_at": 1.0,
                                                                "files": ["stm.bin"]}, [("stm.bin", stm)]),
        "sql-text": _archive(folder / "sql-text.tar.zst", {"format": 1, "id": "sql-text", "created_at": 1.0,
                                                            "sql": "sqlite", "files": {}}),
        "sql-mode": _archive(folder / "sql-mode.tar.zst", {"format": 1, "id": "sql-mode", "created_at": 1.0,
                                                            "sql": {"mode": "rm -rf"}, "files": {}}),
    }


@pytest.mark.parametrize("which", ["no-sql", "files-list", "sql-text", "sql-mode"])
def test_attack_a_self_consistent_archive_with_a_lying_manifest_is_a_clear_error(
        ws: Workstation, me, tmp_path: Path, which: str) -> None:
    """An archive from elsewhere (restored by path) whose checksums all match but whose manifest is
    not what a backup writes (no ``sql`` section, ``files`` a list, ``sql`` a string): verify and
    restore fail with an IntegrityError and replace nothing — never a KeyError/AttributeError."""
    kept = ws.memory.remember("a note that must survive", tier="ltm")
    archive = _lying_archives(tmp_path)[which]
    with pytest.raises(IntegrityError):
        ws.verify_backup(str(archive), by=me)
    with pytest.raises(IntegrityError):
        ws.restore(str(archive), by=me)
    assert [f["id"] for f in ws.memory.locate(ids=[kept.id])] == [kept.id]
    assert not list(ws.path.parent.glob(f".{ws.path.name}-restore-*"))


# ------------------------------------------------------------------------------ a full disk
def test_attack_full_disk_during_backup_is_a_disk_full_error_and_lists_nothing(small_disk) -> None:
    home = small_disk.path / "ws"
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest([f"note {i} about the harbour and its tides " * 20 for i in range(60)])
    small_disk.fill(leave=64 << 10)
    with pytest.raises(DiskFullError) as err:
        ws.backup(by=ws.principal)
    assert str(home) in str(err.value)
    small_disk.drain()
    assert ws.backups() == []
    assert not [p for p in (home / "backups").iterdir() if p.name != ".lock"]
    phases = [e.data.get("phase") for e in ws.audit.entries(kind="workspace.backup")]
    assert phases == ["intent", "failed"]
    ws.close()


def test_attack_full_disk_during_restore_is_not_reported_as_a_damaged_backup(small_disk) -> None:
    """A good backup restored onto a full disk: the extraction fails. The error must say the disk is
    full (DiskFullError), not that the backup "failed verification, do not restore from it" — that
    would send the user to delete or distrust a good backup. Nothing is replaced."""
    home = small_disk.path / "ws"
    ws = Workstation.open(home, embedder="hashing")
    ws.memory.ingest([f"note {i} about the harbour and its tides " * 20 for i in range(60)])
    info = ws.backup(by=ws.principal)
    ws.memory.remember("written after the backup", tier="ltm")
    small_disk.fill(leave=64 << 10)
    with pytest.raises(EmergentError) as err:
        ws.restore(info.id, by=ws.principal)
    small_disk.drain()
    assert isinstance(err.value, DiskFullError), repr(err.value)
    assert "do not restore" not in str(err.value)
    assert ws.memory.ltm.count() == 61
    ws.verify_backup(info.id, by=ws.principal)  # the backup was good all along
    ws.close()


# ------------------------------------------------------------------------------ erasure racing consolidation
RACER = r"""
import sys, time
from pathlib import Path
from emergent import Workstation
home, go = Path(sys.argv[1]), Path(sys.argv[2])
ws = Workstation.open(home, embedder="hashing")
ltm = ws.memory.ltm
real = ltm.upsert
def held(records, **kw):  # consolidation has read short-term memory and is about to write long-term
    print("read " + ",".join(sorted(r.id for r in records)), flush=True)
    deadline = time.time() + 120
    while not go.exists() and time.time() < deadline:
        time.sleep(0.05)
    return real(records, **kw)
ltm.upsert = held
try:
    report = ws.memory.consolidate(principal=ws.principal)
    print(f"done promoted={report.promoted}", flush=True)
except Exception as exc:
    print(f"failed {type(exc).__name__}: {exc}", flush=True)
ws.close()
"""


def test_attack_erasure_racing_a_consolidation_in_another_process_does_not_bring_the_text_back(
        home: Path, tmp_path: Path) -> None:
    """Another process (the scheduler's consolidation) has read alice's short-term item and is about
    to promote it when a human erases alice. The erasure reports done; afterwards the text must be in
    no tier (the promotion must not write it back into long-term memory)."""
    ws = Workstation.open(home, embedder="hashing")
    me = ws.principal
    secret = ws.memory.remember(f"{SECRET} is alice's passport", scope="assistant/alice", importance=0.9)
    ws.memory.remember("bob likes the harbour at dawn", scope="assistant/bob", importance=0.9)
    go = tmp_path / "go"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
    env["EMERGENT_AUDIT_DIR"] = os.environ["EMERGENT_AUDIT_DIR"]
    racer = subprocess.Popen([sys.executable, "-c", RACER, str(home), str(go)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert racer.stdout is not None
        line = racer.stdout.readline()
        assert line.startswith("read ") and secret.id in line, (line, racer.stderr.read() if not line else "")
        report = ws.retention.erase(by=me, reason="GDPR art. 17", user="alice")
        assert secret.id in report.ids
    finally:
        go.touch()
        out, err = racer.communicate(timeout=240)
    assert racer.returncode == 0, err[-2000:]

    # the erasure said done: the erased memory is in no tier, whatever the consolidation did
    assert ws.memory.locate(user="alice") == [], out
    assert ws.memory.locate(ids=[secret.id]) == []
    assert all(SECRET not in h.text for h in ws.memory.recall(SECRET, scope="assistant", k=10))
    ws.close()


# ------------------------------------------------------------------------------ kill -9 mid-erasure
KILLED_ERASURE = r"""
import os, signal, sys
from pathlib import Path
from emergent import Workstation
from emergent.memory import erasure
ws = Workstation.open(Path(sys.argv[1]), embedder="hashing")
def killed(*a, **k):  # the rows are deleted and their files rewritten; older versions not removed yet
    os.kill(os.getpid(), signal.SIGKILL)
erasure._cleanup = killed
ws.retention.erase(by=ws.principal, reason="GDPR art. 17", user="alice")
"""


def test_attack_kill_9_mid_erasure_then_rewind_does_not_bring_the_erased_text_back(home: Path) -> None:
    """An erasure is SIGKILLed after alice's rows left the live table but before the older table
    versions were removed. The ledger already lists her ids (a restore of an older backup is refused
    for them); a rewind of long-term memory to before the erasure must not bring her text back either
    (refused, or the interrupted erasure finished first)."""
    ws = Workstation.open(home, embedder="hashing")
    secret = ws.memory.remember(f"{SECRET} is alice's passport", scope="assistant/alice", tier="ltm")
    ws.memory.ingest([f"bob's note {i} on the tides" for i in range(5)], scope="assistant/bob")
    before = max(v["version"] for v in ws.memory.ltm.versions())
    ws.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
    env["EMERGENT_AUDIT_DIR"] = os.environ["EMERGENT_AUDIT_DIR"]
    run = subprocess.run([sys.executable, "-c", KILLED_ERASURE, str(home)], env=env, capture_output=True, text=True,
                         timeout=240)
    assert run.returncode == -9, run.stderr[-2000:]

    ws = Workstation.open(home, embedder="hashing")
    assert ws.memory.locate(ids=[secret.id]) == []  # gone from the live table already
    [ledger] = ws.retention.erasures()
    assert ledger["status"] == "started"  # the ledger knows the erasure began
    with pytest.raises(UsageError) as err:  # refused while the erasure has not finished
        ws.memory.rewind(version=before, principal=ws.principal)
    assert "retention finish" in err.value.hint
    assert ws.memory.locate(ids=[secret.id]) == [], "a rewind brought back a memory whose erasure had begun"
    [report] = ws.retention.finish_interrupted(by=ws.principal)
    assert report.erasure_id and not report.dry_run
    assert {e["id"]: e["status"] for e in ws.retention.erasures()}[ledger["id"]] == "interrupted"
    assert ws.retention.unfinished() == []
    with contextlib.suppress(EmergentError):  # finished: the versions that held the text are gone
        ws.memory.rewind(version=before, principal=ws.principal)
    assert ws.memory.locate(ids=[secret.id]) == []
    assert all(SECRET not in h.text for h in ws.memory.recall(SECRET, scope="assistant", k=10))
    ws.close()
