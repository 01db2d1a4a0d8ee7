"""Memory sealed at rest (EMERGENT_SECURITY__ENCRYPT): no planted secret in the bytes on disk or in
Redis, recall still finds it, rotation keeps everything readable, a wrong KEK fails clearly."""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from emergent.errors import ConfigError

SECRET = "the vault combination is zanzibar quokka 7431"
MARKERS = (b"zanzibar", b"quokka", "zanzibar".encode("utf-16-le"))
SCOPE = "agent:sealer"


def _open(home: Path, **kw: object) -> object:
    from emergent import Workstation

    return Workstation.open(home, embedder="hashing", **kw)


@pytest.fixture
def encrypted(monkeypatch: pytest.MonkeyPatch) -> Iterator[bytes]:
    kek = os.urandom(32)
    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(kek).decode())
    yield kek


def _files_holding_secret(*roots: Path) -> list[str]:
    found = []
    for root in roots:
        for path in root.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                if any(m in data for m in MARKERS):
                    found.append(str(path))
    return found


def _plant(ws: object) -> dict[str, str]:
    mem = ws.memory  # type: ignore[attr-defined]
    big = (SECRET + ". ") * 2000  # above compress_above: the compressed-payload path
    return {
        "stm": mem.remember(SECRET + " (short-term)", scope=SCOPE).id,
        "ltm": mem.remember(SECRET + " (long-term)", scope=SCOPE, tier="ltm", meta={"note": SECRET}).id,
        "big": mem.remember(big, scope=SCOPE, tier="ltm").id,
    }


def _recalled(ws: object) -> set[str]:
    hits = ws.memory.recall("zanzibar quokka vault combination", k=10, scope=SCOPE)  # type: ignore[attr-defined]
    return {h.record.id for h in hits if "zanzibar quokka" in h.record.text}


def test_planted_secret_is_in_no_file_on_disk_and_recall_still_finds_it(home: Path, tmp_path: Path,
                                                                         encrypted: bytes) -> None:
    ws = _open(home)
    ids = _plant(ws)
    assert _recalled(ws) == set(ids.values())
    rec = ws.memory.get(ids["ltm"], scope=SCOPE)  # type: ignore[attr-defined]
    assert rec.meta == {"note": SECRET} and rec.text.startswith(SECRET)
    ws.memory.ltm.maintain(force=True)  # type: ignore[attr-defined]  # indexes (FTS included) are on disk too
    assert _recalled(ws) == set(ids.values())  # the hot index caught up with that version: close saves it
    ws.close()  # type: ignore[attr-defined]
    assert _files_holding_secret(home, tmp_path / "audit-anchor") == []
    snapshots = list((home / "cache" / "hot").glob("*.npz"))
    assert snapshots and all(p.read_bytes()[:4] == b"EGC\x01" for p in snapshots)  # the hot index's cache, sealed
    ws = _open(home)  # a new process: the hot index loads its sealed snapshot
    try:
        assert _recalled(ws) == set(ids.values())
        assert ws.memory.ltm.hot.loaded_snapshots == 1  # type: ignore[attr-defined]
        assert ws.memory.get(ids["big"], scope=SCOPE).text == (SECRET + ". ") * 2000  # type: ignore[attr-defined]
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_recall_without_the_hot_index_reads_sealed_rows_by_vector(home: Path, encrypted: bytes,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMERGENT_MEMORY__HOT_INDEX", "false")
    ws = _open(home)
    try:
        ids = _plant(ws)
        ws.memory.flush()  # type: ignore[attr-defined]
        assert {ids["ltm"], ids["big"]} <= _recalled(ws)
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_redis_values_are_sealed_and_recall_finds_them(home: Path, redis_url: str, encrypted: bytes) -> None:
    import redis

    ws = _open(home, redis_url=redis_url)
    try:
        ids = _plant(ws)
        client = redis.Redis.from_url(redis_url)
        ns = ws.redis_namespace  # type: ignore[attr-defined]
        keys = [k for k in client.scan_iter(match=f"{ns}*") if client.type(k) == b"string"]
        values = [client.get(k) or b"" for k in keys]
        assert any(v.startswith(b"EGS\x01") for v in values)  # the STM item is there, sealed (bound to its key)
        assert not [k for k, v in zip(keys, values, strict=True) if any(m in v for m in MARKERS)]
        client.close()
        assert ids["stm"] in _recalled(ws)
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_rotation_keeps_everything_readable_and_the_old_kek_fails_clearly(home: Path, encrypted: bytes,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _open(home)
    before = _plant(ws)
    ring = ws.keyring  # type: ignore[attr-defined]
    ring.rotate_data_key("memory.ltm", by=ws.principal)  # type: ignore[attr-defined]
    ring.rotate_data_key("memory.stm", by=ws.principal)  # type: ignore[attr-defined]
    after = _plant(ws)  # under the new data keys
    kek2 = os.urandom(32)
    assert ring.rotate_kek(kek2, by=ws.principal) == 4  # type: ignore[attr-defined]
    ws.close()  # type: ignore[attr-defined]

    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(kek2).decode())
    ws = _open(home)
    try:
        assert _recalled(ws) == set(before.values()) | set(after.values())
    finally:
        ws.close()  # type: ignore[attr-defined]

    monkeypatch.setenv("EMERGENT_SECURITY__KEK", base64.b64encode(encrypted).decode())  # the retired KEK
    ws = _open(home)
    try:
        with pytest.raises(ConfigError) as err:
            ws.memory.recall("zanzibar quokka", scope=SCOPE)  # type: ignore[attr-defined]
        assert "another key-encryption key" in err.value.message
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_sealed_memory_with_encryption_turned_off_is_an_error_not_garbage(home: Path, encrypted: bytes,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _open(home)
    rid = ws.memory.remember(SECRET, scope=SCOPE, tier="ltm").id  # type: ignore[attr-defined]
    ws.close()  # type: ignore[attr-defined]
    monkeypatch.delenv("EMERGENT_SECURITY__ENCRYPT")
    ws = _open(home)
    try:
        with pytest.raises(ConfigError) as err:
            ws.memory.get(rid, scope=SCOPE)  # type: ignore[attr-defined]
        assert "EMERGENT_SECURITY__ENCRYPT" in err.value.hint
    finally:
        ws.close()  # type: ignore[attr-defined]


def test_turning_encryption_on_later_reads_old_plaintext_and_seals_new_writes(home: Path,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ws = _open(home)
    old = ws.memory.remember("an old plaintext note about otters", scope=SCOPE, tier="ltm").id  # type: ignore[attr-defined]
    ws.close()  # type: ignore[attr-defined]
    monkeypatch.setenv("EMERGENT_SECURITY__ENCRYPT", "true")
    ws = _open(home)
    try:
        new = ws.memory.remember("a new sealed note about otters", scope=SCOPE, tier="ltm").id  # type: ignore[attr-defined]
        hits = ws.memory.recall("otters note", k=5, scope=SCOPE)  # type: ignore[attr-defined]
        assert {h.record.id for h in hits} == {old, new}
        rows = {r["id"]: r for r in ws.memory.ltm.table.search().limit(10).to_arrow().to_pylist()}  # type: ignore[attr-defined]
        assert rows[old]["text"] == "an old plaintext note about otters"
        assert rows[new]["text"] is None and rows[new]["payload"][:4] == b"EGC\x01"
    finally:
        ws.close()  # type: ignore[attr-defined]
