"""Attacks on the fault guarantees of workflows and scheduled jobs: a full disk under the SQL database
while a workflow checkpoints or a scheduled run records its end, and a workflow process killed with
SIGKILL in the middle of a step. Real processes, a real (small, filled) filesystem, no mocks."""

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

import nbformat
import pytest

from emergent import Workstation
from emergent.errors import DiskFullError
from emergent.jobs.model import RunStatus
from emergent.tools import SideEffect, ToolContext, tool
from emergent.workflows import Workflow

CLI = "import sys; from emergent.cli import main; sys.exit(main(sys.argv[1:]))"


def _until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = pred()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@tool(name="attack.append", version="1.0.0", side_effect=SideEffect.WRITE)
def append(line: str, ctx: ToolContext) -> dict:
    """Append a line to log.txt (a side effect a test can count).

    Args:
        line: the line
    """
    with (Path(ctx.workspace) / "log.txt").open("a", encoding="utf-8") as fh:
        fh.write(line + "\n")
    return {"line": line}


@tool(name="attack.gate", version="1.0.0", side_effect=SideEffect.READ)
def gate(flag: str, ctx: ToolContext) -> str:
    """Wait (read-only) until a flag file exists in the workspace.

    Args:
        flag: the file's name
    """
    path = Path(ctx.workspace) / flag
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return "open"


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


# ---------------------------------------------------------------- workflows: a full disk
def test_attack_full_disk_while_a_workflow_step_checkpoints_fails_clearly_and_resumes_once(
        small_disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The SQL database (checkpoints and audit) fills up while a step runs: its ``completed`` checkpoint
    cannot be written. Waiting for the run must raise the disk-full error (not return it as 'running'
    with no error while nothing drives it, nor crash the driver thread); once there is room the same
    process resumes it at once and every side effect happened exactly once."""
    monkeypatch.setenv("EMERGENT_DATABASE_URL", f"sqlite:///{small_disk.path / 'emergent.db'}")
    home = tmp_path / "ws"
    home.mkdir()
    crashed: list[Any] = []
    monkeypatch.setattr("threading.excepthook", lambda args: crashed.append(args.exc_value))
    ws = Workstation.open(home, embedder="hashing")
    try:
        ws.tools.add(append, gate)
        wf = Workflow.build("checkpoint_on_a_full_disk")
        a1 = wf.tool("a1", "attack.append", args={"line": "a1"})
        mid = wf.tool("mid", "attack.gate", args={"flag": "go"}, needs=[a1.id])
        wf.tool("a3", "attack.append", args={"line": "a3"}, needs=[mid.id])
        run_id = ws.workflows.start(wf, principal=ws.principal)
        _until(lambda: ws.workflows.get(run_id).step("mid").status == "running", 20, "the middle step")
        small_disk.fill()
        (home / "go").write_text("")  # the step ends now; its checkpoint meets the full disk
        with pytest.raises(DiskFullError) as err:
            ws.workflows.wait(run_id, timeout=20)
        assert run_id in err.value.message and "resume" in err.value.hint
        assert crashed == [], f"the driver thread crashed: {crashed!r}"
        assert _lines(home / "log.txt") == ["a1"]
        small_disk.drain()
        # two threads of this process resume it at once (two API requests): one drives it, the other
        # waits for it or is told it is being driven; no step runs twice
        from concurrent.futures import ThreadPoolExecutor

        from emergent.errors import UsageError

        def resume() -> Any:
            try:  # no 30 s wait for its own lease
                return ws.workflows.resume(run_id, principal=ws.principal, timeout=20)
            except UsageError as exc:
                return exc

        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda _: resume(), range(2)))
        runs = [o for o in outcomes if not isinstance(o, UsageError)]
        assert runs and all(r.status == "completed" for r in runs), outcomes
        run = runs[0]
        assert run.step("a1").attempt == 1 and run.step("a3").attempt == 1
    finally:
        ws.close()
    assert _lines(home / "log.txt") == ["a1", "a3"]


# ---------------------------------------------------------------- jobs: a full disk as a run ends
def _notebook(path: Path, source: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(source))
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


def test_attack_full_disk_when_a_scheduled_run_ends_leaves_no_run_running_forever(
        small_disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The scheduler's database disk is full at the moment a scheduled run ends, then room comes back.
    The scheduler (alive, renewing its leases) must not keep that run 'running' and the job's lease
    held forever: the run's end is recorded once it can be, and the job is free again."""
    monkeypatch.setenv("EMERGENT_DATABASE_URL", f"sqlite:///{small_disk.path / 'emergent.db'}")
    home = tmp_path / "ws"
    home.mkdir()
    started, flag, log = tmp_path / "started", tmp_path / "go", tmp_path / "scheduler.log"
    nb = _notebook(tmp_path / "nbs" / "w.ipynb", f"import os, time\nopen({str(started)!r}, 'w').write('x')\n"
                                                 f"while not os.path.exists({str(flag)!r}):\n    time.sleep(0.05)")
    ws = Workstation.open(home, embedder="hashing")
    proc = None
    try:
        ws.jobs.add("w", nb, schedule="every 1h", principal=ws.principal)
        ws.jobs.store.set_next("w", time.time() - 1)
        with log.open("wb") as err:
            proc = subprocess.Popen([sys.executable, "-c", CLI, "scheduler", "run", "--home", str(home), "--poll",
                                     "0.2", "--lease", "9"], stdout=subprocess.DEVNULL, stderr=err,
                                    start_new_session=True, env=os.environ.copy())
        _until(started.exists, 60, "the notebook to start")
        small_disk.fill()
        flag.write_text("")
        _until(lambda: "crashed" in log.read_text(errors="replace"), 20, "the run's end to meet the full disk")
        small_disk.drain()

        def settled() -> bool:
            (run,) = ws.jobs.store.runs("w")
            return run.status is not RunStatus.RUNNING and ws.jobs.get("w").lease_owner is None
        _until(settled, 15, "the run to leave 'running' and the job's lease to be freed")
        (run,) = ws.jobs.store.runs("w")
        assert run.error, run
        assert proc.poll() is None  # the scheduler itself is still alive
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        ws.close()


# ---------------------------------------------------------------- workflows: SIGKILL mid-step, then the CLI
CHILD = '''
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[2])
from test_faults_workflow_job_attacks import append, append_then_gate
from emergent import Workstation
from emergent.workflows import Workflow
ws = Workstation.open(sys.argv[1], embedder="hashing")
ws.tools.add(append, append_then_gate)
wf = Workflow.build("killed_mid_step")
a1 = wf.tool("a1", "attack.append", args={"line": "a1"})
mid = wf.tool("mid", "attack.append_then_gate", args={"line": "mid", "flag": "go"}, needs=[a1.id])
wf.tool("a3", "attack.append", args={"line": "a3"}, needs=[mid.id])
print(json.dumps({"run": ws.workflows.start(wf, principal=ws.principal)}), flush=True)
time.sleep(600)
'''


@tool(name="attack.append_then_gate", version="1.0.0", side_effect=SideEffect.WRITE)
def append_then_gate(line: str, flag: str, ctx: ToolContext) -> dict:
    """Append a line, then wait for a flag file (a side effect done before its checkpoint).

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
    return subprocess.run([sys.executable, "-c", CLI, "workflows", *args, "--home", str(home)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "COLUMNS": "250"})


def test_attack_kill9_between_a_steps_side_effect_and_its_checkpoint_shows_abandoned_and_never_repeats_it(
        tmp_path: Path) -> None:
    """SIGKILL after a write step's side effect, before its ``completed`` checkpoint. The CLI must say the
    run is abandoned (not plain 'running' forever with no owner) and how to continue; resuming fails the
    run clearly without running the side effect again, and the step after it never runs."""
    home = tmp_path / "ws"
    home.mkdir()
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(home), str(Path(__file__).parent)],
                             stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        run_id = json.loads(child.stdout.readline())["run"]  # type: ignore[union-attr]
        _until(lambda: _lines(home / "log.txt") == ["a1", "mid"], 30, "the middle step's side effect")
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    shown = _cli(home, "show", run_id)
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert "abandoned" in shown.stdout and f"emergent workflows resume {run_id}" in shown.stdout, shown.stdout
    listed = _cli(home, "runs", "--json")
    assert listed.returncode == 0, listed.stderr
    (entry,) = [r for r in json.loads(listed.stdout) if r["id"] == run_id]
    assert entry["status"] == "running" and entry["abandoned"] is True
    (home / "go").write_text("")
    with Workstation.open(home, embedder="hashing") as ws:
        ws.tools.add(append, append_then_gate)
        run = ws.workflows.resume(run_id, principal=ws.principal, timeout=20)
        assert run.status == "failed" and "step 'mid' was interrupted while running" in (run.error or "")
        assert run.step("a3").status in ("pending", "cancelled")
        assert not ws.workflows.abandoned(run_id)
    after = _cli(home, "show", run_id)
    assert after.returncode == 0 and "abandoned" not in after.stdout and "failed" in after.stdout
    assert _lines(home / "log.txt") == ["a1", "mid"]  # the side effect happened once; a3 never ran
