"""``emergent bench browser --quick --json`` runs end to end (real Chromium, the demo site) and reports
figures that make sense: the keys, a replay that costs about what hand-written Playwright does, broken
targets that heal to the right elements and none to a wrong one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from emergent.bench import BENCHES, browser

ROOT = Path(__file__).resolve().parents[2]


def test_browser_is_a_registered_benchmark() -> None:
    assert BENCHES.get("browser") == "emergent.bench.browser"


def test_quick_bench_prints_one_json_object_with_sane_figures() -> None:
    t0 = time.perf_counter()
    exe = Path(sys.executable).with_name("emergent")
    proc = subprocess.run([str(exe), "bench", "browser", "--quick", "--json"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT, env={**os.environ})
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    for key in ("replay_overhead_ratio", "replay_ms_p50", "handwritten_ms_p50", "heal_rate", "broken", "healed",
                "healed_wrong", "heal_targets", "extract_rows_per_s", "baseline_rows_per_s", "machine"):
        assert key in out, key
    assert out["replay_actions"] == 20
    assert 0.5 < out["replay_overhead_ratio"] < 3.0  # same order as hand-written (the target is checked at full size)
    assert out["heal_targets"] >= 20 and out["broken"] >= 5
    assert out["healed_wrong"] == 0, out["heal_failures"]
    assert out["healed"] + len(out["heal_failures"]) == out["broken"]
    assert out["heal_rate"] == round(out["healed"] / out["broken"], 4)
    assert out["broken_scrambled"] >= 10 and out["healed_wrong_scrambled"] == 0, out["heal_failures_scrambled"]
    assert out["healed_scrambled"] + len(out["heal_failures_scrambled"]) == out["broken_scrambled"]
    if out["extract_rows_per_s"] is not None:
        assert out["extract_rows"] == out["baseline_rows"] == 57 and out["baseline_rows_per_s"] > 0
    assert elapsed < 60, elapsed


def test_the_table_names_each_figure_with_its_target() -> None:
    rows = browser.table({"replay_actions": 20, "replay_ms_p50": 900.0, "handwritten_ms_p50": 850.0,
                          "replay_overhead_ratio": 1.06, "heal_rate": 0.9, "healed": 9, "broken": 10,
                          "heal_targets": 40, "healed_wrong": 0, "extract_rows_per_s": 500.0,
                          "baseline_rows_per_s": 450.0})
    assert rows[0][3] == "1.06 (≤ 1.15)" and "9/10 broken of 40 targets; wrong 0" in rows[2][0]
