"""/healthz and /readyz against real stores: a stopped Redis and a frozen one make the instance not ready."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _servers import RedisServer
from fastapi.testclient import TestClient


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test alone (it is stopped and frozen here)."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    yield server
    pid = _pid(server)
    if pid:
        os.kill(pid, signal.SIGCONT)
    server.stop()


def _pid(server: RedisServer) -> int | None:
    path = server.dir / "redis.pid"
    return int(path.read_text().strip()) if path.exists() else None


@pytest.fixture
def redis_client(tmp_path: Path, own_redis: RedisServer) -> Iterator[TestClient]:
    from emergent import Workstation
    from emergent.api import create_app

    ws = Workstation.open(tmp_path / "w", embedder="hashing", redis_url=own_redis.url)
    try:
        with TestClient(create_app(ws), raise_server_exceptions=False) as client:
            yield client
    finally:
        pid = _pid(own_redis)
        if pid:
            os.kill(pid, signal.SIGCONT)
        ws.close()


def ready(client: TestClient, want: int, within: float = 15.0) -> dict[str, Any]:
    """The /readyz body once it answers ``want`` (the answer is reused for a second; LanceDB's first
    check imports it)."""
    deadline = time.monotonic() + within
    while True:
        r = client.get("/readyz")
        if r.status_code == want or time.monotonic() > deadline:
            assert r.status_code == want, r.json()
            return dict(r.json())
        time.sleep(0.2)


def test_liveness_answers_without_touching_a_store(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


def test_ready_when_sql_lancedb_and_redis_answer_then_503_naming_a_stopped_redis(redis_client: TestClient,
                                                                               own_redis: RedisServer) -> None:
    body = ready(redis_client, 200)
    assert body["status"] == "ready" and body["down"] == []
    assert set(body["stores"]) == {"sql", "lancedb", "redis"}
    own_redis.stop()
    body = ready(redis_client, 503)
    assert body["down"] == ["redis"]
    assert body["stores"]["sql"]["ok"] and body["stores"]["lancedb"]["ok"]
    assert "Connection" in body["stores"]["redis"]["detail"]
    assert redis_client.get("/healthz").status_code == 200  # alive, only not ready
    own_redis.start()
    assert ready(redis_client, 200)["down"] == []


def test_a_frozen_redis_fails_readiness_within_the_timeout_not_the_probe(redis_client: TestClient,
                                                                         own_redis: RedisServer) -> None:
    from emergent.api.monitoring import READY_TIMEOUT_S

    ready(redis_client, 200)
    pid = _pid(own_redis)
    assert pid
    os.kill(pid, signal.SIGSTOP)  # accepts nothing, answers nothing
    try:
        time.sleep(1.1)  # past the reuse of the last answer
        t0 = time.monotonic()
        r = redis_client.get("/readyz")
        took = time.monotonic() - t0
        assert r.status_code == 503 and r.json()["down"] == ["redis"]
        assert took < READY_TIMEOUT_S + 1.5
        t0 = time.monotonic()
        metrics = redis_client.get("/metrics").text  # a scrape waits for a hung source once, boundedly
        assert time.monotonic() - t0 < READY_TIMEOUT_S + 2.0
        assert 'emergent_store_up{store="redis"} 0.0' in metrics
        assert 'emergent_store_up{store="sql"} 1.0' in metrics
    finally:
        os.kill(pid, signal.SIGCONT)
    assert ready(redis_client, 200)["down"] == []


def test_a_hung_check_is_not_started_again_while_it_hangs() -> None:
    import threading

    from emergent.monitoring.health import Readiness

    release = threading.Event()
    started: list[float] = []

    def hangs() -> None:
        started.append(time.monotonic())
        release.wait(10)

    probe = Readiness({"slow": hangs}, timeout_s=0.2, cache_s=0.0)
    try:
        for _ in range(3):
            status = probe.check()["slow"]
            assert not status.ok and "did not answer within 0.2 s" in status.detail
        assert len(started) == 1
    finally:
        release.set()
    time.sleep(0.05)
    assert probe.check()["slow"].ok


def test_the_openapi_description_covers_the_monitoring_routes(app: Any) -> None:
    paths = app.openapi()["paths"]
    assert {"/healthz", "/readyz", "/metrics"} <= set(paths)
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    assert "503" in paths["/readyz"]["get"]["responses"]


def test_a_process_that_builds_an_app_and_exits_at_once_exits_cleanly(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = ("from emergent import Workstation\nfrom emergent.api import create_app\n"
            f"ws = Workstation.open({str(tmp_path / 'w')!r}, embedder='hashing')\ncreate_app(ws)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
