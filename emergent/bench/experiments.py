"""``emergent bench experiments``: are the experiment statistics right, and does the cycle work?

1. Simulated experiments with known truth, our figures printed beside scipy/statsmodels on the same
   data: the A/A false-positive rate of the sequential test checked after every batch (and of a naive
   Welch test peeked at every batch, which inflates it), the power at the designed effect size, and
   the largest p-value disagreement with scipy (Welch) and statsmodels (two proportions).
2. The self-improvement cycle on the memory system: a deliberately worse retrieval config
   (``w_text=0``: no full-text evidence) is made current; the cycle runs on the LoCoMo dev workload
   (train questions), must find and adopt a better config, and reports the gain on held-out questions.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from emergent.experiments import stats

DEFAULT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "locomo" / "locomo-dev.json"
QUESTIONS_PER_CONVERSATION = 60  # of the LoCoMo dev file, split 70/30 into train and held-out


def simulate(n_sims: int, seed: int = 0, effect_sd: float = 0.2, batch: int = 50, alpha: float = 0.05,
             horizon: int = 1000, design_power: float = 0.9) -> dict[str, Any]:
    from scipy import stats as sst
    from statsmodels.stats.power import TTestIndPower
    from statsmodels.stats.proportion import proportions_ztest

    rng = np.random.default_rng(seed)
    tau = effect_sd
    seq_fp = peek_fp = fixed_fp = scipy_fp = 0
    p_diff = 0.0
    for _ in range(n_sims):
        a, b = rng.normal(0, 1, horizon), rng.normal(0, 1, horizon)
        seq_fp += stats.sequential_looks(a, b, batch, tau, alpha).rejected
        peek_fp += any(stats.welch_t(a[:n], b[:n]).p_value < alpha for n in range(batch, horizon + 1, batch))
        ours = stats.welch_t(a, b)
        ref = sst.ttest_ind(b, a, equal_var=False).pvalue
        fixed_fp += ours.p_value < alpha
        scipy_fp += ref < alpha
        p_diff = max(p_diff, abs(ours.p_value - ref))
    n_design = stats.sample_size(effect_sd, 1.0, alpha, design_power)
    power = power_scipy = power_seq = 0
    for _ in range(n_sims):
        a, b = rng.normal(0, 1, n_design), rng.normal(effect_sd, 1, n_design)
        power += stats.welch_t(a, b).p_value < alpha
        power_scipy += sst.ttest_ind(b, a, equal_var=False).pvalue < alpha
        a2, b2 = rng.normal(0, 1, 3 * n_design), rng.normal(effect_sd, 1, 3 * n_design)
        power_seq += stats.sequential_looks(a2, b2, batch, tau, alpha).rejected
    z_diff = 0.0
    for _ in range(200):
        na, nb = int(rng.integers(100, 2000)), int(rng.integers(100, 2000))
        xa, xb = int(rng.binomial(na, 0.3)), int(rng.binomial(nb, 0.32))
        z_diff = max(z_diff, abs(stats.two_proportion_z(xa, na, xb, nb).p_value
                                 - float(proportions_ztest([xb, xa], [nb, na])[1])))
    return {"n_sims": n_sims, "looks_per_experiment": horizon // batch,
            "aa_false_positive_rate": seq_fp / n_sims, "aa_fpr_naive_peeking": peek_fp / n_sims,
            "aa_fpr_fixed_welch": fixed_fp / n_sims, "aa_fpr_fixed_scipy": scipy_fp / n_sims,
            "design_effect_sd": effect_sd, "design_power": design_power, "design_n_per_arm": n_design,
            "power": power / n_sims,
            "power_scipy": power_scipy / n_sims,
            "power_statsmodels_analytic": float(TTestIndPower().power(effect_sd, n_design, alpha)),
            "power_sequential_3x_n": power_seq / n_sims, "max_p_diff_welch_vs_scipy": p_diff,
            "max_p_diff_ztest_vs_statsmodels": z_diff}


def cycle_on_locomo(data: Path, questions_per_conversation: int | None, conversations: int | None = None,
                    embedder: str = "hashing") -> dict[str, Any]:
    from emergent.experiments.cycle import ImprovementCycle
    from emergent.experiments.workloads import RecallWorkload
    from emergent.workstation import Workstation

    with tempfile.TemporaryDirectory() as tmp, Workstation.open(Path(tmp) / "ws", embedder=embedder) as ws:
        ws.autonomy.add_rule("agent:self-improvement", "config.adopt", "allow", by="bench")
        reg = ws.experiments.registry
        worse = reg.create("memory", changes={"w_text": 0.0}, note="deliberately worse: no full-text evidence")
        reg.make_current(worse.id, actor="bench", reason="start from a worse config")
        t0 = time.perf_counter()
        wl = RecallWorkload.locomo(data, embedder=ws.embedder, directory=Path(tmp) / "replay",
                                   conversations=conversations, questions_per_conversation=questions_per_conversation)
        build_s = time.perf_counter() - t0
        cycle = ImprovementCycle(reg, ws.experiments, proposals=ws.proposals, clock=ws.clock)
        t0 = time.perf_counter()
        rep = cycle.run("memory", wl, actor="agent:self-improvement")
        current = reg.current("memory")
        return {"adopted_better_config": rep.decision == "adopted" and current.id != worse.id
                and (rep.winner or {}).get("effect", 0) > 0,
                "heldout_gain": (rep.heldout or {}).get("gain"), "decision": rep.decision,
                "baseline_train_recall@10": rep.baseline["train"], "baseline_heldout_recall@10": rep.baseline["heldout"],
                "adopted_heldout_recall@10": (rep.heldout or {}).get("candidate"),
                "adopted_changes": (rep.winner or {}).get("changes"), "adopted_version": current.id,
                "hypotheses": [{k: h.get(k) for k in ("changes", "effect", "p_value", "decision")} for h in rep.hypotheses],
                "train_questions": len(wl.train), "heldout_questions": len(wl.heldout), "embedder": ws.embedder.id,
                "build_s": build_s, "cycle_s": time.perf_counter() - t0}


def run(args: dict[str, Any]) -> dict[str, Any]:
    n_sims = int(args.get("size") or 500)  # --size: simulated experiments per check
    t0 = time.perf_counter()
    out = simulate(n_sims)
    out["simulation_s"] = time.perf_counter() - t0
    data = Path(args.get("data") or DEFAULT_DATA)
    if data.exists():
        out.update(cycle_on_locomo(data, QUESTIONS_PER_CONVERSATION))
    else:
        out.update({"adopted_better_config": None, "heldout_gain": None,
                    "cycle_skipped": f"LoCoMo file not found at {data}; pass --data"})
    return out


def table(r: dict[str, Any]) -> list[tuple[str, Any, Any, Any]]:
    return [
        ("A/A false positives, sequential (every batch)", r["aa_false_positive_rate"], r["aa_fpr_naive_peeking"],
         "≤ 0.05 (baseline: Welch peeked every batch)"),
        ("A/A false positives, fixed horizon", r["aa_fpr_fixed_welch"], r["aa_fpr_fixed_scipy"], "≈ 0.05 (baseline: scipy)"),
        ("power at designed effect", r["power"], r["power_scipy"], f"≥ 0.8 (design 0.9; statsmodels analytic "
                                                                  f"{r['power_statsmodels_analytic']:.3f})"),
        ("max |p ours - p scipy| Welch", r["max_p_diff_welch_vs_scipy"], 0.0, "≈ 0"),
        ("max |p ours - p statsmodels| z", r["max_p_diff_ztest_vs_statsmodels"], 0.0, "≈ 0"),
        ("cycle adopted the better config", r.get("adopted_better_config"), False, "True"),
        ("held-out recall@10 (adopted vs worse)", r.get("adopted_heldout_recall@10"),
         r.get("baseline_heldout_recall@10"), "gain > 0"),
        ("held-out gain", r.get("heldout_gain"), 0.0, "> 0"),
    ]
