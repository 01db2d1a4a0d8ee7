"""The short-term memory contract (tests/contract/test_stm_contract.py), run again on SQLite and Redis
backends whose values are sealed: every promise holds with encryption on, and every value stored
is a sealed blob."""

from __future__ import annotations

import importlib.util
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from emergent.clock import FakeClock
from emergent.memory.stm import RedisSTM
from emergent.memory.stm_sqlite import SQLiteSTM
from emergent.security.crypto import KeyRing, new_kek
from emergent.security.crypto_tables import crypto_keys

_spec = importlib.util.spec_from_file_location(
    "_stm_contract_sealed", Path(__file__).resolve().parents[1] / "contract" / "test_stm_contract.py")
assert _spec is not None and _spec.loader is not None
_contract = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_contract)
globals().update({name: getattr(_contract, name) for name in dir(_contract) if name.startswith("test_")})


@pytest.fixture
def cipher(tmp_path: Path) -> Any:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    crypto_keys.metadata.create_all(engine, tables=[crypto_keys])
    yield KeyRing(engine, kek=new_kek()).cipher("memory.stm")
    engine.dispose()


@pytest.fixture(params=["sqlite", "redis"])
def make_stm(request: pytest.FixtureRequest, tmp_path: Path, cipher: Any) -> Iterator[Any]:
    clock = FakeClock(1000.0)
    made: list[Any] = []

    def make(max_items: int = 100) -> Any:
        if request.param == "sqlite":
            stm: Any = SQLiteSTM(tmp_path / "stm.db", max_items, clock=clock.now, cipher=cipher)
        else:
            import redis

            url = request.getfixturevalue("redis_url")
            stm = RedisSTM(redis.Redis.from_url(url), "emergent:test", max_items, clock=clock.now, cipher=cipher)
        made.append(stm)
        return stm

    make.clock = clock  # type: ignore[attr-defined]
    make.backend = request.param  # type: ignore[attr-defined]
    yield make
    for stm in made:
        if request.param == "sqlite":
            with sqlite3.connect(tmp_path / "stm.db") as db:
                values = [v for (v,) in db.execute("SELECT value FROM stm_items UNION ALL SELECT value FROM stm_evicted")]
        else:
            values = []
            for k in stm.client.scan_iter(match="emergent:test:stm:{*}:i:*"):  # the items
                values.append(stm.client.get(k))
            for k in stm.client.scan_iter(match="emergent:test:stm:{*}:evicted"):  # waiting to be promoted
                values += stm.client.lrange(k, 0, -1)
        assert all(v[:4] == b"EGS\x01" for v in values if v is not None)  # sealed, bound to their key
        stm.close()
