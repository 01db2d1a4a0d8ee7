"""Real servers the tests start: a redis-server on a free port (shared by tests/conftest.py and the
agents' fault tests, which need one that persists every write)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server the test session starts on a free port (nothing persisted unless a subclass says so)."""

    PERSISTENCE: tuple[str, ...] = ("--appendonly", "no")

    def __init__(self, root: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed: run `make test` (it installs it with apt-get)")
        self.dir = root
        self.port = free_port()
        self.binary = binary
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        subprocess.run(
            [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.dir),
             "--save", "", *self.PERSISTENCE, "--daemonize", "yes",
             "--pidfile", str(self.dir / "redis.pid"), "--logfile", str(self.dir / "redis.log")],
            check=True,
        )
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        pid_file = self.dir / "redis.pid"
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid_file.read_text().strip()), 15)
        deadline = time.time() + 5
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.1):
                    time.sleep(0.05)
            except OSError:
                return
