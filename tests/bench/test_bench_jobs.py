"""`emergent bench jobs`: it defines and runs its job as the human at the keyboard, and its table
has no constant baselines."""

from __future__ import annotations

import math

from emergent.bench import jobs as bench


def test_jobs_bench_runs_its_job_as_the_human_and_reports_same_run_baselines() -> None:
    r = bench.run({"size": 20, "k": 1})
    assert r["jobs_defined"] == 20 and r["repeats"] == 1
    assert r["job_run_s"] > 0 and r["papermill_s"] > 0
    assert math.isclose(r["overhead_ratio"], r["job_run_s"] / r["papermill_s"])
    assert r["due_jobs"] == 1 and r["due_check_ms"] > 0  # job00000 is the one due an hour early
    for metric, _ours, base, target in bench.table(r):
        assert (base is None and "no baseline" in target) or (base == r["papermill_s"] and "baseline:" in target), \
            metric
