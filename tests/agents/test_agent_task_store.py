"""Task states in SQL move by compare-and-set: racing workers start a task once; a task a dead worker
left working is taken over once its lease ran out."""

from __future__ import annotations

import threading
import time
from typing import Any

from emergent.agents.card import COMPLETED, SUBMITTED, WORKING
from emergent.agents.tasks import TaskStore
from emergent.stores.sql import SQLStore


def test_workers_racing_for_one_task_start_it_exactly_once(sql_url: str) -> None:
    store = TaskStore(SQLStore(sql_url))
    ids = [store.create(f"t{i}", skills=[], submitted_by="human:x").id for i in range(10)]
    wins: list[str] = []
    barrier = threading.Barrier(4)

    def worker() -> None:
        barrier.wait()
        for tid in ids:
            if store.move(tid, WORKING, expect={SUBMITTED}) is not None:
                wins.append(tid)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == sorted(ids)  # each task started by exactly one worker
    assert store.move(ids[0], COMPLETED, expect={WORKING}).state == COMPLETED
    assert store.move(ids[0], WORKING, expect={SUBMITTED}) is None  # a completed task never starts again


def test_a_task_a_dead_worker_left_working_is_run_by_another_once_its_lease_ran_out(ws: Any, agents: Any) -> None:
    me = ws.principal
    agents.store.lease_s = 1.0
    agents.claim_idle_ms = 100
    task = agents.delegate("count the rows", to="stats", by=me, wait=False)
    (held,) = agents.bus.consume("tasks", "workers", "dead", count=1)  # the dead worker read it ...
    assert agents.store.move(task.id, WORKING, expect={SUBMITTED}) is not None  # ... and started it
    time.sleep(0.15)
    agents.work(claim=True)  # claims the message, but the task's lease still runs: left pending
    ws.audit.flush()
    assert [e.data["ids"] for e in ws.audit.entries(kind="agents.redelivered")] == [[held.id]]
    assert agents.task(task.id).state == WORKING and agents.bus.pending("tasks", "workers") == 1
    assert agents.handled == 0
    time.sleep(1.0)
    agents.work(claim=True)
    done = agents.task(task.id)
    assert done.state == COMPLETED and done.run_id and agents.handled == 1
    assert agents.bus.pending("tasks", "workers") == 0
