"""The workflows store on each SQL backend (SQLite, and PostgreSQL when EMERGENT_TEST_POSTGRES_URL is set):
fan-out and fan-in, a failure compensated, a paused run resumed without repeating a step, the lease, the
run listings and the saved-workflow register."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from emergent.errors import UsageError
from emergent.workflows import Workflow


def listing(n: int) -> list[int]:
    return list(range(n))


def square(x: int) -> int:
    return x * x


def total(xs: list[int]) -> int:
    return sum(xs)


CHILD = """
name: child
inputs: {line: null}
steps:
  - id: write
    kind: tool
    tool: test.append
    args: {line: "${inputs.line}"}
outputs:
  written: "${steps.write.output.line}"
"""


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_runs_checkpoint_resume_lease_and_register_on_each_sql_backend(sws: Any, sql_url: str) -> None:
    from emergent.workflows.service import Workflows

    assert getattr(sws.sql, "engine", sws.sql).dialect.name == ("sqlite" if sql_url.startswith("sqlite") else "postgresql")

    wfs, me = sws.workflows, sws.principal
    log = Path(sws.path) / "log.txt"

    # fan-out + fan-in of pure call steps (group-committed checkpoints) beside a tool step
    fan = Workflow.build("fan", inputs={"n": 4})
    items = fan.call("items", listing, args={"n": "${inputs.n}"})
    sq = fan.call("sq", square, args={"x": "${item}"}, foreach=items.output)
    tot = fan.call("tot", total, args={"xs": sq.output})
    fan.tool("note", "test.append", args={"line": "total ${steps.tot.output}"}, needs=[tot.id])
    fan.output("total", tot.output)
    run = wfs.run(fan, principal=me, timeout=20)
    assert run.status == "completed", run.error
    assert run.outputs == {"total": 0 + 1 + 4 + 9}
    assert [s.key for s in run.steps if s.step_id == "sq"] == [f"sq[{i}]" for i in range(4)]
    stored = wfs.get(run.id)
    assert stored.steps == run.steps and stored.inputs == {"n": 4} and stored.outputs == {"total": 14}
    assert stored.step("sq[3]").output == 9 and stored.step("items").output == [0, 1, 2, 3]

    # a failing step compensates the completed ones, newest first
    saga = Workflow.build("saga")
    one = saga.tool("one", "test.append", args={"line": "one"},
                    compensate={"tool": "test.unappend", "args": {"line": "${steps.one.output.line}"}})
    two = saga.tool("two", "test.append", args={"line": "two"}, needs=[one.id],
                    compensate={"tool": "test.unappend", "args": {"line": "${steps.two.output.line}"}})
    saga.tool("three", "test.boom", needs=[two.id])
    failed = wfs.run(saga, principal=me, timeout=20)
    assert failed.status == "failed" and "step 'three'" in (failed.error or "")
    assert lines(log) == ["total 14", "one", "two", "undo two", "undo one"]
    assert [wfs.get(failed.id).step(k).status for k in ("one", "two", "three")] == [
        "compensated", "compensated", "failed"]

    # paused, then resumed: the completed step is not run again
    pausable = Workflow.build("pausable")
    a = pausable.tool("a", "test.append", args={"line": "a"})
    s = pausable.tool("slow", "test.wait", args={"seconds": 0.5}, needs=[a.id])
    pausable.tool("b", "test.append", args={"line": "b"}, needs=[s.id])
    run_id = wfs.start(pausable, principal=me)
    _until(lambda: wfs.get(run_id).step("slow").status == "running")

    # the lease: a second driver (another service, as another process would be) is refused
    other = Workflows(sws.sql, services=wfs.services, audit=sws.audit, clock=sws.clock)
    try:
        with pytest.raises(UsageError, match=f"workflow run {run_id} is being driven by"):
            other.resume(run_id, principal=me)
        wfs.pause(run_id, by=me)
        paused = wfs.wait(run_id, timeout=10)
        assert paused.status == "paused" and paused.step("b").status == "pending"
        assert lines(log)[-1] == "a"
        done = other.resume(run_id, principal=me, timeout=20)  # the lease was released: the other may drive it
    finally:
        other.close()
    assert done.status == "completed", done.error
    assert lines(log)[-2:] == ["a", "b"] and lines(log).count("a") == 1
    assert wfs.get(run_id).step("a").attempt == 1

    # listings: newest first, filtered by status
    assert [r.id for r in wfs.runs(limit=3)] == [run_id, failed.id, run.id]
    assert [r.id for r in wfs.runs(status="failed")] == [failed.id]
    assert wfs.get(run_id).status == "completed"

    # the saved-workflow register: saved, replaced (not copied), used by name as a sub-workflow
    assert wfs.register(CHILD, by=me).name == "child"
    again = wfs.register(CHILD.replace("name: child", "name: child\nversion: '2'"), by=me)
    assert again.version == "2" and wfs.named("child").version == "2"
    parent = Workflow.parse({"name": "parent", "steps": [
        {"id": "sub", "kind": "workflow", "workflow": "child", "inputs": {"line": "from parent"}}],
        "outputs": {"w": "${steps.sub.output.written}"}})
    prun = wfs.run(parent, principal=me, timeout=20)
    assert prun.status == "completed", prun.error
    assert prun.outputs == {"w": "from parent"} and lines(log)[-1] == "from parent"
    children = [r for r in wfs.runs(limit=5) if r.parent == prun.id]
    assert len(children) == 1 and children[0].status == "completed" and children[0].workflow == "child"
