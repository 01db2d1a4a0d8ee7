"""Two schedulers on two hosts (each its own home) sharing one database run each job slot once."""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import nbformat
from _harness import SharedSQL, stop

CLI = "import sys; from emergent.cli import main; sys.exit(main(sys.argv[1:]))"


def _notebook(path: Path, marker: Path, job: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "python3", "language": "python"}
    nb.cells.append(nbformat.v4.new_code_cell(f"with open({str(marker)!r}, 'a') as f:\n    f.write({job!r} + '\\n')"))
    nbformat.write(nb, str(path))
    return path


def test_two_schedulers_on_two_hosts_run_each_slot_once(tmp_path: Path, shared_db: SharedSQL) -> None:
    from emergent import Workstation

    marker = tmp_path / "executions.txt"
    operator = Workstation.open(tmp_path / "operator", database_url=shared_db.url, embedder="hashing")
    try:
        for job in ("tick", "tock"):
            nb = _notebook(tmp_path / f"{job}.ipynb", marker, job)  # the same path on both hosts
            operator.jobs.add(job, nb, schedule="every 1s", principal=operator.principal)
            operator.jobs.store.set_next(job, time.time() - 1)  # due now
    finally:
        operator.close()
    procs = []
    for host in ("host0", "host1"):
        home = tmp_path / host
        home.mkdir()
        env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("EMERGENT_")}
        env.update({"EMERGENT_HOME": str(home), "EMERGENT_DATABASE_URL": shared_db.url,
                    "EMERGENT_AUDIT_DIR": str(home / "audit-anchor"), "EMERGENT_EMBEDDER": "hashing"})
        procs.append(subprocess.Popen([sys.executable, "-c", CLI, "scheduler", "run", "--home", str(home),
                                       "--poll", "0.2", "--workers", "2"], env=env,
                                      stdout=subprocess.DEVNULL, stderr=open(home / "scheduler.log", "wb")))  # noqa: SIM115
    watcher = Workstation.open(tmp_path / "operator", database_url=shared_db.url, embedder="hashing")
    try:
        deadline = time.monotonic() + 90
        while True:
            runs = [r for job in ("tick", "tock") for r in watcher.jobs.history(job, limit=1000)]
            done = [r for r in runs if r.finished_at is not None]
            if len(done) >= 8 and len({r.owner for r in done}) == 2:
                break
            assert time.monotonic() < deadline, (
                f"{len(done)} runs finished by {Counter(r.owner for r in done)}; logs: "
                + " | ".join((tmp_path / h / "scheduler.log").read_text(errors="replace")[-800:] for h in ("host0", "host1")))
            time.sleep(0.5)
        for p in procs:  # SIGTERM: they finish what they run and exit
            stop(p, timeout=60)
        runs = [r for job in ("tick", "tock") for r in watcher.jobs.history(job, limit=1000)]
    finally:
        for p in procs:
            stop(p)
        watcher.close()
    per_slot = Counter((r.job, r.slot) for r in runs if r.trigger == "schedule")
    assert per_slot and max(per_slot.values()) == 1, [k for k, n in per_slot.items() if n > 1]
    assert all(r.attempt == 1 and r.status.value == "succeeded" for r in runs), [(r.status, r.error) for r in runs]
    executed = Counter(marker.read_text().split())
    assert executed == Counter(r.job for r in runs)  # each run executed its notebook exactly once
    assert len({r.owner for r in runs}) == 2  # both hosts took slots
