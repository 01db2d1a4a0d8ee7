"""Fixtures of the agents tests: a workspace with three registered agents, and a Redis of our own
(AOF, ``appendfsync always``) that a test may kill with SIGKILL and start again."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from _agents_fixtures import DurableRedis, team


@pytest.fixture(scope="module")
def durable_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DurableRedis]:
    server = DurableRedis(tmp_path_factory.mktemp("aof-redis"))
    yield server
    server.stop()


@pytest.fixture
def client(durable_redis: DurableRedis) -> Iterator[Any]:
    import redis

    if not (durable_redis.dir / "redis.pid").exists():
        durable_redis.start()
    c = redis.Redis.from_url(durable_redis.url, socket_timeout=2, socket_connect_timeout=1)
    c.flushall()
    yield c
    c.close()


@pytest.fixture
def agents(ws: Any) -> Any:
    return team(ws)
