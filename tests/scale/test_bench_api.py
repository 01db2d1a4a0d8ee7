"""``emergent bench api --json --quick``: the whole bench (open-loop load, in-process baseline, soak,
one and two instances behind nginx) runs on loopback in well under a minute and prints one JSON
object with every figure the issue names."""

from __future__ import annotations

import json
import math
import subprocess
import sys

CLI = "import sys; from emergent.cli import main; sys.exit(main(sys.argv[1:]))"


def test_bench_api_quick_prints_every_figure_for_an_instance_of_two_worker_processes(tmp_path) -> None:
    """One run of the whole quick bench (it takes ~20 s of both cores): ``--workers 2`` makes each
    instance `emergent serve --workers 2`, whose memory is the whole process tree; one worker is what
    every other API test serves with."""
    proc = subprocess.run([sys.executable, "-c", CLI, "bench", "api", "--json", "--quick", "--workers", "2"],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r = json.loads(proc.stdout)
    endpoints = {"recall", "remember", "tool_call", "health"}
    assert set(r["p95_ms_by_endpoint"]) == endpoints
    # A smoke run of a few seconds beside another test on two cores: a slow machine may time some
    # requests out (counted, never hidden), but the server itself never fails one (no 5xx)
    errors = r["errors_by_status"]
    assert not [s for s in errors if s.startswith("5")], errors
    assert r["error_rate"] < 0.5, errors
    for ep in endpoints:
        p95, p50 = r["p95_ms_by_endpoint"][ep], r["p50_ms_by_endpoint"][ep]
        if p50 is None:  # nothing of this endpoint answered in time: only with timeouts counted
            assert p95 is None and set(errors) <= {"TimeoutError", "unfinished"} and errors, (ep, errors)
            continue
        assert 0 < p50 <= p95 < 30_000, (ep, p50, p95)
    inproc = r["in_process_p95_ms_by_endpoint"]
    assert inproc["health"] is None and all(inproc[ep] > 0 for ep in ("recall", "remember", "tool_call"))
    assert set(r["api_over_in_process_p95"]) == {"recall", "remember", "tool_call"}
    loaded = r["in_process_loaded_p95_ms_by_endpoint"]  # the same calls at the same load, without HTTP
    assert loaded["health"] is None and all(loaded[ep] > 0 for ep in ("recall", "remember", "tool_call"))
    assert set(r["api_over_in_process_loaded_p95"]) == {"recall", "remember", "tool_call"}
    assert r["requests"] > 0 and r["achieved_rps"] > 0.8 * r["rate_rps"] and r["answered_rps"] > 0
    assert math.isfinite(r["rss_growth_mb_10min"]) and abs(r["rss_growth_mb_10min"]) < 500
    assert r["two_instances_throughput_ratio"] > 0 and r["one_instance_rps"] > 0 and r["two_instances_rps"] > 0
    assert r["quick"] is True and r["soak_s"] < 60
    assert r["workers"] == 2 and r["server"] == "emergent serve --workers 2"
    assert r["rss_mb_start"] > 100  # the supervisor and two workers, each with the workspace open
    m = r["machine"]
    assert m["cores"] >= 1 and m["cpu"] and "load_avg_1m" in m and "load_avg_1m_before" in m
