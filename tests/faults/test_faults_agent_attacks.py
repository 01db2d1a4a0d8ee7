"""Attacks on the fault guarantees of the agents (tasks, votes, conflicts) and of the assistant's runs: a
process killed with SIGKILL in the middle of a delegated task or of a command run (after the tool's side
effect, before its checkpoint), two people deciding the same escalated vote at once, a failed audit
write as a task completes. Real processes and the real SQL store; a race is interleaved at its window."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from emergent import Workstation
from emergent.errors import AuditWriteError, UsageError
from emergent.tools import SideEffect, ToolContext, tool

CLI = "import sys; from emergent.cli import main; sys.exit(main(sys.argv[1:]))"


def _until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


@tool(name="agentatk.append_then_gate", version="1.0.0", side_effect=SideEffect.WRITE)
def append_then_gate(line: str, flag: str, ctx: ToolContext) -> dict:
    """Append a line to log.txt, then wait for a flag file (a side effect done before its checkpoint).

    Args:
        line: the line
        flag: the file's name
    """
    with (Path(ctx.workspace) / "log.txt").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    path = Path(ctx.workspace) / flag
    deadline = time.monotonic() + 60
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"line": line}


def _cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CLI, *args, "--home", str(home)], capture_output=True,
                          text=True, timeout=120, env={**os.environ, "COLUMNS": "250"})


def _allow(ws: Workstation, who: str) -> None:
    ws.autonomy.add_rule(who, "agentatk.append_then_gate", "allow", by=ws.principal)
    ws.autonomy.set_threshold("write", 0.0, by=ws.principal)


# ---------------------------------------------------------------- a task's worker killed mid-task
TASK_CHILD = '''
import json, sys, threading
sys.path.insert(0, sys.argv[2])
from test_faults_agent_attacks import append_then_gate
from emergent import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing")
ws.tools.add(append_then_gate)
ag = ws.agents
ag.store.lease_s = 1.0  # its heartbeat renews it every third of a second while the task runs
task = ag.delegate("/tool agentatk.append_then_gate " + json.dumps({"line": "side effect", "flag": "go"}),
                   to="stats", by=ws.principal, wait=False)
print(json.dumps({"task": task.id}), flush=True)
ag.wait(task.id, timeout=120)  # works the (in-process) bus: runs the task here
'''


def test_attack_kill9_mid_delegated_task_leaves_no_task_working_forever_and_never_repeats_it(tmp_path: Path) -> None:
    """SIGKILL of the process running a delegated task, after the task's tool had its side effect. On the
    in-process bus (the default without Redis) the award died with the process, so no message will
    ever bring the task to a worker again. Once its lease ran out, a worker started in a new process
    (``emergent agents work --once``) must fail it as abandoned (never run it again), rather than the
    task being 'working' forever; a cancel must not pretend it worked while the task stays working."""
    home = tmp_path / "ws"
    with Workstation.open(home, embedder="hashing", create=True) as ws:
        ws.tools.add(append_then_gate)
        ws.agents.register("stats", skills=["stats"], description="runs statistics", by=ws.principal)
        _allow(ws, "agent:stats")
    child = subprocess.Popen([sys.executable, "-c", TASK_CHILD, str(home), str(Path(__file__).parent)],
                             stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        task_id = json.loads(child.stdout.readline())["task"]  # type: ignore[union-attr]
        _until(lambda: _lines(home / "log.txt") == ["side effect"], 60, "the task's side effect")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    time.sleep(1.5)  # the dead worker's lease runs out
    worked = _cli(home, "agents", "work", "--once", "--block-ms", "0")
    assert worked.returncode == 0 and "Traceback" not in worked.stderr, worked.stderr
    listed = _cli(home, "agents", "tasks", "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = [r for r in json.loads(listed.stdout) if r["task"] == task_id]
    assert row["state"] == "failed" and "its worker stopped while it ran" in (row["result"] or ""), row
    (home / "go").write_text("")
    with Workstation.open(home, embedder="hashing") as ws:
        ws.tools.add(append_then_gate)
        ws.agents.work(claim=True)
        t = ws.agents.task(task_id)
        assert t.state == "failed"
        ws.audit.flush()
        assert [e.data["task"] for e in ws.audit.entries(kind="agents.task.failed")] == [task_id]
    assert _lines(home / "log.txt") == ["side effect"]  # it ran once, and never again


def test_attack_cancel_of_a_working_task_whose_worker_died_does_not_report_it_canceled_while_it_stays_working(
        tmp_path: Path) -> None:
    """The same kill -9; a person then cancels the task from a new process. ``cancel`` must either take
    it out of 'working' (its worker is dead: its lease ran out) or refuse with an error; it used to return
    the task unchanged, 'working', without a word."""
    home = tmp_path / "ws"
    with Workstation.open(home, embedder="hashing", create=True) as ws:
        ws.tools.add(append_then_gate)
        ws.agents.register("stats", skills=["stats"], description="runs statistics", by=ws.principal)
        _allow(ws, "agent:stats")
    child = subprocess.Popen([sys.executable, "-c", TASK_CHILD, str(home), str(Path(__file__).parent)],
                             stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        task_id = json.loads(child.stdout.readline())["task"]  # type: ignore[union-attr]
        _until(lambda: _lines(home / "log.txt") == ["side effect"], 60, "the task's side effect")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    time.sleep(1.5)
    with Workstation.open(home, embedder="hashing") as ws:
        try:
            t = ws.agents.cancel(task_id, by=ws.principal)
        except UsageError:
            t = ws.agents.task(task_id)
            assert t.state == "working"  # refused, and said so
        else:
            assert t.state not in ("working", "submitted"), t
    assert _lines(home / "log.txt") == ["side effect"]


# ---------------------------------------------------------------- two people decide one escalated vote at once
def _escalated_vote(ws: Workstation) -> str:
    me = ws.principal
    for name in ("scout", "stats"):
        ws.agents.register(name, skills=[name], description=name, by=me)
    v = ws.agents.vote("which table?", ["a", "b"], voters=["scout", "stats"], by=me,
                       ballots={"scout": "a", "stats": "b"})
    assert v.winner is None and v.approval_id, v
    return v.id


def test_attack_two_people_deciding_one_escalated_vote_at_once_do_not_both_succeed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two processes (here: two services on one database) decide the same escalated vote at once, one
    'a', the other 'b'. Both were told their choice was recorded, and the later write silently replaced
    the earlier one: a decision reported done was lost. Exactly one may win; the other is refused."""
    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws, \
            Workstation.open(tmp_path / "ws", embedder="hashing") as other:
        vid = _escalated_vote(ws)
        outcome: dict[str, Any] = {}
        real = ws.audit.append

        def append(kind: str, principal: Any, data: dict[str, Any], *, durable: bool = False) -> None:
            if kind == "agents.vote.decided" and "b" not in outcome:  # between the check and the write
                try:
                    outcome["b"] = other.agents.decide_vote(vid, "b", by=other.principal, reason="b is cleaner")
                except UsageError as exc:
                    outcome["b"] = exc
            real(kind, principal, data, durable=durable)

        monkeypatch.setattr(ws.audit, "append", append)
        try:
            outcome["a"] = ws.agents.decide_vote(vid, "a", by=ws.principal, reason="a is bigger")
        except UsageError as exc:
            outcome["a"] = exc
        monkeypatch.undo()
        won = {k: v for k, v in outcome.items() if not isinstance(v, UsageError)}
        assert len(won) == 1, outcome
        (choice, reported), = won.items()
        final = ws.agents.vote_result(vid)
        assert reported.winner == choice and final.winner == choice and final.decided_by == reported.decided_by


def test_attack_two_people_deciding_one_escalated_conflict_at_once_do_not_both_succeed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same race on an escalated conflict resolution: exactly one choice wins, the other is refused."""
    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws, \
            Workstation.open(tmp_path / "ws", embedder="hashing") as other:
        me = ws.principal
        for name in ("scout", "stats"):
            ws.agents.register(name, skills=[name], description=name, by=me)
        r = ws.agents.resolve([{"agent": "scout", "proposal": "use a"}, {"agent": "stats", "proposal": "use b"}],
                              rule="escalate", by=me)
        assert r.status == "escalated", r
        outcome: dict[str, Any] = {}
        real = ws.audit.append

        def append(kind: str, principal: Any, data: dict[str, Any], *, durable: bool = False) -> None:
            if kind == "agents.resolve.decided" and "stats" not in outcome:
                try:
                    outcome["stats"] = other.agents.decide_conflict(r.id, "stats", by=other.principal)
                except UsageError as exc:
                    outcome["stats"] = exc
            real(kind, principal, data, durable=durable)

        monkeypatch.setattr(ws.audit, "append", append)
        try:
            outcome["scout"] = ws.agents.decide_conflict(r.id, "scout", by=me)
        except UsageError as exc:
            outcome["scout"] = exc
        monkeypatch.undo()
        won = {k: v for k, v in outcome.items() if not isinstance(v, UsageError)}
        assert len(won) == 1, outcome
        (agent, reported), = won.items()
        final = ws.agents.resolutions()[0]
        assert reported.winner.agent == agent and final.winner.agent == agent


# ---------------------------------------------------------------- an assistant command run killed mid-tool
RUN_CHILD = '''
import json, sys
sys.path.insert(0, sys.argv[2])
from test_faults_agent_attacks import append_then_gate
from emergent import Workstation
ws = Workstation.open(sys.argv[1], embedder="hashing")
ws.tools.add(append_then_gate)
bot = ws.assistant()
bot.runs_store.lease_s = 1.0
bot.ask("/tool agentatk.append_then_gate " + json.dumps({"line": "side effect", "flag": "go"}), user=ws.principal)
'''


def test_attack_kill9_between_a_command_runs_side_effect_and_its_checkpoint_is_reported_unknown_not_answered(
        tmp_path: Path) -> None:
    """SIGKILL of the process running ``/tool NAME {...}`` after the tool's side effect, before the run's
    checkpoint. The run taken over in a new process must not run the tool again, and must say its
    outcome is unknown; it used to complete with the answer ' failed: ' (the command's call was never
    checkpointed, so the new process saw a run that had done nothing, and answered that)."""
    home = tmp_path / "ws"
    with Workstation.open(home, embedder="hashing", create=True) as ws:
        ws.tools.add(append_then_gate)
        ws.assistant()
        _allow(ws, "agent:assistant")
    child = subprocess.Popen([sys.executable, "-c", RUN_CHILD, str(home), str(Path(__file__).parent)],
                             stdout=subprocess.DEVNULL, text=True, env=os.environ.copy())
    try:
        _until(lambda: _lines(home / "log.txt") == ["side effect"], 60, "the command's side effect")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    time.sleep(1.5)  # its lease runs out
    (home / "go").write_text("")
    with Workstation.open(home, embedder="hashing") as ws:
        ws.tools.add(append_then_gate)
        bot = ws.assistant()
        (run,) = bot.runs()
        assert run.status == "running"
        (done,) = bot.resume_decided()
        assert done.run_id == run.run_id and done.status in ("completed", "failed"), done
        assert "outcome unknown" in done.answer, (done.answer, done.steps)
        assert "agentatk.append_then_gate" in done.answer
    assert _lines(home / "log.txt") == ["side effect"]


# ---------------------------------------------------------------- a full disk as a task completes
def test_attack_full_disk_as_a_delegated_task_completes_fails_clearly_and_leaves_no_task_working_forever(
        small_disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL database (tasks, runs and audit) fills up while a delegated task's tool runs: neither the
    run's end nor the task's can be written. The caller must get an error (never a task reported done,
    nor one returned 'working' with nothing driving it); once there is room, a worker of this process
    settles the task (failed as abandoned once its lease ran out: the call may have taken effect) and
    the side effect happened exactly once."""
    from emergent.errors import EmergentError

    monkeypatch.setenv("EMERGENT_DATABASE_URL", f"sqlite:///{small_disk.path / 'emergent.db'}")
    home = tmp_path / "ws"
    home.mkdir()
    crashed: list[Any] = []
    monkeypatch.setattr("threading.excepthook", lambda args: crashed.append(args.exc_value))
    ws = Workstation.open(home, embedder="hashing")
    try:
        ws.tools.add(append_then_gate)
        ws.agents.register("stats", skills=["stats"], description="runs statistics", by=ws.principal)
        _allow(ws, "agent:stats")
        ws.agents.store.lease_s = 1.0
        ws.agents.claim_idle_ms = 100
        import threading

        out: dict[str, Any] = {}

        def delegate() -> None:
            try:
                out["task"] = ws.agents.delegate("/tool agentatk.append_then_gate " + json.dumps(
                    {"line": "side effect", "flag": "go"}), to="stats", by=ws.principal, timeout=30)
            except BaseException as exc:  # noqa: BLE001
                out["error"] = exc

        t = threading.Thread(target=delegate)
        t.start()
        _until(lambda: _lines(home / "log.txt") == ["side effect"], 30, "the task's side effect")
        small_disk.fill()
        (home / "go").write_text("")
        t.join(60)
        assert not t.is_alive()
        assert "error" in out and isinstance(out["error"], EmergentError), out
        small_disk.drain()
        ws.audit.flush()
        (task,) = ws.agents.tasks()
        assert task.state in ("working", "failed"), task
        time.sleep(1.2)
        ws.agents.work(claim=True)
        task = ws.agents.task(task.id)
        assert task.state == "failed" and task.state != "working", task
        assert crashed == [], crashed
    finally:
        ws.close()
    assert _lines(home / "log.txt") == ["side effect"]


# ---------------------------------------------------------------- a full disk in the middle of a vote
def test_attack_full_disk_after_a_votes_escalation_was_filed_leaves_no_approval_nobody_can_decide(
        small_disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The disk fills just after an undecided vote filed its approval for a person, before the vote was
    recorded. The vote fails with an error; the approval must not stay pending in the inbox pointing
    at ``emergent agents decide VOTE`` for a vote that does not exist (approving it there is refused,
    deciding it says 'no vote'): either the vote exists and can be decided, or the approval is gone."""
    from emergent.errors import EmergentError

    monkeypatch.setenv("EMERGENT_DATABASE_URL", f"sqlite:///{small_disk.path / 'emergent.db'}")
    home = tmp_path / "ws"
    home.mkdir()
    with Workstation.open(home, embedder="hashing") as ws:
        me = ws.principal
        for name in ("scout", "stats"):
            ws.agents.register(name, skills=[name], description=name, by=me)
        real = ws.autonomy.approvals.request

        def request(**kw: Any) -> Any:
            a = real(**kw)
            small_disk.fill()
            return a

        monkeypatch.setattr(ws.autonomy.approvals, "request", request)
        with pytest.raises(EmergentError):
            ws.agents.vote("which table?", ["a", "b"], voters=["scout", "stats"], by=me,
                           ballots={"scout": "a", "stats": "b"})
        monkeypatch.undo()
        monkeypatch.setenv("EMERGENT_DATABASE_URL", f"sqlite:///{small_disk.path / 'emergent.db'}")
        small_disk.drain()
        (orphan,) = [a for a in ws.autonomy.approvals.list("pending") if a.tool == "agents.vote"]
        vid = orphan.args["vote"]
        assert vid not in {v.id for v in ws.agents.votes()}  # the disk was full: it could not be withdrawn yet
    # the person follows the inbox's hint: told plainly that there is no such vote, and the stale
    # escalation is withdrawn rather than left pending for a choice nothing can take
    decided = _cli(home, "agents", "decide", vid, "a")
    assert decided.returncode != 0 and "Traceback" not in decided.stderr, decided.stderr
    assert vid in decided.stderr + decided.stdout
    with Workstation.open(home, embedder="hashing") as ws:
        assert ws.autonomy.approvals.get(orphan.id).status == "rejected"
        assert not [a for a in ws.autonomy.approvals.list("pending") if a.tool == "agents.vote"]


def test_attack_a_vote_whose_audit_entry_fails_after_its_escalation_was_filed_withdraws_the_escalation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The escalation's approval is filed, then the vote's own audit entry is refused: the vote fails and
    is not recorded, so its approval must not wait in the inbox for a choice nothing can take."""
    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        me = ws.principal
        for name in ("scout", "stats"):
            ws.agents.register(name, skills=[name], description=name, by=me)
        real = ws.audit.append

        def append(kind: str, principal: Any, data: dict[str, Any], *, durable: bool = False) -> None:
            if kind in ("agents.vote", "agents.resolve"):
                raise AuditWriteError(f"the audit database is gone (attack on {kind})")
            real(kind, principal, data, durable=durable)

        monkeypatch.setattr(ws.audit, "append", append)
        with pytest.raises(AuditWriteError):
            ws.agents.vote("which table?", ["a", "b"], voters=["scout", "stats"], by=me,
                           ballots={"scout": "a", "stats": "b"})
        with pytest.raises(AuditWriteError):
            ws.agents.resolve([{"agent": "scout", "proposal": "use a"}, {"agent": "stats", "proposal": "use b"}],
                              rule="escalate", by=me)
        monkeypatch.undo()
        assert ws.agents.votes() == [] and ws.agents.resolutions() == []
        assert [a.tool for a in ws.autonomy.approvals.list("pending")] == []
