"""Adversarial tests of workflows (emergent/workflows) and agents (emergent/agents), issue 14.

Each test is one attack, named after it: a principal claimed by name (in a spec, inputs or a bus
payload), an agent acting on someone else's run, task, vote or proposals, Python smuggled into a
YAML spec, references reaching for attributes or other runs, an audit trail that cannot be
written, steps that raise, hang or return garbage, specs too big or too deep, recursion between
sub-workflows, a bus fed non-JSON or 10 MB, a consumer that never acknowledges, and every CLI
command given a wrong id or a bad file. A passing test is an attack that held (kept so it keeps
holding); a test marked ``xfail(strict=True, reason="DEFECT: ...")`` is one that got through
(reported to the owners; the mark goes when it is fixed).

Everything is real: one workstation per module (SQLite, the audit chain, the tool gate, the
autonomy policy, offline assistants), real subprocesses for the probes that would hang a process.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest

from emergent import Workstation
from emergent.errors import (
    AuditWriteError,
    NotFoundError,
    PermissionDenied,
    PrincipalError,
    ValidationError,
)
from emergent.principals import Principal
from emergent.tools import SideEffect, ToolContext, tool
from emergent.workflows import Workflow

# ---------------------------------------------------------------------------- tools with visible effects


@tool(name="atk.append", version="1.0.0", side_effect=SideEffect.WRITE)
def atk_append(line: str, ctx: ToolContext) -> dict:
    """Append a line to atk.log in the workspace (a side effect a test can count).

    Args:
        line: the line
    """
    with (Path(ctx.workspace) / "atk.log").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return {"line": line}


@tool(name="atk.wait", version="1.0.0", side_effect=SideEffect.READ)
def atk_wait(seconds: float, value: Any = None) -> Any:
    """Sleep, then return the value (a slow read-only step).

    Args:
        seconds: how long
        value: what to return
    """
    time.sleep(seconds)
    return value


@tool(name="atk.boom", version="1.0.0", side_effect=SideEffect.READ)
def atk_boom() -> dict:
    """Always fails."""
    raise RuntimeError("boom")


# ---------------------------------------------------------------------------- call-step functions


def give_secret() -> dict:
    return {"k": "SECRET"}


def ident(x: Any) -> Any:
    return x


def raises() -> None:
    raise RuntimeError("kaboom")


MARKUP = "[/bold] [green]completed[/green] <script>alert(1)</script> <img src=x onerror=alert(2)>"


def raises_markup() -> None:
    raise RuntimeError(MARKUP)


def sleeps(s: float) -> float:
    time.sleep(s)
    return s


def leave_mark(path: str) -> str:
    Path(path).write_text("python of an agent's saved workflow ran in this process", encoding="utf-8")
    return path


def exits() -> None:
    raise SystemExit(3)


def interrupts() -> None:
    raise KeyboardInterrupt


def recurses(n: int = 0) -> int:
    return recurses(n + 1)


def gives_object() -> Any:
    return object()


def gives_nan() -> float:
    return float("nan")


def gives_text() -> str:
    return "text"


def listing(n: int) -> list[int]:
    return list(range(n))


def total(xs: list[int]) -> int:
    return sum(xs)


# ---------------------------------------------------------------------------- probes run in their own process
# (a defect there would hang this process: a deadlocked thread pool keeps the interpreter from exiting)

_PROBE = textwrap.dedent("""
    import os, sys, threading, time
    from emergent import Workstation
    from emergent.errors import EmergentError, TimeoutExceeded
    from emergent.workflows import Workflow
    ws = Workstation.open(sys.argv[1], embedder="hashing", create=True)
    me = ws.principal
    _ = ws.workflows

    def dask():  # an unreachable scheduler (its client waits 10 s: run beside the other probe)
        wf = Workflow.build("x")
        wf.call("a", len, args={"obj": "abc"})
        t = time.monotonic()
        try:
            ws.workflows.start(wf, principal=me, executor="dask://127.0.0.1:1")
            print("DASK STARTED", flush=True)
        except EmergentError as exc:
            print("DASK REFUSED", type(exc).__name__, round(time.monotonic() - t, 1), exc.message, flush=True)
        except BaseException as exc:
            print("DASK RAW", type(exc).__name__, round(time.monotonic() - t, 1), exc, flush=True)

    th = threading.Thread(target=dask, daemon=True)
    th.start()
    ws.workflows.register({"name": "ping", "steps": [{"id": "p", "kind": "workflow", "workflow": "pong"}]}, by=me)
    ws.workflows.register({"name": "pong", "steps": [{"id": "q", "kind": "workflow", "workflow": "ping"}]}, by=me)
    t = time.monotonic()
    try:
        run = ws.workflows.run("ping", principal=me, timeout=4)
        print("REC RESULT", run.status, round(time.monotonic() - t, 2), run.error, flush=True)
    except TimeoutExceeded:
        print("REC HANG", len(ws.workflows._live), "runs stuck", flush=True)
    except EmergentError as exc:
        print("REC REFUSED", type(exc).__name__, exc.message, flush=True)
    th.join(30)
    os._exit(0)
""")


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """Probes that would hang this process, run in their own, started at once beside the other tests:
    sub-workflow recursion, an unreachable dask scheduler. ``probe["REC"]`` / ``probe["DASK"]`` (read lazily)."""
    root = tmp_path_factory.mktemp("probe")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMERGENT_")}
    env.update(HF_HUB_OFFLINE="1", EMERGENT_AUDIT_DIR=str(root / "anchor"))
    proc = subprocess.Popen([sys.executable, "-c", _PROBE, str(root / "home")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    results: dict[str, str] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, key: str) -> str:
            if not results:
                try:
                    out, err = proc.communicate(timeout=45)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    out, err = proc.communicate()
                    err = "the probe did not end: " + err
                for ln in out.splitlines():
                    head, _, rest = ln.partition(" ")
                    results[head] = rest
                results.setdefault("_err", err[-800:])
            return results.get(key, f"NO OUTPUT (rc {proc.returncode}): {results.get('_err')}")

    yield Lazy()
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# ---------------------------------------------------------------------------- the workstation


@pytest.fixture(scope="module")
def mws(tmp_path_factory: pytest.TempPathFactory, probe: Any) -> Iterator[Workstation]:
    root = tmp_path_factory.mktemp("attack-ws")
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("EMERGENT_") and key != "EMERGENT_TEST_POSTGRES_URL":
                mp.delenv(key)
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("EMERGENT_AUDIT_DIR", str(root / "anchor"))
        ws = Workstation.open(root / "home", embedder="hashing", create=True)
        ws.tools.add(atk_append, atk_wait, atk_boom)
        me = ws.principal
        for name, skills in (("scout", ["search", "literature"]), ("stats", ["stats"]), ("critic", ["review"])):
            ws.agents.register(name, skills=skills, description=f"{name} of the attack team", by=me)
        for name in ("alice", "bob", "carol"):
            ws.principals.agent(name, created_by=me)
        try:
            yield ws
        finally:
            ws.close()


@pytest.fixture
def log(mws: Workstation) -> Iterator[Path]:
    path = Path(mws.path) / "atk.log"
    path.unlink(missing_ok=True)
    yield path
    path.unlink(missing_ok=True)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def agent(ws: Workstation, name: str) -> Principal:
    return ws.principals.agent(name)  # type: ignore[no-any-return]


def broken_audit(ws: Workstation, monkeypatch: pytest.MonkeyPatch, when: Callable[[str, dict[str, Any]], bool]) -> None:
    """The audit trail refuses entries ``when(kind, data)`` says (as a full disk or a lost database would)."""
    real = ws.audit.append

    def append(kind: str, principal: Any, data: dict[str, Any], *, durable: bool = False) -> None:
        if when(kind, data):
            raise AuditWriteError(f"the audit database is gone (attack on {kind})")
        real(kind, principal, data, durable=durable)

    monkeypatch.setattr(ws.audit, "append", append)


def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def bodies_on(ws: Workstation, stream: str) -> list[dict[str, Any]]:
    return [m.body for m in ws.agents.messages(stream, limit=1000)]


# ============================================================================ identity: workflows


def test_attack_a_principal_named_in_a_spec_or_in_inputs_is_not_who_acts(mws: Workstation, log: Path) -> None:
    me, alice = mws.principal, agent(mws, "alice")
    for spec in ({"name": "x", "principal": me.key, "steps": [{"id": "a", "kind": "tool", "tool": "atk.append"}]},
                 {"name": "x", "steps": [{"id": "a", "kind": "tool", "tool": "atk.append", "principal": me.key}]},
                 {"name": "x", "steps": [{"id": "a", "kind": "tool", "tool": "atk.append", "as": me.key}]}):
        with pytest.raises(ValidationError, match="principal|field 'as'"):
            Workflow.parse(spec)
    wf = Workflow.parse({"name": "claims", "inputs": {"principal": None, "sender": None},
                         "steps": [{"id": "w", "kind": "tool", "tool": "atk.append",
                                    "args": {"line": "${inputs.principal} via ${inputs.sender}"}}]})
    for fake in (me.key, "user:root", Principal(me.kind, me.id)):  # a name; a hand-built twin
        with pytest.raises((PrincipalError, ValidationError)):
            mws.workflows.start(wf, {"principal": me.key, "sender": me.key}, principal=fake)
    run = mws.workflows.run(wf, {"principal": me.key, "sender": me.key}, principal=alice, timeout=20)
    assert run.principal == alice.key
    assert run.status == "waiting_approval", run.error  # an agent's write is asked, whatever the inputs claim
    approval = mws.autonomy.approvals.get(run.step("w").approval_id)
    assert approval.actor == alice.key and lines(log) == []
    # a person approves and resumes it: the step still acts as alice, not with the person's trust
    mws.autonomy.approvals.approve(approval.id, by=me, reason="attack test")
    done = mws.workflows.resume(run.id, principal=me, timeout=20)
    assert done.status == "completed" and lines(log) == [f"{me.key} via {me.key}"]
    calls = [e for e in mws.audit.entries(kind="tool.call") if f"{me.key} via" in json.dumps(e.data)]
    assert calls and {e.actor for e in calls} == {alice.key}
    steps = [e for e in mws.audit.entries(kind="workflow.step") if e.data.get("run") == run.id]
    assert steps and {e.actor for e in steps} == {alice.key}


def test_attack_a_sub_workflow_a_person_registered_runs_as_the_agent_that_started_it(
        mws: Workstation, log: Path) -> None:
    me, bob = mws.principal, agent(mws, "bob")
    mws.workflows.register({"name": "trusted-child", "inputs": {"line": None},
                            "steps": [{"id": "w", "kind": "tool", "tool": "atk.append",
                                       "args": {"line": "${inputs.line}"}}]}, by=me)
    parent = {"name": "climb", "steps": [{"id": "c", "kind": "workflow", "workflow": "trusted-child",
                                          "inputs": {"line": "escalated"}},
                                         {"id": "i", "kind": "workflow", "inputs": {"line": "inline"},
                                          "workflow": {"name": "inl", "inputs": {"line": None}, "steps": [
                                              {"id": "w", "kind": "tool", "tool": "atk.append",
                                               "args": {"line": "${inputs.line}"}}]}}]}
    run = mws.workflows.run(parent, principal=bob, timeout=20)
    assert run.status == "waiting_approval", run.error
    children = [r for r in mws.workflows.runs(limit=50) if r.parent == run.id]
    assert len(children) == 2 and {c.principal for c in children} == {bob.key}
    for c in children:
        a = mws.autonomy.approvals.get(c.step("w").approval_id)
        assert a.actor == bob.key
        mws.autonomy.approvals.reject(a.id, by=me, reason="attack test")
    assert lines(log) == []


def test_attack_an_agent_may_not_pause_cancel_or_resume_a_run_of_someone_else(mws: Workstation, log: Path) -> None:
    me, alice, bob = mws.principal, agent(mws, "alice"), agent(mws, "bob")
    wf = Workflow.build("someone-elses")
    s = wf.tool("slow", "atk.wait", args={"seconds": 0.4, "value": 1})
    wf.tool("after", "atk.wait", args={"seconds": 0.01, "value": 2}, needs=[s.id])
    run_id = mws.workflows.start(wf, principal=me)
    for act in (mws.workflows.pause, mws.workflows.cancel):
        with pytest.raises(PrincipalError, match="agent:alice may not"):
            act(run_id, by=alice)
    done = mws.workflows.wait(run_id, timeout=20)
    assert done.status == "completed", done.error
    # a run of bob that waits for a person: alice may not resume, pause or cancel it
    wb = Workflow.build("bobs")
    wb.tool("w", "atk.append", args={"line": "bob's"})
    bobs = mws.workflows.run(wb, principal=bob, timeout=20)
    assert bobs.status == "waiting_approval"
    mws.autonomy.approvals.approve(bobs.step("w").approval_id, by=me, reason="attack test")
    with pytest.raises(PrincipalError, match="agent:alice may not resume"):
        mws.workflows.resume(bobs.id, principal=alice, timeout=20)
    with pytest.raises(PrincipalError):
        mws.workflows.cancel(bobs.id, by=alice)
    assert lines(log) == [] and mws.workflows.get(bobs.id).status == "waiting_approval"
    after = mws.workflows.resume(bobs.id, principal=bob, timeout=20)
    assert after.status == "completed" and lines(log) == ["bob's"]
    tool_runs = [e for e in mws.audit.entries(kind="tool.call") if "bob's" in json.dumps(e.data)]
    assert tool_runs and {e.actor for e in tool_runs} == {bob.key}


def test_attack_a_step_the_policy_denies_is_refused_once_and_not_retried(mws: Workstation, log: Path) -> None:
    me, carol = mws.principal, agent(mws, "carol")
    mws.autonomy.add_rule("agent:carol", "atk.append", "deny", by=me)
    wf = Workflow.build("denied-retries")
    wf.tool("w", "atk.append", args={"line": "denied"}, retries=5, retry_delay_s=0.01)
    run = mws.workflows.run(wf, principal=carol, timeout=20)
    assert run.status == "failed" and run.step("w").attempt == 1, (run.step("w").attempt, run.error)
    assert "agent:carol" in (run.error or "") and lines(log) == []


def test_attack_a_cancelled_run_does_not_act_when_its_pending_approval_is_granted_later(
        mws: Workstation, log: Path) -> None:
    me, bob = mws.principal, agent(mws, "bob")
    wf = Workflow.build("cancel-then-approve")
    wf.tool("w", "atk.append", args={"line": "after cancel"})
    run = mws.workflows.run(wf, principal=bob, timeout=20)
    assert run.status == "waiting_approval"
    mws.workflows.cancel(run.id, by=bob)
    assert mws.workflows.get(run.id).status == "cancelled"
    approval = run.step("w").approval_id
    if mws.autonomy.approvals.get(approval).status == "pending":  # (withdrawing it on cancel is better still)
        mws.autonomy.approvals.approve(approval, by=me, reason="attack test")
    again = mws.workflows.resume(run.id, principal=me, timeout=20)
    assert again.status == "cancelled" and lines(log) == []


def test_attack_an_assistant_step_does_not_hand_work_to_an_agent_the_policy_denies(mws: Workstation) -> None:
    me, alice = mws.principal, agent(mws, "alice")
    mws.autonomy.add_rule("agent:alice", "agents.delegate", "deny", resource="agent:critic", by=me)
    with pytest.raises(PermissionDenied):  # the direct route is refused ...
        mws.agents.delegate("review this", to="critic", by=alice)
    wf = Workflow.build("sidestep")
    wf.assistant("ask", "critic", "review this for alice")
    run = mws.workflows.run(wf, principal=alice, timeout=30)
    # ... and so is the side door: the step fails (or waits for a person), critic never runs for alice
    assert run.status in ("failed", "waiting_approval"), run.status
    assert run.step("ask").status != "completed"


def test_attack_an_agents_assistant_step_cannot_mint_a_new_agent_principal(mws: Workstation) -> None:
    alice = agent(mws, "alice")
    wf = Workflow.build("mint")
    wf.assistant("ask", "minted-by-alice", "hello")
    run = mws.workflows.run(wf, principal=alice, timeout=30)
    with pytest.raises(PrincipalError):
        mws.principals.agent("minted-by-alice")  # it must not exist: only a person creates agents
    assert run.status == "failed"


def test_attack_an_agent_cannot_replace_a_workflow_a_person_registered(mws: Workstation, log: Path) -> None:
    me, alice = mws.principal, agent(mws, "alice")
    mws.workflows.register({"name": "daily-notes", "steps": [{"id": "w", "kind": "tool", "tool": "atk.append",
                                                              "args": {"line": "person's step"}}]}, by=me)
    evil = {"name": "daily-notes", "steps": [{"id": "w", "kind": "tool", "tool": "atk.append",
                                              "args": {"line": "alice's step, run as the person"}}]}
    refused = 0
    try:
        mws.workflows.register(evil, by=alice)
    except (PermissionDenied, PrincipalError):
        refused += 1
    try:
        mws.workflows.register({**evil, "name": "incident_triage"}, by=alice)  # a template's name
    except (PermissionDenied, PrincipalError):
        refused += 1
    run = mws.workflows.run("daily-notes", principal=me, timeout=20)
    assert run.status == "completed", run.error
    assert lines(log) == ["person's step"]
    assert refused == 2


def test_attack_an_agent_cannot_save_python_call_steps_for_a_person_to_run(mws: Workstation, tmp_path: Path) -> None:
    me, alice = mws.principal, agent(mws, "alice")
    mark = tmp_path / "MARK"
    wf = Workflow.build("alice-helper")
    wf.call("c", leave_mark, args={"path": str(mark)})
    try:
        mws.workflows.register(wf, by=alice)
        saved = True
    except (PrincipalError, PermissionDenied, ValidationError):
        saved = False
    if saved:
        mws.workflows.run("alice-helper", principal=me, timeout=20)
    assert not saved and not mark.exists()


def test_attack_an_assistant_step_does_not_run_a_suspended_agent(mws: Workstation) -> None:
    me = mws.principal
    mws.agents.register("dozer", skills=["dozing"], description="dozes", by=me)
    mws.autonomy.suspend("agent:dozer", by=me, reason="attack test")
    with pytest.raises((PermissionDenied, PrincipalError)):
        mws.agents.delegate("doze", to="dozer", by=me)  # the direct route is refused ...
    wf = Workflow.build("wake-the-suspended")
    wf.assistant("a", "dozer", "doze for me")
    run = mws.workflows.run(wf, principal=me, timeout=30)
    assert run.status == "failed" and "suspended" in (run.error or ""), (run.status, run.error)  # ... and so this


def test_attack_a_person_resuming_an_agents_run_does_not_run_the_agents_python(
        mws: Workstation, tmp_path: Path, log: Path) -> None:
    me, alice = mws.principal, agent(mws, "alice")
    mark = tmp_path / "MARK"
    wf = Workflow.build("alice-run-with-python")
    w = wf.tool("w", "atk.append", args={"line": "alice's write"})
    wf.call("c", leave_mark, args={"path": str(mark)}, needs=[w.id])
    run = mws.workflows.run(wf, principal=alice, timeout=20)
    assert run.status == "waiting_approval"
    mws.autonomy.approvals.approve(run.step("w").approval_id, by=me, reason="attack test")
    # a person helps the stuck run along (as `emergent workflows resume ID` does, in the person's process)
    with contextlib.suppress(PrincipalError, PermissionDenied, ValidationError):
        mws.workflows.resume(run.id, principal=me, timeout=20)
    assert not mark.exists()  # the agent's Python did not run in the person's process


# ============================================================================ code execution


def test_attack_yaml_cannot_smuggle_python_into_a_workflow(mws: Workstation, tmp_path: Path) -> None:
    pwned = tmp_path / "PWNED"
    specs = [
        f"name: x\nsteps:\n  - id: a\n    kind: tool\n    tool: !!python/object/apply:os.system ['touch {pwned}']\n",
        f"name: x\nsteps:\n  - id: a\n    kind: call\n    fn: os:system\n    args: {{command: 'touch {pwned}'}}\n",
        f"name: x\nsteps:\n  - id: a\n    kind: tool\n    tool: atk.wait\n    fn: os:system\n"
        f"    args: {{command: 'touch {pwned}'}}\n",
        "name: x\nsteps:\n  - id: a\n    kind: workflow\n    workflow:\n      name: y\n      steps:\n"
        f"        - {{id: b, kind: call, fn: 'os:system', args: {{command: 'touch {pwned}'}}}}\n",
        f"!!python/object/new:os.system ['touch {pwned}']\n",
    ]
    for text in specs:
        with pytest.raises(ValidationError):
            Workflow.from_yaml(text)
        with pytest.raises(ValidationError):
            mws.workflows.start(text, principal=mws.principal)
        with pytest.raises(ValidationError):
            mws.workflows.register(text, by=mws.principal)
    with pytest.raises(ValidationError, match="field 'fn'"):
        mws.workflows.start({"name": "x", "steps": [{"id": "a", "kind": "call", "fn": "os:system",
                                                      "args": {"command": f"touch {pwned}"}}]}, principal=mws.principal)
    time.sleep(0.1)
    assert not pwned.exists()


def test_attack_references_cannot_reach_attributes_the_environment_or_other_runs(mws: Workstation) -> None:
    for ref in ("${env.HOME}", "${runs.wf-0123456789abcdef.output}", "${__import__('os').system('true')}",
                "${steps.a.output['k']}", "${inputs}", "${steps}", "${self.__dict__}", "${item.__class__}"):
        with pytest.raises(ValidationError, match="step 'b'"):
            Workflow.parse({"name": "x", "inputs": {"q": 1},
                            "steps": [{"id": "a", "kind": "tool", "tool": "atk.wait"},
                                      {"id": "b", "kind": "tool", "tool": "atk.wait",
                                       "args": {"seconds": 0, "value": ref}}]})
    wf = Workflow.build("dunder", inputs={"q": "text"})
    a = wf.call("a", give_secret)
    wf.call("b", ident, args={"x": "${steps.a.output.__class__}"}, needs=[a.id])
    run = mws.workflows.run(wf, principal=mws.principal, timeout=20)
    assert run.status == "failed" and "'__class__' is not in dict" in (run.error or "")
    assert run.step("b").output is None
    wf2 = Workflow.build("dunder2", inputs={"q": "text"})
    wf2.call("b", ident, args={"x": "${inputs.q.__class__.__mro__}"})
    run2 = mws.workflows.run(wf2, principal=mws.principal, timeout=20)
    assert run2.status == "failed" and "__class__" in (run2.error or "")


def test_attack_an_input_holding_a_reference_stays_data(mws: Workstation) -> None:
    wf = Workflow.build("inject", inputs={"q": None})
    s = wf.call("secret", give_secret)
    b = wf.call("b", ident, args={"x": "say ${inputs.q}"}, needs=[s.id])
    c = wf.call("c", ident, args={"x": "${inputs.q}"}, needs=[s.id])
    child = Workflow.build("child", inputs={"v": None})
    child.tool("echo", "atk.wait", args={"seconds": 0, "value": "${inputs.v}"})
    child.output("v", "${steps.echo.output}")
    d = wf.subflow("d", child, inputs={"v": "${inputs.q}"})
    wf.output("b", b.output)
    wf.output("c", c.output)
    wf.output("d", d.output["v"])
    q = "${steps.secret.output.k}"
    run = mws.workflows.run(wf, {"q": q}, principal=mws.principal, timeout=20)
    assert run.status == "completed", run.error
    assert run.outputs == {"b": f"say {q}", "c": q, "d": q}
    assert "SECRET" not in json.dumps(run.outputs)


def test_attack_a_notebook_step_of_an_agent_runs_only_the_bytes_a_person_approved(
        mws: Workstation, tmp_path: Path) -> None:
    me, alice = mws.principal, agent(mws, "alice")
    files = Path(mws.path) / "files"
    files.mkdir(exist_ok=True)
    marker = files / "nb-ran.txt"
    marker.unlink(missing_ok=True)
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, files / "atk.ipynb")
    wf = Workflow.build("nb-swap")
    wf.notebook("nb", "atk.ipynb", args={"output": "runs/atk-out.ipynb"}, timeout_s=60)
    run = mws.workflows.run(wf, principal=alice, timeout=30)
    assert run.status == "waiting_approval", run.error
    a = mws.autonomy.approvals.get(run.step("nb").approval_id)
    assert a.actor == alice.key and a.tool.startswith("notebook.run") and a.files
    mws.autonomy.approvals.approve(a.id, by=me, reason="the harmless notebook")
    nb.cells = [nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'w').write('swapped notebook ran')")]
    nbformat.write(nb, files / "atk.ipynb")  # swapped after the approval
    after = mws.workflows.resume(run.id, principal=me, timeout=60)
    assert after.status == "failed" and after.step("nb").status == "failed"
    assert "atk.ipynb changed since it was approved" in (after.step("nb").error or "")
    assert not marker.exists()


def test_attack_a_notebook_step_cannot_leave_the_files_directory_or_inject_code_by_parameter_name(
        mws: Workstation) -> None:
    root = Path(mws.path)
    files = root / "files"
    files.mkdir(exist_ok=True)
    marker = root / "escaped.txt"
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"open({str(marker)!r}, 'w').write('escaped')")]
    nbformat.write(nb, root / "outside.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), files / "plain.ipynb")
    for link, target in ((files / "link.ipynb", root / "outside.ipynb"), (files / "up", root)):
        if not link.is_symlink():
            os.symlink(target, link)
    attempts: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
        ("../outside.ipynb", {}, {}, "leaves the workspace's files directory"),
        (str(root / "outside.ipynb"), {}, {}, "absolute paths are not accepted"),
        ("link.ipynb", {}, {}, "symbolic link"),
        ("up/outside.ipynb", {}, {}, "symbolic link"),
        ("plain.ipynb", {"output": "../../evil-out.ipynb"}, {}, "leaves the workspace's files directory"),
        ("plain.ipynb", {}, {"x = 1\nimport os\ny": 1}, "not a Python identifier"),
        ("plain.ipynb", {}, {"__builtins__": 1}, "dunder"),
    ]
    for path, args, params, why in attempts:
        wf = Workflow.build("nb-escape")
        wf.notebook("n", path, parameters=params, args=args, timeout_s=30)
        run = mws.workflows.run(wf, principal=mws.principal, timeout=30)
        assert run.status == "failed" and why in (run.error or ""), (path, args, params, run.error)
    assert not marker.exists() and not (root.parent / "evil-out.ipynb").exists()


# ============================================================================ audit


def test_attack_a_failed_audit_write_stops_register_pause_cancel_and_resume(
        mws: Workstation, log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    me = mws.principal
    with monkeypatch.context() as mp:
        broken_audit(mws, mp, lambda kind, data: kind == "workflow.register")
        with pytest.raises(AuditWriteError):
            mws.workflows.register({"name": "unaudited-def", "steps": [{"id": "a", "kind": "tool",
                                                                         "tool": "atk.wait"}]}, by=me)
    with pytest.raises(NotFoundError):
        mws.workflows.named("unaudited-def")

    wf = Workflow.build("audit-ctl")
    s = wf.tool("slow", "atk.wait", args={"seconds": 0.3, "value": 1})
    wf.tool("w", "atk.append", args={"line": "after pause"}, needs=[s.id])
    for kind, act in (("workflow.run.pause", mws.workflows.pause), ("workflow.run.cancel", mws.workflows.cancel)):
        run_id = mws.workflows.start(wf, principal=me)
        with monkeypatch.context() as mp:
            broken_audit(mws, mp, lambda k, data, kind=kind: k == kind)
            with pytest.raises(AuditWriteError):
                act(run_id, by=me)
        done = mws.workflows.wait(run_id, timeout=20)
        assert done.status == "completed", (kind, done.status, done.error)  # the unaudited control did nothing
    assert lines(log) == ["after pause", "after pause"]

    run_id = mws.workflows.start(wf, principal=me)
    until(lambda: mws.workflows.get(run_id).step("slow").status == "running")
    mws.workflows.pause(run_id, by=me)
    assert mws.workflows.wait(run_id, timeout=20).status == "paused"
    with monkeypatch.context() as mp:
        broken_audit(mws, mp, lambda kind, data: kind == "workflow.run.resume")
        with pytest.raises(AuditWriteError):
            mws.workflows.resume(run_id, principal=me, timeout=20)
    time.sleep(0.2)
    assert mws.workflows.get(run_id).status == "paused" and len(lines(log)) == 2
    assert mws.workflows.resume(run_id, principal=me, timeout=20).status == "completed"
    assert len(lines(log)) == 3


def test_attack_a_failed_audit_write_keeps_a_compensation_from_running(
        mws: Workstation, log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wf = Workflow.parse({"name": "undo-unaudited", "steps": [
        {"id": "a", "kind": "tool", "tool": "atk.append", "args": {"line": "did"},
         "compensate": {"tool": "atk.append", "args": {"line": "undo ${steps.a.output.line}"}}},
        {"id": "b", "kind": "tool", "tool": "atk.boom", "needs": ["a"]}]})
    broken_audit(mws, monkeypatch, lambda kind, data: kind == "workflow.compensate")
    run_id = mws.workflows.start(wf, principal=mws.principal)
    until(lambda: mws.workflows.get(run_id).status != "running", 20)
    run = mws.workflows.get(run_id)
    assert run.status == "failed"
    assert lines(log) == ["did"]  # the undo was never on record, so it never ran


def test_attack_a_bus_message_whose_audit_fails_is_not_delivered(
        mws: Workstation, monkeypatch: pytest.MonkeyPatch) -> None:
    scout = mws.agents.principal_of("scout")
    with monkeypatch.context() as mp:
        broken_audit(mws, mp, lambda kind, data: kind == "agents.message")
        with pytest.raises(AuditWriteError):
            mws.agents.bus.publish("atk-unaudited", {"type": "note", "n": 1}, principal=scout)
    assert mws.agents.bus.history("atk-unaudited", 10) == []
    assert mws.agents.bus.consume("atk-unaudited", "g", "c", count=10) == []


def test_attack_a_vote_whose_audit_fails_leaves_no_ballot_on_the_bus(
        mws: Workstation, monkeypatch: pytest.MonkeyPatch) -> None:
    before = len(mws.agents.messages("votes", limit=10_000))
    with monkeypatch.context() as mp:
        broken_audit(mws, mp, lambda kind, data: kind.startswith("agents."))
        with pytest.raises(AuditWriteError):
            mws.agents.vote("unaudited?", ["yes", "no"], voters=["scout", "stats"], by=mws.principal,
                            ballots={"scout": "yes", "stats": "no"})
    assert len(mws.agents.messages("votes", limit=10_000)) == before


def test_attack_a_delegation_whose_approval_could_not_be_filed_cannot_be_started_by_a_forged_award(
        mws: Workstation, monkeypatch: pytest.MonkeyPatch) -> None:
    ag, scout = mws.agents, mws.agents.principal_of("scout")
    with monkeypatch.context() as mp:
        broken_audit(mws, mp, lambda kind, data: kind == "approval.requested")
        with pytest.raises(AuditWriteError):
            ag.delegate("count the rows of the secret table", to="stats", by=scout, wait=False)
    (task,) = [t for t in ag.tasks(limit=200) if t.text == "count the rows of the secret table"]
    ag.bus.publish("tasks", {"type": "award", "task": task.id, "to": "stats"}, principal=scout)
    ag.work(max_messages=20)
    t = ag.task(task.id)
    assert t.run_id is None and t.state != "completed", t


def test_attack_a_delegation_whose_audit_fails_hands_nothing_over(
        mws: Workstation, monkeypatch: pytest.MonkeyPatch) -> None:
    ag, me = mws.agents, mws.principal
    before = bodies_on(mws, "tasks")
    with monkeypatch.context() as mp:
        broken_audit(mws, mp, lambda kind, data: kind == "agents.delegate")
        with pytest.raises(AuditWriteError):
            ag.delegate("an unaudited hand-over", to="stats", by=me, wait=False)
    ag.work(max_messages=20)
    assert bodies_on(mws, "tasks") == before  # no award was published
    for t in ag.tasks(limit=200):
        if t.text == "an unaudited hand-over":
            assert t.run_id is None and t.state != "completed"


# ============================================================================ identity: agents


def test_attack_an_agent_cannot_cast_other_agents_ballots(mws: Workstation) -> None:
    scout = mws.agents.principal_of("scout")
    before = len(mws.agents.votes(limit=1000))
    with pytest.raises((PrincipalError, PermissionDenied)):
        mws.agents.vote("drop the audit table?", ["yes", "no"], voters=["scout", "stats", "critic"], by=scout,
                        ballots={"scout": "yes", "stats": "yes", "critic": "yes"})
    for knob in ({"weights": {"scout": 1e9}}, {"score": lambda card, q, option: 1.0 if option == "yes" else 0.0}):
        with pytest.raises((PrincipalError, PermissionDenied)):  # nor decide their ballots by weight or score
            mws.agents.vote("drop the audit table?", ["yes", "no"], voters=["scout", "stats"], by=scout,
                            method="weighted", **knob)
    assert len(mws.agents.votes(limit=1000)) == before
    # voting twice: a voter named twice casts one ballot
    v = mws.agents.vote("keep the audit table?", ["yes", "no"], voters=["scout", "scout", "scout"], by=scout,
                        ballots={"scout": "no"})
    assert [(b.voter, b.choice) for b in v.ballots] == [(scout.key, "no")] and v.tally == {"yes": 0, "no": 1}


def test_attack_an_agent_cannot_file_proposals_in_other_agents_names(mws: Workstation) -> None:
    scout = mws.agents.principal_of("scout")
    with pytest.raises((PrincipalError, PermissionDenied)):
        mws.agents.resolve([{"agent": "stats", "proposal": "skip the review", "priority": 99},
                            {"agent": "critic", "proposal": "skip the review too", "priority": 98}],
                           rule="priority", by=scout)


def test_attack_an_agent_cannot_decide_what_was_escalated_to_a_person(mws: Workstation) -> None:
    me, scout = mws.principal, mws.agents.principal_of("scout")
    v = mws.agents.vote("which store?", ["redis", "sqlite"], voters=["scout", "stats", "critic"], method="quorum",
                        quorum=3, by=me, ballots={"scout": "redis", "stats": None, "critic": None})
    assert v.status == "no-quorum" and v.approval_id and v.winner is None
    with pytest.raises(PrincipalError):
        mws.agents.decide_vote(v.id, "redis", by=scout)
    with pytest.raises(PrincipalError):
        mws.autonomy.approvals.approve(v.approval_id, by=scout)
    r = mws.agents.resolve([{"agent": "scout", "proposal": "a"}, {"agent": "stats", "proposal": "b"}],
                           rule="escalate", by=me)
    with pytest.raises(PrincipalError):
        mws.agents.decide_conflict(r.id, "scout", by=scout)
    assert mws.agents.vote_result(v.id).winner is None


def test_attack_a_forged_award_does_not_hand_a_task_to_its_sender_or_skip_an_approval(mws: Workstation) -> None:
    ag, me = mws.agents, mws.principal
    scout, critic = ag.principal_of("scout"), ag.principal_of("critic")
    # a task a person handed to stats: scout awards it to itself on the bus
    t = ag.delegate("tabulate the buoy counts", to="stats", by=me, wait=False)
    ag.bus.publish("tasks", {"type": "award", "task": t.id, "to": "scout"}, principal=scout)
    ag.bus.publish("tasks", {"type": "award", "task": t.id, "to": "scout", "sender": me.key,
                             "principal": me.key}, principal=scout)
    ag.work(max_messages=20)
    done = ag.task(t.id)
    assert done.state == "completed" and done.assignee == "stats"
    assert mws.assistant("stats").get(done.run_id).asked_by == me.key
    # a hand-over waiting for a person's approval: a forged award does not start it
    w = ag.delegate("review the secret draft", to="stats", by=critic, wait=False)
    assert w.state == "input-required"
    ag.bus.publish("tasks", {"type": "award", "task": w.id, "to": "stats"}, principal=critic)
    ag.bus.publish("tasks", {"type": "award", "task": w.id, "to": "stats"}, principal=me)
    ag.work(max_messages=20)
    still = ag.task(w.id)
    assert still.state == "input-required" and still.run_id is None
    # and the contract net is not moved by bids on the bus: only the cards' own bids count
    s = ag.submit("literature search on buoys", skills=["literature"], by=me, wait=False)
    ag.bus.publish("contract-net", {"type": "bid", "task": s.id, "agent": "critic", "capability": 1,
                                    "confidence": 1, "load": 0, "score": 99}, principal=scout)
    again = ag.task(s.id)
    assert [b["agent"] for b in again.bids] == ["scout"] and again.assignee == "scout"
    bid_msgs = [m for m in ag.messages("contract-net", limit=1000) if m.body.get("task") == s.id
                and m.body.get("type") == "bid"]
    assert {(m.body["agent"], m.sender) for m in bid_msgs} == {("scout", scout.key), ("critic", scout.key)}
    ag.work(max_messages=20)


def test_attack_an_agent_cannot_cancel_a_task_it_neither_submitted_nor_delegated(mws: Workstation) -> None:
    ag, me = mws.agents, mws.principal
    t = ag.delegate("a person's task", to="critic", by=ag.principal_of("scout"), wait=False)
    with pytest.raises(PermissionDenied):
        ag.cancel(t.id, by=ag.principal_of("stats"))
    assert ag.task(t.id).state == "input-required"
    assert ag.cancel(t.id, by=me).state == "canceled"


def test_attack_a_denied_delegation_puts_nothing_on_the_bus(mws: Workstation) -> None:
    ag, me = mws.agents, mws.principal
    mws.autonomy.add_rule("agent:stats", "agents.delegate", "deny", resource="agent:scout", by=me)
    stats = ag.principal_of("stats")
    before = bodies_on(mws, "tasks")
    with pytest.raises(PermissionDenied):
        ag.delegate("search the literature for me", to="scout", by=stats)
    assert bodies_on(mws, "tasks") == before
    (t,) = [t for t in ag.tasks(limit=500) if t.text == "search the literature for me"]
    assert t.state == "canceled" and t.run_id is None
    # an award stats forges for the refused task does not run it either
    ag.bus.publish("tasks", {"type": "award", "task": t.id, "to": "scout"}, principal=stats)
    ag.work(max_messages=20)
    assert ag.task(t.id).run_id is None


def test_attack_a_suspended_agent_gets_no_task_and_casts_no_ballot(mws: Workstation) -> None:
    ag, me = mws.agents, mws.principal
    ag.register("sleeper", skills=["naps"], description="takes naps", by=me)
    mws.autonomy.suspend("agent:sleeper", by=me, reason="attack test")
    t = ag.submit("take a nap now", skills=["naps"], by=me)
    assert t.assignee != "sleeper" and t.run_id is None, t
    with pytest.raises((PermissionDenied, PrincipalError)):
        ag.delegate("nap again", to="sleeper", by=me)
    v = ag.vote("nap?", ["yes", "no"], voters=["sleeper", "critic"], by=me, ballots={"sleeper": "yes", "critic": None})
    assert all(b.choice is None for b in v.ballots if b.voter == "agent:sleeper"), v.ballots


# ============================================================================ bus faults


def test_attack_a_non_json_message_is_refused_with_a_field_error(mws: Workstation) -> None:
    scout = mws.agents.principal_of("scout")
    for body in ({1: "int key"}, {"x": object()}, {"x": b"\x00\xff"}, {"x": {1, 2}}, {"x": float("nan")}):
        with pytest.raises(ValidationError, match="message"):
            mws.agents.bus.publish("atk-json", body, principal=scout)
    assert mws.agents.bus.history("atk-json", 10) == []


def test_attack_a_10_mb_message_is_refused_or_delivered_whole(mws: Workstation) -> None:
    scout = mws.agents.principal_of("scout")
    blob = "x" * 10_000_000
    try:
        mid = mws.agents.bus.publish("atk-big", {"type": "blob", "blob": blob}, principal=scout)
    except ValidationError as exc:
        assert "message" in exc.message
        assert mws.agents.bus.history("atk-big", 5) == []
        return
    (m,) = mws.agents.bus.consume("atk-big", "g", "c1", count=5)
    assert m.id == mid and m.sender == scout.key and len(m.body["blob"]) == len(blob)
    mws.agents.bus.ack("atk-big", "g", m.id, by=scout)


def test_attack_a_consumer_that_never_acks_does_not_lose_messages_or_block_others(mws: Workstation) -> None:
    bus, scout = mws.agents.bus, mws.agents.principal_of("scout")
    ids = bus.publish_many("atk-noack", [{"n": i} for i in range(3)], principal=scout)
    taken = bus.consume("atk-noack", "g", "dead-consumer", count=10)
    assert [m.id for m in taken] == ids and bus.pending("atk-noack", "g") == 3
    assert bus.consume("atk-noack", "g", "live-consumer", count=10) == []  # not handed out twice meanwhile
    later = bus.publish("atk-noack", {"n": 3}, principal=scout)
    assert [m.id for m in bus.consume("atk-noack", "g", "live-consumer", count=10)] == [later]
    back = bus.claim("atk-noack", "g", "live-consumer", min_idle_ms=0, by=scout)
    assert sorted(m.id for m in back) == sorted(ids + [later]) and all(m.redelivered for m in back)
    assert bus.ack("atk-noack", "g", [m.id for m in back], by=scout) == 4
    assert bus.pending("atk-noack", "g") == 0
    with pytest.raises(PrincipalError):
        bus.ack("atk-noack", "g", ids, by="agent:scout")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="stream"):
        bus.publish("a b*", {"n": 1}, principal=scout)


def test_attack_a_malformed_entry_on_a_redis_stream_does_not_poison_the_group(
        mws: Workstation, redis_url: str) -> None:
    import redis

    from emergent.agents.bus import open_bus

    client = redis.Redis.from_url(redis_url, socket_timeout=2)
    bus = open_bus("redis", audit=mws.audit, redis=client, namespace="atk-poison", principals=mws.principals)
    scout = mws.agents.principal_of("scout")
    first = bus.publish("tasks", {"type": "note", "n": 1}, principal=scout)
    client.xadd(bus.key("tasks"), {"s": "human:root", "b": "not json {"})
    client.xadd(bus.key("tasks"), {"x": "no sender, no body"})
    last = bus.publish("tasks", {"type": "note", "n": 2}, principal=scout)
    try:
        got = bus.consume("tasks", "workers", "c1", count=10)
        assert [m.id for m in got] == [first, last] and {m.sender for m in got} == {scout.key}
        bus.ack("tasks", "workers", [m.id for m in got], by=scout)
        again = bus.claim("tasks", "workers", "c2", min_idle_ms=0, by=scout)  # must not raise either
        assert all(m.id not in (first, last) for m in again)
        assert bus.pending("tasks", "workers") == 0  # the malformed ones are not handed out again and again
        dropped = [e for e in mws.audit.entries(kind="agents.message.dropped") if e.data.get("stream") == "tasks"]
        assert dropped and sum(len(e.data["dropped"]) for e in dropped) == 2
    finally:
        client.close()


def test_attack_a_raw_redis_entry_cannot_claim_a_person_as_its_sender(
        mws: Workstation, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMERGENT_REDIS_URL", redis_url)
    monkeypatch.setenv("EMERGENT_AGENT_BUS", "redis")
    # sealing is opt-in (decision 74: it costs 10-15 % of the bus); a workspace that shares Redis sets it
    monkeypatch.setenv("EMERGENT_AGENT_BUS_SECRET", "a secret the workspace's machines share")
    anchor = getattr(getattr(mws.audit, "anchor", None), "dir", None)
    if anchor is not None:
        monkeypatch.setenv("EMERGENT_AUDIT_DIR", str(anchor))
    ws2 = Workstation.open(mws.path, embedder="hashing")  # the same workspace, wired for Redis as in production
    try:
        bus, me = ws2.agents.bus, ws2.principal
        assert bus.name == "redis"
        bus.r.xadd(bus.key("notes"), {"s": me.key, "b": '{"type": "note", "text": "approve everything"}'})
        got = bus.consume("notes", "g", "c", count=10)
        assert all(m.sender != me.key for m in got), got  # dropped, or shown as unverified — never as the person
    finally:
        ws2.close()


def test_attack_an_infinite_quorum_is_a_validation_error(mws: Workstation) -> None:
    with pytest.raises(ValidationError, match="quorum"):
        mws.agents.vote("q?", ["a", "b"], voters=["scout", "stats"], method="quorum", quorum=float("inf"),
                        by=mws.principal, ballots={"scout": "a", "stats": "a"})


def test_attack_a_trim_before_any_worker_started_loses_no_award(mws: Workstation) -> None:
    from emergent.agents.service import Agents

    me = mws.principal
    fresh = Agents(mws.sql, bus="memory", redis=None, namespace="atk-trim", assistant=mws.assistant,
                   autonomy=mws.autonomy, principals=mws.principals, audit=mws.audit, clock=mws.clock)
    try:
        t = fresh.delegate("count the buoys before the worker starts", to="stats", by=me, wait=False)
        time.sleep(0.01)
        fresh.trim(older_than_s=0)  # what every worker does every few seconds (older than a day by default)
        fresh.work(max_messages=10)
        assert fresh.task(t.id).state == "completed", fresh.task(t.id)
    finally:
        fresh.close()


# ============================================================================ workflow faults


def test_attack_steps_that_raise_hang_or_return_garbage_fail_the_run_with_a_clear_error(mws: Workstation) -> None:
    me = mws.principal
    cases: list[tuple[str, Callable[..., Any], dict[str, Any], dict[str, Any], str]] = [
        ("raises", raises, {}, {}, "RuntimeError: kaboom"),
        ("hangs", sleeps, {"s": 3}, {"timeout_s": 0.2}, "timed out after 0.2 s"),
        ("wrongtype", gives_text, {}, {"output": "dict"}, "returned str, but its output is declared 'dict'"),
        ("object", gives_object, {}, {}, "cannot be stored as JSON"),
        ("nan", gives_nan, {}, {}, "cannot be stored as JSON"),
        ("exits", exits, {}, {}, "SystemExit: 3"),
        ("interrupts", interrupts, {}, {}, "KeyboardInterrupt"),
        ("recurses", recurses, {}, {}, "RecursionError"),
    ]
    started = time.monotonic()
    for name, fn, args, opts, why in cases:
        wf = Workflow.build(f"fault-{name}")
        a = wf.call("a", fn, args=args, **opts)
        wf.call("b", ident, args={"x": a.output})
        run = mws.workflows.run(wf, principal=me, timeout=20)
        assert run.status == "failed" and why in (run.error or ""), (name, run.error)
        assert run.step("a").status == "failed" and run.step("b").status in ("pending", "cancelled")
    assert time.monotonic() - started < 8  # the hung step did not hold the run for its 3 s


def test_attack_inputs_that_are_not_json_are_refused_naming_the_input(mws: Workstation) -> None:
    b = Workflow.build("inputs-json", inputs={"x": None})
    b.call("a", ident, args={"x": "${inputs.x}"})
    wf = b.done()
    for bad in (object(), {1, 2}, float("nan")):
        with pytest.raises(ValidationError, match="'x'"):
            mws.workflows.start(wf, {"x": bad}, principal=mws.principal)


def test_attack_a_nan_timeout_or_retry_delay_is_refused(mws: Workstation) -> None:
    for field in ("retry_delay_s", "timeout_s"):
        text = f"name: nan\nsteps:\n  - {{id: a, kind: tool, tool: atk.boom, retries: 1, {field}: .nan}}\n"
        with pytest.raises(ValidationError, match=field):
            Workflow.from_yaml(text)


def test_attack_sub_workflow_recursion_is_refused_or_bounded(probe: dict[str, str]) -> None:
    result = probe["REC"]
    assert result.startswith(("REFUSED", "RESULT failed")), result


def test_attack_a_spec_nested_too_deep_is_a_validation_error() -> None:
    w: dict[str, Any] = {"name": "leaf", "steps": [{"id": "a", "kind": "tool", "tool": "atk.wait"}]}
    for i in range(2000):
        w = {"name": f"n{i}", "steps": [{"id": "a", "kind": "workflow", "workflow": w}]}
    deep_yaml = "name: x\nsteps:\n  - {id: a, kind: tool, tool: atk.wait, args: {x: " + "[" * 600 + "]" * 600 + "}}\n"
    for attempt in (lambda: Workflow.parse(w), lambda: Workflow.from_yaml(deep_yaml)):
        with pytest.raises(ValidationError):
            attempt()


def test_attack_cli_inputs_json_nested_too_deep_is_a_validation_error() -> None:
    from emergent.cli.workflows import parse_inputs

    with pytest.raises(ValidationError, match="inputs"):
        parse_inputs(None, '{"a": ' + "[" * 5000 + "]" * 5000 + "}")


def test_attack_a_workflow_edited_in_place_after_a_run_is_validated_again(mws: Workstation) -> None:
    b = Workflow.build("edited")
    a = b.call("a", give_secret)
    b.call("c", ident, args={"x": a.output})
    wf = b.done()
    assert mws.workflows.run(wf, principal=mws.principal, timeout=20).status == "completed"
    wf.steps[1].args = {"x": "${steps.ghost.output}"}
    with pytest.raises(ValidationError, match="ghost"):
        mws.workflows.run(wf, principal=mws.principal, timeout=20)
    wf.steps[1].args = {"x": a.output}
    wf.steps[0].needs.append("c")
    with pytest.raises(ValidationError, match="cycle"):
        mws.workflows.run(wf, principal=mws.principal, timeout=20)
    wf.steps[0].needs.clear()
    wf.steps[1].args["x"] = "${steps.ghost.output}"  # the same dict, edited in place
    with pytest.raises(ValidationError, match="ghost"):
        mws.workflows.run(wf, principal=mws.principal, timeout=20)
    wf.steps[1].args["x"] = a.output
    wf.steps[0].retries = -3
    with pytest.raises(ValidationError, match="retries"):
        mws.workflows.run(wf, principal=mws.principal, timeout=20)


def test_attack_a_10000_step_spec_validates_fast_and_a_5000_step_cycle_is_spelled_out() -> None:
    started = time.monotonic()
    chain = {"name": "big", "steps": [{"id": f"s{i}", "kind": "tool", "tool": "atk.wait",
                                       "args": {"x": f"${{steps.s{i - 1}.output}}"} if i else {}}
                                      for i in range(10_000)]}
    assert len(Workflow.parse(chain).steps) == 10_000
    ring = {"name": "ring", "steps": [{"id": f"s{i}", "kind": "tool", "tool": "atk.wait",
                                       "needs": [f"s{(i - 1) % 5000}"]} for i in range(5000)]}
    with pytest.raises(ValidationError, match="^cycle: s") as err:
        Workflow.parse(ring)
    assert err.value.message.count("→") == 5000
    assert time.monotonic() - started < 10


def test_attack_a_huge_fan_out_runs_and_fans_in_in_order(mws: Workstation) -> None:
    wf = Workflow.build("fan")
    items = wf.call("items", listing, args={"n": 3000})
    each = wf.call("each", ident, args={"x": "${item}"}, foreach=items.output)
    wf.call("sum", total, args={"xs": each.output})
    wf.output("sum", "${steps.sum.output}")
    started = time.monotonic()
    run = mws.workflows.run(wf, principal=mws.principal, timeout=60)
    assert run.status == "completed", run.error
    assert run.outputs == {"sum": sum(range(3000))} and len(run.steps) == 3002
    assert time.monotonic() - started < 20


def test_attack_a_fan_out_over_something_not_a_list_fails_the_step_not_the_engine(mws: Workstation) -> None:
    wf = Workflow.build("fan-bad")
    s = wf.call("secret", give_secret)
    wf.call("each", ident, args={"x": "${item}"}, foreach=s.output)
    run = mws.workflows.run(wf, principal=mws.principal, timeout=20)
    assert run.status == "failed" and "field 'foreach': needs a list, got dict" in (run.error or "")


# ============================================================================ what the surfaces show


def test_attack_html_in_tasks_messages_votes_and_step_errors_is_shown_escaped(mws: Workstation) -> None:
    from emergent.ui.workflows import run_html

    me = mws.principal
    mws.agents.register("painter", skills=["paint"], description=MARKUP, by=me)
    mws.agents.delegate(f"paint {MARKUP}", to="painter", by=me, wait=False)
    mws.agents.bus.publish("atk-html", {"type": "note", "text": MARKUP, MARKUP: 1}, principal=me)
    mws.agents.vote(f"which {MARKUP}?", [MARKUP, "b"], voters=["painter"], by=me, ballots={"painter": MARKUP})
    wf = Workflow.build("markup")
    wf.call("a", raises_markup)
    run = mws.workflows.run(wf, principal=me, timeout=20)
    assert run.status == "failed" and MARKUP in (run.error or "")
    shown = {"agents": mws.agents.monitor().html(), "run": run_html(run), "dashboard": mws.dashboard().html()}
    for where, text in shown.items():
        assert "<script" not in text and "<img" not in text, where
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, where


def test_attack_cli_shows_a_step_error_holding_rich_markup_literally(
        mws: Workstation, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    wf = Workflow.build("markup-cli")
    wf.call("a", raises_markup)
    run = mws.workflows.run(wf, principal=mws.principal, timeout=20)
    outs = []
    for cmd in (["workflows", "show", run.id], ["workflows", "runs"]):
        code, out, err = _cli([*cmd, "--home", str(mws.path)], capsys)
        assert code == 0 and "Traceback" not in err, (cmd, err)
        outs.append(out)
    assert "[/bold] [green]completed[/green]" in outs[0]  # shown as written, not as markup


# ============================================================================ bad input on the CLI


def _cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    from emergent.cli import main

    capsys.readouterr()
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_attack_cli_wrong_ids_and_bad_files_print_an_error_and_a_hint_and_exit_non_zero(
        mws: Workstation, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home = str(mws.path)
    cyc = tmp_path / "cycle.yaml"
    cyc.write_text("name: c\nsteps:\n  - {id: a, kind: tool, tool: t, needs: [b]}\n"
                   "  - {id: b, kind: tool, tool: t, needs: [a]}\n")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [\n")
    smuggle = tmp_path / "smuggle.yaml"
    smuggle.write_text("name: s\nsteps:\n  - {id: a, kind: call, fn: 'os:system', args: {command: 'true'}}\n")
    commands = [
        ["workflows", "show", "wf-nosuch"], ["workflows", "resume", "wf-nosuch"],
        ["workflows", "cancel", "wf-nosuch"], ["workflows", "pause", "wf-nosuch"],
        ["workflows", "run", str(tmp_path / "missing.yaml")], ["workflows", "run", "no_such_template"],
        ["workflows", "validate", str(cyc)], ["workflows", "validate", str(bad)],
        ["workflows", "validate", str(smuggle)],
        ["workflows", "validate", str(tmp_path / "missing.yaml")], ["workflows", "run", str(cyc)],
        ["workflows", "run", "literature_digest", "--input", "=x"],
        ["workflows", "run", "literature_digest", "--input", "bogus=1"],
        ["workflows", "run", "literature_digest", "--inputs-json", "[1"],
        ["workflows", "run", "literature_digest", "--executor", "bogus://x"],
        ["agents", "tasks", "--state", "bogus"], ["agents", "decide", "nosuch", "yes"],
    ]
    for cmd in commands:
        needs_home = cmd[1] not in ("validate",)
        code, out, err = _cli([*cmd, *(["--home", home] if needs_home else [])], capsys)
        shown = (out + err).strip().splitlines()
        assert code != 0, (cmd, out, err)
        assert "Traceback" not in out + err, (cmd, err)
        assert shown and shown[0].startswith("error: "), (cmd, shown)
        assert any(ln.startswith("hint: ") for ln in shown), (cmd, shown)


def test_attack_a_binary_spec_file_is_a_validation_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\x00\xff\xfe garbage")
    with pytest.raises(ValidationError):
        Workflow.from_yaml(binary)
    code, out, err = _cli(["workflows", "validate", str(binary)], capsys)
    assert code != 0 and err.startswith("error: ") and "hint: " in err


def test_attack_cli_an_executor_without_threads_is_refused_with_a_hint(
        mws: Workstation, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["workflows", "run", "literature_digest", "--executor", "threads:0", "--home",
                           str(mws.path)], capsys)
    assert code != 0 and err.startswith("error: ") and "\nhint: " in err, err


def test_attack_cli_runs_with_an_unknown_status_is_refused(mws: Workstation, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _cli(["workflows", "runs", "--status", "bogus", "--home", str(mws.path)], capsys)
    assert code != 0 and err.startswith("error: ") and "status" in err


def test_attack_an_unreachable_dask_scheduler_is_an_emergent_error(probe: dict[str, str]) -> None:
    result = probe["DASK"]
    assert result.startswith("REFUSED"), result
