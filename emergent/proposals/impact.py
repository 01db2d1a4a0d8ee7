"""Impact analysis: what a proposal touches, and what history says it will do.

Lists the affected components and config keys, and estimates the effect from history: past
experiments on the same config keys (their measured effects), tool telemetry (failure rate after
one more retry, assuming independent attempts), and decided approvals (requests saved per week).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import sqlalchemy as sa

from emergent.proposals.signals import PastExperiment
from emergent.proposals.writer import ProposalDraft

History = Callable[[str], list[PastExperiment]]

RANKING_KEYS = {"w_relevance", "w_recency", "w_importance", "w_strength", "recency_half_life_days", "rrf_k",
                "w_vector", "w_text", "w_neighbors", "candidates"}
CONSOLIDATION_KEYS = {"promote_importance", "promote_access_count", "dedup_similarity", "archive_floor",
                      "initial_stability_days", "stability_growth", "importance_stability_boost"}


def analyse_impact(draft: ProposalDraft, history: History | None = None) -> dict[str, Any]:
    """Components and config keys ``draft`` touches, and an estimate of its effect; ``history``
    gives the past experiments of a config namespace (:func:`past_experiments`)."""
    change = draft.change
    keys = sorted(change.get("changes", {}))
    components: list[str] = []
    if draft.kind == "config" and change.get("namespace") == "memory":
        if RANKING_KEYS & set(keys):
            components.append("memory.recall")
        if CONSOLIDATION_KEYS & set(keys):
            components.append("memory.consolidation")
        components = components or ["memory"]
    elif draft.kind == "config" and change.get("namespace") == "tools":
        components = [f"tools.runner:{t}" for sect in change["changes"].values() for t in sect]
    elif draft.kind == "policy":
        components = ["autonomy.policy", f"tools:{change['rule']['tool']}"]
    else:
        components = [f"{draft.kind}:{draft.target}"]
    estimate = _estimate(draft, keys, history)
    return {"components": sorted(set(components)), "config_keys": keys, "estimate": estimate}


def _estimate(draft: ProposalDraft, keys: list[str], history: History | None) -> dict[str, Any]:
    try:
        if draft.kind == "config" and draft.change.get("namespace") == "memory":
            if history is None:
                return {"method": "none", "note": "no experiment history here"}
            return _from_experiments(history("memory"), keys)
        if draft.kind == "config" and draft.change.get("namespace") == "tools" and draft.evidence:
            return _from_retries(draft)
        if draft.kind == "policy" and draft.evidence:
            nums = draft.evidence[0].get("evidence", {}).get("numbers", {})
            return {"method": "approvals", "requests_saved_per_window": int(nums.get("decided", 0))}
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        return {"method": "none", "note": f"history unavailable: {exc.orig}"}
    return {"method": "none", "note": "no history for this kind of change"}


def _from_experiments(history: list[PastExperiment], keys: list[str]) -> dict[str, Any]:
    effects = []
    for control, candidate, result in history:
        test = (result or {}).get("test")
        if not test:
            continue
        changed = {k for k in candidate if control.get(k) != candidate.get(k)}
        if changed & set(keys):
            effects.append(float(test["effect"]))
    if not effects:
        return {"method": "experiments", "n": 0, "note": "no past experiment changed these keys"}
    return {"method": "experiments", "n": len(effects), "mean_effect": sum(effects) / len(effects),
            "min_effect": min(effects), "max_effect": max(effects)}


class _Versions(Protocol):
    def versions(self, namespace: str) -> list[Any]: ...


class ExperimentsReader(Protocol):
    """What :func:`past_experiments` reads of the experiments service (``Experiments``)."""

    @property
    def registry(self) -> _Versions: ...

    def list(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]: ...


def past_experiments(experiments: ExperimentsReader, namespace: str, limit: int = 100_000) -> list[PastExperiment]:
    """(control values, candidate values, result) of every experiment in ``namespace`` with a result,
    read through the experiments service and its config registry (an experiment whose version was
    deleted is left out)."""
    versions = {v.id: v.values for v in experiments.registry.versions(namespace)}
    out: list[PastExperiment] = []
    for e in experiments.list(limit=limit):
        a, b = versions.get(e["control_version"]), versions.get(e["candidate_version"])
        if e["namespace"] == namespace and e["result"] is not None and a is not None and b is not None:
            out.append((a, b, e["result"]))
    return out


def _from_retries(draft: ProposalDraft) -> dict[str, Any]:
    nums = draft.evidence[0].get("evidence", {}).get("numbers", {})
    calls, failures = nums.get("calls") or 0, nums.get("failures") or 0
    if not calls:
        return {"method": "telemetry", "note": "no calls"}
    p = failures / calls
    retry = next(iter(draft.change["changes"].get("retry", {}).values()), None)
    if retry is None:
        return {"method": "telemetry", "failure_rate": p}
    attempts = int(retry["attempts"]) - 1  # attempts before the change
    q = p ** (1 / max(attempts, 1))  # per-attempt failure probability if attempts are independent
    return {"method": "telemetry", "failure_rate": p, "expected_failure_rate": q ** (attempts + 1),
            "assumption": "independent attempts"}
