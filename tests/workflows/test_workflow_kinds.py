"""Every kind of step on a real workstation: an assistant task (an Assistant run, offline), a notebook run
(the notebook.run tool through the gate, a real kernel), sub-workflows (inline and registered by name),
and Python calls; plus runs listed, shown and drawn."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import nbformat
import pytest

from emergent.errors import NotFoundError, PrincipalError, ValidationError
from emergent.workflows import Workflow


def shout(text: str) -> str:
    return text.upper()


def test_assistant_and_notebook_steps_run_through_the_gate_as_the_runs_principal(wsx: Any) -> None:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("open('doubled.txt', 'w').write(str(n * 2))")]
    (Path(wsx.path) / "files").mkdir(exist_ok=True)
    nbformat.write(nb, Path(wsx.path) / "files" / "double.ipynb")

    wf = Workflow.build("kinds", inputs={"n": 21})
    ask = wf.assistant("ask", "writer", "What do you know about ${inputs.n}?")
    wf.call("loud", shout, args={"text": ask.output["answer"]})
    wf.notebook("nb", "double.ipynb", parameters={"n": "${inputs.n}"}, args={"output": "runs/double-out.ipynb"},
                timeout_s=60)
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=90)
    assert run.status == "completed", run.error
    out = run.step("ask").output
    assert out["status"] == "completed" and out["mode"] == "offline" and out["answer"]
    assert wsx.assistant("writer").get(out["run_id"]).asked_by == wsx.principal.key
    assert run.step("loud").output == out["answer"].upper()
    assert run.step("nb").output["output"] == "runs/double-out.ipynb"
    assert (Path(wsx.path) / "files" / "doubled.txt").read_text() == "42"
    tool_calls = [e for e in wsx.audit.entries() if e.kind.startswith("tool.") and "notebook.run" in json.dumps(e.data)]
    assert tool_calls and all(e.actor == wsx.principal.key for e in tool_calls)


CHILD = """
name: child
inputs: {line: null}
steps:
  - id: write
    kind: tool
    tool: test.append
    args: {line: "${inputs.line}"}
outputs:
  written: ${steps.write.output.line}
"""


def test_sub_workflows_run_as_their_own_runs_inline_or_by_registered_name(wsx: Any) -> None:
    log = Path(wsx.path) / "log.txt"
    registered = wsx.workflows.register(CHILD, by=wsx.principal)
    assert registered.name == "child" and wsx.workflows.named("child").steps[0].id == "write"

    parent = Workflow.parse({"name": "parent", "inputs": {"x": "hello"}, "steps": [
        {"id": "byname", "kind": "workflow", "workflow": "child", "inputs": {"line": "${inputs.x}"}},
        {"id": "inline", "kind": "workflow", "workflow": Workflow.from_yaml(CHILD).to_data(),
         "inputs": {"line": "${steps.byname.output.written}-again"}},
    ], "outputs": {"last": "${steps.inline.output.written}"}})
    run = wsx.workflows.run(parent, principal=wsx.principal, timeout=30)
    assert run.status == "completed", run.error
    assert run.outputs == {"last": "hello-again"}
    assert log.read_text().splitlines() == ["hello", "hello-again"]
    children = [r for r in wsx.workflows.runs(limit=10) if r.parent == run.id]
    assert len(children) == 2 and all(c.status == "completed" for c in children)

    with pytest.raises(ValidationError, match="step 'x': field 'workflow': no workflow named 'ghost'"):
        wsx.workflows.start({"name": "p2", "steps": [{"id": "x", "kind": "workflow", "workflow": "ghost"}]},
                            principal=wsx.principal)
    with pytest.raises(NotFoundError, match="no workflow named 'ghost'"):
        wsx.workflows.named("ghost")


def test_a_paused_run_of_python_calls_resumes_by_importing_its_functions(wsx: Any) -> None:
    wf = Workflow.build("calls", inputs={"t": "abc"})
    a = wf.call("a", shout, args={"text": "${inputs.t}"})
    wf.tool("slow", "test.wait", args={"seconds": 0.4, "value": a.output})
    wf.call("b", shout, args={"text": "${steps.slow.output}!"})
    run_id = wsx.workflows.start(wf, principal=wsx.principal)
    wsx.workflows.pause(run_id, by=wsx.principal)
    paused = wsx.workflows.wait(run_id, timeout=10)
    assert paused.status == "paused"
    done = wsx.workflows.resume(run_id, principal=wsx.principal, timeout=10)  # no workflow= needed
    assert done.status == "completed" and done.step("b").output == "ABC!"


def test_a_lambda_call_step_needs_the_workflow_again_to_resume(wsx: Any) -> None:
    wf = Workflow.build("lam")
    wf.tool("slow", "test.wait", args={"seconds": 0.3, "value": 2})
    wf.call("double", lambda x: x * 2, args={"x": "${steps.slow.output}"})
    run_id = wsx.workflows.start(wf, principal=wsx.principal)
    wsx.workflows.pause(run_id, by=wsx.principal)
    assert wsx.workflows.wait(run_id, timeout=10).status == "paused"
    with pytest.raises(ValidationError, match="step 'double': field 'fn'.*pass the workflow again"):
        wsx.workflows.resume(run_id, principal=wsx.principal)
    done = wsx.workflows.resume(run_id, principal=wsx.principal, workflow=wf, timeout=10)
    assert done.status == "completed" and done.step("double").output == 4


def test_only_the_runs_principal_or_a_person_controls_a_run(wsx: Any, agent: Any) -> None:
    other = wsx.principals.agent("other", created_by=wsx.principal)
    wf = Workflow.build("mine")
    wf.tool("slow", "test.wait", args={"seconds": 0.3})
    run_id = wsx.workflows.start(wf, principal=agent)
    with pytest.raises(PrincipalError, match="agent:other may not cancel"):
        wsx.workflows.cancel(run_id, by=other)
    run = wsx.workflows.wait(run_id, timeout=10)
    assert run.status == "completed" and run.principal == "agent:researcher"
    assert run.to_dict()["steps"][0]["key"] == "slow"
    assert [r.id for r in wsx.workflows.runs(status="completed")][:1] == [run_id]


def test_an_agents_assistant_step_is_a_delegation_the_policy_decides(wsx: Any, agent: Any) -> None:
    me = wsx.principal
    wf = Workflow.build("handover")
    wf.assistant("ask", "critic", "review this")
    minted = wsx.workflows.run(wf, principal=agent, timeout=20)  # critic does not exist: only a person creates it
    assert minted.status == "failed" and "only a person creates agents" in minted.error
    with pytest.raises(NotFoundError):
        wsx.principals.get("agent:critic")

    wsx.assistant("critic")  # the person creates it
    waiting = wsx.workflows.run(wf, principal=agent, timeout=20)  # no rule: the policy asks a person
    assert waiting.status == "waiting_approval"
    aid = waiting.step("ask").approval_id
    assert wsx.autonomy.approvals.get(aid).tool == "agents.delegate"
    wsx.autonomy.approvals.approve(aid, by=me, reason="ok")
    done = wsx.workflows.resume(waiting.id, principal=me, timeout=20)
    assert done.status == "completed" and done.step("ask").output["status"] == "completed"

    wsx.autonomy.add_rule("agent:researcher", "agents.delegate", "deny", resource="agent:critic", by=me)
    denied = wsx.workflows.run(wf, principal=agent, timeout=20)
    assert denied.status == "failed" and "may not hand work to agent:critic" in denied.error


def test_an_agent_cannot_replace_what_a_person_saved_or_shadow_a_template(wsx: Any, agent: Any) -> None:
    wsx.workflows.register(CHILD, by=wsx.principal)
    with pytest.raises(PrincipalError, match="may not replace workflow 'child'"):
        wsx.workflows.register(CHILD, by=agent)
    if wsx.workflows.templates():
        name = wsx.workflows.templates()[0].name
        with pytest.raises(PrincipalError, match="a template"):
            wsx.workflows.register(CHILD.replace("name: child", f"name: {name}"), by=agent)
    mine = wsx.workflows.register(CHILD.replace("name: child", "name: agents-own"), by=agent)
    assert wsx.workflows.register(mine, by=agent).name == "agents-own"  # its own: fine
    py = Workflow.build("agents-python")
    py.call("c", shout, args={"text": "x"})
    with pytest.raises(PrincipalError, match="may not save call step 'c'"):
        wsx.workflows.register(py, by=agent)  # Python a person would later run as themselves


def test_sub_workflow_recursion_is_refused_before_anything_runs(wsx: Any) -> None:
    me = wsx.principal
    wsx.workflows.register({"name": "ping", "steps": [{"id": "p", "kind": "workflow", "workflow": "pong"}]}, by=me)
    with pytest.raises(ValidationError):  # pong does not exist yet
        wsx.workflows.start("ping", principal=me)
    wsx.workflows.register({"name": "pong", "steps": [{"id": "q", "kind": "workflow", "workflow": "ping"}]}, by=me)
    with pytest.raises(ValidationError, match="sub-workflow cycle: ping → pong → ping"):
        wsx.workflows.start("ping", principal=me)


def test_a_fan_out_over_sub_workflows_wider_than_the_step_pool_completes(wsx: Any) -> None:
    """Sub-workflow steps do not hold a thread of the engine's pool while their child runs: six of them on
    a two-thread pool, each child with a tool step, complete (they would starve the pool otherwise)."""
    from emergent.workflows.service import Workflows

    small = Workflows(wsx.sql, services=wsx.workflows.services, audit=wsx.audit, clock=wsx.clock, max_workers=2)
    try:
        child = {"name": "leaf", "inputs": {"v": None},
                 "steps": [{"id": "w", "kind": "tool", "tool": "test.wait", "args": {"seconds": 0.05, "value": "${inputs.v}"}}],
                 "outputs": {"v": "${steps.w.output}"}}
        wf = Workflow.parse({"name": "wide", "inputs": {"items": list(range(6))}, "steps": [
            {"id": "sub", "kind": "workflow", "workflow": child, "inputs": {"v": "${item}"},
             "foreach": "${inputs.items}"}], "outputs": {"all": "${steps.sub.output}"}})
        run = small.run(wf, principal=wsx.principal, timeout=30)
        assert run.status == "completed", run.error
        assert run.outputs == {"all": [{"v": i} for i in range(6)]}
    finally:
        small.close()


def test_a_sub_workflow_step_retried_after_a_timeout_waits_for_the_same_child_run(wsx: Any) -> None:
    log = Path(wsx.path) / "log.txt"
    child = {"name": "slowchild", "steps": [
        {"id": "w", "kind": "tool", "tool": "test.wait", "args": {"seconds": 0.7}},
        {"id": "a", "kind": "tool", "tool": "test.append", "args": {"line": "child ran"}, "needs": ["w"]}]}
    wf = Workflow.parse({"name": "impatient", "steps": [
        {"id": "sub", "kind": "workflow", "workflow": child, "timeout_s": 0.5, "retries": 1}]})
    run = wsx.workflows.run(wf, principal=wsx.principal, timeout=30)
    assert run.status == "completed", run.error
    assert run.step("sub").attempt == 2
    assert log.read_text().splitlines() == ["child ran"]  # one child run, not two
    assert len([r for r in wsx.workflows.runs(limit=10) if r.parent == run.id]) == 1


def test_closing_the_service_pauses_a_run_and_its_sub_workflow_and_both_resume(wsx: Any) -> None:
    from emergent.workflows.service import Workflows

    log = Path(wsx.path) / "log.txt"
    first = Workflows(wsx.sql, services=wsx.workflows.services, audit=wsx.audit, clock=wsx.clock)
    child = {"name": "inner", "steps": [
        {"id": "w", "kind": "tool", "tool": "test.wait", "args": {"seconds": 0.4}},
        {"id": "a", "kind": "tool", "tool": "test.append", "args": {"line": "inner"}, "needs": ["w"]}]}
    wf = Workflow.parse({"name": "outer", "steps": [
        {"id": "sub", "kind": "workflow", "workflow": child},
        {"id": "b", "kind": "tool", "tool": "test.append", "args": {"line": "outer"}, "needs": ["sub"]}]})
    run_id = first.start(wf, principal=wsx.principal)
    deadline = time.monotonic() + 10
    while not [r for r in first.runs(limit=5) if r.parent == run_id]:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    first.close()  # as ws.close() does: live runs pause, their running steps finish first
    assert wsx.workflows.get(run_id).status == "paused"
    inner = [r for r in wsx.workflows.runs(limit=5) if r.parent == run_id][0]
    assert inner.status == "paused" and inner.step("a").status == "pending"  # paused mid-way, not finished
    assert not log.exists()
    done = wsx.workflows.resume(run_id, principal=wsx.principal, timeout=20)
    assert done.status == "completed", done.error
    assert log.read_text().splitlines() == ["inner", "outer"]
