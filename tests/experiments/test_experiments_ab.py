"""A/B experiments: statistics against scipy/statsmodels, online and offline runs, faults."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats as sst

from emergent.errors import ExperimentError, StateConflictError
from emergent.experiments import stats
from emergent.experiments.gate import StaticGate
from emergent.experiments.registry import ConfigRegistry
from emergent.experiments.service import Experiments, Guardrail
from emergent.stores.sql import SQLStore


@pytest.fixture
def svc(tmp_path):
    sql = SQLStore(f"sqlite:///{tmp_path / 'x.db'}")
    reg = ConfigRegistry(sql)
    yield Experiments(sql, reg, gate=StaticGate({"config.adopt:memory": "allow"}))
    sql.dispose()


def test_tests_match_scipy_and_statsmodels():
    from statsmodels.stats.proportion import proportions_ztest

    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 80), rng.normal(0.3, 2, 120)
    ours, ref = stats.welch_t(a, b), sst.ttest_ind(b, a, equal_var=False)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9) and ours.statistic == pytest.approx(ref.statistic)
    z = stats.two_proportion_z(40, 200, 62, 210)
    zs, ps = proportions_ztest([62, 40], [210, 200])
    assert z.statistic == pytest.approx(zs) and z.p_value == pytest.approx(ps)
    pt, ref2 = stats.paired_t(a[:50], b[:50]), sst.ttest_rel(b[:50], a[:50])
    assert pt.p_value == pytest.approx(ref2.pvalue)
    lo, hi = stats.bootstrap_ci(a, b)
    assert lo < b.mean() - a.mean() < hi


def test_sequential_test_rarely_rejects_under_aa_even_when_watched_every_batch():
    rng = np.random.default_rng(3)
    rejected = sum(stats.sequential_looks(rng.normal(0, 1, 400), rng.normal(0, 1, 400), 20, tau=0.3).rejected
                   for _ in range(200))
    assert rejected / 200 <= 0.05
    assert stats.sequential_looks(rng.normal(0, 1, 400), rng.normal(0.5, 1, 400), 20, tau=0.3).rejected


def test_assignment_is_deterministic_and_near_the_split():
    arms = [stats.assign(f"user{i}", "exp1") for i in range(4000)]
    assert arms == [stats.assign(f"user{i}", "exp1") for i in range(4000)]
    assert abs(arms.count("candidate") / 4000 - 0.5) < 0.03
    assert not stats.srm_check(arms.count("control"), arms.count("candidate"))["mismatch"]


def _feed(svc, exp_id, n, effect, rng, guard=None):
    for i in range(n):
        arm = svc.assign(exp_id, f"u{i}")
        svc.record(exp_id, f"u{i}", rng.normal(0.5 + (effect if arm == "candidate" else 0), 0.1),
                   guardrails=guard(arm) if guard else None)


def test_online_experiment_adopts_a_better_candidate_when_the_gate_allows(svc):
    v2 = svc.registry.create("memory", changes={"w_text": 2.0})
    exp = svc.start("more text", v2.id, metric="recall", tau=0.05)
    assert svc.config_for(exp["id"], "u1").w_text in (1.0, 2.0)
    _feed(svc, exp["id"], 300, 0.08, np.random.default_rng(0))
    out = svc.decide(exp["id"])
    assert out["status"] == "adopted" and svc.registry.current("memory").id == v2.id
    assert svc.get(exp["id"])["result"]["sequential"]


def test_adoption_waits_for_approval_when_the_gate_asks(svc):
    svc.gate = StaticGate()  # default: ask
    v2 = svc.registry.create("memory", changes={"w_text": 2.0})
    exp = svc.start("more text", v2.id, metric="recall")
    _feed(svc, exp["id"], 300, 0.08, np.random.default_rng(0))
    assert svc.decide(exp["id"])["status"] == "pending_approval"
    assert svc.registry.current("memory").id == "memory@1"
    assert svc.approve(exp["id"], by="ana")["status"] == "adopted"
    with pytest.raises(StateConflictError):
        svc.approve(exp["id"], by="bob")


def test_too_few_units_is_a_clear_error_and_changes_nothing(svc):
    v2 = svc.registry.create("memory", changes={"w_text": 2.0})
    exp = svc.start("tiny", v2.id, metric="recall", min_units=30)
    _feed(svc, exp["id"], 10, 0.5, np.random.default_rng(0))
    with pytest.raises(ExperimentError, match="too few units"):
        svc.decide(exp["id"])
    assert svc.get(exp["id"])["status"] == "running" and svc.registry.current("memory").id == "memory@1"


def test_sample_ratio_mismatch_invalidates_the_experiment(svc):
    v2 = svc.registry.create("memory", changes={"w_text": 2.0})
    exp = svc.start("srm", v2.id, metric="recall")
    rng = np.random.default_rng(0)
    for i in range(300):  # a logging bug drops most control units
        arm = svc.assign(exp["id"], f"u{i}")
        if arm == "candidate" or i % 4 == 0:
            svc.record(exp["id"], f"u{i}", rng.normal(0.6, 0.1))
    with pytest.raises(ExperimentError, match="sample-ratio mismatch"):
        svc.decide(exp["id"])
    assert svc.get(exp["id"])["status"] == "invalid" and svc.registry.current("memory").id == "memory@1"


def test_a_guardrail_stops_a_candidate_that_is_better_but_too_slow(svc):
    v2 = svc.registry.create("memory", changes={"candidates": 2000})
    exp = svc.start("big pool", v2.id, metric="recall", guardrails=[Guardrail("latency_ms", limit=50.0)])
    _feed(svc, exp["id"], 200, 0.05, np.random.default_rng(0),
          guard=lambda arm: {"latency_ms": 80.0 if arm == "candidate" else 10.0})
    out = svc.decide(exp["id"])
    assert out["decision"] == "rollback" and "latency_ms" in out["reason"]
    assert svc.registry.current("memory").id == "memory@1"


def test_candidate_crashes_online_trip_the_crash_guardrail(svc):
    v2 = svc.registry.create("memory", changes={"w_text": 2.0})
    exp = svc.start("crashy", v2.id, metric="recall")
    for i in range(60):
        arm = svc.assign(exp["id"], f"u{i}")
        svc.record(exp["id"], f"u{i}", None if arm == "candidate" and i % 3 == 0 else 0.5)
    assert svc.decide(exp["id"])["decision"] == "rollback"


def test_offline_replay_with_a_crashing_candidate_leaves_current_untouched(svc):
    v2 = svc.registry.create("memory", changes={"w_text": 0.0})
    exp = svc.start("replay", v2.id, metric="recall", mode="offline")

    def evaluate(cfg, units):
        if cfg.w_text == 0.0:
            raise RuntimeError("index missing")
        return [1.0] * len(units)

    with pytest.raises(ExperimentError, match="crashed during replay.*index missing"):
        svc.replay(exp["id"], list(range(40)), evaluate)
    assert svc.get(exp["id"])["status"] == "failed" and svc.registry.current("memory").id == "memory@1"


def test_a_binary_metric_is_compared_as_two_proportions(svc):
    v2 = svc.registry.create("memory", changes={"w_text": 2.0})
    exp = svc.start("success rate", v2.id, metric="task success")
    rng = np.random.default_rng(2)
    for i in range(2000):
        arm = svc.assign(exp["id"], f"u{i}")
        svc.record(exp["id"], f"u{i}", float(rng.random() < (0.55 if arm == "candidate" else 0.45)))
    a = svc.analyze(exp["id"])
    assert a.test["test"] == "two_proportion_z" and a.test["effect"] > 0.05 and a.decision == "adopt"
