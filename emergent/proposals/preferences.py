"""User preference learning: which proposals does this user approve?

A logistic regression (scikit-learn) on features of past decided proposals (kind, risk,
confidence, severity of the signal, size of the change, who wrote it) predicts the probability of
approval; new proposals are ranked by it. :meth:`PreferenceModel.calibration` reports, from
cross-validated predictions, the Brier score, the log loss and a reliability table (predicted vs
observed approval rate per bin), so a badly calibrated model is visible before anyone trusts it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from emergent.errors import UsageError

KINDS = ("config", "policy", "tool", "job")
RISKS = {"low": 0.0, "medium": 1.0, "high": 2.0}
FEATURES = [*(f"kind_{k}" for k in KINDS), "risk", "confidence", "severity", "change_size", "llm_written"]


def features(p: dict[str, Any]) -> list[float]:
    ev = p.get("evidence") or [{}]
    severity = float(np.mean([e.get("severity", 1.0) for e in ev])) if ev else 1.0
    change = p.get("change") or {}
    size = float(len(change.get("changes", change)))
    return [*(1.0 if p.get("kind") == k else 0.0 for k in KINDS), RISKS.get(p.get("risk", "low"), 0.0),
            float(p.get("confidence", 0.5)), min(severity, 10.0), size,
            1.0 if str(p.get("strategy", "")).startswith("llm:") else 0.0]


@dataclass
class PreferenceModel:
    model: Any
    n: int
    approval_rate: float
    report: dict[str, Any]

    @classmethod
    def fit(cls, decided: Sequence[dict[str, Any]], *, min_decisions: int = 10, seed: int = 0) -> PreferenceModel:
        """Fit on proposals whose status says approved (1) or rejected (0)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        rows = [p for p in decided if p.get("status") in APPROVED | REJECTED]
        y = np.array([1 if p["status"] in APPROVED else 0 for p in rows])
        if len(rows) < min_decisions or len(set(y.tolist())) < 2:
            raise UsageError(f"preference learning needs at least {min_decisions} decided proposals with both "
                             f"approvals and rejections; there are {len(rows)} ({int(y.sum())} approved)",
                             hint="decide more proposals, then fit again; until then proposals keep their "
                                  "creation order")
        x = np.array([features(p) for p in rows])
        model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=1000, random_state=seed))
        model.fit(x, y)
        return cls(model, len(rows), float(y.mean()), _calibration(model, x, y, seed))

    def predict(self, proposals: Sequence[dict[str, Any]]) -> np.ndarray:
        if not proposals:
            return np.zeros(0)
        return self.model.predict_proba(np.array([features(p) for p in proposals]))[:, 1]

    def rank(self, proposals: Sequence[dict[str, Any]]) -> list[tuple[dict[str, Any], float]]:
        scores = self.predict(proposals)
        return sorted(zip(proposals, scores.tolist(), strict=True), key=lambda t: -t[1])

    def coefficients(self) -> dict[str, float]:
        lr = self.model[-1]
        return {f: float(c) for f, c in zip(FEATURES, lr.coef_[0], strict=True)}


APPROVED = {"approved", "experimenting", "adopted", "rolled_back"}
REJECTED = {"rejected"}


def _calibration(model: Any, x: np.ndarray, y: np.ndarray, seed: int) -> dict[str, Any]:
    from sklearn.base import clone
    from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    folds = int(min(5, np.bincount(y).min()))
    if folds < 2:
        p = model.predict_proba(x)[:, 1]
        method = "in-sample (too few of one class for cross-validation)"
    else:
        cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
        p = cross_val_predict(clone(model), x, y, cv=cv, method="predict_proba")[:, 1]
        method = f"{folds}-fold cross-validated"
    bins = np.linspace(0, 1, 6)
    idx = np.clip(np.digitize(p, bins) - 1, 0, 4)
    table: list[dict[str, Any]] = [{"bin": f"{bins[i]:.1f}-{bins[i + 1]:.1f}", "n": int((idx == i).sum()),
              "predicted": float(p[idx == i].mean()), "observed": float(y[idx == i].mean())}
             for i in range(5) if (idx == i).any()]
    ece = float(sum(r["n"] * abs(r["predicted"] - r["observed"]) for r in table) / len(y))
    return {"method": method, "brier": float(brier_score_loss(y, p)), "log_loss": float(log_loss(y, p, labels=[0, 1])),
            "auc": float(roc_auc_score(y, p)), "ece": ece, "base_rate_brier": float(y.mean() * (1 - y.mean())),
            "reliability": table}
