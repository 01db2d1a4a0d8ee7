"""The ``Experiments`` service: a candidate config version against the current one.

Online: each unit (a user, a session, a query) gets an arm by hashing its id, observations are
recorded per unit, and :meth:`analyze` checks the sample ratio, the guardrails and the statistics
(Welch t-test, bootstrap CI, the always-valid sequential p-value). Offline: :meth:`replay` runs a
recorded workload under both configs (paired by unit). :meth:`decide` turns the analysis into
``adopt``, ``rollback`` or ``inconclusive``; adoption makes the candidate current only when the gate
allows it automatically, else it files an approval request (bound to the digest of exactly this
adoption) and waits (``pending_approval``) until a human approves it (:meth:`Experiments.approve`,
or ``emergent approvals approve`` followed by :meth:`Experiments.sync_approvals`); the approval is
used once. Who starts, decides and approves is a :class:`~emergent.principals.Principal`; every
change is in the audit trail (intent before, outcome after).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import sqlalchemy as sa
from pydantic import BaseModel

from emergent.clock import Clock, SystemClock
from emergent.errors import ExperimentError, NotFoundError, StateConflictError, ValidationError
from emergent.experiments import stats
from emergent.experiments.gate import Gate
from emergent.experiments.registry import ConfigRegistry
from emergent.experiments.tables import experiment_observations, experiments
from emergent.workspace.audited import human, recorded, verified

OPEN = ("running", "pending_approval")


@dataclass(frozen=True, slots=True)
class Guardrail:
    """Stop the experiment when the candidate's mean of ``metric`` passes ``limit``.

    ``max`` guardrails (latency, error rate) trip above the limit, ``min`` ones below it; also when
    the candidate is worse than control by more than ``max_delta`` (when set).
    """

    metric: str
    limit: float | None = None
    kind: str = "max"
    max_delta: float | None = None
    min_units: int = 20


@dataclass
class Design:
    metric: str
    higher_is_better: bool = True
    split: float = 0.5
    alpha: float = 0.05
    min_units: int = 30
    tau: float = 0.05
    batch: int = 25
    guardrails: list[Guardrail] = field(default_factory=list)
    srm_threshold: float = 0.001

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Design:
        d = dict(d)
        d["guardrails"] = [Guardrail(**g) for g in d.get("guardrails", [])]
        return cls(**d)


@dataclass
class Analysis:
    experiment_id: str
    n_control: int
    n_candidate: int
    mean_control: float
    mean_candidate: float
    test: dict[str, Any] | None
    bootstrap_ci: tuple[float, float] | None
    sequential: list[dict[str, float]]
    sequential_p: float
    srm: dict[str, Any]
    guardrails: list[dict[str, Any]]
    decision: str  # adopt | rollback | inconclusive | insufficient | invalid
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


ADOPT = "config.adopt"


class Experiments:
    """Experiments over the config ``registry``; adoption through ``gate`` (:class:`Gate`); ``audit``
    is an :class:`emergent.audit.Auditor`."""

    def __init__(self, sql: Any, registry: ConfigRegistry, *, gate: Gate, clock: Clock | None = None,
                 audit: Any = None) -> None:
        self.sql = sql
        self.registry = registry
        self.clock = clock or SystemClock()
        self.gate = gate
        self.audit = audit

    @property
    def principals(self) -> Any:
        return self.gate.principals

    # ---------------------------------------------------------------- lifecycle
    def start(self, name: str, candidate: str, *, metric: str, principal: Any, control: str | None = None,
              mode: str = "online", proposal_id: str | None = None, **design: Any) -> dict[str, Any]:
        who = verified(self.principals, principal)
        if mode not in ("online", "offline"):
            raise ValidationError(f"unknown experiment mode {mode!r}", hint="use 'online' or 'offline'")
        cand = self.registry.get(candidate)
        ctrl = self.registry.get(control) if control else self.registry.current(cand.namespace)
        if ctrl.namespace != cand.namespace:
            raise ValidationError(f"control {ctrl.id} and candidate {cand.id} are in different namespaces")
        if ctrl.id == cand.id:
            raise ValidationError(f"candidate {cand.id} is the control itself", hint="create a new version first")
        d = Design(metric=metric, **design)
        if not 0 < d.split < 1:
            raise ValidationError(f"split must be in (0, 1), got {d.split}")
        now = self.clock.now()
        row = {"id": uuid.uuid4().hex[:16], "name": name, "namespace": cand.namespace, "control_version": ctrl.id,
               "candidate_version": cand.id, "mode": mode, "metric": metric, "status": "running", "decision": None,
               "design": d.as_dict(), "result": None, "proposal_id": proposal_id, "created_at": now,
               "updated_at": now, "approval_id": None}
        intent = {"experiment": row["id"], "control": ctrl.id, "candidate": cand.id, "metric": metric, "mode": mode}
        with recorded(self.audit, "experiment.start", who, intent), self.sql.begin() as conn:
            conn.execute(experiments.insert().values(**row))
        return row

    def get(self, experiment_id: str) -> dict[str, Any]:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(experiments).where(experiments.c.id == experiment_id)).first()
        if r is None:
            raise NotFoundError(f"no experiment {experiment_id!r}", hint="list them with `emergent experiments list`")
        return dict(r._mapping)

    def list(self, status: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        q = sa.select(experiments).order_by(experiments.c.created_at.desc()).limit(limit)
        if status:
            q = q.where(experiments.c.status == status)
        with self.sql.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    # ---------------------------------------------------------------- online
    def assign(self, experiment_id: str, unit: str) -> str:
        exp = self.get(experiment_id)
        return stats.assign(unit, exp["id"], exp["design"]["split"])

    def config_for(self, experiment_id: str, unit: str) -> BaseModel:
        """The config values the unit should run with (its arm's version)."""
        exp = self.get(experiment_id)
        arm = stats.assign(unit, exp["id"], exp["design"]["split"])
        vid = exp["candidate_version"] if arm == "candidate" and exp["status"] == "running" else exp["control_version"]
        return self.registry.schema(exp["namespace"]).model_validate(self.registry.get(vid).values)

    def record(self, experiment_id: str, unit: str, value: float | None, *, arm: str | None = None,
               guardrails: dict[str, float] | None = None) -> str:
        """Record one observation of ``unit``; ``value=None`` records a crash of that unit's run."""
        exp = self.get(experiment_id)
        if exp["status"] != "running":
            raise StateConflictError(f"experiment {experiment_id} is {exp['status']}, not running",
                                     hint="start a new experiment")
        arm = arm or stats.assign(unit, exp["id"], exp["design"]["split"])
        if arm not in ("control", "candidate"):
            raise ValidationError(f"arm must be control or candidate, got {arm!r}")
        with self.sql.begin() as conn:
            conn.execute(experiment_observations.insert().values(
                experiment_id=experiment_id, unit=str(unit), arm=arm, value=value, guardrails=guardrails,
                at=self.clock.now()))
        return arm

    def observations(self, experiment_id: str) -> builtins.list[dict[str, Any]]:
        with self.sql.connect() as conn:
            rows = conn.execute(sa.select(experiment_observations)
                                .where(experiment_observations.c.experiment_id == experiment_id)
                                .order_by(experiment_observations.c.seq)).all()
        return [dict(r._mapping) for r in rows]

    def analyze(self, experiment_id: str, *, paired: bool = False) -> Analysis:
        exp = self.get(experiment_id)
        obs = self.observations(experiment_id)
        arms: dict[str, builtins.list[float]] = {"control": [], "candidate": []}
        crashes = {"control": 0, "candidate": 0}
        guards: dict[str, dict[str, builtins.list[float]]] = {"control": {}, "candidate": {}}
        for o in obs:
            if o["value"] is None:
                crashes[o["arm"]] += 1
            else:
                arms[o["arm"]].append(float(o["value"]))
            for k, v in (o["guardrails"] or {}).items():
                guards[o["arm"]].setdefault(k, []).append(float(v))
        for arm in arms:  # crash rate is always a guardrail
            n = len(arms[arm]) + crashes[arm]
            guards[arm]["crash_rate"] = [crashes[arm] / n] if n else []
        return analyse(exp["id"], Design.from_dict(exp["design"]), np.array(arms["control"]),
                       np.array(arms["candidate"]), guards, paired=paired,
                       counts=(len(arms["control"]) + crashes["control"],
                               len(arms["candidate"]) + crashes["candidate"]))

    # ---------------------------------------------------------------- offline
    def replay(self, experiment_id: str, units: Sequence[Any],
               evaluate: Callable[[BaseModel, Sequence[Any]], Any]) -> Analysis:
        """Evaluate both configs on the same recorded ``units`` (paired) and analyse.

        ``evaluate(config, units)`` returns one metric value per unit. A candidate that raises is a
        crash: the experiment fails with decision ``rollback`` and the current config is untouched.
        """
        exp = self.get(experiment_id)
        schema = self.registry.schema(exp["namespace"])
        ctrl = schema.model_validate(self.registry.get(exp["control_version"]).values)
        cand = schema.model_validate(self.registry.get(exp["candidate_version"]).values)
        a = np.asarray(evaluate(ctrl, units), dtype=float)
        try:
            b = np.asarray(evaluate(cand, units), dtype=float)
            if b.shape != a.shape:
                raise ValueError(f"candidate returned {b.shape[0] if b.ndim else 0} values for {len(a)} units")
        except Exception as exc:
            self._finish(experiment_id, "failed", "rollback", {"error": f"{type(exc).__name__}: {exc}"})
            raise ExperimentError(f"candidate {exp['candidate_version']} crashed during replay: {exc}",
                                  hint="the current config was not changed; fix the candidate and start again",
                                  experiment_id=experiment_id) from exc
        rows = [{"experiment_id": experiment_id, "unit": f"u{i}", "arm": arm, "value": float(v), "guardrails": None,
                 "at": self.clock.now()} for arm, vals in (("control", a), ("candidate", b)) for i, v in enumerate(vals)]
        with self.sql.begin() as conn:
            conn.execute(experiment_observations.insert(), rows)
        result = analyse(experiment_id, Design.from_dict(exp["design"]), a, b, {}, paired=True)
        self._store(experiment_id, result)
        return result

    # ---------------------------------------------------------------- decision
    def decide(self, experiment_id: str, *, by: Any, analysis: Analysis | None = None,
               paired: bool | None = None) -> dict[str, Any]:
        """Apply the analysis, as ``by``: adopt (through the gate), roll back, or stay inconclusive."""
        who = verified(self.principals, by)
        exp = self.get(experiment_id)
        if exp["status"] not in OPEN:
            raise StateConflictError(f"experiment {experiment_id} is already {exp['status']}")
        paired = exp["mode"] == "offline" if paired is None else paired
        a = analysis or self.analyze(experiment_id, paired=paired)
        self._store(experiment_id, a)
        if a.decision == "insufficient":
            raise ExperimentError(f"experiment {experiment_id}: {a.reason}",
                                  hint="keep collecting observations; nothing was changed", experiment_id=experiment_id)
        if a.decision == "invalid":
            self._finish(experiment_id, "invalid", "invalid", a.as_dict())
            raise ExperimentError(f"experiment {experiment_id} is invalid: {a.reason}",
                                  hint="check the assignment and logging of units; nothing was changed",
                                  experiment_id=experiment_id)
        if a.decision != "adopt":
            status = "rolled_back" if a.decision == "rollback" else "inconclusive"
            with recorded(self.audit, "experiment.decide", who, {"experiment": experiment_id,
                                                                 "decision": a.decision, "reason": a.reason}):
                self._finish(experiment_id, status, a.decision, a.as_dict())
            return {"decision": a.decision, "status": status, "reason": a.reason}
        p = a.test["p_value"] if paired and a.test else a.sequential_p
        return self.adopt(experiment_id, principal=who, reason=a.reason, confidence=max(0.0, 1.0 - float(p)))

    def adopt(self, experiment_id: str, *, principal: Any, reason: str = "",
              confidence: float | None = None) -> dict[str, Any]:
        """Make the candidate current if the gate allows ``principal`` to (``confidence``: how sure,
        0..1; agents below the threshold are asked); on *ask* file an approval and wait for a human."""
        who = verified(self.principals, principal)
        exp = self.get(experiment_id)
        if exp["status"] not in OPEN:
            raise StateConflictError(f"experiment {experiment_id} is already {exp['status']}")
        ns = exp["namespace"]
        verdict = self.gate.decide(who, ADOPT, ns, confidence=confidence)
        with recorded(self.audit, "experiment.adopt", who, {"experiment": experiment_id, "namespace": ns,
                                                            "candidate": exp["candidate_version"],
                                                            "gate": verdict.effect, "why": verdict.reason}) as out:
            if verdict.effect == "allow":
                result = self._adopt(exp, who, reason)
            elif verdict.effect == "ask":
                aid = self.gate.request(who, ADOPT, ns, f"adopt {exp['candidate_version']} "
                                                        f"(experiment {experiment_id}): {reason}",
                                        self._adoption_args(exp), confidence=confidence)
                self._finish(experiment_id, "pending_approval", "adopt", None, keep_result=True, approval_id=aid)
                result = {"decision": "adopt", "status": "pending_approval", "approval_id": aid,
                          "reason": f"gate: ask ({verdict.reason})"}
            else:
                self._finish(experiment_id, "rejected", "adopt", None, keep_result=True)
                result = {"decision": "adopt", "status": "rejected", "reason": f"gate: deny ({verdict.reason})"}
            out["status"] = result["status"]
        return result

    @staticmethod
    def _adoption_args(exp: dict[str, Any]) -> dict[str, Any]:
        """What an adoption approval is granted for (its digest binds these)."""
        return {"experiment": exp["id"], "control": exp["control_version"], "candidate": exp["candidate_version"]}

    def _adopt(self, exp: dict[str, Any], who: Any, reason: str) -> dict[str, Any]:
        self.registry._switch(exp["candidate_version"], principal=who, expected=exp["control_version"],
                              reason=f"experiment {exp['id']}: {reason}", action="adopt")
        self._finish(exp["id"], "adopted", "adopt", None, keep_result=True)
        return {"decision": "adopt", "status": "adopted", "reason": reason, "current": exp["candidate_version"]}

    def approve(self, experiment_id: str, *, by: Any, reason: str = "approved") -> dict[str, Any]:
        """A human approves an adoption the gate sent for approval; it is carried out at once (once)."""
        who = human(self.principals, by, "approve the adoption of a config")
        exp = self.get(experiment_id)
        if exp["status"] != "pending_approval":
            raise StateConflictError(f"experiment {experiment_id} is {exp['status']}, not pending_approval",
                                     hint="only an adoption waiting for approval can be approved")
        if exp.get("approval_id"):
            self.gate.approve(exp["approval_id"], by=who, reason=reason)
        return self._carry_out(exp, who, reason)

    def reject(self, experiment_id: str, *, by: Any, reason: str) -> dict[str, Any]:
        """A human refuses an adoption waiting for approval; the current config stays."""
        who = human(self.principals, by, "reject the adoption of a config")
        exp = self.get(experiment_id)
        if exp["status"] != "pending_approval":
            raise StateConflictError(f"experiment {experiment_id} is {exp['status']}, not pending_approval")
        with recorded(self.audit, "experiment.reject", who, {"experiment": experiment_id, "reason": reason}):
            if exp.get("approval_id"):
                self.gate.reject(exp["approval_id"], by=who, reason=reason)
            self._finish(experiment_id, "rejected", "adopt", None, keep_result=True)
        return {"decision": "adopt", "status": "rejected", "reason": reason}

    def sync_approvals(self) -> int:
        """Carry out adoptions whose approval was decided elsewhere (``emergent approvals approve``)."""
        n = 0
        for exp in self.list("pending_approval"):
            aid = exp.get("approval_id")
            if not aid:
                continue
            a = self.gate.get(aid)
            if a.status == "approved":
                self._carry_out(exp, self.gate.principal(a.decided_by), a.decision_reason or "approved")
            elif a.status in ("rejected", "expired"):
                self._finish(exp["id"], "rejected", "adopt", None, keep_result=True)
            else:
                continue
            n += 1
        return n

    def _carry_out(self, exp: dict[str, Any], who: Any, reason: str) -> dict[str, Any]:
        """Use the experiment's approval (once, for exactly this adoption), then adopt."""
        with recorded(self.audit, "experiment.approved", who, {"experiment": exp["id"],
                                                               "approval": exp.get("approval_id")}):
            if exp.get("approval_id"):
                self.gate.consume(exp["approval_id"], action=ADOPT, resource=exp["namespace"],
                                  args=self._adoption_args(exp), call_id=exp["id"])
            try:
                return self._adopt(exp, who, reason)
            except StateConflictError:  # the approval is used: this adoption cannot be retried
                self._finish(exp["id"], "failed", "adopt", None, keep_result=True)
                raise

    def refresh(self, experiment_id: str) -> Analysis:
        """Analyse a running online experiment and store the analysis (what dashboards show)."""
        a = self.analyze(experiment_id)
        self._store(experiment_id, a)
        return a

    def _store(self, experiment_id: str, a: Analysis) -> None:
        with self.sql.begin() as conn:
            conn.execute(experiments.update().where(experiments.c.id == experiment_id)
                         .values(result=_jsonable(a.as_dict()), updated_at=self.clock.now()))

    def _finish(self, experiment_id: str, status: str, decision: str, result: dict[str, Any] | None,
                keep_result: bool = False, approval_id: str | None = None) -> None:
        values: dict[str, Any] = {"status": status, "decision": decision, "updated_at": self.clock.now()}
        if approval_id is not None:
            values["approval_id"] = approval_id
        if not keep_result:
            values["result"] = _jsonable(result)
        with self.sql.begin() as conn:
            res = conn.execute(experiments.update().where(experiments.c.id == experiment_id,
                                                          experiments.c.status.in_(OPEN)).values(**values))
        if res.rowcount != 1:
            raise StateConflictError(f"experiment {experiment_id} was decided concurrently")


# ------------------------------------------------------------------------------ the analysis itself
def analyse(experiment_id: str, d: Design, a: np.ndarray, b: np.ndarray, guards: dict[str, dict[str, list[float]]],
            *, paired: bool, counts: tuple[int, int] | None = None) -> Analysis:
    n_a, n_b = counts or (len(a), len(b))
    srm = stats.srm_check(n_a, n_b, d.split, d.srm_threshold) if not paired else {"mismatch": False, "p_value": 1.0}
    base: dict[str, Any] = dict(experiment_id=experiment_id, n_control=n_a, n_candidate=n_b,
                mean_control=float(a.mean()) if len(a) else float("nan"),
                mean_candidate=float(b.mean()) if len(b) else float("nan"), srm=srm)
    tripped = _guardrails(d, guards)
    if min(len(a), len(b)) < d.min_units:
        if any(g["tripped"] for g in tripped):
            return Analysis(**base, test=None, bootstrap_ci=None, sequential=[], sequential_p=1.0,
                            guardrails=tripped, decision="rollback", reason="guardrail tripped: " + _names(tripped))
        return Analysis(**base, test=None, bootstrap_ci=None, sequential=[], sequential_p=1.0, guardrails=tripped,
                        decision="insufficient",
                        reason=f"too few units: {min(len(a), len(b))} < {d.min_units} per arm")
    binary = not paired and bool(np.isin(np.concatenate([a, b]), (0.0, 1.0)).all())
    if paired:
        test = stats.paired_t(a, b, d.alpha)
    elif binary:  # success/failure per unit: compare the two proportions
        test = stats.two_proportion_z(int(a.sum()), len(a), int(b.sum()), len(b), d.alpha)
    else:
        test = stats.welch_t(a, b, d.alpha)
    ci = stats.bootstrap_ci(a, b, paired=paired, alpha=d.alpha)
    seq = stats.sequential_looks(a, b, d.batch, d.tau, d.alpha, paired=paired)
    sign = 1.0 if d.higher_is_better else -1.0
    # Offline replay sees all its data at once: the fixed-horizon paired test is valid there. Online
    # results are watched while they arrive: only the always-valid sequential p-value may decide.
    p, which = (test.p_value, "paired t") if paired else (seq.p_value, "always-valid")
    significant = p <= d.alpha
    if srm["mismatch"]:
        decision, reason = "invalid", f"sample-ratio mismatch (chi-square p={srm['p_value']:.2g})"
    elif any(g["tripped"] for g in tripped):
        decision, reason = "rollback", "guardrail tripped: " + _names(tripped)
    elif significant and sign * test.effect > 0 and sign * (ci[0] if sign > 0 else ci[1]) > 0:
        decision, reason = "adopt", f"candidate better by {test.effect:+.4g} ({which} p={p:.3g})"
    elif significant and sign * test.effect < 0:
        decision, reason = "rollback", f"candidate worse by {test.effect:+.4g} ({which} p={p:.3g})"
    else:
        decision, reason = "inconclusive", f"no significant difference ({which} p={p:.3g})"
    return Analysis(**base, test=test.as_dict(), bootstrap_ci=ci, sequential=seq.history, sequential_p=seq.p_value,
                    guardrails=tripped, decision=decision, reason=reason)


def _guardrails(d: Design, guards: dict[str, dict[str, list[float]]]) -> list[dict[str, Any]]:
    out = []
    rails = list(d.guardrails)
    if "crash_rate" in guards.get("candidate", {}) and not any(g.metric == "crash_rate" for g in rails):
        rails.append(Guardrail("crash_rate", limit=0.05, min_units=1))
    for g in rails:
        cand = guards.get("candidate", {}).get(g.metric, [])
        ctrl = guards.get("control", {}).get(g.metric, [])
        mc = float(np.mean(cand)) if cand else float("nan")
        mk = float(np.mean(ctrl)) if ctrl else float("nan")
        enough = len(cand) >= g.min_units or g.metric == "crash_rate"
        over = g.limit is not None and (mc > g.limit if g.kind == "max" else mc < g.limit)
        delta = mc - mk if g.kind == "max" else mk - mc
        worse = g.max_delta is not None and ctrl and delta > g.max_delta
        out.append({"metric": g.metric, "candidate": mc, "control": mk, "limit": g.limit,
                    "tripped": bool(cand) and enough and bool(over or worse)})
    return out


def _names(rails: list[dict[str, Any]]) -> str:
    return ", ".join(f"{g['metric']}={g['candidate']:.3g}" for g in rails if g["tripped"])


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        f = float(obj)
        return f if np.isfinite(f) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
