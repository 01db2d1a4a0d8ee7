"""Envelope encryption: data keys wrapped by the KEK, sealing, rotation, and a wrong KEK."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path

import pytest
import sqlalchemy as sa

from emergent.errors import ConfigError, IntegrityError
from emergent.security.crypto import OVERHEAD, KeyRing, fingerprint, is_sealed, load_kek, new_kek


def _ws(home: Path, **kw: object) -> object:
    from emergent import Workstation

    return Workstation.open(home, embedder="hashing", **kw)


def test_missing_kek_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "kek"
    kek = load_kek(None, path)
    assert len(kek) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_kek(None, path) == kek
    assert load_kek(base64.b64encode(b"k" * 32).decode(), path) == b"k" * 32  # the explicit key wins


@pytest.mark.parametrize("content", ["not base64 at all!", base64.b64encode(b"short").decode()])
def test_malformed_kek_is_a_config_error_with_a_hint(tmp_path: Path, content: str) -> None:
    path = tmp_path / "kek"
    path.write_text(content)
    with pytest.raises(ConfigError) as err:
        load_kek(None, path)
    assert "32 random bytes" in err.value.hint
    with pytest.raises(ConfigError):
        load_kek(content, tmp_path / "other")


def test_seal_opens_only_with_its_purpose_and_aad(home: Path) -> None:
    ws = _ws(home)
    try:
        ring = ws.keyring  # type: ignore[attr-defined]
        blob = ring.seal(b"the launch code is 0000", purpose="memory.ltm", aad=b"row-1")
        assert is_sealed(blob) and b"launch" not in blob and len(blob) == len(b"the launch code is 0000") + OVERHEAD
        assert ring.open(blob, purpose="memory.ltm", aad=b"row-1") == b"the launch code is 0000"
        assert ring.seal(b"x", purpose="memory.ltm") != ring.seal(b"x", purpose="memory.ltm")  # fresh nonces
        with pytest.raises(IntegrityError):
            ring.open(blob, purpose="memory.ltm", aad=b"row-2")  # moved to another row
        with pytest.raises(IntegrityError):
            ring.open(blob, purpose="memory.stm", aad=b"row-1")  # moved to another purpose
        tampered = blob[:-1] + bytes([blob[-1] ^ 1])
        with pytest.raises(IntegrityError):
            ring.open(tampered, purpose="memory.ltm", aad=b"row-1")
        # only wrapped keys are stored: no raw 32-byte key and never the KEK
        with ws.sql.connect() as conn:  # type: ignore[attr-defined]
            rows = conn.execute(sa.text("SELECT wrapped, kek_fp FROM crypto_keys")).all()
        assert len(rows) == 1 and len(rows[0][0]) == 40 and rows[0][1] == ring.kek_fingerprint
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_wrong_kek_fails_clearly_not_with_garbage(home: Path) -> None:
    ws = _ws(home)
    try:
        blob = ws.keyring.seal(b"secret", purpose="memory.stm")  # type: ignore[attr-defined]
        other = KeyRing(ws.sql, kek=new_kek(), audit=ws.audit, clock=ws.clock)  # type: ignore[attr-defined]
        with pytest.raises(ConfigError) as err:
            other.open(blob, purpose="memory.stm")
        assert "another key-encryption key" in err.value.message and "EMERGENT_SECURITY__KEK" in err.value.hint
        with pytest.raises(ConfigError):
            other.seal(b"new", purpose="memory.ltm")  # no new key is added under a second KEK either
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_kek_rotation_rewraps_keys_and_old_blobs_stay_readable(home: Path) -> None:
    ws = _ws(home)
    try:
        ring = ws.keyring  # type: ignore[attr-defined]
        old_kek = ring._kek
        blobs = [ring.seal(f"note {i}".encode(), purpose=p) for i, p in enumerate(["memory.ltm", "memory.stm"])]
        before = {k.id: k for k in ring.data_keys()}
        kek2 = new_kek()
        assert ring.rotate_kek(kek2, by=ws.principal) == 2  # type: ignore[attr-defined]
        assert ring.kek_fingerprint == fingerprint(kek2)
        fresh = KeyRing(ws.sql, kek=kek2, clock=ws.clock)  # type: ignore[attr-defined]  # a new process: no cache
        assert [fresh.open(b, purpose=p) for b, p in zip(blobs, ["memory.ltm", "memory.stm"], strict=True)] == \
            [b"note 0", b"note 1"]
        assert {k.id for k in fresh.data_keys()} == set(before)  # same data keys: nothing re-encrypted
        with pytest.raises(ConfigError):
            KeyRing(ws.sql, kek=old_kek).open(blobs[0], purpose="memory.ltm")  # type: ignore[attr-defined]
        kinds = [e.kind for e in ws.audit.entries()]  # type: ignore[attr-defined]
        assert "crypto.kek_rotated" in kinds
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_data_key_rotation_new_writes_use_new_key_old_stay_readable(home: Path) -> None:
    ws = _ws(home)
    try:
        ring = ws.keyring  # type: ignore[attr-defined]
        old = ring.seal(b"before", purpose="memory.ltm")
        new_id = ring.rotate_data_key("memory.ltm", by=ws.principal)  # type: ignore[attr-defined]
        new = ring.seal(b"after", purpose="memory.ltm")
        assert new[4:20].hex() == new_id and old[4:20].hex() != new_id
        fresh = KeyRing(ws.sql, kek=ring._kek)  # type: ignore[attr-defined]
        assert fresh.open(old, purpose="memory.ltm") == b"before"
        assert fresh.open(new, purpose="memory.ltm") == b"after"
        assert fresh.seal(b"x", purpose="memory.ltm")[4:20].hex() == new_id  # the retired key is not picked
        retired = [k for k in fresh.data_keys() if k.retired_at is not None]
        assert [k.id for k in retired] == [old[4:20].hex()]
        assert "crypto.data_key_rotated" in [e.kind for e in ws.audit.entries()]  # type: ignore[attr-defined]
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_kek_from_environment_wins_over_the_file(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kek = os.urandom(32)
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(kek).decode())
    ws = _ws(home)
    try:
        assert ws.keyring.kek_fingerprint == fingerprint(kek)  # type: ignore[attr-defined]
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_an_agent_cannot_rotate_keys(home: Path) -> None:
    from emergent.errors import PrincipalError

    ws = _ws(home)
    try:
        ring = KeyRing(ws.sql, kek=new_kek(), audit=ws.audit, clock=ws.clock,  # type: ignore[attr-defined]
                       principals=ws.principals)  # type: ignore[attr-defined]
        ring.seal(b"x", purpose="memory.ltm")
        bot = ws.principals.agent("rotator", created_by=ws.principal)  # type: ignore[attr-defined]
        with pytest.raises(PrincipalError):
            ring.rotate_kek(new_kek(), by=bot)
        with pytest.raises(PrincipalError):
            ring.rotate_data_key("memory.ltm", by=bot)
        assert len(ring.data_keys()) == 1
        ring.rotate_data_key("memory.ltm", by=ws.principal)  # type: ignore[attr-defined]
        assert len(ring.data_keys()) == 2
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_key_ring_on_each_sql_backend_seals_rotates_and_refuses_a_wrong_kek(home: Path, sql_url: str) -> None:
    ws = _ws(home, database_url=sql_url)
    try:
        ring = ws.keyring  # type: ignore[attr-defined]
        blob = ring.seal(b"on every backend", purpose="memory.ltm", aad=b"r")
        ring.rotate_data_key("memory.ltm", by=ws.principal)  # type: ignore[attr-defined]
        kek2 = new_kek()
        ring.rotate_kek(kek2, by=ws.principal)  # type: ignore[attr-defined]
        fresh = KeyRing(ws.sql, kek=kek2)  # type: ignore[attr-defined]
        assert fresh.open(blob, purpose="memory.ltm", aad=b"r") == b"on every backend"
        assert len(fresh.data_keys()) == 2
        with pytest.raises(ConfigError):
            KeyRing(ws.sql, kek=new_kek()).open(blob, purpose="memory.ltm", aad=b"r")  # type: ignore[attr-defined]
    finally:
        ws.close()  # type: ignore[attr-defined]
