"""The ``Proposals`` service: signals → proposals → approval through the gate → tracking.

Lifecycle: ``draft → pending → approved | rejected``; an approved config proposal goes
``experimenting → adopted | rolled_back`` through the experiments (or is adopted directly where no
workload measures it). Every transition is one conditional UPDATE (``WHERE status = <from>``), so
two people approving the same proposal at once get one success and one clear
:class:`~emergent.errors.StateConflictError`; every transition writes a ``proposal_events`` row and
its intent and outcome in the audit trail. New proposals are deduplicated against open ones by a
fingerprint of their change.

Who acts is a :class:`~emergent.principals.Principal`: the self-improvement agent (or anyone)
generates and submits (``principal=``); the gate decides for the submitter (``system:gate`` is
recorded when its policy approves or rejects at once); otherwise approving or rejecting is a
human's decision (``by=``), and the approval request filed for the proposal is approved and used
once with it.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, PrincipalError, StateConflictError, ValidationError
from emergent.experiments.gate import Gate
from emergent.proposals import codegen
from emergent.proposals.impact import analyse_impact
from emergent.proposals.signals import Signal, Sources, Targets, run_analyzers
from emergent.proposals.tables import proposal_events, proposals
from emergent.proposals.writer import ProposalDraft, write
from emergent.providers.llm import ChatModel
from emergent.workspace.audited import human, recorded, verified

if TYPE_CHECKING:  # pragma: no cover
    from emergent.audit import Auditor
    from emergent.experiments.registry import ConfigRegistry
    from emergent.principals import Principal, Principals
    from emergent.stores.sql import SQLStore

#: who is recorded when the gate's policy decides a submitted proposal at once
GATE = "system:gate"

OPEN = ("draft", "pending", "approved", "experimenting")
TRANSITIONS: dict[str, tuple[str, ...]] = {
    "draft": ("pending", "rejected"),
    "pending": ("approved", "rejected"),
    "approved": ("experimenting", "adopted", "rolled_back"),
    "experimenting": ("adopted", "rolled_back"),
    "adopted": ("rolled_back",),
    "rejected": (),
    "rolled_back": (),
}


def fingerprint(kind: str, target: str, change: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([kind, target, change], sort_keys=True, default=str).encode()).hexdigest()


class Proposals:
    """Proposals of one workspace; ``gate`` is the autonomy gate (:class:`Gate`), ``audit`` an
    :class:`emergent.audit.Auditor`, ``sources`` the read methods of the services the analyzers and
    the impact analysis look at (:class:`~emergent.proposals.signals.Sources`, wired by the
    Workstation; without them ``analyze`` skips every analyzer and says why)."""

    def __init__(self, sql: SQLStore, *, gate: Gate, clock: Clock | None = None, llm: ChatModel | None = None,
                 registry: ConfigRegistry | None = None, targets: Targets | None = None,
                 audit: Auditor | None = None, sources: Sources | None = None) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()
        self.llm = llm
        self.gate = gate
        self.registry = registry
        self.targets = targets or Targets()
        self.audit = audit
        self.sources = sources or Sources()

    @property
    def principals(self) -> Principals:
        return self.gate.principals  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- signals → proposals
    def analyze(self, names: list[str] | None = None) -> tuple[list[Signal], dict[str, str]]:
        return run_analyzers(self.sources, self.clock.now(), self.targets, names)

    def generate(self, signals: Sequence[Signal] | None = None, *, principal: Principal,
                 submit: bool = True) -> list[dict[str, Any]]:
        """One proposal per signal (deduplicated against open ones) by ``principal``; submitted to
        the gate by default."""
        who = verified(self.principals, principal)
        if signals is None:
            signals, _ = self.analyze()
        out = []
        for s in signals:
            draft = write(s, self._current, self.llm)
            p = self.create(draft, principal=who)
            if submit and p["status"] == "draft":
                p = self.submit(p["id"], principal=who)
            out.append(p)
        return out

    def _current(self, namespace: str) -> dict[str, Any]:
        if self.registry is None:
            from emergent.experiments.registry import DEFAULT_SCHEMAS

            return DEFAULT_SCHEMAS[namespace]().model_dump(mode="json")
        return dict(self.registry.current(namespace).values)

    def create(self, draft: ProposalDraft, *, principal: Principal, diff: str | None = None,
               check: codegen.PatchCheck | None = None) -> dict[str, Any]:
        """Store a draft by ``principal``, or return the open proposal with the same change (dedup)."""
        who = verified(self.principals, principal)
        if check is not None and not check.ok:
            why = check.output if not check.applies else f"the tool's tests fail:\n{check.test_output[-800:]}"
            raise ValidationError(f"the patch of proposal {draft.title!r} is not valid: {why}",
                                  hint="regenerate the diff against the current files; nothing was proposed")
        fp = fingerprint(draft.kind, draft.target, draft.change)
        with self.sql.connect() as conn:
            same = conn.execute(sa.select(proposals).where(proposals.c.fingerprint == fp,
                                                           proposals.c.status.in_(OPEN))).first()
        if same is not None:
            return {**dict(same._mapping), "deduplicated": True}
        if diff is None and draft.kind == "config" and self.registry is not None:
            ns = draft.change["namespace"]
            old = self._current(ns)
            diff = codegen.config_diff(ns, old, {**old, **draft.change["changes"]})
            check = codegen.apply_patch(diff, {f"config/{ns}.json": codegen.json.dumps(old, indent=2, sort_keys=True,
                                                                                        default=str) + "\n"})
            if not check.applies:
                raise ValidationError(f"the generated config diff does not apply: {check.output}")
        now = self.clock.now()
        row = {"id": uuid.uuid4().hex[:16], "fingerprint": fp, "title": draft.title, "rationale": draft.rationale,
               "kind": draft.kind, "target": draft.target, "change": draft.change, "evidence": draft.evidence,
               "impact": analyse_impact(draft, self.sources.experiments), "expected": draft.expected.model_dump(),
               "risk": draft.risk, "confidence": draft.confidence, "status": "draft", "strategy": draft.strategy,
               "diff": diff, "score": None, "approval_id": None, "experiment_id": None, "created_at": now,
               "updated_at": now, "decided_at": None, "decided_by": None, "reason": None}
        with recorded(self.audit, "proposal.create", who, {"proposal": row["id"], "title": draft.title,
                                                           "kind": draft.kind, "target": draft.target,
                                                           "strategy": draft.strategy}), self.sql.begin() as conn:
            conn.execute(proposals.insert().values(**row))
            conn.execute(proposal_events.insert().values(proposal_id=row["id"], at=now, from_status=None,
                                                         to_status="draft", actor=who.key, reason=draft.strategy))
        return row

    # ---------------------------------------------------------------- lifecycle
    def get(self, proposal_id: str) -> dict[str, Any]:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(proposals).where(proposals.c.id == proposal_id)).first()
        if r is None:
            raise NotFoundError(f"no proposal {proposal_id!r}", hint="list them with `emergent proposals list`")
        return dict(r._mapping)

    def list(self, status: str | Sequence[str] | None = None, limit: int = 200) -> list[dict[str, Any]]:
        q = sa.select(proposals).order_by(proposals.c.created_at.desc()).limit(limit)
        if status:
            q = q.where(proposals.c.status.in_([status] if isinstance(status, str) else list(status)))
        with self.sql.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def events(self, proposal_id: str) -> builtins.list[dict[str, Any]]:
        with self.sql.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(proposal_events).where(proposal_events.c.proposal_id == proposal_id)
                .order_by(proposal_events.c.seq))]

    def _move(self, proposal_id: str, to: str, *, actor: Any, reason: str | None = None,
              **extra: Any) -> dict[str, Any]:
        """One transition, audited; ``actor`` is a Principal or ``system:gate`` / ``system:expiry``."""
        p = self.get(proposal_id)
        if to not in TRANSITIONS[p["status"]]:
            raise StateConflictError(f"proposal {proposal_id} is {p['status']}; it cannot become {to}",
                                     hint=f"from {p['status']} it can become: "
                                          f"{', '.join(TRANSITIONS[p['status']]) or 'nothing (final)'}",
                                     proposal_id=proposal_id, status=p["status"])
        key = actor if isinstance(actor, str) else actor.key
        now = self.clock.now()
        with recorded(self.audit, f"proposal.{to}", actor, {"proposal": proposal_id, "from": p["status"],
                                                            "reason": reason}), self.sql.begin() as conn:
            res = conn.execute(proposals.update().where(proposals.c.id == proposal_id,
                                                        proposals.c.status == p["status"])
                               .values(status=to, updated_at=now, reason=reason, **extra))
            if res.rowcount != 1:
                raise StateConflictError(f"proposal {proposal_id} was changed by someone else meanwhile",
                                         hint="reload it; your decision was not recorded", proposal_id=proposal_id)
            conn.execute(proposal_events.insert().values(proposal_id=proposal_id, at=now, from_status=p["status"],
                                                         to_status=to, actor=key, reason=reason))
        return self.get(proposal_id)

    @staticmethod
    def _action(p: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
        """(action, resource, args) of a proposal's approval request: what its digest binds."""
        return f"proposals.{p['kind']}", p["target"], {"proposal": p["id"], "change": p["change"]}

    def submit(self, proposal_id: str, *, principal: Principal) -> dict[str, Any]:
        """draft → pending, then ask the gate for ``principal``: allow approves at once, deny rejects,
        ask files an approval request (bound to the proposal's change) for a human."""
        who = verified(self.principals, principal)
        p = self._move(proposal_id, "pending", actor=who, reason="submitted")
        action, resource, args = self._action(p)
        verdict = self.gate.decide(who, action, resource, confidence=p["confidence"])
        if verdict.effect == "allow":
            return self._move(proposal_id, "approved", actor=GATE, reason=f"auto: {verdict.reason}",
                              decided_at=self.clock.now(), decided_by=GATE)
        if verdict.effect == "deny":
            return self._move(proposal_id, "rejected", actor=GATE, reason=f"denied: {verdict.reason}",
                              decided_at=self.clock.now(), decided_by=GATE)
        approval = self.gate.request(who, action, resource, p["title"], args, confidence=p["confidence"])
        with self.sql.begin() as conn:
            conn.execute(proposals.update().where(proposals.c.id == proposal_id).values(approval_id=approval))
        return self.get(proposal_id)

    def approve(self, proposal_id: str, *, by: Principal, reason: str = "") -> dict[str, Any]:
        """A human approves a pending proposal (and its approval request, which is then used)."""
        who = human(self.principals, by, "approve proposals")
        p = self.get(proposal_id)
        if p["approval_id"] and self.gate.get(p["approval_id"]).actor == who.key:
            raise PrincipalError(f"{who.key} submitted proposal {proposal_id} and may not approve it too",
                                 hint="another human approves it", proposal_id=proposal_id)
        done = self._move(proposal_id, "approved", actor=who, reason=reason, decided_at=self.clock.now(),
                          decided_by=who.key)
        if done["approval_id"]:
            self.gate.approve(done["approval_id"], by=who, reason=reason)
            self._use(done)
        return done

    def reject(self, proposal_id: str, *, by: Principal, reason: str) -> dict[str, Any]:
        """A human rejects a pending proposal, saying why (the preference model learns from it)."""
        who = human(self.principals, by, "reject proposals")
        if not reason.strip():
            raise ValidationError("a rejection needs a reason", hint="say why, so the assistant can learn from it")
        done = self._move(proposal_id, "rejected", actor=who, reason=reason, decided_at=self.clock.now(),
                          decided_by=who.key)
        if done["approval_id"]:
            self.gate.reject(done["approval_id"], by=who, reason=reason)
        return done

    def _use(self, p: dict[str, Any]) -> None:
        """Consume the proposal's approval: it approved this proposal once and nothing else."""
        if self.gate.status(p["approval_id"]) == "approved":
            action, resource, args = self._action(p)
            self.gate.consume(p["approval_id"], action=action, resource=resource, args=args, call_id=p["id"])

    def sync_approvals(self) -> int:
        """Apply decisions made in the approvals queue (e.g. `emergent approvals approve`) to proposals."""
        n = 0
        for p in self.list("pending"):
            if not p["approval_id"]:
                continue
            a = self.gate.get(p["approval_id"])
            if a.status not in ("approved", "rejected", "expired"):
                continue
            by = self.gate.principal(a.decided_by)
            try:
                done = self._move(p["id"], "approved" if a.status == "approved" else "rejected", actor=by,
                                  reason=f"approval {a.status}: {a.decision_reason or ''}".strip(": "),
                                  decided_at=self.clock.now(), decided_by=a.decided_by)
            except StateConflictError:
                continue
            if a.status == "approved":
                self._use(done)
            n += 1
        return n

    def track(self, proposal_id: str, status: str, *, principal: Principal, reason: str = "",
              experiment_id: str | None = None) -> dict[str, Any]:
        """Record what happened downstream (experimenting, adopted, rolled_back)."""
        who = verified(self.principals, principal)
        extra = {"experiment_id": experiment_id} if experiment_id else {}
        return self._move(proposal_id, status, actor=who, reason=reason, **extra)

    def config_hypotheses(self, namespace: str) -> builtins.list[dict[str, Any]]:
        """Approved config proposals for ``namespace``: the cycle turns them into experiments."""
        return [{"id": p["id"], "title": p["title"], "changes": p["change"]["changes"]}
                for p in self.list("approved") if p["kind"] == "config" and p["change"].get("namespace") == namespace]

    # ---------------------------------------------------------------- learning and metrics
    def preferences(self, min_decisions: int = 10) -> Any:
        from emergent.proposals.preferences import PreferenceModel

        return PreferenceModel.fit(self.list(limit=10_000), min_decisions=min_decisions)

    def rank(self, status: str = "pending") -> builtins.list[dict[str, Any]]:
        """Open proposals, most likely to be approved first (creation order until a model can be fitted)."""
        items = self.list(status)
        try:
            model = self.preferences()
        except Exception:
            return items
        ranked = model.rank(items)
        with self.sql.begin() as conn:
            for p, s in ranked:
                conn.execute(proposals.update().where(proposals.c.id == p["id"]).values(score=s))
        return [{**p, "score": s} for p, s in ranked]

    def metrics(self, weeks: int = 8) -> dict[str, Any]:
        now = self.clock.now()
        rows = self.list(limit=100_000)
        per_week = [0] * weeks
        for p in rows:
            w = int((now - p["created_at"]) // (7 * 86400))
            if 0 <= w < weeks:
                per_week[weeks - 1 - w] += 1
        approved = sum(p["status"] in ("approved", "experimenting", "adopted", "rolled_back") for p in rows)
        rejected = sum(p["status"] == "rejected" for p in rows)
        return {"proposals_per_week": per_week, "mean_per_week": sum(per_week) / weeks,
                "approval_rate": approved / (approved + rejected) if approved + rejected else None,
                "decided": approved + rejected, "open": sum(p["status"] in OPEN for p in rows),
                "adopted": sum(p["status"] == "adopted" for p in rows),
                "by_strategy": _count(rows, "strategy"), "by_status": _count(rows, "status")}


def _count(rows: Sequence[dict[str, Any]], key: str) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows:
        out[r[key]] = out.get(r[key], 0) + 1
    return out
