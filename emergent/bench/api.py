"""The REST API under load, on loopback, bounded in time: ``emergent bench api [--json] [--quick]``.

Servers are real ``emergent serve`` processes (uvicorn) on a fresh temporary workspace seeded with
long-term memories (hashing embedder: the figures measure the API and the services, not a model);
the client is an **open-loop** load generator (asyncio + httptools, :class:`Connection`): requests
leave on a fixed schedule whatever the answers do, and each latency runs from the request's
*scheduled* time, so a slow server is not hidden by a client that waits for it (no coordinated
omission). The mix cycles through four
endpoints: ``recall`` (``GET /v1/memory/recall``), ``remember`` (``POST /v1/memory``, short-term),
``tool_call`` (``POST /v1/tools/memory.recall/call``: the whole gate) and ``health``
(``GET /healthz``).

- ``p95_ms_by_endpoint``: at ``rate_rps`` (200) for ``duration_s`` (60) against one instance
  (``emergent serve --workers N``, one worker process per core up to 4; ``--workers`` overrides).
- ``in_process_p95_ms_by_endpoint``: the same service calls (``ws.memory.recall``,
  ``ws.memory.remember``, ``ws.tools.call("memory.recall")``) made in this process on the same
  workspace, one at a time, same run; ``api_over_in_process_p95`` is the ratio (target ≤ 2 for
  recall and tool calls; every endpoint ≤ 200 ms).
- ``in_process_loaded_p95_ms_by_endpoint``: the same service calls at the same rate and mix, in
  ``workers`` processes without HTTP, each latency from its scheduled time (:func:`_in_process_loaded`);
  ``api_over_in_process_loaded_p95`` is the API's p95 over it: what the HTTP layer adds under the same
  load, where ``api_over_in_process_p95`` also counts the load itself on the machine's cores.
- ``error_rate``: answers that are not 2xx, and transport errors, over all requests (target 0).
- ``rss_growth_mb_10min``: the instance's resident memory after a ``soak_s`` (600) soak at the same
  rate minus before it (target < 50).
- ``two_instances_throughput_ratio``: closed-loop throughput (``concurrency`` requests in flight)
  of two instances behind nginx over one instance behind the same nginx configuration, same mix,
  measured in alternating blocks (20 s a side in 4 blocks);
  the instances share the workspace (one host: SQLite, the LanceDB directory, the embedded
  short-term memory). Without nginx it is null, and says why.

Every phase is bounded: requests still unanswered ``GRACE_S`` (10 s) after the phase's last send
are abandoned and counted as errors (``errors_by_status["unfinished"]``), and the next phase waits
until the server has worked off its backlog. Above an instance's capacity the p95 is queueing.

``--quick`` shortens every phase (seconds, 50 req/s) so the whole bench runs in well under a
minute: it checks that everything works; its figures mean little.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from emergent.bench import Row, percentile, ratio

ENDPOINTS = ("recall", "remember", "tool_call", "health")
#: how long a phase waits for answers after its last request was sent
GRACE_S = 10.0
#: the open loop's senders (one keep-alive connection each)
CONNECTIONS = 64
QUERIES = ("deploy rollback", "on-call rotation", "database migration", "incident review", "release notes",
           "cache eviction", "rate limits", "backup window")
TOPICS = ("deploy", "rollback", "on-call", "database", "migration", "incident", "release", "cache", "rate",
          "backup", "index", "schema", "latency", "queue", "token", "audit")


@dataclass(frozen=True)
class Plan:
    rate_rps: float = 200.0
    duration_s: float = 60.0
    warmup_s: float = 5.0
    soak_s: float = 600.0
    rss_every_s: float = 10.0
    throughput_s: float = 20.0  # per side, in ``throughput_blocks`` alternating blocks
    throughput_blocks: int = 4
    concurrency: int = 32
    in_process_n: int = 300
    seed_memories: int = 2000
    # processes of each instance (`emergent serve --workers N`): one per core, as it is deployed
    workers: int = field(default_factory=lambda: max(1, min(4, os.cpu_count() or 1)))

    @classmethod
    def quick(cls) -> Plan:
        return cls(rate_rps=50.0, duration_s=3.0, warmup_s=1.0, soak_s=3.0, rss_every_s=0.5, throughput_s=2.0,
                   throughput_blocks=1, concurrency=8, in_process_n=30, seed_memories=200)


# ------------------------------------------------------------------------------ processes
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, log: Path, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}): {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on port {port} within {timeout:.0f} s")


def _stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# what `emergent serve` runs, for an emergent without it: binds a free port and prints the same line
_UVICORN = ("import socket, sys, uvicorn; from emergent import Workstation; from emergent.api.app import create_app; "
            "app = create_app(Workstation.open(sys.argv[1])); s = socket.socket(); s.bind(('127.0.0.1', 0)); "
            "s.listen(2048); print(f'emergent serve: http://127.0.0.1:{s.getsockname()[1]} ', flush=True); "
            "uvicorn.Server(uvicorn.Config(app, log_level='warning')).run(sockets=[s])")


def server_command(home: Path, workers: int = 1) -> tuple[list[str], str]:
    """How an instance is started (on a free port it picks and prints): ``emergent serve`` when this
    emergent has it, else uvicorn on ``create_app`` (what ``emergent serve`` runs), named in the result."""
    from emergent.cli import SUBCOMMANDS

    if "serve" in SUBCOMMANDS:
        cli = "import sys; from emergent.cli import main; sys.exit(main(sys.argv[1:]))"
        return ([sys.executable, "-c", cli, "serve", "--home", str(home), "--host", "127.0.0.1", "--port", "0",
                 "--workers", str(workers)], "emergent serve" + (f" --workers {workers}" if workers > 1 else ""))
    return [sys.executable, "-c", _UVICORN, str(home)], "uvicorn emergent.api.app:create_app"


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (from /proc: each process's parent)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


class Instance:
    def __init__(self, home: Path, env: dict[str, str], name: str, workers: int = 1) -> None:
        self.port = 0
        self.log = home.parent / f"serve-{name}.log"
        cmd, self.kind = server_command(home, workers)
        self.proc = subprocess.Popen(cmd, env={**env, "PYTHONUNBUFFERED": "1", "EMERGENT_API__INSTANCE": name},
                                     stdout=open(self.log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
        self.name = name

    def wait(self, timeout: float = 120.0) -> None:
        import re

        deadline = time.monotonic() + timeout
        while not self.port:
            found = re.search(r"emergent serve: http://127\.0\.0\.1:(\d+) ", self.log.read_text(errors="replace"))
            if found:
                self.port = int(found.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"instance {self.name} did not start (exit {self.proc.poll()}): "
                                   f"{self.log.read_text(errors='replace')[-2000:]}")
            else:
                time.sleep(0.05)
        _wait_port(self.port, self.proc, f"instance {self.name}", self.log, max(1.0, deadline - time.monotonic()))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss_mb(self) -> float:
        """Resident memory of the instance: its process and, with --workers, the worker processes."""
        total, found = 0.0, False
        for pid in _tree(self.proc.pid):
            try:
                with open(f"/proc/{pid}/status", encoding="ascii") as fh:
                    for line in fh:
                        if line.startswith("VmRSS:"):
                            total += int(line.split()[1]) / 1024
                            found = True
            except OSError:
                pass
        return total if found else float("nan")

    def close(self) -> None:
        _stop(self.proc)

    def errors(self, most: int = 5) -> list[str]:
        """The errors the instance logged, most frequent first with their counts (digits folded, so
        one failure at many positions counts once): what a bench with a nonzero error rate says."""
        import re

        found: Counter[str] = Counter()
        for line in self.log.read_text(errors="replace").splitlines():
            if re.search(r"\b(ERROR|CRITICAL)\b|request failed:|^[\w.]+(Error|Exception): ", line):
                found[re.sub(r"\d+", "N", line.strip())[:300]] += 1
        return [f"{n}x {line}" for line, n in found.most_common(most)]

    def first_traceback(self, lines: int = 120) -> str | None:
        """The first traceback the instance logged (where a 500 came from), or None."""
        text = self.log.read_text(errors="replace").splitlines()
        start = next((i for i, line in enumerate(text) if line.startswith("Traceback")), None)
        return None if start is None else "\n".join(text[start : start + lines])


NGINX_CONF = """worker_processes 1;
error_log {prefix}/error.log error;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body; proxy_temp_path {prefix}/proxy; fastcgi_temp_path {prefix}/fcgi;
    uwsgi_temp_path {prefix}/uwsgi; scgi_temp_path {prefix}/scgi;
    upstream emergent {{
{servers}
        keepalive 64;
        keepalive_timeout 4s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://emergent;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout http_502 http_503 http_504;
            proxy_buffering off;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, prefix: Path, binary: str, upstreams: list[int]) -> None:
        prefix.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        servers = "\n".join(f"        server 127.0.0.1:{p};" for p in upstreams)
        conf = prefix / "nginx.conf"
        conf.write_text(NGINX_CONF.format(prefix=prefix, servers=servers, port=self.port))
        log = prefix / "stderr.log"
        self.proc = subprocess.Popen([binary, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=open(log, "wb"))  # noqa: SIM115
        _wait_port(self.port, self.proc, "nginx", log, timeout=20)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        _stop(self.proc, signal.SIGQUIT)


def nginx_binary() -> str | None:
    found = shutil.which("nginx")
    if found:
        return found
    return "/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK) else None


# ------------------------------------------------------------------------------ load
def _query(i: int) -> str:
    """The query of the mix's ``i``-th request (a recall or a tool call): the queries cycle once per
    cycle of the four endpoints."""
    return QUERIES[(i // len(ENDPOINTS)) % len(QUERIES)]


def _note(prefix: str, i: int) -> str:
    """The text the mix's ``i``-th request remembers."""
    return f"{prefix} note {i} about {TOPICS[i % len(TOPICS)]}"


class Mix:
    """The requests of the mix, cycled: the i-th request of the run is ``ENDPOINTS[i % 4]``."""

    def __init__(self, token: str, endpoints: tuple[str, ...] = ENDPOINTS) -> None:
        self.headers = {"Authorization": f"Bearer {token}"}
        self.endpoints = endpoints

    def request(self, i: int) -> tuple[str, str, str, dict[str, Any]]:
        """(endpoint, method, path, keyword arguments of :meth:`Connection.request`) of request ``i``."""
        ep = self.endpoints[i % len(self.endpoints)]
        q = QUERIES[(i // len(self.endpoints)) % len(QUERIES)]
        if ep == "recall":
            return ep, "GET", "/v1/memory/recall", {"params": {"query": q, "k": 5}}
        if ep == "remember":
            return ep, "POST", "/v1/memory", {"json": {"text": _note("bench", i), "tier": "stm"}}
        if ep == "tool_call":
            return ep, "POST", "/v1/tools/memory.recall/call", {"json": {"args": {"query": q, "k": 5}}}
        return ep, "GET", "/healthz", {}


@dataclass
class LoadResult:
    latencies_ms: dict[str, list[float]]
    statuses: Counter[str]
    sent: int
    elapsed_s: float
    send_s: float = 0.0  # how long sending took (the schedule kept: ~ the phase's duration)

    @property
    def errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if not s.startswith("2"))


class Connection:
    """One keep-alive HTTP/1.1 connection of the load generator: requests written as bytes,
    answers read with httptools' parser (the one uvicorn uses), the status code returned.

    By hand, not httpx: the load generator shares the machine's cores with the server it measures,
    and httpx's AsyncClient spent ~3 ms of CPU a request at 120 req/s (8 ms once the server fell
    behind), more than a third of what the server spent: at 200 req/s the bench measured its own
    client. This connection spends a few hundred microseconds. ``request`` raises on a transport
    error or after ``timeout`` s, and the next request opens a new connection."""

    def __init__(self, base: str, headers: dict[str, str], timeout: float = GRACE_S) -> None:
        from urllib.parse import urlsplit

        url = urlsplit(base)
        self.host, self.port = url.hostname or "127.0.0.1", url.port or 80
        self.timeout = timeout
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{self.host}:{self.port}", **headers}.items())
        self._io: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._complete = False

    async def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                      json: Any = None) -> int:
        try:
            return await asyncio.wait_for(self._exchange(method, path, params, json), self.timeout)
        except BaseException:
            self.close()  # an answer may be half read: this connection is not reused
            raise

    async def _exchange(self, method: str, path: str, params: dict[str, Any] | None, body_of: Any) -> int:
        import json as _json
        from urllib.parse import urlencode

        import httptools

        body = b"" if body_of is None else _json.dumps(body_of).encode()
        target = path + ("?" + urlencode(params) if params else "")
        kind = "Content-Type: application/json\r\n" if body_of is not None else ""
        if self._io is None:
            self._io = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._io
        writer.write(f"{method} {target} HTTP/1.1\r\n{self._head}{kind}Content-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        self._complete = False
        parser = httptools.HttpResponseParser(self)
        while not self._complete:
            data = await reader.read(65536)
            if not data:
                raise ConnectionError("the server closed the connection")
            parser.feed_data(data)
        if not parser.should_keep_alive():
            self.close()
        return int(parser.get_status_code())

    def on_message_complete(self) -> None:  # httptools' callback
        self._complete = True

    def close(self) -> None:
        if self._io is not None:
            self._io[1].close()
            self._io = None


def _drain(base: str, timeout: float = 60.0) -> None:
    """Wait until the server has worked off what an overloaded phase left queued (``/healthz`` answers
    in under 50 ms), so the next phase does not measure the previous one's backlog."""
    import httpx

    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base, timeout=5.0) as client:
        while time.monotonic() < deadline:
            t = time.perf_counter()
            with contextlib.suppress(httpx.HTTPError):
                client.get("/healthz")
            if time.perf_counter() - t < 0.05:
                return
            time.sleep(0.2)


async def _open_loop(base: str, mix: Mix, rate: float, duration: float, start_i: int = 0,
                     tick: Callable[[float], None] | None = None) -> LoadResult:
    """Requests leave on a fixed schedule into a queue that ``CONNECTIONS`` senders (one keep-alive
    connection each) work off; a request's latency runs from its scheduled time, so time spent
    waiting for a sender counts (no coordinated omission). One task per request instead made
    httpx's pool match every queued request against every connection on each send: quadratic in
    the backlog, so an overloaded phase used to spin the client for minutes (the senders now use
    :class:`Connection`). Bounded: what has not answered ``GRACE_S`` after the last send is
    abandoned and counted as ``unfinished``."""
    lat: dict[str, list[float]] = {ep: [] for ep in mix.endpoints}
    statuses: Counter[str] = Counter()
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()

    connections = [Connection(base, mix.headers) for _ in range(CONNECTIONS)]
    try:
        async def sender(conn: Connection) -> None:
            while (item := await queue.get()) is not None:
                i, scheduled = item
                ep, method, path, kw = mix.request(i)
                try:
                    status = str(await conn.request(method, path, **kw))
                except Exception as exc:  # a transport error is an error of the run, counted by type
                    status = type(exc).__name__
                statuses[status] += 1
                if status.startswith("2"):
                    lat[ep].append((loop.time() - scheduled) * 1000)

        senders = [asyncio.create_task(sender(c)) for c in connections]
        t0 = loop.time()
        n = int(rate * duration)
        next_tick = t0
        for k in range(n):
            scheduled = t0 + k / rate
            delay = scheduled - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((start_i + k, scheduled))
            if tick is not None and loop.time() >= next_tick:
                tick(loop.time() - t0)
                next_tick += 1.0
        send_s = loop.time() - t0
        for _ in senders:
            queue.put_nowait(None)
        _done, pending = await asyncio.wait(senders, timeout=GRACE_S)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        answered = sum(statuses.values())
        if answered < n:  # in flight at the deadline, or never sent to the server
            statuses["unfinished"] += n - answered
        return LoadResult(lat, statuses, n, loop.time() - t0, send_s)
    finally:
        for conn in connections:
            conn.close()


async def _closed_loop(base: str, mix: Mix, concurrency: int, duration: float) -> tuple[int, int, float]:
    """(2xx answers, other answers, seconds) with ``concurrency`` requests always in flight."""
    ok = bad = 0
    loop = asyncio.get_running_loop()
    connections = [Connection(base, mix.headers) for _ in range(concurrency)]
    t0 = loop.time()
    end = t0 + duration
    counter = iter(range(10**9))

    async def worker(conn: Connection) -> None:
        nonlocal ok, bad
        while loop.time() < end:
            _ep, method, path, kw = mix.request(next(counter))
            try:
                if 200 <= await conn.request(method, path, **kw) < 300:
                    ok += 1
                else:
                    bad += 1
            except Exception:  # counted, not raised: throughput is what answered
                bad += 1

    try:
        await asyncio.gather(*(worker(c) for c in connections))
    finally:
        for conn in connections:
            conn.close()
    return ok, bad, loop.time() - t0


# ------------------------------------------------------------------------------ the bench
@contextlib.contextmanager
def _workspace(plan: Plan) -> Iterator[tuple[Path, str]]:
    """A temporary workspace with seeded long-term memories and an admin token."""
    from emergent import Workstation

    with tempfile.TemporaryDirectory(prefix="emergent-bench-api-") as tmp:
        home = Path(tmp) / "home"
        home.mkdir()
        ws = Workstation.open(home, embedder="hashing")
        try:
            texts = [f"note {i}: the {TOPICS[i % len(TOPICS)]} of service {i % 37} changed in week {i % 52}"
                     for i in range(plan.seed_memories)]
            ws.memory.ingest(texts)  # long-term memory, 512 a commit
            _info, token = ws.tokens.create(ws.principal, "admin", by=ws.principal, label="bench api")
        finally:
            ws.close()
        yield home, token


def _calls(ws: Any, prefix: str) -> dict[str, Callable[[int], Any]]:
    """The service calls behind the mix's endpoints (health has none), made in this process; each
    takes the index of the mix's request it stands for."""
    me = ws.principal
    return {
        "recall": lambda i: ws.memory.recall(_query(i), k=5),
        "remember": lambda i: ws.memory.remember(_note(prefix, i)),
        "tool_call": lambda i: ws.tools.call("memory.recall", {"query": _query(i), "k": 5}, principal=me, wait=False),
    }


def _in_process(home: Path, plan: Plan) -> dict[str, float | None]:
    """p95 (ms) of the same service calls made here, one at a time."""
    from emergent import Workstation

    ws = Workstation.open(home, embedder="hashing")
    out: dict[str, float | None] = {"health": None}
    try:
        for name, fn in _calls(ws, "in-process").items():  # 4 * i: the i-th cycle's request (the queries cycle)
            for i in range(max(5, plan.in_process_n // 10)):  # warm-up
                fn(4 * i)
            samples = []
            for i in range(plan.in_process_n):
                t = time.perf_counter()
                fn(4 * i)
                samples.append((time.perf_counter() - t) * 1000)
            out[name] = percentile(samples, 95)
    finally:
        ws.close()
    return out


def _loaded_part(home: str, rate: float, duration: float, part: int, parts: int, pipe: Any) -> None:
    """One process of :func:`_in_process_loaded`: its share of the mix's schedule, one call at a time."""
    from emergent import Workstation
    from emergent.cli.serve import one_blas_thread

    one_blas_thread()  # as a server worker runs
    lat: dict[str, list[float]] = {ep: [] for ep in ENDPOINTS if ep != "health"}
    ws = None
    try:
        ws = Workstation.open(home, embedder="hashing")
        calls = _calls(ws, f"loaded {part}")
        for i in range(12):  # warm-up: the hot index, the short-term view, the gate
            calls[ENDPOINTS[i % 3]](i)
        pipe.send("ready")
        start = pipe.recv()
        for i in range(int(rate * duration)):
            ep = ENDPOINTS[i % len(ENDPOINTS)]
            if (i // len(ENDPOINTS)) % parts != part or ep == "health":
                continue
            scheduled = start + i / rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            calls[ep](i)
            lat[ep].append((time.monotonic() - scheduled) * 1000)
    finally:
        if ws is not None:
            ws.close()
        pipe.send(lat)


def _in_process_loaded(home: Path, plan: Plan) -> dict[str, float | None]:
    """p95 (ms) of the same service calls at the same rate and mix, without HTTP: ``plan.workers``
    processes (as many as the server's workers) share the mix's schedule (cycles of its four
    requests handed out in turn), each making its calls one at a time, each latency from its
    scheduled time (a call that starts late because the one before overran counts its wait, as the
    open-loop client counts it). Health requests are left out: they have no service call. What the
    API adds beyond this figure is the HTTP layer; what this adds to the one-at-a-time figure is
    the load itself on the machine's cores."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    pipes, procs = [], []
    for part in range(plan.workers):
        mine, theirs = ctx.Pipe()
        proc = ctx.Process(target=_loaded_part, args=(str(home), plan.rate_rps, plan.duration_s, part,
                                                      plan.workers, theirs), daemon=True)
        proc.start()
        pipes.append(mine)
        procs.append(proc)
    lat: dict[str, list[float]] = {ep: [] for ep in ENDPOINTS if ep != "health"}
    try:
        for pipe in pipes:
            if not pipe.poll(180) or pipe.recv() != "ready":
                raise RuntimeError("a process of the loaded in-process baseline did not start")
        start = time.monotonic() + 0.2
        for pipe in pipes:
            pipe.send(start)
        for pipe in pipes:
            if not pipe.poll(plan.duration_s + 180):
                raise RuntimeError("a process of the loaded in-process baseline did not finish")
            for ep, xs in pipe.recv().items():
                lat[ep].extend(xs)
    finally:
        for proc in procs:
            proc.join(10)
            if proc.is_alive():
                proc.kill()
    out: dict[str, float | None] = {"health": None}
    out.update({ep: percentile(xs, 95) for ep, xs in lat.items()})
    return out


def bench_api(plan: Plan, *, quiet: bool = True) -> dict[str, Any]:
    def say(msg: str) -> None:
        if not quiet:
            print(f"[bench api] {msg}", file=sys.stderr, flush=True)

    with _workspace(plan) as (home, token):
        env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
        env.update({"EMERGENT_HOME": str(home), "EMERGENT_EMBEDDER": "hashing", "HF_HUB_OFFLINE": "1",
                    # the bench measures the service, not the per-token limit (default 600/minute)
                    "EMERGENT_API__RATE_LIMIT": "100000000/minute", "EMERGENT_LOG_LEVEL": "WARNING"})
        if os.environ.get("EMERGENT_AUDIT_DIR"):
            env["EMERGENT_AUDIT_DIR"] = os.environ["EMERGENT_AUDIT_DIR"]
        instances = [Instance(home, env, "a", plan.workers), Instance(home, env, "b", plan.workers)]
        proxies: list[Nginx] = []
        mix = Mix(token)
        try:
            for inst in instances:
                inst.wait()
            a = instances[0]
            say(f"instances up ({a.kind}); warm-up {plan.warmup_s} s")
            asyncio.run(_open_loop(a.url, mix, plan.rate_rps, plan.warmup_s))
            asyncio.run(_open_loop(instances[1].url, mix, plan.rate_rps, plan.warmup_s))
            _drain(a.url)
            _drain(instances[1].url)
            say(f"open loop: {plan.rate_rps} req/s for {plan.duration_s} s")
            main = asyncio.run(_open_loop(a.url, mix, plan.rate_rps, plan.duration_s, start_i=10**6))
            _drain(a.url)
            say("in-process baseline")
            inproc = _in_process(home, plan)
            say(f"in-process baseline under the same load: {plan.rate_rps} req/s for {plan.duration_s} s")
            loaded = _in_process_loaded(home, plan)
            say(f"soak: {plan.soak_s} s")
            rss: list[tuple[float, float]] = [(0.0, a.rss_mb())]
            last = [0.0]

            def sample(t: float) -> None:
                if t - last[0] >= plan.rss_every_s:
                    rss.append((t, a.rss_mb()))
                    last[0] = t

            soak = asyncio.run(_open_loop(a.url, mix, plan.rate_rps, plan.soak_s, start_i=2 * 10**6, tick=sample))
            rss.append((soak.elapsed_s, a.rss_mb()))
            _drain(a.url)
            ratio_two: float | None = None
            one_rps = two_rps = None
            note = None
            binary = nginx_binary()
            if binary is None:
                note = "nginx is not installed (apt-get install nginx-light): two_instances_throughput_ratio not measured"
            else:
                root = home.parent
                proxies = [Nginx(root / "nginx-one", binary, [a.port]),
                           Nginx(root / "nginx-two", binary, [i.port for i in instances])]
                say(f"throughput: {plan.concurrency} in flight, {plan.throughput_s} s a side in "
                    f"{plan.throughput_blocks} alternating blocks, one instance and two")
                done = [[0, 0.0], [0, 0.0]]  # [answers, seconds] through nginx to one instance, to two
                block = plan.throughput_s / plan.throughput_blocks
                for b in range(plan.throughput_blocks):  # alternated: a load change hits both sides alike
                    for side in ((0, 1) if b % 2 == 0 else (1, 0)):
                        ok, _bad, secs = asyncio.run(_closed_loop(proxies[side].url, mix, plan.concurrency, block))
                        done[side][0] += ok
                        done[side][1] += secs
                one_rps, two_rps = done[0][0] / done[0][1], done[1][0] / done[1][1]
                ratio_two = ratio(two_rps, one_rps)
            kind = a.kind
            server_errors = a.errors() if main.errors + soak.errors else []
            traceback = a.first_traceback() if server_errors else None
        finally:
            for p in proxies:
                p.close()
            for inst in instances:
                inst.close()

    p95 = {ep: percentile(main.latencies_ms[ep], 95) for ep in ENDPOINTS}
    p50 = {ep: percentile(main.latencies_ms[ep], 50) for ep in ENDPOINTS}
    total = main.sent + soak.sent
    errors = main.errors + soak.errors
    over = {ep: ratio(p95[ep], inproc[ep]) for ep in ("recall", "remember", "tool_call")  # type: ignore[arg-type]
            if inproc.get(ep)}
    over_loaded = {ep: ratio(p95[ep], loaded[ep])  # type: ignore[arg-type]
                   for ep in ("recall", "remember", "tool_call") if loaded.get(ep)}
    result: dict[str, Any] = {
        "p95_ms_by_endpoint": p95,
        "p50_ms_by_endpoint": p50,
        "in_process_p95_ms_by_endpoint": inproc,
        "api_over_in_process_p95": over,
        "in_process_loaded_p95_ms_by_endpoint": loaded,
        "api_over_in_process_loaded_p95": over_loaded,
        "rate_rps": plan.rate_rps,
        "duration_s": plan.duration_s,
        "achieved_rps": round(main.sent / main.send_s, 1) if main.send_s else None,  # requests sent a second
        "answered_rps": round(sum(map(len, main.latencies_ms.values())) / main.elapsed_s, 1) if main.elapsed_s else None,
        "requests": total,
        "error_rate": errors / total if total else None,
        "errors_by_status": {s: n for s, n in (main.statuses + soak.statuses).items() if not s.startswith("2")},
        "rss_growth_mb_10min": rss[-1][1] - rss[0][1],
        "soak_s": plan.soak_s,
        "rss_mb_start": rss[0][1],
        "rss_mb_end": rss[-1][1],
        "rss_mb_max": max(m for _t, m in rss),
        # (seconds into the soak, MB): a plateau is caches filling, a steady climb a leak
        "rss_mb_series": [[round(t, 1), round(m, 1)] for t, m in rss],
        "two_instances_throughput_ratio": ratio_two,
        "one_instance_rps": one_rps,
        "two_instances_rps": two_rps,
        "concurrency": plan.concurrency,
        "server": kind,
        "workers": plan.workers,
        "embedder": "hashing",
        "targets": {"p95_ms_max": 200, "api_over_in_process_p95_max": 2.0, "error_rate": 0,
                    "rss_growth_mb_10min_max": 50},
    }
    if note:
        result["note"] = note
    if server_errors:
        result["server_errors"] = server_errors  # what the instance logged, most frequent first
        result["server_traceback"] = traceback
    return result


def run(args: dict[str, Any]) -> dict[str, Any]:
    plan = Plan.quick() if args.get("quick") else Plan()
    if args.get("workers"):
        plan = replace(plan, workers=int(args["workers"]))
    result = bench_api(plan, quiet=bool(args.get("quiet", True)))
    result["quick"] = bool(args.get("quick"))
    return result


def table(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    inproc = r["in_process_p95_ms_by_endpoint"]
    for ep in ENDPOINTS:
        base = inproc.get(ep)
        rows.append((f"p95_ms {ep} (API at {r['rate_rps']:g} req/s)", r["p95_ms_by_endpoint"][ep], base,
                     f"x{ratio(r['p95_ms_by_endpoint'][ep], base):.2f} (<= 2, <= 200 ms)" if base else "<= 200 ms"))
    loaded = r["in_process_loaded_p95_ms_by_endpoint"]
    for ep in ("recall", "tool_call"):
        rows.append((f"p95_ms {ep}: API over in-process at the same load", r["p95_ms_by_endpoint"][ep], loaded.get(ep),
                     f"x{ratio(r['p95_ms_by_endpoint'][ep], loaded.get(ep)):.2f} (what HTTP adds)"
                     if loaded.get(ep) else ""))
    rows.append(("error_rate", r["error_rate"], "", "0"))
    rows.append((f"rss_growth_mb ({r['soak_s']:g} s soak)", r["rss_growth_mb_10min"], r["rss_mb_start"], "< 50"))
    rows.append(("two_instances_throughput_ratio", r["two_instances_throughput_ratio"], r["one_instance_rps"],
                 f"{r['two_instances_rps'] or 0:.0f} req/s with two"))
    return rows
