"""Faults: the engine's process killed with SIGKILL mid-run, then resumed by another process; a tool step an
agent may not take without a person's approval (approved: the run completes; rejected: it fails and
compensates)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from emergent import Workstation
from emergent.workflows import Workflow

# The tools both processes register (the child that is killed, and this one, which resumes).
TOOLS = '''
import time
from pathlib import Path
from emergent.tools import SideEffect, ToolContext, tool

@tool(name="test.append", version="1.0.0", side_effect=SideEffect.WRITE)
def append(line: str, ctx: ToolContext) -> dict:
    """Append a line to log.txt.

    Args:
        line: the line
    """
    with (Path(ctx.workspace) / "log.txt").open("a", encoding="utf-8") as fh:
        fh.write(line + "\\n")
    return {"line": line}

@tool(name="test.gate", version="1.0.0", side_effect=SideEffect.READ)
def gate(flag: str, ctx: ToolContext) -> str:
    """Wait (read-only) until the flag file exists.

    Args:
        flag: file name under the workspace
    """
    path = Path(ctx.workspace) / flag
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "open"

@tool(name="test.append_then_gate", version="1.0.0", side_effect=SideEffect.WRITE)
def append_then_gate(line: str, flag: str, ctx: ToolContext) -> dict:
    """Append a line, then wait for the flag (a side effect that happened before a crash).

    Args:
        line: the line
        flag: file name under the workspace
    """
    with (Path(ctx.workspace) / "log.txt").open("a", encoding="utf-8") as fh:
        fh.write(line + "\\n")
    path = Path(ctx.workspace) / flag
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"line": line}

def pure(n: int) -> int:
    return n + 1

TOOLS = [append, gate, append_then_gate]
'''

FLOW = '''
def flow(risky: bool) -> "Workflow":
    from emergent.workflows import Workflow
    wf = Workflow.build("killme")
    a1 = wf.tool("a1", "test.append", args={"line": "a1"})
    a2 = wf.tool("a2", "test.append", args={"line": "a2"}, needs=[a1.id])
    p = wf.call("p", pure, args={"n": 1}, needs=[a1.id])
    if risky:
        mid = wf.tool("mid", "test.append_then_gate", args={"line": "mid", "flag": "go"}, needs=[a2.id])
    else:
        mid = wf.tool("mid", "test.gate", args={"flag": "go"}, needs=[a2.id])
    wf.tool("a3", "test.append", args={"line": "a3"}, needs=[mid.id, p.id])
    return wf
'''

CHILD = TOOLS + FLOW + '''
import json, sys
from emergent import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing")
ws.tools.add(*TOOLS)
run_id = ws.workflows.start(flow(sys.argv[2] == "risky"), principal=ws.principal)
print(json.dumps({"run": run_id}), flush=True)
time.sleep(600)  # killed long before
'''


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _kill_mid_run(home: Path, mode: str) -> str:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), mode], stdout=subprocess.PIPE, text=True,
                             env=os.environ.copy())
    try:
        run_id = json.loads(child.stdout.readline())["run"]  # type: ignore[union-attr]
        with Workstation.open(home, embedder="hashing") as ws:
            deadline = time.monotonic() + 60
            while ws.workflows.get(run_id).step("mid").status != "running":
                assert time.monotonic() < deadline, "the child never reached the middle step"
                time.sleep(0.02)
            time.sleep(0.1)  # the middle step is inside its tool now
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    return str(run_id)


def test_a_run_killed_with_sigkill_resumes_without_rerunning_a_completed_side_effect(home: Path) -> None:
    run_id = _kill_mid_run(home, "safe")
    log = home / "log.txt"
    assert _lines(log) == ["a1", "a2"]
    (home / "go").write_text("")
    scope: dict[str, Any] = {}
    exec(TOOLS + FLOW, scope)  # noqa: S102 - the same tool code the child ran
    with Workstation.open(home, embedder="hashing") as ws:
        ws.tools.add(*scope["TOOLS"])
        before = ws.workflows.get(run_id)
        assert before.status == "running" and before.step("a2").status == "completed"
        run = ws.workflows.resume(run_id, principal=ws.principal, workflow=scope["flow"](False), timeout=60)
        assert run.status == "completed", run.error
        assert run.step("a1").attempt == 1 and run.step("a2").attempt == 1
        assert run.step("mid").attempt == 2  # read-only: safe to run again
        resumed = [e for e in ws.audit.entries(kind="workflow.run.resume") if e.data["run"] == run_id]
        assert resumed and resumed[0].data["after"] == "abandoned"
    assert _lines(log) == ["a1", "a2", "a3"]  # every side effect exactly once


def test_a_killed_step_that_may_have_taken_effect_is_not_run_again(home: Path) -> None:
    run_id = _kill_mid_run(home, "risky")
    log = home / "log.txt"
    assert _lines(log) == ["a1", "a2", "mid"]
    (home / "go").write_text("")
    scope: dict[str, Any] = {}
    exec(TOOLS + FLOW, scope)  # noqa: S102
    with Workstation.open(home, embedder="hashing") as ws:
        ws.tools.add(*scope["TOOLS"])
        run = ws.workflows.resume(run_id, principal=ws.principal, workflow=scope["flow"](True), timeout=60)
        assert run.status == "failed"
        assert "step 'mid' was interrupted while running" in run.error and "not run again" in run.error
    assert _lines(log) == ["a1", "a2", "mid"]


# ---------------------------------------------------------------- approvals
@pytest.fixture
def gated(wsx: Any, agent: Any) -> Any:
    """``agent:researcher`` may append and undo (no confidence asked), but publishing asks a person."""
    from emergent.tools import SideEffect, tool

    @tool(name="test.publish", version="1.0.0", side_effect=SideEffect.EXTERNAL)
    def publish(text: str) -> dict:
        """Publish something (external: an agent is asked about).

        Args:
            text: what
        """
        return {"published": text}

    wsx.tools.add(publish)
    me = wsx.principal
    wsx.autonomy.add_rule("agent:researcher", "test.append", "allow", by=me)
    wsx.autonomy.add_rule("agent:researcher", "test.unappend", "allow", by=me)
    wsx.autonomy.set_threshold("write", 0.0, by=me)
    return wsx


def _saga() -> Workflow:
    wf = Workflow.build("publishing")
    a = wf.tool("draft", "test.append", args={"line": "draft"},
                compensate={"tool": "test.unappend", "args": {"line": "${steps.draft.output.line}"}})
    wf.tool("publish", "test.publish", args={"text": "${steps.draft.output.line}"})
    wf.tool("after", "test.append", args={"line": "after"}, needs=["publish", a.id])
    return wf.done()


def test_an_agents_tool_step_waits_for_approval_and_completes_once_approved(gated: Any, agent: Any) -> None:
    ws, log = gated, Path(gated.path) / "log.txt"
    run = ws.workflows.run(_saga(), principal=agent, timeout=20)
    assert run.status == "waiting_approval"
    step = run.step("publish")
    assert step.status == "waiting_approval" and step.approval_id
    assert run.step("after").status == "pending" and _lines(log) == ["draft"]
    assert ws.autonomy.approvals.get(step.approval_id).actor == "agent:researcher"
    still = ws.workflows.resume(run.id, principal=ws.principal, timeout=20)
    assert still.status == "waiting_approval"  # nobody decided yet: nothing ran
    ws.autonomy.approvals.approve(step.approval_id, by=ws.principal, reason="fine")
    done = ws.workflows.resume(run.id, principal=ws.principal, timeout=20)
    assert done.status == "completed", done.error
    assert done.step("publish").output == {"published": "draft"}
    assert _lines(log) == ["draft", "after"]


def test_a_rejected_approval_fails_the_step_and_compensates(gated: Any, agent: Any) -> None:
    ws, log = gated, Path(gated.path) / "log.txt"
    run = ws.workflows.run(_saga(), principal=agent, timeout=20)
    aid = run.step("publish").approval_id
    ws.autonomy.approvals.reject(aid, by=ws.principal, reason="not today")
    done = ws.workflows.resume(run.id, principal=ws.principal, timeout=20)
    assert done.status == "failed" and "step 'publish'" in done.error and "not today" in done.error
    assert done.step("draft").status == "compensated"
    assert _lines(log) == ["draft", "undo draft"]


def test_a_run_resumed_with_other_steps_under_the_same_name_is_refused(gated: Any, agent: Any) -> None:
    from emergent.errors import ValidationError

    ws, log = gated, Path(gated.path) / "log.txt"
    run = ws.workflows.run(_saga(), principal=agent, timeout=20)
    ws.autonomy.approvals.approve(run.step("publish").approval_id, by=ws.principal, reason="fine")
    other = Workflow.build("publishing")  # same name, a step the run never started with (nor audited)
    other.tool("draft", "test.append", args={"line": "draft"})
    other.tool("publish", "test.publish", args={"text": "draft"})
    other.tool("after", "test.append", args={"line": "something else entirely"}, needs=["publish", "draft"])
    with pytest.raises(ValidationError, match="step 'draft' differs"):
        ws.workflows.resume(run.id, principal=ws.principal, workflow=other.done(), timeout=20)
    done = ws.workflows.resume(run.id, principal=ws.principal, workflow=_saga(), timeout=20)  # its own: fine
    assert done.status == "completed" and _lines(log) == ["draft", "after"]


def test_a_run_is_driven_by_one_process_at_a_time(wsx: Any) -> None:
    """A second service (another owner, as another process would be) may not take over a run whose lease
    is held by a live owner; once that run stops it may."""
    from emergent.errors import UsageError
    from emergent.workflows.service import Workflows

    other = Workflows(wsx.sql, services=wsx.workflows.services, audit=wsx.audit, clock=wsx.clock)
    try:
        wf = Workflow.build("leased")
        wf.tool("slow", "test.wait", args={"seconds": 0.5})
        run_id = wsx.workflows.start(wf, principal=wsx.principal)
        with pytest.raises(UsageError, match=f"workflow run {run_id} is being driven by"):
            other.resume(run_id, principal=wsx.principal)
        wsx.workflows.pause(run_id, by=wsx.principal)
        assert wsx.workflows.wait(run_id, timeout=10).status == "paused"
        assert other.resume(run_id, principal=wsx.principal, timeout=10).status == "completed"
    finally:
        other.close()


def test_a_pause_or_cancel_written_by_another_process_stops_the_driver(wsx: Any) -> None:
    from emergent.errors import UsageError
    from emergent.workflows.service import Workflows

    log = Path(wsx.path) / "log.txt"
    other = Workflows(wsx.sql, services=wsx.workflows.services, audit=wsx.audit, clock=wsx.clock)
    try:
        wf = Workflow.build("remote")
        s = wf.tool("slow", "test.wait", args={"seconds": 1.2})
        wf.tool("after", "test.append", args={"line": "after"}, needs=[s.id])
        run_id = wsx.workflows.start(wf, principal=wsx.principal)
        other.pause(run_id, by=wsx.principal)  # no driver there: written to the run's row
        run = wsx.workflows.wait(run_id, timeout=10)
        assert run.status == "paused" and run.step("after").status == "pending"
        assert _lines(log) == []
        with pytest.raises(UsageError, match="is paused, not running: there is nothing to pause"):
            other.pause(run_id, by=wsx.principal)
        other.cancel(run_id, by=wsx.principal)
        assert wsx.workflows.get(run_id).status == "cancelled"
        assert wsx.workflows.resume(run_id, principal=wsx.principal).status == "cancelled"
    finally:
        other.close()


# ---------------------------------------------------------------- killed while compensating
COMP_TOOLS = TOOLS.replace("TOOLS = [append, gate, append_then_gate]", '''
@tool(name="test.append_then_fail", version="1.0.0", side_effect=SideEffect.WRITE)
def append_then_fail(line: str, ctx: ToolContext) -> dict:
    """Append a line, then fail (a step whose failure makes the run compensate).

    Args:
        line: the line
    """
    with (Path(ctx.workspace) / "log.txt").open("a", encoding="utf-8") as fh:
        fh.write(line + "\\n")
    raise RuntimeError("failed after writing")

@tool(name="test.gate_then_append", version="1.0.0", side_effect=SideEffect.WRITE)
def gate_then_append(line: str, flag: str, ctx: ToolContext) -> dict:
    """Wait for the flag, then append a line (a compensation that is still waiting when killed).

    Args:
        line: the line
        flag: file name under the workspace
    """
    path = Path(ctx.workspace) / flag
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    with (Path(ctx.workspace) / "log.txt").open("a", encoding="utf-8") as fh:
        fh.write(line + "\\n")
    return {"line": line}

TOOLS = [append, gate, append_then_gate, append_then_fail, gate_then_append]
''')

COMP_FLOW = '''
def flow() -> "Workflow":
    from emergent.workflows import Workflow
    wf = Workflow.build("undo-me")
    a1 = wf.tool("a1", "test.append", args={"line": "a1"},
                 compensate={"tool": "test.gate_then_append", "args": {"line": "undo a1", "flag": "go"}})
    a2 = wf.tool("a2", "test.append", args={"line": "a2"}, needs=[a1.id],
                 compensate={"tool": "test.append", "args": {"line": "undo a2"}})
    wf.tool("boom", "test.append_then_fail", args={"line": "boom"}, needs=[a2.id])
    return wf
'''

COMP_CHILD = COMP_TOOLS + COMP_FLOW + '''
import json, sys
from emergent import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing")
ws.tools.add(*TOOLS)
run_id = ws.workflows.start(flow(), principal=ws.principal)
print(json.dumps({"run": run_id}), flush=True)
time.sleep(600)  # killed long before
'''


def test_a_run_killed_while_compensating_resumes_compensating_without_rerunning_what_failed_or_was_undone(
        home: Path) -> None:
    log = home / "log.txt"
    child = subprocess.Popen([sys.executable, "-c", COMP_CHILD, str(home)], stdout=subprocess.PIPE, text=True,
                             env=os.environ.copy())
    try:
        run_id = json.loads(child.stdout.readline())["run"]  # type: ignore[union-attr]
        deadline = time.monotonic() + 60
        while _lines(log) != ["a1", "a2", "boom", "undo a2"]:  # a2 undone; a1's undo waits for the flag
            assert time.monotonic() < deadline, _lines(log)
            time.sleep(0.02)
        time.sleep(0.2)  # the compensated row of a2 is written right after its tool returns
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    (home / "go").write_text("")
    scope: dict[str, Any] = {}
    exec(COMP_TOOLS + COMP_FLOW, scope)  # noqa: S102 - the same tool code the child ran
    with Workstation.open(home, embedder="hashing") as ws:
        ws.tools.add(*scope["TOOLS"])
        run = ws.workflows.resume(run_id, principal=ws.principal, timeout=60)
        assert run.status == "failed"
        assert run.step("a2").status == "compensated" and run.step("a1").status == "compensated"
        assert run.step("boom").status == "failed"
    # the failed step is not run again, the undone one neither run nor undone again; a1's undo runs once
    assert _lines(log) == ["a1", "a2", "boom", "undo a2", "undo a1"]


def test_a_run_still_finishing_its_steps_after_a_pause_is_not_resumed_by_another_process(
        home: Path, tmp_path: Path) -> None:
    from emergent.errors import UsageError

    scope: dict[str, Any] = {}
    exec(TOOLS + FLOW, scope)  # noqa: S102
    with Workstation.open(home, embedder="hashing") as ws, Workstation.open(home, embedder="hashing") as other:
        ws.tools.add(*scope["TOOLS"])
        other.tools.add(*scope["TOOLS"])
        run_id = ws.workflows.start(scope["flow"](True), principal=ws.principal)
        deadline = time.monotonic() + 60
        while ws.workflows.get(run_id).step("mid").status != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        other.workflows.pause(run_id, by=other.principal)  # from elsewhere: the driver finishes 'mid' first
        with pytest.raises(UsageError, match="pausing"):
            other.workflows.resume(run_id, principal=other.principal, workflow=scope["flow"](True), timeout=5)
        time.sleep(1.5)  # the driver sees a pause written elsewhere at its next lease renewal (<= 1 s)
        (home / "go").write_text("")
        paused = ws.workflows.wait(run_id, timeout=30)
        assert paused.status == "paused" and paused.step("mid").status == "completed"
        done = other.workflows.resume(run_id, principal=other.principal, workflow=scope["flow"](True), timeout=30)
        assert done.status == "completed"
    assert _lines(home / "log.txt") == ["a1", "a2", "mid", "a3"]  # 'mid' once
