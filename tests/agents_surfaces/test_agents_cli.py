"""``emergent agents list|tasks|messages|votes|conflicts|decide`` on a workspace where real agents
acted: the same rows as the AgentMonitor, as tables or JSON; a person settles an escalated vote;
a user's mistake is a one-line error with a hint, never a traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from emergent.cli import main

EMERGENT = str(Path(sys.executable).with_name("emergent"))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    try:
        main(["agents", *argv])
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr()
    return capsys.readouterr().out


@pytest.fixture
def wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "240")  # rich wraps to the terminal: a wide one keeps rows on a line
    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")


def test_the_cli_lists_agents_tasks_votes_and_conflicts_a_real_run_left(home: Path, wide: None, acting: Any,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from emergent import Workstation

    with Workstation.open(home) as ws:
        scene = acting(ws)
        tools = len(ws.agents.card("scout").tools)
    listed = run(capsys, "list")
    assert "scout" in listed and "search, literature" in listed and f"{tools} (--json lists them)" in listed
    assert "completed: 1" in listed
    cards = {r["agent"]: r for r in json.loads(run(capsys, "list", "--json"))}
    assert set(cards) == {"scout", "stats", "critic"} and cards["scout"]["principal"] == "agent:scout"
    assert cards["scout"]["tasks"] == {"completed": 1} and len(cards["scout"]["tools"]) == tools

    tasks = run(capsys, "tasks")
    assert scene.task.id in tasks and "completed" in tasks and "scout 0.750, critic 0.625" in tasks
    assert scene.refused.id in tasks and "canceled" in tasks
    only = json.loads(run(capsys, "tasks", "--state", "canceled", "--json"))
    assert [t["task"] for t in only] == [scene.refused.id] and only[0]["result"].startswith("refused: rule")
    assert "highest score wins" in json.loads(run(capsys, "tasks", "--state", "completed", "--json"))[0]["award"]

    votes = run(capsys, "votes")
    assert "no-quorum" in votes and scene.no_quorum.approval_id in votes
    assert "agent:critic → electrode (responds faster)" in votes and "optode: 2, electrode: 1" in votes
    assert "resolved" in run(capsys, "conflicts") and "scout: deploy on Monday" in run(capsys, "conflicts")

    decided = run(capsys, "decide", scene.no_quorum.id, "no", "--reason", "not checked yet")
    assert f"vote {scene.no_quorum.id} [decided]" in decided and "chose 'no': not checked yet" in decided
    row = next(v for v in json.loads(run(capsys, "votes", "--json")) if v["vote"] == scene.no_quorum.id)
    assert row["status"] == "decided" and row["winner"] == "no" and row["decided by"].startswith("human:")

    # the in-process bus kept its messages in the process that sent them: this one says where they are
    assert "the in-process bus keeps its messages in the process that sent them" in run(capsys, "messages")


def test_messages_on_a_redis_bus_are_listed_by_another_process(home: Path, redis_url: str,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from emergent import Workstation

    with Workstation.open(home, embedder="hashing", redis_url=redis_url, agent_bus="redis") as ws:
        assert ws.agents.bus.name == "redis"
        me = ws.principal
        ws.agents.register("scout", skills=["search"], by=me)
        ws.agents.register("critic", skills=["review"], by=me)
        task = ws.agents.submit("search the notes on buoys", skills=["search"], by=me)
        ws.agents.vote("Ship it?", ["yes", "no"], voters=["scout", "critic"], by=me,
                       ballots={"scout": "yes", "critic": ("no", "untested")})
    env = {**os.environ, "EMERGENT_HOME": str(home), "EMERGENT_REDIS_URL": redis_url, "EMERGENT_AGENT_BUS": "redis",
           "EMERGENT_EMBEDDER": "hashing", "COLUMNS": "240", "NO_COLOR": "1"}
    p = subprocess.run([EMERGENT, "agents", "messages", "--json"], env=env, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    rows = json.loads(p.stdout)
    kinds = [(r["stream"], r["from"], r["type"]) for r in rows]
    assert ("contract-net", "agent:scout", "bid") in kinds and ("votes", "agent:critic", "ballot") in kinds
    assert ("tasks", me.key, "award") in kinds
    assert any(r["content"].get("task") == task.id for r in rows)
    p = subprocess.run([EMERGENT, "agents", "messages", "--stream", "votes"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0 and "untested" in p.stdout and "contract-net" not in p.stdout


def test_a_users_mistake_is_one_line_with_a_hint_and_no_traceback(home: Path, wide: None) -> None:
    env = {**os.environ, "EMERGENT_HOME": str(home), "COLUMNS": "240", "NO_COLOR": "1"}

    def emergent(*args: str) -> Any:
        return subprocess.run([EMERGENT, "agents", *args], env=env, capture_output=True, text=True, timeout=60)

    bad_state = emergent("tasks", "--state", "done")
    assert bad_state.returncode == 2
    assert "field 'state': 'done' is not a task state" in bad_state.stderr and "hint: use one of submitted" in bad_state.stderr
    unknown = emergent("decide", "0123456789abcdef", "yes")
    assert unknown.returncode == 2 and "no vote or conflict resolution '0123456789abcdef'" in unknown.stderr
    assert "hint: emergent agents votes" in unknown.stderr
    empty = emergent("list")
    assert empty.returncode == 0 and "no agents yet" in empty.stdout
    for p in (bad_state, unknown, empty):
        assert "Traceback" not in p.stdout + p.stderr


def test_the_cli_and_the_rows_need_no_widgets() -> None:
    code = ("import sys, emergent.cli.agents, emergent.ui.agent_rows; "
            "print(sorted(m for m in ('ipywidgets', 'IPython', 'emergent.ui.agents') if m in sys.modules))")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and p.stdout.strip() == "[]", p.stdout + p.stderr


def test_an_escalation_is_filed_by_the_agents_service_and_approved_only_with_a_choice(
        home: Path, wide: None, capsys: pytest.CaptureFixture[str]) -> None:
    from emergent import Workstation

    with Workstation.open(home) as ws:
        me = ws.principal
        ws.agents.register("scout", skills=["search"], by=me)
        ws.agents.register("critic", skills=["review"], by=me)
        v = ws.agents.vote("Ship it?", ["yes", "no"], voters=["scout", "critic"], method="quorum", quorum=2, by=me,
                           ballots={"scout": "yes", "critic": None})
        r = ws.agents.resolve([{"agent": "scout", "proposal": "now"}, {"agent": "critic", "proposal": "later"}],
                              rule="escalate", by=me)
        filed = [ws.autonomy.approvals.get(i) for i in (v.approval_id, r.approval_id)]
    # the service asked (no agent did), for the person who called the vote to decide
    assert [(a.actor, a.tool, a.args["called_by"]) for a in filed] == [
        ("service:agents", "agents.vote", me.key), ("service:agents", "agents.resolve", me.key)]
    listed = run_cli(capsys, "approvals", "list")
    assert f"this approval needs a choice: emergent agents decide {v.id} CHOICE" in listed
    assert f"emergent agents decide {r.id} CHOICE" in listed
    rows = {a["id"]: a for a in json.loads(run_cli(capsys, "approvals", "list", "--json"))}
    assert rows[v.approval_id]["hint"] == f"this approval needs a choice: emergent agents decide {v.id} CHOICE"
    for approval in (v.approval_id, r.approval_id):
        with pytest.raises(SystemExit) as exc:
            main(["approvals", "approve", approval])
        err = capsys.readouterr().err
        assert exc.value.code == 2 and "this approval needs a choice: emergent agents decide" in err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    with Workstation.open(home) as ws:  # nothing was approved: the vote and the conflict still wait
        assert {ws.autonomy.approvals.get(i).status for i in (v.approval_id, r.approval_id)} == {"pending"}
        assert ws.agents.vote_result(v.id).winner is None
    assert "[decided]" in run(capsys, "decide", v.id, "yes")
    assert v.approval_id not in run_cli(capsys, "approvals", "list")


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    try:
        main(list(argv))
    except SystemExit as exc:
        assert exc.code in (0, None), capsys.readouterr()
    return capsys.readouterr().out


def test_a_worker_process_takes_an_award_another_process_published_on_redis_and_stops_on_ctrl_c(
        home: Path, redis_url: str) -> None:
    import signal

    from emergent import Workstation

    with Workstation.open(home, embedder="hashing", redis_url=redis_url, agent_bus="redis") as ws:
        me = ws.principal
        ws.agents.register("scout", skills=["search"], by=me)
        task = ws.agents.delegate("search the notes on buoys", to="scout", by=me, wait=False)
        assert task.state == "submitted"  # the award is on the bus, nobody here works it
    env = {**os.environ, "EMERGENT_HOME": str(home), "EMERGENT_REDIS_URL": redis_url, "EMERGENT_AGENT_BUS": "redis",
           "EMERGENT_EMBEDDER": "hashing", "NO_COLOR": "1"}
    p = subprocess.run([EMERGENT, "agents", "work", "--once", "--block-ms", "200"], env=env, capture_output=True,
                       text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    assert "on the redis bus (once)" in p.stdout and "1 message(s) handled, 1 task(s) run" in p.stdout
    with Workstation.open(home, embedder="hashing", redis_url=redis_url, agent_bus="redis") as ws:
        done = ws.agents.task(task.id)
        assert done.state == "completed" and done.answer
        assert ws.assistant("scout").get(done.run_id).asked_by == me.key  # as the one who delegated
        assert ws.agents.bus.pending("tasks", "workers") == 0
    # a long-running worker: Ctrl-C stops it cleanly
    w = subprocess.Popen([EMERGENT, "agents", "work", "--block-ms", "100"], env={**env, "PYTHONUNBUFFERED": "1"},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert w.stdout is not None and "worker" in w.stdout.readline()
        w.send_signal(signal.SIGINT)
        out, err = w.communicate(timeout=30)
    finally:
        if w.poll() is None:
            w.kill()
    assert w.returncode == 0 and "stopped" in out and "Traceback" not in err, (out, err)
