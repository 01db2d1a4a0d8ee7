"""Sealed short-term memory values are bound to their key (agent + id): a value moved to another key
of the same workspace, in SQLite or Redis, does not open; values sealed before the binding (no AAD)
still read where they are."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis as redis_lib
import sqlalchemy as sa

from emergent.clock import FakeClock
from emergent.errors import IntegrityError
from emergent.memory import _codec
from emergent.memory.stm import RedisSTM
from emergent.memory.stm_sqlite import SQLiteSTM
from emergent.memory.types import Kind, MemoryRecord, Scope, Tier
from emergent.security.crypto import KeyRing, new_kek
from emergent.security.crypto_tables import crypto_keys

SECRET = "saffron-otter-7351"


@pytest.fixture
def cipher(tmp_path: Path) -> Iterator[Any]:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    crypto_keys.metadata.create_all(engine, tables=[crypto_keys])
    yield KeyRing(engine, kek=new_kek()).cipher("memory.stm")
    engine.dispose()


def _rec(id: str, agent: str, text: str) -> MemoryRecord:
    return MemoryRecord(id=id, text=text, kind=Kind.SEMANTIC, importance=0.5, scope=Scope(agent, None, None),
                        created_at=1000.0, last_accessed=1000.0, stability=1.0, access_count=0, meta={},
                        sources=[], learned_at=1000.0, tier=Tier.STM, vector=np.ones(4, dtype=np.float32))


class _Backend:
    """put/get through the STM, and raw reads/writes of one stored value under a key."""

    def __init__(self, kind: str, tmp_path: Path, cipher: Any, redis_url: str | None) -> None:
        self.kind, clock = kind, FakeClock(1000.0)
        if kind == "sqlite":
            self.path = tmp_path / "stm.db"
            self.stm: Any = SQLiteSTM(self.path, 100, clock=clock.now, cipher=cipher)
        else:
            self.ns = f"t{uuid.uuid4().hex[:8]}"
            self.client = redis_lib.Redis.from_url(str(redis_url))
            self.stm = RedisSTM(self.client, self.ns, 100, clock=clock.now, cipher=cipher)

    def raw(self, agent: str, id: str) -> bytes:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                return bytes(db.execute("SELECT value FROM stm_items WHERE agent = ? AND id = ?", (agent, id)).fetchone()[0])
        return bytes(self.client.get(f"{self.ns}:stm:{{{agent}}}:i:{id}"))

    def overwrite(self, agent: str, id: str, value: bytes) -> None:
        if self.kind == "sqlite":
            with sqlite3.connect(self.path) as db:
                assert db.execute("UPDATE stm_items SET value = ? WHERE agent = ? AND id = ?", (value, agent, id)).rowcount == 1
        else:
            key = f"{self.ns}:stm:{{{agent}}}:i:{id}"
            assert self.client.set(key, value, keepttl=True)

    def close(self) -> None:
        self.stm.close()
        if self.kind == "redis":
            for k in self.client.scan_iter(match=f"{self.ns}:*"):
                self.client.delete(k)
            self.client.close()


@pytest.fixture(params=["sqlite", "redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path, cipher: Any) -> Iterator[_Backend]:
    url = request.getfixturevalue("redis_url") if request.param == "redis" else None
    b = _Backend(request.param, tmp_path, cipher, url)
    yield b
    b.close()


def test_a_sealed_value_reads_back_under_its_own_key_and_names_it_in_clear(backend: _Backend) -> None:
    backend.stm.put(_rec("m-1", "alice", f"plan {SECRET}"), 600)
    raw = backend.raw("alice", "m-1")
    assert raw[:4] == _codec.BOUND and b"m-1" in raw[:16] and SECRET.encode() not in raw
    got = backend.stm.get("alice", "m-1")
    assert got is not None and got.text == f"plan {SECRET}"
    assert [r.id for r in backend.stm.scan("alice")] == ["m-1"]


def test_attack_sealed_value_moved_to_another_id_of_the_same_agent_is_refused(backend: _Backend) -> None:
    backend.stm.put(_rec("secret", "alice", f"secret {SECRET}"), 600)
    backend.stm.put(_rec("harmless", "alice", "harmless"), 600)
    backend.overwrite("alice", "harmless", backend.raw("alice", "secret"))
    with pytest.raises(IntegrityError, match="moved from another key"):
        backend.stm.get("alice", "harmless")
    with pytest.raises(IntegrityError, match="moved from another key"):
        backend.stm.scan("alice")
    with pytest.raises(IntegrityError, match="moved from another key"):
        backend.stm.scan("alice", limit=5)


def test_attack_sealed_value_moved_to_another_id_with_its_clear_id_rewritten_is_refused(backend: _Backend) -> None:
    backend.stm.put(_rec("s-1", "alice", f"secret {SECRET}"), 600)
    backend.stm.put(_rec("h-1", "alice", "harmless"), 600)
    forged = backend.raw("alice", "s-1").replace(b"s-1", b"h-1", 1)  # the clear id now names the target key
    backend.overwrite("alice", "h-1", forged)
    with pytest.raises(IntegrityError, match="failed authentication"):
        backend.stm.get("alice", "h-1")
    with pytest.raises(IntegrityError):
        backend.stm.scan("alice")


def test_attack_sealed_value_moved_to_another_agent_is_refused(backend: _Backend) -> None:
    backend.stm.put(_rec("m-1", "alice", f"alice's {SECRET}"), 600)
    backend.stm.put(_rec("m-1", "mallory", "mallory's own"), 600)
    backend.overwrite("mallory", "m-1", backend.raw("alice", "m-1"))
    with pytest.raises(IntegrityError):
        backend.stm.get("mallory", "m-1")
    with pytest.raises(IntegrityError):
        backend.stm.scan("mallory")
    assert backend.stm.get("alice", "m-1").text == f"alice's {SECRET}"  # the original still reads


def test_attack_evicted_value_moved_to_another_agent_is_refused_when_drained(backend: _Backend, tmp_path: Path,
                                                                              cipher: Any) -> None:
    stm = backend.stm
    stm.max_items = 1
    stm.put(_rec("old", "alice", f"evicted {SECRET}"), 600)
    stm.put(_rec("new", "alice", "kept"), 600)  # "old" is evicted, waiting to be promoted
    if backend.kind == "sqlite":
        with sqlite3.connect(backend.path) as db:
            assert db.execute("UPDATE stm_evicted SET agent = 'mallory' WHERE agent = 'alice'").rowcount == 1
    else:
        src, dst = (f"{backend.ns}:stm:{{{a}}}:evicted" for a in ("alice", "mallory"))
        backend.client.rpush(dst, *backend.client.lrange(src, 0, -1))
        backend.client.delete(src)
        stm.put(_rec("m-0", "mallory", "mallory's own"), 600)  # mallory is a known agent
    with pytest.raises(IntegrityError):
        stm.drain_evicted("mallory")


def test_values_sealed_before_the_binding_still_read_under_their_key(backend: _Backend, cipher: Any) -> None:
    backend.stm.put(_rec("legacy", "alice", "placeholder"), 600)
    backend.stm.put(_rec("other", "alice", "placeholder"), 600)
    old = cipher.seal(_codec.encode(_rec("legacy", "alice", f"sealed before {SECRET}")))  # format of the first release
    backend.overwrite("alice", "legacy", old)
    assert backend.stm.get("alice", "legacy").text == f"sealed before {SECRET}"
    assert {r.id for r in backend.stm.scan("alice")} == {"legacy", "other"}
    backend.overwrite("alice", "other", old)  # an unbound value is still checked against its key's id
    with pytest.raises(IntegrityError, match="moved from another key"):
        backend.stm.get("alice", "other")


def test_plain_values_stay_plain_without_a_cipher(tmp_path: Path) -> None:
    stm = SQLiteSTM(tmp_path / "plain.db", 10, clock=FakeClock(1000.0).now)
    try:
        stm.put(_rec("p", "alice", "plain text"), 600)
        with sqlite3.connect(tmp_path / "plain.db") as db:
            (value,) = db.execute("SELECT value FROM stm_items").fetchone()
        assert bytes(value) == _codec.encode(_rec("p", "alice", "plain text"))
        assert stm.get("alice", "p").text == "plain text"
    finally:
        stm.close()
