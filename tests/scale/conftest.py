"""The scaled-out deployment of the scale tests: an S3 API (moto), a fresh database on the shared
PostgreSQL (a SQLite file both instances open when EMERGENT_TEST_POSTGRES_URL is unset: the test id
says ``sqlite-shared-file``), the test session's redis-server, two ``emergent serve`` processes each
with its own home (two hosts), and nginx in front of them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _harness import S3, Nginx, Serve, SharedSQL, instance_env, moto_s3, shared_sql, sql_kinds
from _servers import RedisServer


@pytest.fixture(scope="module")
def s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3]:
    with moto_s3(tmp_path_factory.mktemp("moto")) as server:
        yield server


@pytest.fixture(scope="module", params=sql_kinds())
def shared_db(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedSQL]:
    with shared_sql(request.param, tmp_path_factory.mktemp("sql")) as db:
        yield db


@dataclass
class Deployment:
    """What an operator sets up: the shared stores, an admin token, the instances and the balancer."""

    root: Path
    s3: S3
    sql: SharedSQL
    redis_url: str
    lance_uri: str
    workspace_id: str
    token: str = ""
    instances: list[Serve] = field(default_factory=list)
    nginx: Nginx | None = None

    def env(self, home: Path, **extra: str) -> dict[str, str]:
        # the per-token limit (600/minute by default, counted in Redis across the hosts) is tested in
        # tests/api; here a fast machine's load test must not meet it
        extra = {"EMERGENT_API__RATE_LIMIT": "100000/minute", **extra}
        return instance_env(home, sql_url=self.sql.url, redis_url=self.redis_url, lance_uri=self.lance_uri,
                            lance_options=self.s3.options(), workspace_id=self.workspace_id, extra=extra)

    def settings(self) -> dict[str, Any]:
        """The same deployment as Workstation.open overrides (the test's own process: the operator)."""
        return {"database_url": self.sql.url, "redis_url": self.redis_url, "lance_uri": self.lance_uri,
                "lance_storage_options": self.s3.options(), "workspace_id": self.workspace_id,
                "embedder": "hashing", "audit_dir": self.root / "operator-audit"}

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start(self, n: int = 2) -> None:
        for i in range(n):
            home = self.root / f"host{i}"
            self.instances.append(Serve(home, self.env(home), name=f"host{i}"))
        for inst in self.instances:
            inst.wait()
        self.nginx = Nginx(self.root / "nginx", [i.port for i in self.instances])

    def restart(self, i: int) -> Serve:
        """Start instance ``i`` again (same home, same port: nginx's upstream), after it was killed."""
        old = self.instances[i]
        assert old.proc.poll() is not None
        new = Serve(old.home, old.env, name=old.name, port=old.port)
        self.instances[i] = new
        new.wait()
        return new

    def close(self) -> None:
        if self.nginx is not None:
            self.nginx.close()
        for inst in self.instances:
            inst.close()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory, s3: S3, shared_db: SharedSQL,
               redis_server: RedisServer) -> Iterator[Deployment]:
    """Two instances behind nginx on a workspace the operator has initialised (schema migrated,
    an admin token created) before starting them; one per module (starting hosts is the slow part):
    a test that kills a host starts it again. Redis keys live under a random workspace id."""
    from emergent import Workstation

    if not (redis_server.dir / "redis.pid").exists():
        redis_server.start()
    tmp_path = tmp_path_factory.mktemp("deployment")
    d = Deployment(tmp_path, s3, shared_db, redis_server.url, s3.bucket(), f"scale-{uuid.uuid4().hex[:10]}")
    operator_home = tmp_path / "operator"
    operator_home.mkdir()
    ws = Workstation.open(operator_home, **d.settings())
    try:
        _info, d.token = ws.tokens.create(ws.principal, "admin", by=ws.principal, label="scale test")
        ws.memory.remember("the deployment was initialised", tier="ltm")  # creates the LanceDB tables once
    finally:
        ws.close()
    try:
        d.start()
        yield d
    finally:
        with contextlib.suppress(Exception):
            d.close()
