"""The engine on a real workstation: wiring, conditions, fan-out/fan-in, no lock-step, timeouts, retries,
wrong types, compensation, pause/resume/cancel, audit."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from emergent.errors import AuditWriteError, ValidationError
from emergent.workflows import Workflow


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def add(a: int, b: int) -> int:
    return a + b


def listing(n: int) -> list[int]:
    return list(range(n))


def square(x: int) -> int:
    return x * x


def total(xs: list[int]) -> int:
    return sum(xs)


def test_outputs_flow_into_later_steps_and_a_whole_reference_keeps_its_type(wsx: Any) -> None:
    wf = Workflow.build("wire", inputs={"x": 4})
    a = wf.call("a", add, args={"a": "${inputs.x}", "b": 1}, timeout_s=30)
    b = wf.tool("b", "test.wait", args={"seconds": 0, "value": {"n": a.output, "text": "n=${steps.a.output}"}})
    c = wf.call("c", add, args={"a": b.output["n"], "b": 100})
    wf.output("n", c.output)
    wf.output("text", b.output["text"])
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    assert run.status == "completed", run.error
    assert run.outputs == {"n": 105, "text": "n=5"}
    assert run.updated_at - run.created_at < 5  # a finished step's timeout timer keeps nothing waiting
    assert [(s.key, s.status, s.attempt) for s in run.steps] == [("a", "completed", 1), ("b", "completed", 1),
                                                                ("c", "completed", 1)]


def test_a_false_condition_skips_the_step_and_the_steps_that_need_only_it(wsx: Any) -> None:
    wf = Workflow.build("cond", inputs={"go": False})
    gate = wf.call("gate", add, args={"a": 1, "b": 1})
    yes = wf.call("yes", add, args={"a": 1, "b": 2}, needs=["gate"],
                  when={"ref": "${inputs.go}", "op": "truthy"})
    wf.call("after_yes", add, args={"a": yes.output, "b": 1})
    wf.call("no", add, args={"a": 0, "b": 0}, when={"ref": gate.output, "op": "eq", "value": 2})
    wf.output("deep", yes.output["a"]["b"])
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    assert run.status == "completed", run.error
    assert run.outputs == {"deep": None}  # a skipped step's output reads None all the way down
    status = {s.key: s.status for s in run.steps}
    assert status == {"gate": "completed", "yes": "skipped", "after_yes": "skipped", "no": "completed"}


def test_fan_out_runs_one_instance_per_item_and_fan_in_gets_their_outputs_in_order(wsx: Any) -> None:
    wf = Workflow.build("fan", inputs={"n": 5})
    items = wf.call("items", listing, args={"n": "${inputs.n}"})
    sq = wf.call("sq", square, args={"x": "${item}"}, foreach=items.output)
    tot = wf.call("tot", total, args={"xs": sq.output})
    wf.output("total", tot.output)
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    assert run.status == "completed", run.error
    assert run.outputs == {"total": 0 + 1 + 4 + 9 + 16}
    assert [s.key for s in run.steps if s.step_id == "sq"] == [f"sq[{i}]" for i in range(5)]
    assert wsx.workflows.get(run.id).steps == run.steps  # what run() returned is what was checkpointed
    nodes, edges = run.dag()
    assert {n["id"] for n in nodes} >= {"items", "sq[0]", "sq[4]", "tot"}
    assert ("items", "sq[3]") in edges and ("sq[3]", "tot") in edges


def test_a_slow_branch_never_holds_a_fast_one(wsx: Any) -> None:
    """No supersteps: fast2 (after fast1) finishes while slow (started at the same time as fast1) still runs."""
    wf = Workflow.build("nolockstep")
    wf.tool("slow", "test.wait", args={"seconds": 1.5, "value": "slow"})
    f1 = wf.tool("fast1", "test.wait", args={"seconds": 0.05, "value": 1})
    f2 = wf.tool("fast2", "test.wait", args={"seconds": 0.05, "value": f1.output})
    wf.tool("fast3", "test.wait", args={"seconds": 0.05, "value": f2.output})
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    assert run.status == "completed", run.error
    by = {s.key: s for s in run.steps}
    assert by["fast3"].finished_at < by["slow"].finished_at - 0.8
    assert by["fast3"].started_at < by["slow"].finished_at


def test_a_step_that_raises_is_retried_then_fails_the_run_naming_it(wsx: Any) -> None:
    calls: list[int] = []

    def flaky() -> int:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError(f"flake {len(calls)}")
        return 7

    wf = Workflow.build("retry")
    wf.call("flaky", flaky, retries=2, retry_delay_s=0.01)
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    assert run.status == "completed" and run.step("flaky").attempt == 3 and run.step("flaky").output == 7

    wf2 = Workflow.build("raise")
    wf2.tool("bad", "test.boom", args={"message": "kaput"}, retries=1)
    wf2.call("never", add, args={"a": 1, "b": 1}, needs=["bad"])
    run2 = wsx.workflows.run(wf2, principal=wsx.principal, timeout=20)
    assert run2.status == "failed"
    assert "step 'bad'" in run2.error and "kaput" in run2.error
    assert run2.step("bad").status == "failed" and run2.step("bad").attempt == 2
    assert run2.step("never").status == "pending"  # never reached


def test_a_step_that_hangs_past_its_timeout_fails_and_the_run_does_not_wait_for_it(wsx: Any) -> None:
    release = threading.Event()

    def hang() -> None:
        release.wait(30)

    wf = Workflow.build("hang")
    wf.call("stuck", hang, timeout_s=0.3)
    t0 = time.monotonic()
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    release.set()
    assert time.monotonic() - t0 < 5
    assert run.status == "failed" and "timed out after 0.3 s" in run.error
    assert run.step("stuck").status == "failed"


def test_a_step_that_returns_the_wrong_type_fails_with_a_clear_error(wsx: Any) -> None:
    wf = Workflow.build("types")
    wf.call("n", add, args={"a": 1, "b": 2}, output="dict")
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    assert run.status == "failed"
    assert "step 'n' returned int, but its output is declared 'dict'" in run.error

    wf2 = Workflow.build("unstorable")
    wf2.call("obj", object)
    run2 = wsx.workflows.run(wf2, principal=wsx.principal, timeout=20)
    assert run2.status == "failed" and "step 'obj': its output cannot be stored as JSON" in run2.error


def test_a_later_failure_compensates_completed_side_effects_in_reverse_order(wsx: Any) -> None:
    log = Path(wsx.path) / "log.txt"
    wf = Workflow.build("saga")
    comp = {"tool": "test.unappend", "args": {"line": "${steps.one.output.line}"}}
    one = wf.tool("one", "test.append", args={"line": "one"}, compensate=comp)
    two = wf.tool("two", "test.append", args={"line": "two"}, needs=[one.id],
                  compensate={"tool": "test.unappend", "args": {"line": "${steps.two.output.line}"}})
    wf.tool("three", "test.boom", needs=[two.id])
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    assert run.status == "failed" and "step 'three'" in run.error
    assert lines(log) == ["one", "two", "undo two", "undo one"]
    assert [run.step(k).status for k in ("one", "two", "three")] == ["compensated", "compensated", "failed"]
    assert wsx.workflows.get(run.id).steps == run.steps
    kinds = [e.kind for e in wsx.audit.entries() if e.data.get("run") == run.id]
    assert kinds[0] == "workflow.run.start" and kinds[-1] == "workflow.run.finish"
    assert kinds.count("workflow.compensate") == 4  # intent + done, twice


def test_every_run_start_finish_and_step_outcome_is_audited(wsx: Any) -> None:
    wf = Workflow.build("audited")
    a = wf.tool("a", "test.append", args={"line": "x"})
    wf.call("b", add, args={"a": 1, "b": 2}, needs=[a.id])
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    entries = [e for e in wsx.audit.entries() if e.data.get("run") == run.id]
    outcome = [(e.kind, e.data.get("step"), e.data.get("status") or e.data.get("phase")) for e in entries]
    assert outcome[0][0] == "workflow.run.start"
    assert ("workflow.step", "a", "intent") in outcome and ("workflow.step", "a", "completed") in outcome
    batch = [e.data for e in entries if e.kind == "workflow.steps"]  # pure call steps: one entry per checkpoint
    assert batch and batch[0]["completed"] == ["b"]
    assert outcome[-1] == ("workflow.run.finish", None, "completed")


def test_a_failed_audit_write_fails_the_action(wsx: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    log = Path(wsx.path) / "log.txt"
    real = wsx.audit.append

    def broken(kind: str, principal: Any, data: dict[str, Any], *, durable: bool = False) -> None:
        if kind == "workflow.step" and data.get("phase") == "intent":
            raise AuditWriteError("the audit database is gone")
        real(kind, principal, data, durable=durable)

    monkeypatch.setattr(wsx.audit, "append", broken)
    wf = Workflow.build("noaudit")
    wf.tool("a", "test.append", args={"line": "should not happen"})
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=20)
    assert run.status == "failed" and "audit" in run.error
    assert lines(log) == []  # the side effect never ran

    def refuse(kind: str, principal: Any, data: dict[str, Any], *, durable: bool = False) -> None:
        raise AuditWriteError("the audit database is gone")

    def no_end(kind: str, principal: Any, data: dict[str, Any], *, durable: bool = False) -> None:
        if kind == "workflow.run.finish":
            raise AuditWriteError("the audit database is gone")
        real(kind, principal, data, durable=durable)

    monkeypatch.setattr(wsx.audit, "append", no_end)
    pure = Workflow.build("pure")
    pure.call("x", add, args={"a": 1, "b": 1})
    ended = wsx.workflows.run(pure, principal=wsx.principal, timeout=20)
    assert ended.status == "failed" and "could not be recorded in the audit trail" in ended.error

    monkeypatch.setattr(wsx.audit, "append", refuse)
    with pytest.raises(AuditWriteError):
        wsx.workflows.start(wf, principal=wsx.principal)
    assert all(r.workflow != "noaudit" or r.id == run.id for r in wsx.workflows.runs())


def test_pause_stops_new_steps_and_resume_finishes_without_repeating(wsx: Any) -> None:
    log = Path(wsx.path) / "log.txt"
    wf = Workflow.build("pausable")
    a = wf.tool("a", "test.append", args={"line": "a"})
    s = wf.tool("slow", "test.wait", args={"seconds": 0.6}, needs=[a.id])
    wf.tool("b", "test.append", args={"line": "b"}, needs=[s.id])
    run_id = wsx.workflows.start(wf, principal=wsx.principal)
    _until(lambda: wsx.workflows.get(run_id).step("slow").status == "running")
    wsx.workflows.pause(run_id, by=wsx.principal)
    paused = wsx.workflows.wait(run_id, timeout=10)
    assert paused.status == "paused"
    assert paused.step("slow").status == "completed" and paused.step("b").status == "pending"
    assert lines(log) == ["a"]
    done = wsx.workflows.resume(run_id, principal=wsx.principal, timeout=20)
    assert done.status == "completed", done.error
    assert lines(log) == ["a", "b"]


def test_cancel_stops_a_run(wsx: Any) -> None:
    log = Path(wsx.path) / "log.txt"
    wf = Workflow.build("cancellable")
    s = wf.tool("slow", "test.wait", args={"seconds": 0.5})
    wf.tool("b", "test.append", args={"line": "b"}, needs=[s.id])
    run_id = wsx.workflows.start(wf, principal=wsx.principal)
    _until(lambda: wsx.workflows.get(run_id).step("slow").status == "running")
    wsx.workflows.cancel(run_id, by=wsx.principal)
    run = wsx.workflows.wait(run_id, timeout=10)
    assert run.status == "cancelled"
    time.sleep(0.7)
    assert lines(log) == []
    with pytest.raises(ValidationError, match="needs input 'x'"):
        wsx.workflows.start(Workflow.build("needs", inputs={"x": None}).workflow.model_copy(
            update={"steps": wf.workflow.steps}), principal=wsx.principal)


def _until(cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.01)


def test_call_steps_are_group_committed_unless_checkpoint_each_is_asked(wsx: Any) -> None:
    """batched (default): a pure step's row is written after it, with its burst; each: its running row is
    committed before it starts, as a gate-crossing step's always is."""
    seen: list[str] = []

    def look() -> str:
        latest = wsx.workflows.runs(limit=1)[0]
        seen.append(latest.step("look").status)
        return "ok"

    wf = Workflow.build("modes")
    wf.call("look", look)
    assert wsx.workflows.run(wf, principal=wsx.principal, timeout=20).status == "completed"
    assert wsx.workflows.run(wf, principal=wsx.principal, timeout=20, checkpoint="each").status == "completed"
    assert seen == ["pending", "running"]
    with pytest.raises(ValidationError, match="checkpoint 'off' is not a checkpoint mode"):
        wsx.workflows.run(wf, principal=wsx.principal, checkpoint="off")


def test_inputs_must_be_json_and_run_states_are_checked(wsx: Any) -> None:
    wf = Workflow.build("inputs", inputs={"x": None})
    wf.call("a", add, args={"a": "${inputs.x}", "b": 1})
    for bad in (object(), {1, 2}, float("nan")):
        with pytest.raises(ValidationError, match="input 'x' is not JSON data"):
            wsx.workflows.start(wf, {"x": bad}, principal=wsx.principal)
    with pytest.raises(ValidationError, match="'bogus' is not a run status"):
        wsx.workflows.runs(status="bogus")
