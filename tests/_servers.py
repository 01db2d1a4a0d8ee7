"""Real servers the tests start: a redis-server on a free port (shared by tests/conftest.py and the
agents' fault tests, which need one that persists every write), and ``emergent serve`` processes
(the scale tests and the API fault tests)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
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


# ------------------------------------------------------------------------------ emergent serve
SERVE_CMD = [str(Path(sys.executable).with_name("emergent"))]


def wait_port(port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 60.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what or 'server'} exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what or 'server'} did not listen on {port} within {timeout} s")


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
    """Stop one process this harness started (by its id), killing it if it does not exit."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait(5)


class Serve:
    """One ``emergent serve`` process (uvicorn) on a port it picks itself (``--port 0``: no race with
    another process for a port we picked), read from the URL it prints."""

    def __init__(self, home: Path, env: dict[str, str], *, name: str, port: int = 0,
                 log_dir: Path | None = None) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        self.env = env
        self.name = name
        self.port = 0
        self.log = (log_dir or home) / f"serve-{name}-{time.monotonic_ns()}.log"  # log_dir: off a disk a test fills
        self.proc = subprocess.Popen(
            [*SERVE_CMD, "serve", "--home", str(home), "--host", "127.0.0.1", "--port", str(port)],
            env={**env, "EMERGENT_API__INSTANCE": name}, cwd=home, stdout=open(self.log, "wb"),  # noqa: SIM115
            stderr=subprocess.STDOUT)

    def wait(self, timeout: float = 90.0) -> None:
        import re

        deadline = time.monotonic() + timeout
        while not self.port:
            found = re.search(r"emergent serve: http://127\.0\.0\.1:(\d+) ", self.log.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"emergent serve {self.name} did not start (exit {self.proc.poll()}):\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}")
            else:
                time.sleep(0.05)
        wait_port(self.port, self.proc, max(1.0, deadline - time.monotonic()), f"emergent serve {self.name}")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        stop(self.proc, signal.SIGKILL)

    def close(self) -> None:
        stop(self.proc)
