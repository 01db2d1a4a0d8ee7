"""The self-improvement cycle: baseline → hypotheses → experiments → decision → tracking.

1. **Baseline**: the current config measured on the workload's train and held-out units.
2. **Hypotheses**: config changes from proposals (approved ones first) plus generated ones:
   nudges of the tunables around their current values (halve/double a weight or a pool size).
   The generator knows neither the defaults nor where a gain lies.
3. **Experiments**: each hypothesis becomes a config version and an offline, paired experiment on
   the train units, at a Bonferroni-corrected level so trying several does not inflate errors.
4. **Decision**: the best significant winner is checked once on the held-out units; it is adopted
   (through the gate: automatic only where the permission matrix allows, else an approval) only
   when the held-out gain is positive. Everything else is rolled back or inconclusive.
5. **Tracking**: one ``improvement_cycles`` row with the whole report.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from emergent.clock import Clock, SystemClock
from emergent.errors import ExperimentError, ValidationError
from emergent.experiments import stats
from emergent.experiments.registry import ConfigRegistry, fingerprint
from emergent.experiments.service import Experiments, _jsonable
from emergent.experiments.tables import improvement_cycles


class Workload(Protocol):
    @property
    def train(self) -> Sequence[Any]: ...

    @property
    def heldout(self) -> Sequence[Any]: ...

    def evaluate(self, config: Any, units: Sequence[Any]) -> np.ndarray: ...


@dataclass
class Hypothesis:
    changes: dict[str, Any]
    rationale: str
    proposal_id: str | None = None


@dataclass
class CycleReport:
    id: str
    namespace: str
    baseline: dict[str, float]
    hypotheses: list[dict[str, Any]] = field(default_factory=list)
    winner: dict[str, Any] | None = None
    heldout: dict[str, Any] | None = None
    decision: str = "inconclusive"  # adopted | pending_approval | rejected_heldout | inconclusive
    current: str = ""
    status: str = "running"

    def as_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ hypothesis generators
#: the step a zero weight is nudged up by: a fixed step, not any field's default
ZERO_STEP = 0.5


def _up(v: float) -> float:
    """Double a weight; a weight at 0 is tried at ``ZERO_STEP`` (doubling would leave it at 0)."""
    return float(v) * 2 if v else ZERO_STEP

#: per namespace, the tunables nudged and how: (field, nudge of the current value), in the order tried
_NUDGES: dict[str, list[tuple[str, Callable[[Any], Any]]]] = {
    "memory": [("w_text", _up), ("w_text", lambda v: v / 2),
               ("w_vector", _up), ("w_vector", lambda v: v / 2),
               ("candidates", lambda v: min(2000, v * 2)), ("rrf_k", lambda v: max(1, v // 3))],
}


def generate_hypotheses(namespace: str, current: BaseModel, limit: int = 6) -> list[Hypothesis]:
    """Nudges of the namespace's tunables around their *current* values (double, halve...).

    Nothing here knows the schema's defaults or where an improvement lies: the same current values
    give the same hypotheses whatever the defaults are. Changes that would leave a value as it is,
    or that the schema refuses, are dropped."""
    out: list[Hypothesis] = []
    seen: set[tuple[tuple[str, Any], ...]] = set()
    for name, fn in _NUDGES.get(namespace, []):
        cur = getattr(current, name)
        new = fn(cur)
        key = ((name, new),)
        if new == cur or key in seen:
            continue
        try:
            current.model_validate({**current.model_dump(), name: new})
        except PydanticValidationError:
            continue
        seen.add(key)
        out.append(Hypothesis({name: new}, f"try {name}={new!r} (now {cur!r})"))
    return out[:limit]


class ImprovementCycle:
    def __init__(self, registry: ConfigRegistry, experiments: Experiments, *, clock: Clock | None = None,
                 proposals: Any = None) -> None:
        self.registry = registry
        self.experiments = experiments
        self.clock = clock or SystemClock()
        self.proposals = proposals
        self.sql = registry.sql

    def run(self, namespace: str, workload: Workload, *, hypotheses: Sequence[Hypothesis] | None = None,
            max_hypotheses: int = 6, alpha: float = 0.05, tau: float = 0.05, min_units: int = 30,
            min_heldout_gain: float = 0.0, principal: Any,
            progress: Callable[[str], None] | None = None) -> CycleReport:
        """One cycle on ``namespace``, acting as ``principal`` (the self-improvement agent): it
        creates versions and experiments and decides them; adoption goes through the gate."""
        actor = self.experiments.gate.verify(principal)
        say = progress or (lambda _m: None)
        if len(workload.train) < min_units:
            raise ValidationError(f"the workload has {len(workload.train)} train units, fewer than {min_units}",
                                  hint="use a larger workload or lower min_units")
        current = self.registry.current(namespace)
        model = self.registry.values(namespace)
        cache: dict[tuple[str, int], np.ndarray] = {}

        def evaluate(cfg: BaseModel, units: Sequence[Any]) -> np.ndarray:
            key = (fingerprint(cfg.model_dump(mode="json")), id(units))
            if key not in cache:
                cache[key] = np.asarray(workload.evaluate(cfg, units), dtype=float)
            return cache[key]

        say(f"baseline of {current.id}")
        base_train, base_held = evaluate(model, workload.train), evaluate(model, workload.heldout)
        report = CycleReport(uuid.uuid4().hex[:16], namespace, {"train": float(base_train.mean()),
                                                               "heldout": float(base_held.mean())}, current=current.id)
        self._track(report, insert=True)
        hyps = list(hypotheses) if hypotheses is not None else self._hypotheses(namespace, model, max_hypotheses)
        level = alpha / max(1, len(hyps))
        results = []
        for h in hyps:
            say(f"experiment: {h.rationale}")
            results.append(self._experiment(namespace, current.id, h, workload, evaluate, level, tau, min_units, actor))
        report.hypotheses = [r["summary"] for r in results]
        winners = sorted((r for r in results if r["analysis"] is not None and r["analysis"].decision == "adopt"),
                         key=lambda r: -r["analysis"].test["effect"])
        for r in results:  # losers and ties end here
            if r["analysis"] is not None and r is not (winners[0] if winners else None):
                self._close(r, actor)
        if winners:
            self._decide_winner(report, winners[0], workload, evaluate, base_held, min_heldout_gain, actor)
        report.status = "done"
        report.current = self.registry.current(namespace).id
        self._track(report)
        return report

    # ---------------------------------------------------------------- steps
    def _hypotheses(self, namespace: str, model: BaseModel, limit: int) -> list[Hypothesis]:
        from_proposals: list[Hypothesis] = []
        if self.proposals is not None:
            for p in self.proposals.config_hypotheses(namespace):
                from_proposals.append(Hypothesis(p["changes"], p["title"], p["id"]))
        generated = generate_hypotheses(namespace, model, limit)
        taken = {tuple(sorted(h.changes.items())) for h in from_proposals}
        return (from_proposals + [h for h in generated if tuple(sorted(h.changes.items())) not in taken])[:limit]

    def _experiment(self, namespace: str, control: str, h: Hypothesis, workload: Workload,
                    evaluate: Callable[[BaseModel, Sequence[Any]], np.ndarray], level: float, tau: float,
                    min_units: int, actor: Any) -> dict[str, Any]:
        summary: dict[str, Any] = {"changes": h.changes, "rationale": h.rationale, "proposal_id": h.proposal_id}
        try:
            version = self.registry.create(namespace, changes=h.changes, base=control, principal=actor,
                                           note=h.rationale)
        except ValidationError as exc:
            return {"summary": {**summary, "decision": "invalid", "reason": exc.message}, "analysis": None}
        exp = self.experiments.start(h.rationale[:200], version.id, control=control, metric="score", mode="offline",
                                     proposal_id=h.proposal_id, alpha=level, tau=tau, min_units=min_units,
                                     principal=actor)
        self._proposal(h, "experimenting", actor, f"experiment {exp['id']}")
        summary.update(experiment=exp["id"], version=version.id)
        try:
            a = self.experiments.replay(exp["id"], workload.train, evaluate)
        except ExperimentError as exc:
            self._proposal(h, "rolled_back", actor, exc.message)
            return {"summary": {**summary, "decision": "crashed", "reason": exc.message}, "analysis": None}
        summary.update(effect=a.test["effect"] if a.test else None, ci=a.bootstrap_ci,
                       p_value=a.test["p_value"] if a.test else None, sequential_p=a.sequential_p,
                       decision=a.decision, reason=a.reason, mean=a.mean_candidate)
        return {"summary": summary, "analysis": a, "experiment": exp, "hypothesis": h}

    def _close(self, r: dict[str, Any], actor: Any) -> None:
        a = r["analysis"]
        if a.decision == "adopt":  # a winner that was not the best one
            a.decision, a.reason = "inconclusive", f"another candidate was better ({a.reason})"
            r["summary"]["decision"] = "not_best"
        self.experiments.decide(r["experiment"]["id"], by=actor, analysis=a)
        self._proposal(r["hypothesis"], "rolled_back", actor, a.reason)

    def _decide_winner(self, report: CycleReport, w: dict[str, Any], workload: Workload,
                       evaluate: Callable[[BaseModel, Sequence[Any]], np.ndarray], base_held: np.ndarray,
                       min_gain: float, actor: Any) -> None:
        cand = self.registry.schema(report.namespace).model_validate(
            self.registry.get(w["summary"]["version"]).values)
        held = evaluate(cand, workload.heldout)
        test = stats.paired_t(base_held, held) if len(held) >= 2 else None
        gain = float(held.mean() - base_held.mean()) if len(held) else 0.0
        report.winner = w["summary"]
        report.heldout = {"baseline": float(base_held.mean()), "candidate": float(held.mean()), "gain": gain,
                          "test": test.as_dict() if test else None, "n": len(held)}
        exp_id = w["experiment"]["id"]
        if gain <= min_gain:
            a = w["analysis"]
            a.decision, a.reason = "rollback", f"held-out gain {gain:+.4f} <= {min_gain} (overfit to train)"
            self.experiments.decide(exp_id, by=actor, analysis=a)
            self._proposal(w["hypothesis"], "rolled_back", actor, a.reason)
            report.decision = "rejected_heldout"
            return
        out = self.experiments.decide(exp_id, by=actor, analysis=w["analysis"])
        report.decision = out["status"]
        if out["status"] == "adopted":
            self._proposal(w["hypothesis"], "adopted", actor, f"held-out gain {gain:+.4f}")

    def _proposal(self, h: Hypothesis, status: str, actor: Any, reason: str) -> None:
        if self.proposals is not None and h.proposal_id:
            self.proposals.track(h.proposal_id, status, principal=actor, reason=reason)

    def _track(self, report: CycleReport, insert: bool = False) -> None:
        values = {"namespace": report.namespace, "status": report.status, "decision": report.decision,
                  "report": report.as_dict()}
        with self.sql.begin() as conn:
            if insert:
                conn.execute(improvement_cycles.insert().values(id=report.id, started_at=self.clock.now(), **values))
            else:
                conn.execute(improvement_cycles.update().where(improvement_cycles.c.id == report.id)
                             .values(finished_at=self.clock.now(), **values))

    def history(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.sql.connect() as conn:
            rows = conn.execute(sa.select(improvement_cycles).order_by(improvement_cycles.c.started_at.desc())
                                .limit(limit)).all()
        return [dict(r._mapping) for r in rows]
