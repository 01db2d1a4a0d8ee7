"""Statistics of experiments: Welch t-test, paired t-test, two-proportion z-test, bootstrap CIs,
an always-valid sequential test (mSPRT), sample-ratio-mismatch check and hash assignment.

Formulas are written out (numpy; scipy only for distribution functions) so they can be checked
against scipy/statsmodels on the same data: ``emergent bench experiments`` prints both.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy import stats as st

from emergent.errors import ValidationError

Floats = Sequence[float] | np.ndarray


@dataclass(frozen=True, slots=True)
class TestResult:
    """Effect = candidate - control (difference of means or proportions)."""

    test: str
    effect: float
    ci_low: float
    ci_high: float
    p_value: float
    statistic: float
    n_control: int
    n_candidate: int
    df: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _arr(x: Floats, name: str, min_n: int = 2) -> np.ndarray:
    a = np.asarray(x, dtype=float)
    if a.ndim != 1 or len(a) < min_n:
        raise ValidationError(f"{name} needs at least {min_n} observations, got {a.size}",
                              hint="collect more units before analysing", field=name)
    if not np.all(np.isfinite(a)):
        raise ValidationError(f"{name} contains NaN or infinite values", field=name)
    return a


def welch_t(control: Floats, candidate: Floats, alpha: float = 0.05) -> TestResult:
    """Two-sided Welch t-test (unequal variances) with a Welch-Satterthwaite CI."""
    a, b = _arr(control, "control"), _arr(candidate, "candidate")
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    eff = float(b.mean() - a.mean())
    if se == 0:
        return TestResult("welch_t", eff, eff, eff, 1.0 if eff == 0 else 0.0, 0.0, len(a), len(b), None)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    t = eff / se
    p = float(2 * st.t.sf(abs(t), df))
    q = float(st.t.ppf(1 - alpha / 2, df))
    return TestResult("welch_t", eff, eff - q * se, eff + q * se, p, float(t), len(a), len(b), float(df))


def paired_t(control: Floats, candidate: Floats, alpha: float = 0.05) -> TestResult:
    """Two-sided paired t-test: the same units measured under both configs (offline replay)."""
    a, b = _arr(control, "control"), _arr(candidate, "candidate")
    if len(a) != len(b):
        raise ValidationError(f"paired samples differ in length ({len(a)} vs {len(b)})")
    d = b - a
    n = len(d)
    se = float(d.std(ddof=1) / math.sqrt(n))
    eff = float(d.mean())
    if se == 0:
        return TestResult("paired_t", eff, eff, eff, 1.0 if eff == 0 else 0.0, 0.0, n, n, n - 1)
    t = eff / se
    q = float(st.t.ppf(1 - alpha / 2, n - 1))
    return TestResult("paired_t", eff, eff - q * se, eff + q * se, float(2 * st.t.sf(abs(t), n - 1)), t, n, n,
                      n - 1)


def two_proportion_z(x_control: int, n_control: int, x_candidate: int, n_candidate: int,
                     alpha: float = 0.05) -> TestResult:
    """Two-sided z-test of two proportions (pooled SE for the test, unpooled for the CI)."""
    for name, x, n in (("control", x_control, n_control), ("candidate", x_candidate, n_candidate)):
        if n < 1 or not 0 <= x <= n:
            raise ValidationError(f"{name}: successes {x} must be within [0, {n}] and n >= 1", field=name)
    pa, pb = x_control / n_control, x_candidate / n_candidate
    pool = (x_control + x_candidate) / (n_control + n_candidate)
    se0 = math.sqrt(pool * (1 - pool) * (1 / n_control + 1 / n_candidate))
    z = (pb - pa) / se0 if se0 > 0 else 0.0
    se1 = math.sqrt(pa * (1 - pa) / n_control + pb * (1 - pb) / n_candidate)
    q = float(st.norm.ppf(1 - alpha / 2))
    return TestResult("two_proportion_z", pb - pa, pb - pa - q * se1, pb - pa + q * se1,
                      float(2 * st.norm.sf(abs(z))), z, n_control, n_candidate)


def bootstrap_ci(control: Floats, candidate: Floats, *, paired: bool = False,
                 n_boot: int = 2000, alpha: float = 0.05, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of mean(candidate) - mean(control) (resampling units)."""
    a, b = _arr(control, "control"), _arr(candidate, "candidate")
    rng = np.random.default_rng(seed)
    if paired:
        d = b - a
        idx = rng.integers(0, len(d), size=(n_boot, len(d)))
        boots = d[idx].mean(axis=1)
    else:
        boots = (b[rng.integers(0, len(b), size=(n_boot, len(b)))].mean(axis=1)
                 - a[rng.integers(0, len(a), size=(n_boot, len(a)))].mean(axis=1))
    lo, hi = np.quantile(boots, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


# ------------------------------------------------------------------------------ sequential (mSPRT)
def msprt_lr(effect: float, var: float, tau2: float) -> float:
    """Mixture likelihood ratio of H1 (effect ~ N(0, tau2)) vs H0 (effect = 0) for a normal estimate
    ``effect`` with variance ``var`` (Johari et al., "Always valid inference", 2017)."""
    if var <= 0:
        return math.inf if effect != 0 else 1.0
    log_lr = 0.5 * math.log(var / (var + tau2)) + tau2 * effect**2 / (2 * var * (var + tau2))
    return math.exp(min(log_lr, 700.0))


@dataclass
class SequentialTest:
    """An always-valid p-value for a difference of means, watched after every batch.

    ``look(effect, var)`` takes the current estimate and its variance; the p-value is
    non-increasing and the chance it ever drops below ``alpha`` under H0 is at most ``alpha``.
    ``tau`` is the effect scale of the mixing prior (set it near the effect the test is designed for).
    """

    tau: float
    alpha: float = 0.05
    p_value: float = 1.0
    history: list[dict[str, float]] = field(default_factory=list)

    def look(self, effect: float, var: float, n: int) -> float:
        lr = msprt_lr(effect, var, self.tau**2)
        self.p_value = min(self.p_value, 1.0 / lr if lr > 0 else 1.0)
        half = self.boundary(var)
        self.history.append({"n": n, "effect": effect, "var": var, "p_value": self.p_value, "boundary": half})
        return self.p_value

    def boundary(self, var: float) -> float:
        """|effect| at which the test rejects now (the always-valid confidence-sequence half-width)."""
        t2 = self.tau**2
        if var <= 0:
            return 0.0
        # solve log LR = log(1/alpha) for effect^2
        val = (math.log(1 / self.alpha) - 0.5 * math.log(var / (var + t2))) * 2 * var * (var + t2) / t2
        return math.sqrt(max(val, 0.0))

    @property
    def rejected(self) -> bool:
        return self.p_value <= self.alpha


def sequential_looks(control: np.ndarray, candidate: np.ndarray, batch: int, tau: float, alpha: float = 0.05,
                     paired: bool = False) -> SequentialTest:
    """Run the sequential test over growing prefixes of the data, one look per ``batch`` units."""
    seq = SequentialTest(tau=tau, alpha=alpha)
    n_max = min(len(control), len(candidate)) if paired else max(len(control), len(candidate))
    for n in range(batch, n_max + batch, batch):
        a, b = control[:n], candidate[:n]
        if min(len(a), len(b)) < 2:
            continue
        if paired:
            d = b - a
            eff, var = float(d.mean()), float(d.var(ddof=1) / len(d))
        else:
            eff = float(b.mean() - a.mean())
            var = float(a.var(ddof=1) / len(a) + b.var(ddof=1) / len(b))
        seq.look(eff, var, len(b))
    return seq


# ------------------------------------------------------------------------------ design and validity
def srm_check(n_control: int, n_candidate: int, split: float = 0.5, threshold: float = 0.001) -> dict[str, Any]:
    """Sample-ratio mismatch: chi-square goodness of fit of the arm counts to the designed split."""
    total = n_control + n_candidate
    if total == 0:
        return {"chi2": 0.0, "p_value": 1.0, "mismatch": False, "expected_split": split}
    exp = np.array([total * (1 - split), total * split])
    obs = np.array([n_control, n_candidate], dtype=float)
    chi2 = float(((obs - exp) ** 2 / exp).sum())
    p = float(st.chi2.sf(chi2, 1))
    return {"chi2": chi2, "p_value": p, "mismatch": p < threshold, "expected_split": split,
            "observed_split": n_candidate / total}


def assign(unit: str, salt: str, split: float = 0.5) -> str:
    """Deterministic arm of ``unit`` in the experiment ``salt``: 'candidate' with probability ``split``."""
    h = int.from_bytes(hashlib.sha256(f"{salt}:{unit}".encode()).digest()[:8], "big")
    return "candidate" if h / 2**64 < split else "control"


def sample_size(effect: float, sd: float, alpha: float = 0.05, power: float = 0.8) -> int:
    """Units per arm for a two-sided two-sample test to detect ``effect`` (normal approximation)."""
    if effect <= 0 or sd <= 0:
        raise ValidationError("effect and sd must be positive", hint="pass the smallest effect worth detecting")
    z = st.norm.ppf(1 - alpha / 2) + st.norm.ppf(power)
    return math.ceil(2 * (z * sd / effect) ** 2) + 1
