"""``emergent bench workflows --json --quick`` in a subprocess prints one JSON object with every key of
the issue (the step overhead beside a bare call and a Dask threaded task, the DAG, fan-out, lock-step,
the bus beside raw Redis, the machine) with the right types; the figures are for a full run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EMERGENT = str(Path(sys.executable).with_name("emergent"))


def test_bench_workflows_prints_one_json_object_with_every_figure() -> None:
    p = subprocess.run([EMERGENT, "bench", "workflows", "--json", "--quick"], capture_output=True, text=True,
                       timeout=240, env={**os.environ, "NO_COLOR": "1"})
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    for key in ("step_overhead_us_p50", "bare_call_us_p50", "dask_threaded_task_us_p50", "step_overhead_chain_us_p50",
                "dask_threaded_chain_us_p50", "step_vs_dask_ratio", "dag_s", "fanout_speedup", "bus_msgs_per_s", "raw_redis_msgs_per_s",
                "bus_ratio"):
        assert isinstance(out[key], float | int) and out[key] > 0, key
    assert out["bare_call_us_p50"] < out["step_overhead_us_p50"]  # the floor is below any engine
    assert "dag_1000_s" in out and out["dag_steps"] == 100  # a quick run: dag_1000_s only at full size
    assert out["fanout_speedup"] > 2  # 20 sleeping steps run in parallel (the target, 10x, is for a full run)
    assert out["no_lockstep"] is True and out["fast_branch_done_s"] < out["slow_branch_done_s"]
    assert out["bus_lost_after_kill"] == 0 and "bus_error" not in out
    assert out["machine"]["cores"] >= 1 and out["quick"] is True
