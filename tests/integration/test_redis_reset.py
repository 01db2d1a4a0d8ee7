"""A Redis that lost its data is never silent: restarts, FLUSHALL and replaced markers with a real
redis-server started by each test in its own directory (restarts and crashes are real)."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from emergent.errors import StoreResetError, StoreUnavailableError
from emergent.memory.stm import RedisSTM
from emergent.memory.types import Kind, MemoryRecord, Scope
from emergent.stores.redis import persistence

ROOT = Path(__file__).resolve().parents[2]
NS = "emergent:resettest"


class Server:
    """One redis-server process with its data directory; ``crash()`` is SIGKILL, like an OOM kill."""

    def __init__(self, root: Path, *config: str) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test` (it installs it with apt-get)")
        self.binary, self.dir, self.config = binary, root, config
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.proc: subprocess.Popen[bytes] | None = None
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
             "--daemonize", "no", "--logfile", str(self.dir / "redis.log"), *self.config],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=1)
        deadline = time.time() + 15
        while True:  # up, and done loading the AOF
            try:
                if client.ping() and client.info("persistence").get("loading") == 0:
                    break
            except (redis.ConnectionError, redis.ResponseError):
                pass
            if time.time() > deadline:
                raise RuntimeError(f"redis-server did not start: {(self.dir / 'redis.log').read_text()[-2000:]}")
            time.sleep(0.05)
        client.close()

    def crash(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def restart(self) -> None:
        self.crash()
        self.start()

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.crash()


@pytest.fixture
def volatile(tmp_path):
    """No persistence at all: a restart comes back empty."""
    s = Server(tmp_path, "--save", "", "--appendonly", "no")
    yield s
    s.close()


@pytest.fixture
def durable(tmp_path):
    """AOF with an fsync per write: a crash keeps every acknowledged write."""
    s = Server(tmp_path, "--save", "", "--appendonly", "yes", "--appendfsync", "always")
    yield s
    s.close()


def client(server: Server):
    import redis

    return redis.Redis.from_url(server.url, socket_timeout=2)


def open_stm(server: Server, state: Path | None) -> RedisSTM:
    return RedisSTM(client(server), NS, max_items=1000, state_path=state)


def rec(i: int, importance: float = 0.5) -> MemoryRecord:
    return MemoryRecord(id=f"r{i:03d}", text=f"confirmed fact {i}", kind=Kind.SEMANTIC, importance=importance,
                        scope=Scope("a"), created_at=0.0, last_accessed=0.0, stability=1.0, meta={},
                        vector=np.full(8, i, dtype=np.float32))


def fill(stm: RedisSTM) -> None:
    for i in range(60):  # as in the fault-injection run: 60 items, 30 of them important
        stm.put(rec(i, 0.8 if i % 2 else 0.3), 3600)


def test_a_restart_without_persistence_is_detected_and_named(volatile, tmp_path):
    state = tmp_path / "ws" / "redis-stm.json"
    stm = open_stm(volatile, state)
    fill(stm)
    assert stm.health()["reset_detected"] is False
    volatile.restart()
    with pytest.raises(StoreResetError) as info:
        stm.get("a", "r001")
    err = info.value
    assert isinstance(err, StoreUnavailableError)
    assert f"{NS}:stm:marker" in err.message and "is gone" in err.message and "restarted" in err.message
    assert "lost" in err.message and "acknowledge_reset()" in err.hint and "appendonly yes" in err.hint
    assert err.run_id_before != err.run_id_now
    for call in (lambda: stm.scan("a"), stm.agents, lambda: stm.drain_evicted("a"), lambda: stm.put(rec(99), 60)):
        with pytest.raises(StoreResetError):
            call()
    assert client(volatile).exists(f"{NS}:stm:{{a}}:i:r099") == 0  # the refused put wrote nothing
    h = stm.health()
    assert (h["ok"], h["reset_detected"], h["restarted_since_open"]) == (False, True, True)
    assert h["reset"]["found"] is None and "lost this workspace's short-term memory" in h["detail"]
    assert h["persistence"]["aof"] is False and h["persistence"]["loss_on_restart"] == "everything"
    assert any("appendonly no" in w for w in h["warnings"])


def test_a_process_that_opens_after_the_loss_is_told_too(volatile, tmp_path):
    state = tmp_path / "ws" / "redis-stm.json"
    fill(open_stm(volatile, state))
    volatile.restart()  # no process of the workspace is running now
    child = subprocess.run([sys.executable, "-c", (
        "import sys, redis\n"
        "from emergent.memory.stm import RedisSTM\n"
        "stm = RedisSTM(redis.Redis.from_url(sys.argv[1]), sys.argv[2], state_path=sys.argv[3])\n"
        "try:\n    stm.scan('a')\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n"
        "else:\n    print('silent')\n"), volatile.url, NS, str(state)],
        cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert child.stdout.startswith("StoreResetError"), child.stdout + child.stderr
    assert "is gone" in child.stdout


def test_without_a_state_file_a_live_instance_still_detects_the_loss(volatile):
    stm = open_stm(volatile, None)
    fill(stm)
    volatile.restart()
    with pytest.raises(StoreResetError):
        stm.put(rec(1), 60)  # the Lua script's marker check, same round trip


def test_flushall_is_detected_by_the_next_put(volatile, tmp_path):
    stm = open_stm(volatile, tmp_path / "redis-stm.json")
    fill(stm)
    client(volatile).flushall()
    with pytest.raises(StoreResetError, match="is gone"):
        stm.put(rec(100), 60)
    assert client(volatile).exists(f"{NS}:stm:{{a}}:i:r100") == 0


def test_a_marker_armed_by_someone_else_is_a_reset_too(volatile):
    stm = open_stm(volatile, None)
    fill(stm)
    client(volatile).flushall()
    other = open_stm(volatile, None)  # no record of the workspace: arms a new marker on the empty Redis
    other.put(rec(1), 60)
    with pytest.raises(StoreResetError, match="another token"):
        stm.get("a", "r001")


def test_the_memory_service_no_longer_promotes_zero_in_silence(volatile, tmp_path):
    from emergent.config import MemoryConfig
    from emergent.memory.consolidation import consolidate
    from emergent.memory.ltm import LongTermMemory
    from emergent.memory.service import Memory
    from emergent.providers.embeddings import HashingEmbedder
    from emergent.stores.lance import LanceStore

    emb = HashingEmbedder(64)
    mem = Memory(open_stm(volatile, tmp_path / "redis-stm.json"), LongTermMemory(LanceStore(tmp_path / "lance"), "h", 64),
                 emb, MemoryConfig())
    ids = [mem.remember(f"confirmed fact number {i}", importance=0.8 if i % 2 else 0.3).id for i in range(60)]
    assert mem.get(ids[1]).text == "confirmed fact number 1"
    volatile.restart()
    with pytest.raises(StoreResetError):
        consolidate(mem, archive=False)
    with pytest.raises(StoreResetError):
        mem.remember("written after the loss")
    with pytest.raises(StoreResetError):
        mem.get(ids[1])


def test_acknowledging_rearms_and_every_process_of_the_workspace_follows(volatile, tmp_path):
    state = tmp_path / "ws" / "redis-stm.json"
    a, b = open_stm(volatile, state), open_stm(volatile, state)
    fill(a)
    volatile.restart()
    for stm in (a, b):
        with pytest.raises(StoreResetError):
            stm.agents()
    lost = a.acknowledge_reset()
    assert lost["found"] is None and lost["namespace"] == NS and lost["run_id_before"] != lost["run_id_now"]
    assert json.loads(state.read_text())["last_reset"]["marker"] == f"{NS}:stm:marker"
    a.put(rec(1), 60)
    assert b.get("a", "r001") is not None  # b picked the acknowledgement up from the workspace
    assert b.health()["reset_detected"] is False
    assert a.acknowledge_reset() == {}  # nothing more to acknowledge
    volatile.restart()  # still not persistent: the next loss is reported again
    with pytest.raises(StoreResetError):
        b.put(rec(2), 60)


def test_a_restart_with_aof_always_keeps_everything_and_reports_no_reset(durable, tmp_path):
    state = tmp_path / "ws" / "redis-stm.json"
    stm = open_stm(durable, state)
    fill(stm)
    durable.crash()  # SIGKILL, not a clean shutdown
    durable.start()
    assert len(stm.scan("a")) == 60
    assert stm.get("a", "r059").importance == 0.8
    h = stm.health()
    assert (h["ok"], h["reset_detected"], h["restarted_since_open"]) == (True, False, True)
    p = h["persistence"]
    assert (p["aof"], p["appendfsync"], p["loss_on_restart"]) == (True, "always", "none")
    assert h["warnings"] == []
    assert len(open_stm(durable, state).scan("a")) == 60  # a process opening later agrees


def test_persistence_reports_everysec_and_an_evicting_memory_policy(volatile):
    c = client(volatile)
    c.config_set("appendonly", "yes")
    c.config_set("appendfsync", "everysec")
    c.config_set("maxmemory-policy", "allkeys-lru")
    p = persistence(c)
    assert (p["aof"], p["appendfsync"], p["loss_on_restart"]) == (True, "everysec", "about 1 s")
    assert any("second" in w for w in p["warnings"])
    assert any("allkeys-lru" in w for w in p["warnings"])


def test_persistence_falls_back_to_info_where_config_is_refused(tmp_path):
    server = Server(tmp_path, "--save", "", "--appendonly", "yes", "--rename-command", "CONFIG", "")
    try:
        p = persistence(client(server))
        assert (p["aof"], p["appendfsync"], p["loss_on_restart"]) == (True, None, "unknown")
    finally:
        server.close()
