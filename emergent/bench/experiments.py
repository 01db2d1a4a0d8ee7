"""``emergent bench experiments``: are the experiment statistics right, and does the cycle help?

1. **Statistics.** Simulated experiments with known truth, our figures beside scipy/statsmodels on
   the same data: the A/A false-positive rate of the sequential test checked after every batch
   (beside a naive Welch test peeked at every batch, which inflates it), the power at the designed
   effect size, and the largest p-value disagreement with scipy (Welch) and statsmodels (two
   proportions).
2. **Planted effect.** A synthetic workload (:class:`~emergent.experiments.workloads.PlantedWorkload`)
   whose per-unit scores depend on one config field by a known amount plus noise. The bench draws
   that field and direction at random (seeded) among the hypotheses the generator produces from the
   shipped defaults; the generator and the cycle are not told which. ``planted_effect_found``: the
   cycle adopted exactly the change carrying the effect (seed 0); over ``planted_runs`` seeds the
   found rate is printed beside the adoption rate of the same cycle on the same workload with the
   effect set to 0 (anything adopted there is a false discovery).
3. **The cycle on LoCoMo** (``--data FILE`` or ``EMERGENT_BENCH_LOCOMO``): a fresh workspace whose
   memory config is the shipped defaults; the questions are split three ways (train for the
   experiments, held-out for the cycle's own adoption check, and an *unseen* test split the cycle
   never sees); the cycle runs as the self-improvement agent; then the bench measures recall@10 on
   the unseen split under the config after the cycle and under the shipped defaults.
   ``cycle_gain_vs_defaults`` is their difference, whatever its sign (0 when nothing was adopted),
   with a paired (by question) bootstrap 95% interval ``cycle_gain_ci95``.

Who acts: the human at the keyboard (``ws.principal``) sets the rule that lets the
self-improvement agent adopt a config it proved better (``config.adopt`` allow); the cycle acts as
``ws.self_improvement_agent()``; between planted runs the human makes the defaults current again.
"""

from __future__ import annotations

import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from emergent.bench import Row
from emergent.experiments import stats

MAX_HYPOTHESES = 6
#: LoCoMo questions: 50% train, 25% held-out (the cycle's adoption check), 25% unseen (the bench's)
HELDOUT_FRACTION = 0.25
TEST_FRACTION = 0.25
SPLIT_SEED = 7
#: the planted effect: a shift of the mean score by 0.03 (recall@10 moves by a few points when a
#: retrieval weight matters), per-unit noise sd 0.1, 600 train and 300 held-out units
PLANTED_EFFECT, PLANTED_NOISE, PLANTED_TRAIN, PLANTED_HELDOUT = 0.03, 0.1, 600, 300
PLANTED_RUNS = 40
BOOTSTRAP = 10_000
NO_DATA = "no LoCoMo file: pass --data FILE or set EMERGENT_BENCH_LOCOMO (the LoCoMo cycle rows are left out)"


# ------------------------------------------------------------------------------ 1. statistics
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


# ------------------------------------------------------------------------------ set-up of 2 and 3
def _workspace(root: Path, **overrides: Any) -> tuple[Any, Any, Any]:
    """A fresh workstation at ``root``, its human and the self-improvement agent, with the human's
    rule letting the agent adopt what it proved better (the gate still checks its confidence)."""
    from emergent.workstation import Workstation

    ws = Workstation.open(root, **overrides)
    human = ws.principal
    agent = ws.self_improvement_agent()
    ws.autonomy.add_rule(agent.key, "config.adopt", "allow", by=human)
    return ws, human, agent


def _shipped_defaults(reg: Any) -> Any:
    """The current memory version, checked to be the shipped defaults (a fresh workspace's)."""
    from emergent.config import MemoryConfig

    start = reg.current("memory")
    changed = {k: v for k, v in start.values.items() if v != reg.validate("memory", MemoryConfig()).get(k)}
    if changed:
        raise RuntimeError(f"the cycle must start from the shipped defaults; {start.id} changes {changed}")
    return start


# ------------------------------------------------------------------------------ 2. planted effect
def planted_effect(runs: int = PLANTED_RUNS, seed: int = 0, *, effect: float = PLANTED_EFFECT,
                   noise: float = PLANTED_NOISE, n_train: int = PLANTED_TRAIN,
                   n_heldout: int = PLANTED_HELDOUT) -> dict[str, Any]:
    """Plant an effect on one generated hypothesis (drawn here, unknown to the generator) and see
    whether the cycle adopts exactly that change; run ``runs`` seeds with the effect and the same
    seeds with no effect (the null: what it adopts there is a false discovery)."""
    from emergent.experiments.cycle import ImprovementCycle, generate_hypotheses
    from emergent.experiments.workloads import PlantedWorkload

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="emergent-bench-planted-") as tmp:
        ws, human, agent = _workspace(Path(tmp) / "ws", embedder="hashing")
        try:
            reg = ws.experiments.registry
            start = _shipped_defaults(reg)
            defaults = reg.values("memory")
            candidates = generate_hypotheses("memory", defaults, MAX_HYPOTHESES)
            cycle = ImprovementCycle(reg, ws.experiments, proposals=ws.proposals, clock=ws.clock)
            found: list[bool] = []
            null_adopted: list[bool] = []
            first: dict[str, Any] = {}
            for i in range(runs):
                target = random.Random(seed * 7919 + i).choice(candidates).changes  # the bench's secret
                [(field, value)] = target.items()
                for size, sink in ((effect, found), (0.0, null_adopted)):
                    wl = PlantedWorkload(field, value, defaults, effect=size, noise=noise, n_train=n_train,
                                         n_heldout=n_heldout, seed=seed * 7919 + i)
                    rep = cycle.run("memory", wl, max_hypotheses=MAX_HYPOTHESES, principal=agent)
                    adopted = rep.decision == "adopted"
                    winner = (rep.winner or {}).get("changes") if adopted else None
                    sink.append(winner == target if size else adopted)
                    if i == 0 and size:
                        first = {"changes": target, "decision": rep.decision, "adopted_changes": winner,
                                 "tried": [h["changes"] for h in rep.hypotheses]}
                    if reg.current("memory").id != start.id:  # the human puts the defaults back
                        reg.make_current(start.id, by=human, reason="bench: the next planted run starts "
                                                                     "from the shipped defaults")
        finally:
            ws.close()
    return {"planted_effect_found": found[0] if found else None,
            "planted_effect": {**first, "effect": effect, "noise_sd": noise, "train_units": n_train,
                               "heldout_units": n_heldout},
            "planted_runs": runs, "planted_found_rate": float(np.mean(found)) if found else None,
            "null_adoption_rate": float(np.mean(null_adopted)) if null_adopted else None,
            "planted_s": time.perf_counter() - t0}


# ------------------------------------------------------------------------------ 3. the cycle on LoCoMo
def paired_gain(base: np.ndarray, ours: np.ndarray, n_boot: int = BOOTSTRAP) -> tuple[float, tuple[float, float]]:
    """mean(ours - base) and its 95% percentile bootstrap interval, resampling units (questions)
    with both scores of a unit kept together."""
    base, ours = np.asarray(base, dtype=float), np.asarray(ours, dtype=float)
    if base.shape != ours.shape or not len(base):
        raise ValueError(f"paired scores need the same units: {base.shape} vs {ours.shape}")
    return float(ours.mean() - base.mean()), stats.bootstrap_ci(base, ours, paired=True, n_boot=n_boot, seed=0)


def cycle_on_locomo(data: Path, *, conversations: int | None = None, embedder: str | None = None,
                    heldout_fraction: float = HELDOUT_FRACTION, test_fraction: float = TEST_FRACTION,
                    seed: int = SPLIT_SEED, max_hypotheses: int = MAX_HYPOTHESES,
                    n_boot: int = BOOTSTRAP) -> dict[str, Any]:
    """The cycle from the shipped defaults on LoCoMo's train/held-out questions, then the config
    it leaves current against the shipped defaults on the unseen questions."""
    from emergent.config import MemoryConfig
    from emergent.experiments.cycle import ImprovementCycle
    from emergent.experiments.workloads import RecallWorkload

    with tempfile.TemporaryDirectory(prefix="emergent-bench-cycle-") as tmp:
        ws, _human, agent = _workspace(Path(tmp) / "ws", **({"embedder": embedder} if embedder else {}))
        try:
            reg = ws.experiments.registry
            start = _shipped_defaults(reg)
            t0 = time.perf_counter()
            wl = RecallWorkload.locomo(data, embedder=ws.embedder, directory=Path(tmp) / "replay",
                                       conversations=conversations, heldout_fraction=heldout_fraction,
                                       test_fraction=test_fraction, seed=seed)
            build_s = time.perf_counter() - t0
            t0 = time.perf_counter()
            rep = ImprovementCycle(reg, ws.experiments, proposals=ws.proposals, clock=ws.clock).run(
                "memory", wl, max_hypotheses=max_hypotheses, principal=agent)
            cycle_s = time.perf_counter() - t0
            after = reg.current("memory")
            t0 = time.perf_counter()
            shipped = MemoryConfig()
            base = wl.evaluate(shipped, wl.test)
            same = reg.validate("memory", after.values) == reg.validate("memory", shipped)
            ours = base if same else wl.evaluate(reg.values("memory"), wl.test)
            unseen_s = time.perf_counter() - t0
            embedder_id = ws.embedder.id
        finally:
            ws.close()
    gain, (lo, hi) = paired_gain(base, ours, n_boot)
    return {"cycle_gain_vs_defaults": gain, "cycle_gain_ci95": [lo, hi],
            "unseen_recall@10_after_cycle": float(ours.mean()), "unseen_recall@10_defaults": float(base.mean()),
            "cycle_decision": rep.decision, "cycle_start_version": start.id, "cycle_end_version": after.id,
            "cycle_adopted_changes": (rep.winner or {}).get("changes") if rep.decision == "adopted" else None,
            "cycle_baseline_recall@10": rep.baseline, "cycle_heldout_check": rep.heldout,
            "cycle_hypotheses": [{k: h.get(k) for k in ("changes", "effect", "p_value", "decision")}
                                 for h in rep.hypotheses],
            "train_questions": len(wl.train), "heldout_questions": len(wl.heldout),
            "unseen_questions": len(wl.test), "split_seed": seed, "embedder": embedder_id,
            "build_s": build_s, "cycle_s": cycle_s, "unseen_eval_s": unseen_s}


def run(args: dict[str, Any]) -> dict[str, Any]:
    n_sims = int(args.get("size") or 500)  # --size: simulated experiments per check
    t0 = time.perf_counter()
    out = simulate(n_sims)
    out["simulation_s"] = time.perf_counter() - t0
    out.update(planted_effect(int(args.get("planted_runs") or PLANTED_RUNS)))
    if args.get("data"):
        out.update(cycle_on_locomo(Path(args["data"]), conversations=args.get("conversations")))
    else:
        out.update({"cycle_gain_vs_defaults": None, "cycle_gain_ci95": None, "cycle_skipped": NO_DATA})
    return out


def table(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [
        ("A/A false positives, sequential (every batch)", r["aa_false_positive_rate"], r["aa_fpr_naive_peeking"],
         "≤ 0.05; baseline: Welch peeked every batch"),
        ("A/A false positives, fixed horizon", r["aa_fpr_fixed_welch"], r["aa_fpr_fixed_scipy"],
         "≈ 0.05; baseline: scipy"),
        ("power at designed effect", r["power"], r["power_scipy"],
         f"≥ 0.8 (design 0.9; statsmodels analytic {r['power_statsmodels_analytic']:.3f}); baseline: scipy"),
        ("max |p ours - p scipy|, Welch", r["max_p_diff_welch_vs_scipy"], None,
         "≈ 0; no baseline (it is the difference to scipy on the same data)"),
        ("max |p ours - p statsmodels|, two proportions", r["max_p_diff_ztest_vs_statsmodels"], None,
         "≈ 0; no baseline (it is the difference to statsmodels on the same data)"),
        ("cycle adopted the planted change (seed 0)", r["planted_effect_found"], None,
         f"True; no baseline (one run; planted on {(r.get('planted_effect') or {}).get('changes')})"),
        (f"planted change adopted, rate over {r['planted_runs']} runs", r["planted_found_rate"],
         r["null_adoption_rate"], "high; baseline: adoption rate with no effect, same runs (≤ 0.05)"),
    ]
    if r.get("cycle_gain_vs_defaults") is None:
        rows += [("LoCoMo unseen recall@10, config after the cycle", None, None, r.get("cycle_skipped", NO_DATA)),
                 ("cycle gain vs shipped defaults (unseen)", None, None, r.get("cycle_skipped", NO_DATA))]
        return rows
    lo, hi = r["cycle_gain_ci95"]
    rows += [
        (f"LoCoMo unseen recall@10 (n={r['unseen_questions']}), config after the cycle",
         r["unseen_recall@10_after_cycle"], r["unseen_recall@10_defaults"],
         "baseline: shipped defaults, same questions, same run"),
        ("cycle gain vs shipped defaults (unseen)", r["cycle_gain_vs_defaults"], None,
         f"95% CI [{lo:+.4f}, {hi:+.4f}] (paired bootstrap); no baseline (the row above's difference); "
         f"{r['cycle_decision']} {r.get('cycle_adopted_changes') or ''}".rstrip()),
    ]
    return rows
