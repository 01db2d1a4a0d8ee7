"""Backups: create, verify, restore (identical recall), tamper detection, catalogue, point in time."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
import zstandard

from emergent import Workstation
from emergent.errors import EmbedderMismatchError, IntegrityError, NotFoundError, StoreCorruptError
from emergent.memory.tables import backups as backups_table
from emergent.workspace import backup
from emergent.workspace.integrity import allow_new_database

QUERIES = ["sensor calibration drift", "weekly group meeting", "how to rotate the API keys", "field trip samples"]
TEXTS = [
    "The sensor calibration drifted by 0.3 percent after the firmware update",
    "Weekly group meeting moved to Thursday at ten",
    "To rotate the API keys, revoke the old key first and then issue a new one",
    "Field trip collected forty water samples from the northern lake",
    "The spectrometer needs a warm-up of twenty minutes before measuring",
    "Maya presented the draft of the drift correction paper",
    "Backups of the cluster run every night at two",
    "The northern lake samples showed high nitrate levels",
]


def _fill(ws: Workstation) -> None:
    ws.memory.ingest([{"text": t, "importance": 0.3 + 0.05 * i} for i, t in enumerate(TEXTS)])
    ws.memory.remember("Remember to order more sample vials", importance=0.7)
    ws.memory.remember("Ana asked about the lake samples", scope="assistant/ana")


def _answers(ws: Workstation) -> list[list[str]]:
    out = [[h.id for h in ws.memory.recall(q, k=5, touch=False)] for q in QUERIES]
    out.append([h.id for h in ws.memory.recall("lake samples", scope="assistant/ana", touch=False)])
    return out


def test_backup_wipe_restore_gives_identical_recall(ws: Workstation) -> None:
    _fill(ws)
    before = _answers(ws)
    info = ws.backup("before the wipe", by=ws.principal)
    assert Path(info.path).parent == ws.path / "backups" and info.memories == len(TEXTS) + 2
    manifest = ws.verify_backup(info.id, by=ws.principal)
    assert manifest["counts"] == {"ltm": len(TEXTS), "archive": 0, "stm": 2}
    assert manifest["embedder"] == ws.embedder.id and manifest["lance"]["tables"]["memories"]["version"] >= 1

    ws.close()  # wipe everything but the archives
    shutil.rmtree(ws.path / "lance")
    for f in ws.path.glob("emergent.db*"):
        f.unlink()
    refused = Workstation.open(ws.path, embedder="hashing")
    with pytest.raises(StoreCorruptError, match="emergent.db is missing.*backup restore"):
        _ = refused.sql  # a lost database is never replaced by an empty one without a word
    refused.close()
    with allow_new_database(ws.path):  # what `emergent backup restore` does: the restore replaces it
        fresh = Workstation.open(ws.path, embedder="hashing")
        assert fresh.memory.ltm.count() == 0
        assert [b.id for b in fresh.backups()] == [info.id]  # found in backups/, not catalogued
        report = fresh.restore(info.id, by=fresh.principal)
    assert (report.ltm_rows, report.stm_items) == (len(TEXTS), 2)
    assert _answers(fresh) == before
    assert [b.id for b in fresh.backups(uncatalogued=False)] == [info.id]  # catalogued again
    assert not list(fresh.path.parent.glob(f".{fresh.path.name}-restore-*"))  # temp dir cleaned up
    fresh.close()


def test_restore_undoes_later_changes_and_keeps_the_catalogue(ws: Workstation) -> None:
    _fill(ws)
    before = _answers(ws)
    first = ws.backup("one", by=ws.principal)
    ws.memory.ingest(["The sensor calibration was redone with the new reference"])
    ws.memory.forget(before[0][0], principal=ws.principal)
    second = ws.backup("two", by=ws.principal)
    mem_before_restore = ws.memory
    ws.restore(first.id, by=ws.principal)
    assert _answers(ws) == before
    assert ws.memory is not mem_before_restore  # services were rebuilt on the restored stores
    assert {b.id for b in ws.backups(uncatalogued=False)} == {first.id, second.id}
    ws.restore(second.id, by=ws.principal)
    assert ws.memory.ltm.count() == len(TEXTS)  # +1 ingested, -1 forgotten


def test_tampered_archive_is_detected_and_nothing_is_replaced(ws: Workstation) -> None:
    _fill(ws)
    info = ws.backup(by=ws.principal)
    ws.memory.ingest(["A memory written after the backup"])
    data = bytearray(Path(info.path).read_bytes())
    data[len(data) // 2] ^= 0xFF
    Path(info.path).write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="failed verification.*sha256") as err:
        ws.verify_backup(info.id, by=ws.principal)
    assert "do not restore" in str(err.value)
    with pytest.raises(IntegrityError):
        ws.restore(info.id, by=ws.principal)
    assert ws.memory.ltm.count() == len(TEXTS) + 1  # untouched
    assert not list(ws.path.parent.glob(f".{ws.path.name}-restore-*"))


def _rewrite(archive: Path, member: str, content: bytes) -> None:
    """Re-pack the archive with one member's content replaced (the manifest left as it was)."""
    with archive.open("rb") as fh, zstandard.ZstdDecompressor().stream_reader(fh) as zr, \
            tarfile.open(fileobj=zr, mode="r|") as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar]  # type: ignore[union-attr]
    with archive.open("wb") as fh, zstandard.ZstdCompressor().stream_writer(fh) as zw, \
            tarfile.open(fileobj=zw, mode="w|") as out:
        for m, body in members:
            body = content if m.name == member else body
            m.size = len(body)
            out.addfile(m, io.BytesIO(body))


def test_member_changed_behind_the_catalogue_is_named(ws: Workstation) -> None:
    _fill(ws)
    info = ws.backup(by=ws.principal)
    _rewrite(Path(info.path), "stm.bin", b"\x00\x00\x00\x00")
    with ws.sql.begin() as conn:  # even with the catalogue's checksum updated, the manifest catches it
        conn.execute(backups_table.update().where(backups_table.c.id == info.id)
                     .values(sha256=backup.sha256_file(Path(info.path))))
    with pytest.raises(IntegrityError, match=r"stm\.bin: sha256 .* does not match the manifest"):
        ws.verify_backup(info.id, by=ws.principal)


def test_truncated_or_missing_archive_fails_verification_clearly(ws: Workstation) -> None:
    _fill(ws)
    info = ws.backup(by=ws.principal)
    path = Path(info.path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(IntegrityError, match="not a readable zstd-compressed tar"):
        ws.verify_backup(info.id, by=ws.principal)
    path.unlink()
    with pytest.raises(IntegrityError, match="is missing"):
        ws.verify_backup(info.id, by=ws.principal)


def test_restore_of_an_unknown_id_says_how_to_list_backups(ws: Workstation) -> None:
    ws.backup(by=ws.principal)
    with pytest.raises(NotFoundError, match="no backup 'nope'") as err:
        ws.restore("nope", by=ws.principal)
    assert "emergent backup list" in str(err.value)


def test_restore_refuses_a_backup_of_another_embedder_before_replacing(ws: Workstation, home: Path) -> None:
    _fill(ws)
    info = ws.backup(by=ws.principal)
    ws.close()
    other = Workstation.open(home / "other", embedder="minilm")
    with pytest.raises(EmbedderMismatchError, match="hashing-384.*nothing was replaced"):
        other.restore(info.path, by=other.principal)  # an archive path works as an id too
    other.close()


def test_point_in_time_restore_rolls_ltm_back(ws: Workstation) -> None:
    ws.memory.ingest(TEXTS[:4])
    time.sleep(0.05)
    moment = time.time()
    time.sleep(0.05)
    ws.memory.ingest(TEXTS[4:])
    assert ws.memory.ltm.count() == len(TEXTS)
    time.sleep(0.05)
    before_rollback = time.time()
    time.sleep(0.05)
    done = ws.memory.rewind(moment, principal=ws.principal)
    assert ws.memory.ltm.count() == 4 and done["memories"] < ws.memory.ltm.table.version
    assert {r.text for r in ws.memory.ltm.records()} == set(TEXTS[:4])
    ws.memory.rewind(before_rollback, principal=ws.principal)  # a rollback is itself a version: undo it
    assert ws.memory.ltm.count() == len(TEXTS)
    with pytest.raises(NotFoundError, match="no version at or before 2001"):
        ws.memory.rewind("2001-01-01T00:00:00", principal=ws.principal)
    assert [e.data["phase"] for e in ws.audit.entries(kind="memory.rewind")] == ["intent", "done"] * 2 + [
        "intent", "failed"]


def test_sql_rows_survive_on_every_dialect(home: Path, sql_url: str) -> None:
    ws = Workstation.open(home, embedder="hashing", database_url=sql_url)
    _fill(ws)
    ws.memory.recall("lake")
    ws.memory.flush()
    with ws.sql.connect() as conn:
        ops = conn.execute(sa.text("SELECT count(*) FROM memory_ops")).scalar_one()
    info = ws.backup(by=ws.principal)
    with ws.sql.begin() as conn:
        conn.execute(sa.text("DELETE FROM memory_ops"))
    report = ws.restore(info.id, by=ws.principal)
    assert report.sql["mode"] == ("file" if sql_url.startswith("sqlite") else "jsonl")
    with ws.sql.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM memory_ops")).scalar_one() == ops
    ws.memory.remember("written after the restore")  # sequences still work
    ws.memory.flush()
    ws.close()


def test_redis_stm_is_dumped_and_refilled(home: Path, redis_url: str) -> None:
    ws = Workstation.open(home, embedder="hashing", redis_url=redis_url)
    rec = ws.memory.remember("kept in redis", importance=0.4, scope="bot/u1")
    info = ws.backup(by=ws.principal)
    ws.memory.forget(rec.id, scope="bot/u1", principal=ws.principal)
    ws.memory.remember("written after the backup", scope="bot")
    ws.restore(info.id, by=ws.principal)
    items = ws.memory.stm.scan("bot")
    assert [r.text for r in items] == ["kept in redis"]
    ws.close()


def test_cli_create_list_verify_and_missing_id(home: Path, tmp_path: Path) -> None:
    env = {"EMERGENT_HOME": str(home), "EMERGENT_EMBEDDER": "hashing", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(Path(sys.executable).parent / "emergent"), *args], capture_output=True, text=True,
                              env=env, timeout=120)

    assert cli("memory", "remember", "a note for the cli", "--ltm").returncode == 0
    created = cli("backup", "create", "--note", "cli")
    assert created.returncode == 0, created.stderr
    listed = json.loads(cli("backup", "list", "--json").stdout)
    assert [b["note"] for b in listed] == ["cli"]
    ok = cli("backup", "verify", listed[0]["id"])
    assert ok.returncode == 0 and "intact" in ok.stdout
    missing = cli("backup", "restore", "nope", "--yes")
    assert missing.returncode == 2 and "no backup 'nope'" in missing.stderr and "emergent backup list" in missing.stderr


def test_a_failure_during_the_swap_puts_the_old_data_back(ws: Workstation, monkeypatch: pytest.MonkeyPatch) -> None:
    _fill(ws)
    info = ws.backup(by=ws.principal)
    ws.memory.ingest(["A memory written after the backup"])
    expected = _answers(ws)

    def broken(*_args: object, **_kw: object) -> None:
        raise OSError("disk full while reopening the database")

    monkeypatch.setattr(backup, "_finish_sql", broken)
    with pytest.raises(OSError, match="disk full"):
        ws.restore(info.id, by=ws.principal)
    assert ws.memory.ltm.count() == len(TEXTS) + 1  # the pre-restore data, reopened
    assert [b.id for b in ws.backups(uncatalogued=False)] == [info.id]
    assert _answers(ws) == expected  # short-term items put back too
