"""Task states in SQL move by compare-and-set: racing workers start a task once; a task a dead worker
left working is failed (never run again) once its lease ran out."""

from __future__ import annotations

import threading
import time
from typing import Any

from emergent.agents.card import COMPLETED, FAILED, SUBMITTED, WORKING
from emergent.agents.tasks import ABANDONED, TaskStore
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


def test_a_task_a_dead_worker_left_working_is_failed_not_run_again_once_its_lease_ran_out(
        ws: Any, agents: Any) -> None:
    me = ws.principal
    agents.store.lease_s = 0.5
    agents.claim_idle_ms = 100
    task = agents.delegate("count the rows", to="stats", by=me, wait=False)
    (held,) = agents.bus.consume("tasks", "workers", "dead", count=1)  # the dead worker read it ...
    started = agents.store.move(task.id, WORKING, expect={SUBMITTED})  # ... and started it
    assert started is not None
    time.sleep(0.15)
    agents.work(claim=True)  # claims the message, but the task's lease still runs: left pending
    ws.audit.flush()
    assert [e.data["ids"] for e in ws.audit.entries(kind="agents.redelivered")] == [[held.id]]
    assert agents.task(task.id).state == WORKING and agents.bus.pending("tasks", "workers") == 1
    time.sleep(0.5)
    agents.work(claim=True)
    done = agents.task(task.id)
    assert done.state == FAILED and done.error == ABANDONED and done.run_id is None  # never run a second time
    assert agents.handled == 0 and agents.bus.pending("tasks", "workers") == 0
    ws.audit.flush()
    (failed,) = ws.audit.entries(kind="agents.task.failed")
    assert failed.actor == "service:agents" and failed.data == {"task": task.id, "error": ABANDONED}
    # the stalled worker comes back: its finish is fenced on the lease it held, so it changes nothing
    assert agents.store.move(task.id, COMPLETED, expect={WORKING}, lease=started.lease_until) is None
    assert agents.task(task.id).state == FAILED
