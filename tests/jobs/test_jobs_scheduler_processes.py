"""Schedulers as real processes on one database: one run per slot, and a killed one loses nothing."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from emergent.jobs.model import RunStatus
from emergent.jobs.scheduler import Scheduler

CLI = "import sys; from emergent.cli import main; sys.exit(main(sys.argv[1:]))"


def _scheduler(home: Path, *extra: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", CLI, "scheduler", "run", "--home", str(home), "--poll", "0.2",
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)


def _wait(pred, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.1)


def test_two_scheduler_processes_run_a_due_slot_once(jobs, me, make_nb, home, tmp_path) -> None:
    marker = tmp_path / "executions.txt"
    nb = make_nb("tick", f"import time\nwith open({str(marker)!r}, 'a') as f:\n    f.write('ran\\n')\ntime.sleep(1)")
    jobs.add("tick", nb, schedule="every 1h", principal=me)
    jobs.store.set_next("tick", time.time() - 1)  # the slot came while no scheduler was running
    procs = [_scheduler(home, "--ticks", "25") for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err.decode()
    assert marker.read_text() == "ran\n"
    (run,) = jobs.history("tick")
    assert run.status is RunStatus.SUCCEEDED and run.trigger == "schedule"
    assert jobs.get("tick").next_run_at > time.time() + 3000 and jobs.get("tick").lease_owner is None


def test_a_scheduler_killed_mid_run_leaves_an_interrupted_run_and_no_double_run(jobs, me, ws, make_nb, home, tmp_path) -> None:
    pid_file = tmp_path / "kernel.pid"
    nb = make_nb("slow", f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)")
    jobs.add("slow", nb, schedule="every 1h", principal=me)
    jobs.store.set_next("slow", time.time() - 1)
    proc = _scheduler(home, "--lease", "2")
    try:
        _wait(pid_file.exists)
        (running,) = jobs.history("slow")
        assert running.status is RunStatus.RUNNING
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)
        _wait(lambda: bool(jobs.recover()), timeout=20)  # its lease runs out ~2 s later
        (run,) = jobs.history("slow")
        assert run.id == running.id and run.status is RunStatus.INTERRUPTED
        assert "stopped during the run" in run.error and "scheduler:" in run.error
        restarted = Scheduler(jobs, principal=ws.scheduler_principal, poll_s=0.1)
        assert restarted.tick() == [] and jobs.due() == []  # the slot was taken: not run a second time
        assert len(jobs.history("slow")) == 1
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
