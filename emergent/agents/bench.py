"""The agents bus against raw redis-py on the same server, and what a killed consumer loses.

``bench_bus(redis_url)`` measures, in one run and at one batch size:

- ``raw_redis_msgs_per_s``: redis-py alone doing the same logical work: JSON-encode a message,
  ``XADD`` it (a pipeline per batch), ``XREADGROUP`` a batch, JSON-decode each, ``XACK`` the batch;
- ``bus_msgs_per_s``: :class:`~emergent.agents.bus.RedisBus` doing it through its API
  (``publish_many``, ``consume``, ``ack``): sender stamped from a verified principal, every
  publish and acknowledgement audited (the audit log's final flush is inside the timing);
- ``bus_ratio``: bus ÷ raw (target ≥ 0.8): the median over ``rounds`` rounds of the ratio within a
  round, where both sides run back to back in alternating order (so a load that comes and goes on a
  shared machine hits both sides of a pair alike); the two throughputs are the medians;
- ``bus_lost_after_kill``: a consumer *process* reads and acknowledges a third of a stream, reads
  one more batch and is killed with SIGKILL while it holds it unacknowledged; a second consumer claims them
  (``XPENDING`` idle + ``XCLAIM`` after an idle time) and reads the rest. Lost = published minus handled by
  either (handled ids are recorded in Redis before the acknowledgement, so a message handled and
  not acknowledged is redelivered and recognised, counted in ``bus_redelivered_after_kill``).
"""

from __future__ import annotations

import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from emergent.agents.bus import RedisBus, dumps, loads

BATCH = 100
GROUP = "bench"


def _messages(n: int) -> list[dict[str, Any]]:
    return [{"type": "bench", "i": i, "task": f"t{i:08d}", "text": "hello " * 8} for i in range(n)]


def _raw_round(client: Any, key: str, msgs: list[dict[str, Any]], batch: int) -> float:
    client.xgroup_create(key, GROUP, id="0", mkstream=True)
    t0 = time.perf_counter()
    for i in range(0, len(msgs), batch):
        pipe = client.pipeline(transaction=False)
        for m in msgs[i:i + batch]:
            pipe.xadd(key, {"s": "human:bench", "b": dumps(m)})
        pipe.execute()
    got = 0
    while got < len(msgs):
        resp = client.xreadgroup(GROUP, "c", {key: ">"}, count=batch)
        entries = resp[0][1]
        bodies = [(mid, loads(f[b"b"])) for mid, f in entries]
        client.xack(key, GROUP, *[mid for mid, _ in bodies])
        got += len(bodies)
    dt = time.perf_counter() - t0
    client.delete(key)
    return len(msgs) / dt


def _bus_round(bus: RedisBus, audit: Any, who: Any, stream: str, msgs: list[dict[str, Any]], batch: int) -> float:
    bus.consume(stream, GROUP, "c", count=1)  # creates the group, as the raw round does before timing
    t0 = time.perf_counter()
    for i in range(0, len(msgs), batch):
        bus.publish_many(stream, msgs[i:i + batch], principal=who)
    got = 0
    while got < len(msgs):
        got_now = bus.consume(stream, GROUP, "c", count=batch)
        bus.ack(stream, GROUP, [m.id for m in got_now], by=who)
        got += len(got_now)
    audit.flush()
    dt = time.perf_counter() - t0
    bus.r.delete(bus.key(stream))
    return len(msgs) / dt


_CHILD = r"""
import sys, time
import redis
from emergent.agents.bench import _open
url, db, ns, stream, handled, holding, threshold = sys.argv[1:8]
client = redis.Redis.from_url(url)
bus, audit, who, _ = _open(client, db, ns)
while True:
    got = bus.consume(stream, "kill", "doomed", count=25, block_ms=100)
    if not got:
        continue
    if client.scard(handled) >= int(threshold):  # read a batch it will never acknowledge, then wait to die
        client.set(holding, len(got))
        time.sleep(3600)
    time.sleep(0.004)  # the work of handling them
    client.sadd(handled, *[m.id for m in got])
    bus.ack(stream, "kill", [m.id for m in got], by=who)
"""


def _open(client: Any, db: str, namespace: str) -> tuple[RedisBus, Any, Any, Any]:
    from emergent.audit import AuditLog
    from emergent.principals import Principals
    from emergent.stores.sql import SQLStore

    sql = SQLStore(f"sqlite:///{db}")
    audit = AuditLog(sql)
    principals = Principals(sql, audit=audit)
    bus = RedisBus(redis=client, audit=audit, principals=principals, namespace=namespace)
    return bus, audit, principals.os_user(), sql


def _kill_round(url: str, client: Any, bus: RedisBus, who: Any, tmp: Path, n: int) -> dict[str, int]:
    stream, handled = f"kill-{uuid.uuid4().hex[:8]}", f"{bus.prefix}handled-{uuid.uuid4().hex[:8]}"
    holding = f"{bus.prefix}holding-{uuid.uuid4().hex[:8]}"
    msgs = _messages(n)
    for i in range(0, n, BATCH):
        bus.publish_many(stream, msgs[i:i + BATCH], principal=who)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, url, str(tmp / "child.db"), bus.prefix.split(":agents:")[0],
                              stream, handled, holding, str(n // 3)], env=env, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not client.exists(holding):  # it handled a third and holds a batch it read: kill it now
            if child.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the consumer process did not get going: "
                                   + (child.stderr.read().decode()[-2000:] if child.stderr else ""))
            time.sleep(0.0005)
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    held = bus.pending(stream, "kill")
    redelivered = again = 0
    deadline = time.monotonic() + 30
    time.sleep(0.15)
    while client.scard(handled) < n and time.monotonic() < deadline:
        got = bus.claim(stream, "kill", "survivor", min_idle_ms=100, by=who) + \
            bus.consume(stream, "kill", "survivor", count=BATCH)
        redelivered += sum(1 for m in got if m.redelivered)
        fresh = [m.id for m in got if not client.sismember(handled, m.id)]
        again += len(got) - len(fresh)
        if fresh:
            client.sadd(handled, *fresh)
        if got:
            bus.ack(stream, "kill", [m.id for m in got], by=who)
    lost = n - int(client.scard(handled))
    client.delete(bus.key(stream), handled, holding)
    return {"lost": lost, "held_by_killed_consumer": held, "redelivered": redelivered, "handled_twice_avoided": again}


def bench_bus(redis_url: str, n: int = 5000, batch: int = BATCH, rounds: int = 7) -> dict[str, Any]:
    """Bus vs raw redis-py throughput (publish + consume + ack) and messages lost to a killed consumer."""
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    with tempfile.TemporaryDirectory(prefix="emergent-bench-bus-") as d:
        tmp = Path(d)
        bus, audit, who, sql = _open(client, str(tmp / "bench.db"), f"bench-{uuid.uuid4().hex[:8]}")
        msgs = _messages(n)
        raw: list[float] = []
        ours: list[float] = []
        _bus_round(bus, audit, who, "warm", msgs[: min(n, 500)], batch)  # imports, first connections
        for r in range(rounds):  # alternate, so neither side always runs on a warmer server
            order = (0, 1) if r % 2 == 0 else (1, 0)
            for side in order:
                if side == 0:
                    raw.append(_raw_round(client, f"{bus.prefix}raw-{uuid.uuid4().hex[:8]}", msgs, batch))
                else:
                    ours.append(_bus_round(bus, audit, who, f"bus-{uuid.uuid4().hex[:8]}", msgs, batch))
        kill = _kill_round(redis_url, client, bus, who, tmp, min(n, 2000))
        audit.close()
        sql.dispose()
        client.close()
    ratio = statistics.median(b / r for b, r in zip(ours, raw, strict=True))
    return {"bus_msgs_per_s": round(statistics.median(ours)), "raw_redis_msgs_per_s": round(statistics.median(raw)),
            "bus_ratio": round(ratio, 3), "bus_batch": batch, "bus_messages": n, "bus_rounds": rounds,
            "bus_lost_after_kill": kill["lost"], "bus_redelivered_after_kill": kill["redelivered"],
            "bus_held_by_killed_consumer": kill["held_by_killed_consumer"]}
