"""Helpers of the agents tests (a Redis that can be SIGKILLed, a team of agents), importable by name."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class DurableRedis:
    """A redis-server that logs every write before answering (``appendonly yes``, ``appendfsync always``)."""

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test` (it installs it with apt-get)")
        self.binary, self.dir, self.port = binary, root, free_port()
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int:
        return int((self.dir / "redis.pid").read_text().strip())

    def start(self) -> None:
        subprocess.run([self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
                        "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "yes",
                        "--pidfile", str(self.dir / "redis.pid"), "--logfile", str(self.dir / "redis.log")],
                       check=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def kill9(self) -> None:
        """SIGKILL: no shutdown, no final save; only what the AOF already holds survives."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        (self.dir / "redis.pid").unlink(missing_ok=True)
        deadline = time.time() + 5
        while time.time() < deadline:  # gone once the port refuses (a zombie may linger unreaped)
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    time.sleep(0.01)
            except OSError:
                return

    def stop(self) -> None:
        if (self.dir / "redis.pid").exists():
            self.kill9()


def team(ws: Any) -> Any:
    """``ws.agents`` with scout (search, literature), stats (stats) and critic (review, literature)."""
    me, agents = ws.principal, ws.agents
    agents.register("scout", skills=["search", "literature"], description="finds papers and reads abstracts", by=me)
    agents.register("stats", skills=["stats"], description="runs statistics on data tables", by=me)
    agents.register("critic", skills=["review", "literature"], description="reviews claims and methods", by=me)
    return agents


def redis_agents(ws: Any, client: Any, **kw: Any) -> Any:
    """An ``Agents`` service on the Redis bus, built as the workstation builds ``ws.agents``."""
    from emergent.agents.service import Agents

    return Agents(ws.sql, bus="redis", redis=client, namespace=ws.redis_namespace, assistant=ws.assistant,
                  autonomy=ws.autonomy, principals=ws.principals, audit=ws.audit, clock=ws.clock, **kw)
