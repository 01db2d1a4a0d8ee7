"""Impact analysis: what a proposal touches, and what history says it will do.

Lists the affected components and config keys, and estimates the effect from history: past
experiments on the same config keys (their measured effects), tool telemetry (failure rate after
one more retry, assuming independent attempts), and decided approvals (requests saved per week).
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from emergent.proposals.writer import ProposalDraft

RANKING_KEYS = {"w_relevance", "w_recency", "w_importance", "w_strength", "recency_half_life_days", "rrf_k",
                "w_vector", "w_text", "w_neighbors", "candidates"}
CONSOLIDATION_KEYS = {"promote_importance", "promote_access_count", "dedup_similarity", "archive_floor",
                      "initial_stability_days", "stability_growth", "importance_stability_boost"}


def analyse_impact(draft: ProposalDraft, sql: Any = None) -> dict[str, Any]:
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
    estimate = _estimate(draft, keys, sql) if sql is not None else {"method": "none", "note": "no history store"}
    return {"components": sorted(set(components)), "config_keys": keys, "estimate": estimate}


def _estimate(draft: ProposalDraft, keys: list[str], sql: Any) -> dict[str, Any]:
    try:
        if draft.kind == "config" and draft.change.get("namespace") == "memory":
            return _from_experiments(sql, "memory", keys)
        if draft.kind == "config" and draft.change.get("namespace") == "tools" and draft.evidence:
            return _from_retries(draft)
        if draft.kind == "policy" and draft.evidence:
            nums = draft.evidence[0].get("evidence", {}).get("numbers", {})
            return {"method": "approvals", "requests_saved_per_window": int(nums.get("decided", 0))}
    except (sa.exc.OperationalError, sa.exc.ProgrammingError) as exc:
        return {"method": "none", "note": f"history unavailable: {exc.orig}"}
    return {"method": "none", "note": "no history for this kind of change"}


def _from_experiments(sql: Any, namespace: str, keys: list[str]) -> dict[str, Any]:
    from emergent.experiments.tables import config_versions, experiments

    effects = []
    with sql.connect() as conn:
        rows = conn.execute(sa.select(experiments.c.control_version, experiments.c.candidate_version,
                                      experiments.c.result).where(experiments.c.namespace == namespace,
                                                                  experiments.c.result.is_not(None))).all()
        versions = {r.id: r.values for r in conn.execute(sa.select(config_versions.c.id, config_versions.c["values"])
                                                         .where(config_versions.c.namespace == namespace))}
    for r in rows:
        a, b = versions.get(r.control_version), versions.get(r.candidate_version)
        test = (r.result or {}).get("test")
        if a is None or b is None or not test:
            continue
        changed = {k for k in b if a.get(k) != b.get(k)}
        if changed & set(keys):
            effects.append(float(test["effect"]))
    if not effects:
        return {"method": "experiments", "n": 0, "note": "no past experiment changed these keys"}
    return {"method": "experiments", "n": len(effects), "mean_effect": sum(effects) / len(effects),
            "min_effect": min(effects), "max_effect": max(effects)}


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
