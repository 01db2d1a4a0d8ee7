"""Real MCP processes for the MCP tests: the SDK demo server, and our own `emergent mcp serve`.

Every client here is the official SDK's (``mcp.ClientSession``) over a real transport: stdio to a
subprocess, or streamable HTTP to a server on a free loopback port.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

DEMO = Path(__file__).with_name("demo_server.py")
EMERGENT = Path(sys.executable).with_name("emergent")


def server_env() -> dict[str, str]:
    """This test's environment (workspace, audit anchor) with the fast embedder the tests use."""
    return {**os.environ, "EMERGENT_EMBEDDER": "hashing"}


def demo_target(*extra: str) -> str:
    """``mcp+stdio:`` for the demo server (``--version``, ``--variant``, ``--name`` as extra)."""
    return "mcp+stdio:" + shlex.join([sys.executable, str(DEMO), *extra])


@contextlib.asynccontextmanager
async def serve_stdio(*args: str) -> AsyncIterator[Any]:
    """An initialized SDK ClientSession to `emergent mcp serve ARGS` (a subprocess, this env)."""
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    params = StdioServerParameters(command=str(EMERGENT), args=["mcp", "serve", *args], env=server_env())
    async with stdio_client(params) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        yield session


@contextlib.asynccontextmanager
async def serve_http(url: str, token: str | None, headers: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """An initialized SDK ClientSession over streamable HTTP with ``Authorization: Bearer token``."""
    import httpx
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    h = dict(headers or {})
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    async with httpx.AsyncClient(headers=h, timeout=httpx.Timeout(30, read=60)) as client, \
            streamable_http_client(url, http_client=client) as (read, write, _), \
            ClientSession(read, write) as session:
        await session.initialize()
        yield session


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def http_server(home: Path, ws: Any) -> Iterator[str]:
    """`emergent mcp serve --http 127.0.0.1:PORT` on this test's workspace; yields its URL."""
    _ = ws.principal, ws.tools  # the workspace exists (and its tables) before the server opens it
    port = _free_port()
    log = open(home.parent / "mcp-http.log", "w")  # noqa: SIM115
    proc = subprocess.Popen([str(EMERGENT), "mcp", "serve", "--http", f"127.0.0.1:{port}"], stdout=log,
                            stderr=subprocess.STDOUT, env=server_env())
    deadline = time.time() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                log.close()
                raise RuntimeError("emergent mcp serve --http did not start:\n"
                                   + (home.parent / "mcp-http.log").read_text()) from None
            time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def tokens(ws: Any) -> Any:
    from emergent.mcp.tokens import TokenStore

    return TokenStore(ws.sql, principals=ws.principals, audit=ws.audit, clock=ws.clock)


@pytest.fixture
def demo() -> Any:
    """demo(*extra) -> the mcp+stdio: target of the SDK demo server."""
    return demo_target


@pytest.fixture
def stdio_session() -> Any:
    """stdio_session(*serve_args): async context manager → SDK session to `emergent mcp serve`."""
    return serve_stdio


@pytest.fixture
def http_session() -> Any:
    """http_session(url, token, headers=None): async context manager → SDK session over HTTP."""
    return serve_http
