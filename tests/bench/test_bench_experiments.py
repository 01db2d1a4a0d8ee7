"""`emergent bench experiments`: the cycle starts from the shipped defaults, is judged on questions it
never saw, and must find an effect planted where only the bench knows (generated LoCoMo-shaped
conversations from tests/fixtures/locomo_like.py; no file from outside the repository)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emergent.bench import experiments as bench
from emergent.config import MemoryConfig
from emergent.experiments.cycle import generate_hypotheses

SIMULATION_KEYS = {"aa_false_positive_rate", "aa_fpr_naive_peeking", "aa_fpr_fixed_welch", "aa_fpr_fixed_scipy",
                   "power", "power_scipy", "power_statsmodels_analytic", "max_p_diff_welch_vs_scipy",
                   "max_p_diff_ztest_vs_statsmodels", "design_n_per_arm"}
NEW_KEYS = {"cycle_gain_vs_defaults", "cycle_gain_ci95", "planted_effect_found"}


@pytest.fixture(autouse=True)
def _hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EMERGENT_EMBEDDER", "hashing")


def test_the_planted_change_is_found_and_nothing_is_adopted_without_an_effect() -> None:
    r = bench.planted_effect(runs=3)
    planted = r["planted_effect"]
    generated = [h.changes for h in generate_hypotheses("memory", MemoryConfig(), bench.MAX_HYPOTHESES)]
    assert planted["changes"] in generated and planted["tried"] == generated  # drawn among what the cycle tries
    assert r["planted_effect_found"] is True and planted["adopted_changes"] == planted["changes"]
    assert r["planted_found_rate"] == 1.0 and r["null_adoption_rate"] == 0.0 and r["planted_runs"] == 3


def test_the_planted_target_varies_with_the_seed_not_with_the_generator() -> None:
    """The bench draws the target; over seeds it lands on different hypotheses (the generator's
    order is no hint)."""
    import random

    candidates = generate_hypotheses("memory", MemoryConfig(), bench.MAX_HYPOTHESES)
    drawn = {json.dumps(random.Random(i).choice(candidates).changes) for i in range(40)}
    assert len(drawn) >= 4


def test_paired_gain_resamples_questions_with_both_scores_together() -> None:
    rng = np.random.default_rng(0)
    difficulty = rng.uniform(0, 1, 300)  # shared by both configs: cancels only when paired
    base = difficulty + rng.normal(0, 0.02, 300)
    ours = difficulty + 0.01 + rng.normal(0, 0.02, 300)
    gain, (lo, hi) = bench.paired_gain(base, ours, n_boot=2000)
    assert gain == pytest.approx(float(ours.mean() - base.mean())) and lo < gain < hi
    assert lo > 0 and hi - lo < 0.01  # unpaired, the unit difficulty (sd ~0.29) would make it ~0.09 wide
    assert bench.paired_gain(base, base) == (0.0, (0.0, 0.0))
    assert bench.paired_gain(base, base - 0.05)[1][1] < 0  # a loss is reported as one
    with pytest.raises(ValueError):
        bench.paired_gain(base, ours[:10])


def test_cycle_on_conversations_starts_from_the_defaults_and_is_judged_on_unseen_questions(locomo_file) -> None:
    path, acct = locomo_file
    r = bench.cycle_on_locomo(path)
    assert r["cycle_start_version"] == "memory@1" and r["embedder"].startswith("hashing")
    n = acct.questions
    assert r["train_questions"] + r["heldout_questions"] + r["unseen_questions"] == n
    assert r["unseen_questions"] == round(n * bench.TEST_FRACTION) and r["heldout_questions"] == round(n * 0.25)
    assert [h["changes"] for h in r["cycle_hypotheses"]] == \
           [h.changes for h in generate_hypotheses("memory", MemoryConfig(), bench.MAX_HYPOTHESES)]
    gain = r["unseen_recall@10_after_cycle"] - r["unseen_recall@10_defaults"]
    assert r["cycle_gain_vs_defaults"] == pytest.approx(gain)
    lo, hi = r["cycle_gain_ci95"]
    assert lo <= r["cycle_gain_vs_defaults"] <= hi
    if r["cycle_decision"] == "adopted":
        assert r["cycle_end_version"] != "memory@1" and r["cycle_adopted_changes"]
    else:  # nothing adopted: the config after the cycle is the defaults, the gain exactly 0
        assert r["cycle_end_version"] == "memory@1" and r["cycle_gain_vs_defaults"] == 0.0 and lo == hi == 0.0
    # the cycle saw train and held-out only: its own baseline figures are not the unseen ones' source
    assert set(r["cycle_baseline_recall@10"]) == {"train", "heldout"}


def _rows_have_measured_baselines_or_say_none(result: dict, rows: list) -> None:
    measured = {json.dumps(v) for v in result.values() if isinstance(v, int | float | bool)}
    for metric, _ours, base, target in rows:
        if base is None:
            assert "no baseline" in target or target == bench.NO_DATA, metric
        else:  # a figure of this run, described in the target column
            assert json.dumps(base) in measured and "baseline:" in target, metric


def test_run_without_data_says_so_and_keeps_the_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EMERGENT_BENCH_LOCOMO", raising=False)
    r = bench.run({"size": 20, "data": None, "planted_runs": 1})
    assert set(r) >= SIMULATION_KEYS | NEW_KEYS
    assert not {"adopted_better_config", "heldout_gain"} & set(r)
    assert r["cycle_gain_vs_defaults"] is None and r["cycle_gain_ci95"] is None and r["cycle_skipped"] == bench.NO_DATA
    assert r["planted_effect_found"] is True
    rows = bench.table(r)
    assert [row for row in rows if row[3] == bench.NO_DATA]  # the LoCoMo rows say why they are empty
    _rows_have_measured_baselines_or_say_none(r, rows)


def test_cli_reads_the_locomo_file_from_the_environment(locomo_file, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from emergent.cli.bench import app

    monkeypatch.setattr(bench, "PLANTED_RUNS", 1)
    path: Path = locomo_file[0]
    res = CliRunner().invoke(app, ["experiments", "--json", "--size", "20"], env={"EMERGENT_BENCH_LOCOMO": str(path)})
    assert res.exit_code == 0, res.output[-2000:]
    r = json.loads(res.stdout)  # exactly one JSON object
    assert set(r) >= SIMULATION_KEYS | NEW_KEYS and not {"adopted_better_config", "heldout_gain"} & set(r)
    assert isinstance(r["cycle_gain_vs_defaults"], float) and len(r["cycle_gain_ci95"]) == 2
    assert r["unseen_questions"] > 0 and "cycle_skipped" not in r
    _rows_have_measured_baselines_or_say_none(r, bench.table(r))


def test_the_bench_has_no_machine_specific_data_path() -> None:
    source = Path(bench.__file__).read_text()
    assert "shared/" not in source and "parents[" not in source and "DEFAULT_DATA" not in source
