"""``emergent serve``: the REST API (FastAPI) under uvicorn.

Prints the URL it listens on (``--port 0``: a free port, printed), then serves until Ctrl-C or
SIGTERM, which stop it cleanly (open requests get a few seconds to finish). ``--workers N`` runs N
processes on one socket, each opening the workspace itself. A mistake (a port in use, a host that
does not resolve, a bad setting) is one line with a hint, never a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
from typing import Any

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(help="Serve the REST API (FastAPI under uvicorn).", subcommand_metavar="")

#: how long Ctrl-C lets open requests (and event streams) finish
GRACE_S = 5
_HOME_ENV = "EMERGENT_SERVE_HOME"


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free one); a UsageError with a hint when it cannot be."""
    from emergent.errors import UsageError

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"host {host!r} does not resolve ({exc.strerror})",
                         hint="use an address such as 127.0.0.1 (this machine) or 0.0.0.0 (every interface)",
                         host=host) from None
    family, kind, proto, _, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise UsageError(f"port {port} on {host} is in use by another process",
                             hint="stop that process, or pick another port: --port N (--port 0 picks a free one)",
                             port=port) from None
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}",
                         hint="pick another address or port (--host, --port)", port=port) from None
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}"


def warm(ws: Any) -> None:
    """Build the services every request uses here, once, before requests run on the thread pool
    (``functools.cached_property`` has no lock from Python 3.12: two first requests could build two).
    The hot recall index is left to the first recall: loaded here, before the server listens, each
    worker's resident memory grew ~6 MB more over a 4-minute soak of the API bench's mix (58 against
    52 MB, decision 99), for a wait of a second or so that the first recall pays once instead."""
    for name in ("principals", "audit", "tokens", "autonomy", "memory", "tools", "assistant_runs"):
        getattr(ws, name)


def uvicorn_options(ws: Any, log_level: str) -> dict[str, Any]:
    opts: dict[str, Any] = {"log_level": log_level, "timeout_graceful_shutdown": GRACE_S, "proxy_headers": True,
                            "server_header": False}
    if getattr(ws.settings.monitoring, "log_format", "text") == "json":
        # uvicorn's loggers propagate to the JSON handler monitoring installs; its access line is ours
        opts |= {"log_config": None, "access_log": False}
    return opts


def one_blas_thread() -> None:
    """BLAS (numpy's OpenBLAS) and OpenMP (faiss) run on one thread in a server process. Its default is a thread per
    core, and its threads spin between calls: on a 2-core machine each recall of the API's mix burnt
    32 ms of CPU against 7.7 ms with one thread, at the same latency (recall's products are a few
    thousand rows by a few hundred, too small to gain from threads), and the spinning took the core
    the other requests needed. The server's parallelism is its requests, not one matrix product.
    threadpoolctl changes the loaded library at run time, whatever the environment says."""
    import numpy  # noqa: F401 - loads OpenBLAS, so that the limit reaches it
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)


#: how long a thread holding the GIL keeps it while another waits (Python's default: 5 ms)
GIL_SWITCH_S = 0.001


def short_gil_turns() -> None:
    """A server process's threads take turns at the GIL every millisecond instead of every 5. The
    event loop thread (reading requests, writing answers) and the quick pool's threads (token checks,
    recalls) are all Python: with the default, a loop that has an answer ready waits up to 5 ms for a
    thread in the middle of a recall, and the reverse (the convoy effect). At the API bench's 200 req/s
    on 2 cores, alternating runs of 20 s measured p95 recall 24.7 / 17.8 / 14.6 ms against 314 (an
    outlier) / 22.3 / 22.2 ms with 5 ms, p50 within noise."""
    import sys

    sys.setswitchinterval(GIL_SWITCH_S)


def make_app() -> Any:
    """The app of one worker process (``--workers N``): it opens the workspace named by the parent."""
    from emergent.api import create_app
    from emergent.workstation import Workstation

    one_blas_thread()
    short_gil_turns()

    ws = Workstation.open(os.environ.get(_HOME_ENV) or None, create=False)
    warm(ws)
    api = create_app(ws)
    api.router.on_shutdown.append(ws.close)
    return api


@app.callback(invoke_without_command=True)
def serve(host: str = typer.Option(None, help="address to listen on (default: EMERGENT_API__HOST, 127.0.0.1)"),
          port: int = typer.Option(None, help="port (default: EMERGENT_API__PORT, 8765; 0: a free one)"),
          workers: int = typer.Option(1, min=1, max=64, help="processes serving the same socket"),
          log_level: str = typer.Option("warning", help="uvicorn's log level (critical|error|warning|info|debug)"),
          home: str = HOME) -> None:
    """Serve the REST API until Ctrl-C; prints the URL. Every route needs an API token
    (`emergent tokens create`); the OpenAPI description is at /openapi.json, the docs at /docs."""
    import uvicorn

    from emergent.api import create_app
    from emergent.errors import ValidationError

    levels = ("critical", "error", "warning", "info", "debug", "trace")
    if log_level not in levels:
        raise ValidationError(f"--log-level {log_level!r} is unknown", hint=f"use one of {', '.join(levels)}")
    with workstation(home) as ws:
        cfg = ws.settings.api
        host = host if host is not None else cfg.host
        port = port if port is not None else cfg.port
        if not 0 <= port <= 65535:
            raise ValidationError(f"--port {port} is not a port", hint="use 0 (a free one) to 65535")
        from emergent.api.ratelimit import parse_rate

        parse_rate(cfg.rate_limit)  # a bad setting is said before anything listens
        # bound before the app is built: the app starts monitoring threads that only its shutdown stops
        sock = bind(host, port)
        try:
            if workers == 1:
                one_blas_thread()
                short_gil_turns()
                warm(ws)
            api = create_app(ws) if workers == 1 else None
        except BaseException:
            sock.close()
            raise
        url = url_of(sock)
        typer.echo(f"emergent serve: {url} (workspace {ws.path}; OpenAPI at {url}/openapi.json; Ctrl-C stops)")
        common = uvicorn_options(ws, log_level)
        try:
            if api is not None:
                server = uvicorn.Server(uvicorn.Config(api, lifespan="on", **common))
                server.run(sockets=[sock])
            else:
                os.environ[_HOME_ENV] = str(ws.path)
                uvicorn.run("emergent.cli.serve:make_app", factory=True, fd=sock.fileno(), workers=workers,
                            **common)
        except KeyboardInterrupt:  # a second Ctrl-C during the grace period
            pass
        finally:
            with contextlib.suppress(OSError):
                sock.close()
    typer.echo("emergent serve: stopped", err=True)
