"""Faults: Redis killed (SIGKILL) and restarted while task messages are in flight; a consumer process
SIGKILLed after reading and before acknowledging. No message is lost; none runs a completed task twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from typing import Any

from _agents_fixtures import DurableRedis, redis_agents, team

from emergent.agents.card import COMPLETED


def work_until_done(ag: Any, ids: list[str], timeout: float = 20.0) -> list[Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        tasks = [ag.task(i) for i in ids]
        if all(t.state == COMPLETED for t in tasks):
            return tasks
        ag.work(block_ms=50)
    raise AssertionError(f"not all tasks completed: {[(t.id, t.state) for t in tasks]}")


def test_redis_killed_between_publish_and_consume_loses_no_task_and_runs_none_twice(
        ws: Any, client: Any, durable_redis: DurableRedis) -> None:
    team(ws)
    me, ag = ws.principal, redis_agents(ws, client, claim_idle_ms=200)
    ids = [ag.delegate(f"count the rows of table {i}", to="stats", by=me, wait=False).id for i in range(4)]
    ghost = ag.bus.consume("tasks", "workers", "ghost", count=2)  # read, never acknowledged
    assert len(ghost) == 2
    durable_redis.kill9()
    durable_redis.start()
    tasks = work_until_done(ag, ids)
    assert ag.handled == 4 and len({t.run_id for t in tasks}) == 4
    assert ag.bus.pending("tasks", "workers") == 0
    # every message of the stream delivered once more (as after a lost acknowledgement): nothing runs
    client.xgroup_setid(ag.bus.key("tasks"), "workers", "0")
    assert ag.work() == 4 and ag.handled == 4
    assert [ag.task(i).run_id for i in ids] == [t.run_id for t in tasks]
    assert len(ws.assistant("stats").runs(limit=50)) == 4


def test_a_publish_while_redis_is_down_waits_for_the_restart_and_loses_nothing(
        ws: Any, client: Any, durable_redis: DurableRedis) -> None:
    team(ws)
    me, ag = ws.principal, redis_agents(ws, client, claim_idle_ms=200)
    durable_redis.kill9()
    threading.Timer(0.4, durable_redis.start).start()
    t0 = time.monotonic()
    task = ag.delegate("summarise table 7", to="stats", by=me)
    assert task.state == COMPLETED and time.monotonic() - t0 > 0.3
    assert ag.handled == 1


CHILD = """
import json, sys
from emergent import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing")
got = ws.agents.bus.consume("tasks", "workers", "doomed", count=10, block_ms=1000)
print(json.dumps([m.id for m in got]), flush=True)
sys.stdin.read()  # holds them, unacknowledged, until it is killed
"""


def test_a_consumer_process_killed_after_reading_has_its_messages_redelivered_to_another(
        ws: Any, client: Any, durable_redis: DurableRedis) -> None:
    team(ws)
    me, ag = ws.principal, redis_agents(ws, client, claim_idle_ms=200)
    ids = [ag.delegate(f"describe table {i}", to="stats", by=me, wait=False).id for i in range(2)]
    env = {**os.environ, "EMERGENT_REDIS_URL": durable_redis.url, "EMERGENT_AGENT_BUS": "redis"}
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(ws.path)], env=env, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline() if child.stdout else ""
        assert line, child.stderr.read() if child.stderr else "no output"
        held = json.loads(line)
    finally:
        child.kill()  # SIGKILL, holding two unacknowledged messages
        child.wait()
    assert len(held) == 2 and ag.bus.pending("tasks", "workers") == 2
    work_until_done(ag, ids)
    assert ag.handled == 2
    ws.audit.flush()
    claimed = [e.data for e in ws.audit.entries(kind="agents.redelivered")]
    assert claimed[-1]["ids"] == held and claimed[-1]["consumer"] == ag.consumer
