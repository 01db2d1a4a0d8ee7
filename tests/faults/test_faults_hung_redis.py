"""A Redis that accepts connections and answers nothing (stopped with SIGSTOP: swapped out, a network
partition, a debugger): each caller waited out its socket timeout in turn. The REST API answers
reads on its event loop, so that was every request of a worker, its health check included, for
the timeout of each request in turn. After one timeout, callers fail fast for a second."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from emergent.errors import StoreUnavailableError
from tests._servers import RedisServer


@pytest.fixture
def frozen(tmp_path: Path) -> Iterator[tuple[RedisServer, Callable[[bool], None]]]:
    """A redis-server of this test alone and a ``freeze(on)`` switch (SIGSTOP / SIGCONT)."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    try:
        pidfile, deadline = server.dir / "redis.pid", time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:  # a daemonised server writes it a moment later
            time.sleep(0.02)
        pid = int(pidfile.read_text().strip())

        def freeze(on: bool) -> None:
            os.kill(pid, signal.SIGSTOP if on else signal.SIGCONT)

        try:
            yield server, freeze
        finally:
            freeze(False)
    finally:
        server.stop()


def _timed(fn) -> tuple[float, object]:
    t0 = time.monotonic()
    try:
        out: object = fn()
    except Exception as exc:  # noqa: BLE001 - the outcome is checked by the caller
        out = exc
    return time.monotonic() - t0, out


@pytest.mark.parametrize("policy", ["raise", "ltm"])
def test_a_frozen_redis_stm_is_waited_for_once_then_fails_fast_until_it_answers_again(frozen, policy) -> None:
    import redis

    from emergent.memory.stm import FallbackSTM, RedisSTM

    server, freeze = frozen
    inner = RedisSTM(redis.Redis.from_url(server.url, socket_timeout=0.5, socket_connect_timeout=0.5),
                     "emergent:test", 100)
    stm = FallbackSTM(inner, policy, ltm_writer=lambda rec: None)
    assert stm.scan("assistant") == []
    freeze(True)
    took, first = _timed(lambda: stm.scan("assistant"))
    assert took >= 0.4, "the first call waits for the server's answer (the socket timeout)"
    again = [_timed(lambda: stm.scan("assistant")) for _ in range(5)]
    assert all(t < 0.1 for t, _ in again), f"later calls waited again: {[round(t, 2) for t, _ in again]}"
    for out in [first, *(o for _, o in again)]:
        if policy == "raise":
            assert isinstance(out, StoreUnavailableError) and "unavailable" in str(out), out
        else:
            assert out == [], out  # the declared fallback: an empty short-term memory
    freeze(False)
    time.sleep(1.2)  # past the cooldown: asked again, and it answers
    assert stm.scan("assistant") == []


def test_the_rate_limiter_waits_for_a_frozen_redis_once_then_answers_503_at_once(frozen) -> None:
    import redis

    from emergent.api.ratelimit import RateLimiter

    server, freeze = frozen
    limiter = RateLimiter("1000/second", redis=redis.Redis.from_url(server.url, socket_timeout=0.5))
    limiter.hit("tok")
    freeze(True)
    took, first = _timed(lambda: limiter.hit("tok"))
    assert took >= 0.4 and isinstance(first, StoreUnavailableError), first
    again = [_timed(lambda: limiter.hit("tok")) for _ in range(5)]
    assert all(t < 0.1 and isinstance(o, StoreUnavailableError) for t, o in again), again
    freeze(False)
    time.sleep(1.2)
    limiter.hit("tok")  # counted again


def test_api_requests_against_a_frozen_redis_cost_one_timeout_not_one_each(tmp_path: Path, frozen) -> None:
    """Eight recalls in flight while Redis is frozen: all answered (503, saying Redis did not answer)
    within about one socket timeout (2 s), not eight of them in turn; the health check answers; once
    Redis answers again, so does recall."""
    from fastapi.testclient import TestClient

    from emergent import Workstation
    from emergent.api import create_app

    server, freeze = frozen
    ws = Workstation.open(tmp_path / "w", embedder="hashing", redis_url=server.url)
    try:
        _info, token = ws.tokens.create(ws.principal, "viewer", by=ws.principal, label="hung redis")
        headers = {"Authorization": f"Bearer {token}"}
        with TestClient(create_app(ws), raise_server_exceptions=False) as client:
            assert client.get("/v1/memory/recall", params={"query": "x"}, headers=headers).status_code == 200
            freeze(True)
            t0 = time.monotonic()
            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(lambda _: client.get("/v1/memory/recall", params={"query": "x"},
                                                             headers=headers), range(8)))
            took = time.monotonic() - t0
            assert [a.status_code for a in answers] == [503] * 8, [a.text for a in answers]
            assert "Redis" in answers[0].json()["detail"]
            assert took < 5.0, f"eight requests took {took:.1f} s: each waited for the timeout in turn"
            took_health, health = _timed(lambda: client.get("/healthz"))
            assert health.status_code == 200 and took_health < 2.5
            freeze(False)
            time.sleep(1.2)
            assert client.get("/v1/memory/recall", params={"query": "x"}, headers=headers).status_code == 200
    finally:
        freeze(False)
        ws.close()
