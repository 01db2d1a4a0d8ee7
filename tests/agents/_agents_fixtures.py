"""Helpers of the agents tests (a Redis that can be SIGKILLed, a team of agents), importable by name."""

from __future__ import annotations

import os
import signal
import socket
import time
from typing import Any

from _servers import RedisServer


class DurableRedis(RedisServer):
    """A redis-server that logs every write before answering (``appendonly yes``, ``appendfsync always``)."""

    PERSISTENCE = ("--appendonly", "yes", "--appendfsync", "always")

    @property
    def pid(self) -> int:
        return int((self.dir / "redis.pid").read_text().strip())

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
