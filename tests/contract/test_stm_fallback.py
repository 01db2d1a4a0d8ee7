"""STM as wrappers: ``FallbackSTM`` decides what an unreachable backend means; backends by string id."""

import numpy as np
import pytest

from emergent import Workstation
from emergent.errors import ConfigError, StoreUnavailableError, UnknownChoiceError
from emergent.memory.stm import STM, STM_BACKENDS, FallbackSTM, LocalSTM, STMContext, is_connection_error
from emergent.memory.types import Kind, MemoryRecord, Scope, Tier


class DownSTM(STM):
    """A backend whose server is gone: every call is a connection error."""

    name = "down"
    path = "/nowhere"

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error or ConnectionError("Connection refused")
        self.closed = False

    def _fail(self, *args, **kwargs):
        raise self.error

    put = get = scan = delete = drain_evicted = agents = _fail  # type: ignore[assignment]

    def close(self) -> None:
        self.closed = True


def rec(i: int = 0) -> MemoryRecord:
    return MemoryRecord(id=f"id{i:04d}", text=f"note {i}", kind=Kind.EPISODIC, importance=0.5, scope=Scope("a"),
                        created_at=1.0, last_accessed=1.0, stability=1.0, vector=np.ones(4, dtype=np.float32))


def test_with_policy_raise_an_unreachable_stm_is_an_unavailable_error_saying_what_to_do():
    stm = FallbackSTM(DownSTM(), "raise")
    with pytest.raises(StoreUnavailableError, match=r"short-term memory \(down\) is unavailable") as put:
        stm.put(rec(), 10.0)
    assert "on_stm_failure='ltm'" in put.value.hint and "was not stored" in put.value.hint
    assert put.value.fields["memory_id"] == "id0000"
    for read in (lambda: stm.get("a", "id0000"), lambda: stm.scan("a"), lambda: stm.agents(),
                 lambda: stm.drain_evicted("a"), lambda: stm.delete("a", ["id0000"])):
        with pytest.raises(StoreUnavailableError, match="unavailable") as exc:
            read()
        assert "EMERGENT_STM_FALLBACK=ltm" in exc.value.hint


def test_with_policy_ltm_a_put_is_written_to_long_term_memory_and_reads_are_empty():
    written: list[MemoryRecord] = []
    stm = FallbackSTM(DownSTM(), "ltm", ltm_writer=written.append)
    r = rec()
    assert stm.put(r, 10.0) == 0
    assert written == [r] and r.tier is Tier.LTM
    assert stm.get("a", r.id) is None and stm.scan("a") == [] and stm.agents() == []
    assert stm.drain_evicted("a") == [] and stm.delete("a", [r.id]) == 0


def test_policy_ltm_without_a_writer_or_an_unknown_policy_is_a_config_error():
    with pytest.raises(ConfigError, match="ltm_writer"):
        FallbackSTM(DownSTM(), "ltm")
    with pytest.raises(ConfigError, match="'drop'"):
        FallbackSTM(DownSTM(), "drop")  # type: ignore[arg-type]


def test_errors_other_than_a_lost_connection_pass_through():
    stm = FallbackSTM(DownSTM(ValueError("bad value")), "ltm", ltm_writer=lambda r: None)
    with pytest.raises(ValueError, match="bad value"):
        stm.put(rec(), 10.0)
    assert is_connection_error(ConnectionError()) and is_connection_error(TimeoutError())
    assert not is_connection_error(StoreUnavailableError("sqlite file locked"))


def test_the_wrapper_answers_like_the_backend_it_wraps():
    inner = LocalSTM(10)
    stm = FallbackSTM(inner, "raise")
    assert stm.name == "local" and stm.inner is inner and stm.max_items == 10
    stm.put(rec(1), 10.0)
    assert [r.id for r in stm.scan("a")] == ["id0001"] and stm.get("a", "id0001").id == "id0001"
    assert stm.health() == inner.health()
    down = DownSTM()
    FallbackSTM(down, "raise").close()
    assert down.closed


# ------------------------------------------------------------------------------ the registry
def test_backends_are_registered_by_string_id(tmp_path):
    assert {"local", "sqlite", "redis"} <= set(STM_BACKENDS.names())
    ctx = STMContext(workspace=tmp_path, max_items=5, clock=lambda: 0.0)
    assert STM_BACKENDS.get("local")(ctx).name == "local"
    sqlite = STM_BACKENDS.get("sqlite")(ctx)
    assert sqlite.name == "sqlite" and sqlite.path == tmp_path / "stm.db"
    sqlite.close()
    with pytest.raises(ConfigError, match="EMERGENT_REDIS_URL"):
        STM_BACKENDS.get("redis")(ctx)
    with pytest.raises(UnknownChoiceError, match="unknown STM backend 'sqlit'") as exc:
        STM_BACKENDS.get("sqlit")
    assert "sqlite" in exc.value.hint


@pytest.fixture
def down_backend(monkeypatch):
    monkeypatch.setitem(STM_BACKENDS._items, "down", lambda ctx: DownSTM())


def test_the_workstation_picks_the_backend_by_id(home):
    ws = Workstation.open(home, embedder="hashing", stm_backend="local")
    try:
        assert ws.memory.stm.name == "local"
    finally:
        ws.close()
    ws = Workstation.open(home, embedder="hashing")  # auto: the embedded file, without EMERGENT_REDIS_URL
    try:
        assert ws.memory.stm.name == "sqlite"
    finally:
        ws.close()


def test_an_unreachable_stm_with_fallback_ltm_keeps_every_memory(home, down_backend):
    ws = Workstation.open(home, embedder="hashing", stm_backend="down", stm_fallback="ltm")
    try:
        mem = ws.memory
        r = mem.remember("must survive the outage")
        assert r.tier is Tier.LTM
        assert [h.id for h in mem.recall("survive the outage")] == [r.id]
        assert mem.get(r.id).text == "must survive the outage"
        assert mem.forget(r.id, principal=ws.principal) == 1
    finally:
        ws.close()


def test_an_unreachable_stm_without_fallback_refuses_and_writes_nothing(home, down_backend):
    ws = Workstation.open(home, embedder="hashing", stm_backend="down")
    try:
        with pytest.raises(StoreUnavailableError, match="unavailable") as exc:
            ws.memory.remember("written while the store was down")
        assert "on_stm_failure='ltm'" in str(exc.value)
        assert ws.memory.ltm.count() == 0
        with pytest.raises(StoreUnavailableError, match="unavailable"):
            ws.memory.recall("anything")
    finally:
        ws.close()


def test_a_memory_service_built_by_hand_still_takes_on_stm_failure(ws):
    from emergent.memory.service import Memory

    mem = Memory(DownSTM(), ws.memory.ltm, ws.embedder, on_stm_failure="ltm")
    r = mem.remember("written by hand while the store was down")
    assert r.tier is Tier.LTM and ws.memory.ltm.count() == 1
