"""Backups of a workspace that encrypts: every member that can hold values as the services read them
(``stm.bin``, the SQL dump) is sealed under the ``backup`` data key, so no file of a backup holds a
planted secret; verify and restore still work, and a sealed member moved, truncated, reordered or
restored without the key is refused."""

from __future__ import annotations

import base64
import io
import os
import tarfile
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import zstandard

from emergent.errors import BackupError, IntegrityError
from emergent.workspace import backup

SECRET = "quetzal-marmoset-8841"
NEEDLES = (SECRET.encode(), SECRET.encode("utf-16-le"))


@pytest.fixture
def kek(monkeypatch: pytest.MonkeyPatch) -> bytes:
    key = os.urandom(32)
    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(key).decode())
    return key


def _open(home: Path, **kw: Any) -> Any:
    from emergent import Workstation

    return Workstation.open(home, embedder="hashing", **kw)


def _backup(ws: Any, note: str | None = None) -> backup.BackupInfo:
    return ws.backup(note, by=ws.principal)  # the Workstation hands the backup cipher when it encrypts


def _restore(ws: Any, bid: str) -> backup.RestoreReport:
    return ws.restore(bid, by=ws.principal)


def _members(archive: Path) -> dict[str, bytes]:
    raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(archive.read_bytes())).read()
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def _holding(data: bytes) -> bool:
    return any(n in data for n in NEEDLES)


def _plant(ws: Any) -> dict[str, str]:
    stm = ws.memory.remember(f"short {SECRET}", scope="ops/alice", meta={"note": SECRET})
    ltm = ws.memory.remember(f"long {SECRET}", scope="ops", tier="ltm", meta={"note": SECRET})
    ws.audit.append("test.planted", ws.principal, {"detail": SECRET}, durable=True)  # a field the audit keeps plain
    ws.memory.flush()
    ws.memory.ltm.maintain(force=True)
    return {"stm": stm.id, "ltm": ltm.id}


@pytest.fixture(params=["sqlite-stm", "redis-stm"])
def stm_kw(request: pytest.FixtureRequest) -> dict[str, str]:
    return {"redis_url": request.getfixturevalue("redis_url")} if request.param == "redis-stm" else {}


def test_attack_backup_of_a_sealed_workspace_holds_no_planted_secret_in_any_file(
        home: Path, kek: bytes, sql_url: str, stm_kw: dict[str, str]) -> None:
    ws = _open(home, database_url=sql_url, **stm_kw)
    try:
        ids = _plant(ws)
        if sql_url.startswith("sqlite"):  # the planted audit field is on disk in clear: the scan can fail
            live = [p for p in Path(sql_url.removeprefix("sqlite:///")).parent.glob("test.db*") if p.is_file()]
            assert any(_holding(p.read_bytes()) for p in live)
        with ws.sql.connect() as conn:
            ops = conn.execute(sa.text("SELECT count(*) FROM memory_ops")).scalar_one()
        info = _backup(ws, "sealed")
        archive = Path(info.path)
        members = _members(archive)
        assert not _holding(archive.read_bytes())
        assert [name for name, data in members.items() if _holding(data)] == []
        assert [p.name for p in (home / "backups").rglob("*") if p.is_file() and _holding(p.read_bytes())] == []
        sealed = {n for n in members if n.endswith(backup.SEALED_SUFFIX)}
        assert "stm.bin.sealed" in sealed and any(n.startswith("sql/") for n in sealed)
        assert not [n for n in members if n == "stm.bin" or (n.startswith("sql/") and n not in sealed)]
        manifest = ws.verify_backup(info.id, by=ws.principal)  # checksums need no key
        assert manifest["sealed"]["purpose"] == "backup" and "stm.bin" in manifest["sealed"]["files"]

        ws.memory.forget(ids["stm"], scope="ops/alice", principal=ws.principal)
        ws.memory.forget(ids["ltm"], scope="ops", principal=ws.principal)
        with ws.sql.begin() as conn:
            conn.execute(sa.text("DELETE FROM memory_ops"))
        report = _restore(ws, info.id)
        assert report.stm_items == 1 and not report.warnings
        assert ws.memory.stm.get("ops", ids["stm"]).text == f"short {SECRET}"
        assert ws.memory.ltm.get(ids["ltm"], ws.memory._scope("ops")).text == f"long {SECRET}"
        with ws.sql.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM memory_ops")).scalar_one() == ops
        leftovers = [p for p in home.parent.iterdir() if ".home-restore-" in p.name]
        assert leftovers == []  # the opened (plaintext) members went with the restore's work directory
    finally:
        ws.close()


def test_attack_sealed_backup_member_moved_truncated_or_reordered_does_not_open(
        home: Path, tmp_path: Path, kek: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _open(home)
    try:
        cipher = ws._cipher("backup")
        monkeypatch.setattr(backup, "_SEAL_CHUNK", 64)  # several chunks from a small file
        plain = tmp_path / "plain"
        plain.write_bytes(os.urandom(200) + SECRET.encode() * 4)
        sealed, out = tmp_path / "sealed", tmp_path / "out"
        backup._seal_file(cipher, plain, sealed, "B1", "stm.bin")
        assert not _holding(sealed.read_bytes())
        backup._open_file(cipher, sealed, out, "B1", "stm.bin")
        assert out.read_bytes() == plain.read_bytes()
        out.unlink()
        for bid, name in (("B2", "stm.bin"), ("B1", "sql/emergent.db")):  # moved to another backup or member
            with pytest.raises(IntegrityError):
                backup._open_file(cipher, sealed, out, bid, name)
        data = sealed.read_bytes()
        chunks, pos = [], 4
        while pos < len(data):
            n = int.from_bytes(data[pos:pos + 4], "little")
            chunks.append(data[pos:pos + 4 + n])
            pos += 4 + n
        assert len(chunks) >= 4
        forged = {"truncated at a chunk": data[:4] + b"".join(chunks[:-1]),
                  "reordered": data[:4] + chunks[1] + chunks[0] + b"".join(chunks[2:]),
                  "cut mid-chunk": data[:-7]}
        for what, body in forged.items():
            sealed.write_bytes(body)
            with pytest.raises(IntegrityError):
                backup._open_file(cipher, sealed, out, "B1", "stm.bin")
            assert not out.exists(), what  # nothing half-opened is left under the plain name
    finally:
        ws.close()


def test_sealed_backup_is_refused_by_a_workspace_that_does_not_encrypt_and_nothing_is_replaced(
        home: Path, kek: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _open(home)
    try:
        ws.memory.remember("kept as it is", scope="ops", tier="ltm")
        ws.memory.flush()
        info = _backup(ws)
    finally:
        ws.close()
    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "false")
    ws = _open(home)
    try:
        ws.memory.remember("written with encryption off", scope="ops")
        with pytest.raises(BackupError, match="is sealed") as err:
            _restore(ws, info.id)
        assert "EMERGENT_SECURITY__ENCRYPT" in (err.value.hint or "")
        assert [r.text for r in ws.memory.stm.scan("ops")] == ["written with encryption off"]
    finally:
        ws.close()


def test_backup_without_encryption_is_unchanged(home: Path) -> None:
    ws = _open(home)
    try:
        ws.memory.remember(f"plain {SECRET}", scope="ops")
        info = ws.backup(by=ws.principal)
        members = _members(Path(info.path))
        assert "stm.bin" in members and _holding(members["stm.bin"])  # as before: nothing sealed
        assert "sealed" not in ws.verify_backup(info.id, by=ws.principal)
        assert _restore(ws, info.id).stm_items == 1
    finally:
        ws.close()


def test_sealed_backup_restores_after_the_kek_was_rotated_in_a_new_process(
        home: Path, kek: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _open(home)
    try:
        rid = ws.memory.remember(f"before rotation {SECRET}", scope="ops").id
        info = _backup(ws)
        ws.keyring.rotate_kek(new := os.urandom(32), by=ws.principal)  # the backup key: re-wrapped, data untouched
        ws.memory.forget(rid, scope="ops", principal=ws.principal)
    finally:
        ws.close()
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(new).decode())
    ws = _open(home)
    try:
        assert _restore(ws, info.id).stm_items == 1
        assert ws.memory.stm.get("ops", rid).text == f"before rotation {SECRET}"
    finally:
        ws.close()


def test_sealed_backup_and_the_kek_alone_restore_a_workspace_whose_database_was_lost(home: Path, kek: bytes) -> None:
    import shutil

    from emergent.workspace.integrity import allow_new_database

    ws = _open(home)
    try:
        stm = ws.memory.remember(f"short {SECRET}", scope="ops").id
        ltm = ws.memory.remember(f"long {SECRET}", scope="ops", tier="ltm").id
        ws.memory.flush()
        info = _backup(ws)
        keys = {k.id for k in ws.keyring.data_keys()}
        assert {"memory.ltm", "memory.stm", "backup"} <= {k.purpose for k in ws.keyring.data_keys()}
    finally:
        ws.close()
    shutil.rmtree(home / "lance")  # everything but the archives (and the KEK, kept elsewhere) is lost
    for f in home.glob("emergent.db*"):
        f.unlink()
    (home / "stm.db").unlink(missing_ok=True)
    with allow_new_database(home):  # what `emergent backup restore` does: the restore replaces it
        ws = _open(home)
        try:
            assert ws.keyring.data_keys() == []
            report = _restore(ws, info.id)
        except BaseException:
            ws.close()
            raise
    try:
        assert report.sql["keys_added"] == len(keys) and report.stm_items == 1
        assert {k.id for k in ws.keyring.data_keys()} == keys
        assert ws.memory.stm.get("ops", stm).text == f"short {SECRET}"
        assert ws.memory.ltm.get(ltm, ws.memory._scope("ops")).text == f"long {SECRET}"
    finally:
        ws.close()


def test_attack_backup_key_list_wrapped_by_another_kek_or_altered_is_not_adopted(home: Path, kek: bytes) -> None:
    import copy

    from emergent.security.crypto import KeyRing, new_kek

    ws = _open(home)
    try:
        ws.memory.remember("anything", scope="ops")
        rows = ws.keyring.export_keys()
        assert rows and all(base64.b64decode(r["wrapped"]) != b"" for r in rows)
        other = KeyRing(ws.sql, kek=new_kek())  # another KEK: the rows are not its own, nothing is added
        assert other.adopt([{**r, "id": "f" * 32} for r in rows]) == 0
        forged = copy.deepcopy(rows[0]) | {"id": "e" * 32}
        wrapped = bytearray(base64.b64decode(forged["wrapped"]))
        wrapped[3] ^= 1
        forged["wrapped"] = base64.b64encode(bytes(wrapped)).decode()
        with pytest.raises(IntegrityError):
            ws.keyring.adopt([forged])
        assert ws.keyring.adopt(rows) == 0  # known ids are never replaced
        assert "e" * 32 not in {k.id for k in ws.keyring.data_keys()}
    finally:
        ws.close()


def test_sealed_backup_is_refused_under_another_kek_naming_both_fingerprints(
        home: Path, kek: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from emergent.security.crypto import fingerprint
    from emergent.workspace.integrity import allow_new_database

    ws = _open(home)
    try:
        ws.memory.remember(f"short {SECRET}", scope="ops")
        info = _backup(ws)
    finally:
        ws.close()
    shutil.rmtree(home / "lance")  # the database is lost, and the KEK with it
    for f in home.glob("emergent.db*"):
        f.unlink()
    other = os.urandom(32)
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(other).decode())
    with allow_new_database(home):
        ws = _open(home)
        try:
            with pytest.raises(BackupError, match="sealed under a data key") as err:
                _restore(ws, info.id)
            assert fingerprint(kek) in str(err.value) and fingerprint(other) in str(err.value)
            assert ws.keyring.data_keys() == [] or all(k.purpose != "backup" for k in ws.keyring.data_keys())
        finally:
            ws.close()
