"""``emergent bench jobs``: scheduler overhead and due-job check.

- ``overhead_ratio``: median wall time of ``ws.jobs.run`` (validation, lease, run rows, papermill,
  output bookkeeping) on a trivial notebook over the median of bare ``papermill.execute_notebook``
  on the same notebook, interleaved in the same run (target <= 1.2).
- ``due_check_ms``: median time of the scheduler's due-job query with ``size`` (default 1,000) jobs
  defined (target <= 10 ms).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from emergent.bench import Row, median, ratio

TARGET_RATIO = 1.2
TARGET_DUE_MS = 10.0


def _trivial_notebook(path: Path) -> Path:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("n = 1")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell("n * 2")]
    nbformat.write(nb, str(path))
    return path


def _overhead(root: Path, repeats: int) -> dict[str, Any]:
    import papermill as pm

    from emergent.workstation import Workstation

    nb = _trivial_notebook(root / "trivial.ipynb")
    with Workstation.open(root / "ws-overhead") as ws:
        ws.jobs.add("trivial", nb, parameters={"n": 2}, principal=ws.principal)
        ours: list[float] = []
        bare: list[float] = []
        pm.execute_notebook(str(nb), str(root / "warm.ipynb"), parameters={"n": 2}, progress_bar=False)
        for i in range(repeats):
            t0 = time.perf_counter()
            pm.execute_notebook(str(nb), str(root / f"bare-{i}.ipynb"), parameters={"n": 2}, progress_bar=False,
                                kernel_name="python3")
            bare.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run = ws.jobs.run("trivial", principal=ws.principal)
            ours.append(time.perf_counter() - t0)
            if run.status.value != "succeeded":
                raise RuntimeError(f"benchmark job failed: {run.error}")
    return {"job_run_s": median(ours), "papermill_s": median(bare), "overhead_ratio": ratio(median(ours), median(bare))}


def _due_check(root: Path, size: int) -> dict[str, Any]:
    from emergent.jobs.model import JobSpec
    from emergent.workstation import Workstation

    nb = _trivial_notebook(root / "due.ipynb")
    with Workstation.open(root / "ws-due") as ws:
        jobs = ws.jobs
        now = time.time()
        for i in range(size):  # defined through the store: add() would re-read the notebook 1,000 times
            spec = JobSpec.build(name=f"job{i:05d}", notebook=str(nb), schedule=f"every {1 + i % 120}m")
            jobs.store.put(spec, now=now, next_run_at=now + 60 * (1 + i % 120) - (3600 if i % 100 == 0 else 0),
                           replace=False)
        samples = []
        for _ in range(50):
            t0 = time.perf_counter()
            due = jobs.due(now)
            samples.append((time.perf_counter() - t0) * 1e3)
    return {"jobs_defined": size, "due_jobs": len(due), "due_check_ms": median(samples)}


def run(args: dict[str, Any]) -> dict[str, Any]:
    size = int(args.get("size") or 1000)
    repeats = int(args.get("k") or 5)
    with tempfile.TemporaryDirectory(prefix="emergent-bench-jobs-") as tmp:
        root = Path(tmp)
        out = {**_overhead(root, repeats), **_due_check(root, size)}
    out.update({"repeats": repeats, "target_overhead_ratio": TARGET_RATIO, "target_due_check_ms": TARGET_DUE_MS})
    return out


def table(result: dict[str, Any]) -> list[Row]:
    return [
        ("trivial notebook run (s)", result["job_run_s"], result["papermill_s"],
         "baseline: bare papermill on the same notebook, interleaved"),
        ("overhead ratio (jobs / bare papermill)", result["overhead_ratio"], None,
         f"<= {TARGET_RATIO}; no baseline (the ratio of the row above)"),
        (f"due-job check with {result['jobs_defined']} jobs (ms)", result["due_check_ms"], None,
         f"<= {TARGET_DUE_MS}; no baseline"),
    ]


rows = table
