"""The ``Proposals`` service: signals → proposals → approval through the gate → tracking.

Lifecycle: ``draft → pending → approved | rejected``; an approved config proposal goes
``experimenting → adopted | rolled_back`` through the experiments (or is adopted directly where no
workload measures it). Every transition is one conditional UPDATE (``WHERE status = <from>``), so
two people approving the same proposal at once get one success and one clear
:class:`~emergent.errors.StateConflictError`; every transition writes a ``proposal_events`` row and
an audit entry. New proposals are deduplicated against open ones by a fingerprint of their change.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, StateConflictError, ValidationError
from emergent.experiments.gate import ACTOR, Gate, StaticGate
from emergent.proposals import codegen
from emergent.proposals.impact import analyse_impact
from emergent.proposals.signals import Signal, Targets, run_analyzers
from emergent.proposals.tables import proposal_events, proposals
from emergent.proposals.writer import ProposalDraft, write
from emergent.providers.llm import ChatModel

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
    def __init__(self, sql: Any, *, clock: Clock | None = None, llm: ChatModel | None = None, gate: Gate | None = None,
                 registry: Any = None, targets: Targets | None = None) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()
        self.llm = llm
        self.gate = gate or StaticGate()
        self.registry = registry
        self.targets = targets or Targets()

    # ---------------------------------------------------------------- signals → proposals
    def analyze(self, names: list[str] | None = None) -> tuple[list[Signal], dict[str, str]]:
        return run_analyzers(self.sql, self.clock.now(), self.targets, names)

    def generate(self, signals: Sequence[Signal] | None = None, *, submit: bool = True,
                 actor: str = ACTOR) -> list[dict[str, Any]]:
        """One proposal per signal (deduplicated against open ones); submitted to the gate by default."""
        if signals is None:
            signals, _ = self.analyze()
        out = []
        for s in signals:
            draft = write(s, self._current, self.llm)
            p = self.create(draft, actor=actor)
            if submit and p["status"] == "draft":
                p = self.submit(p["id"], actor=actor)
            out.append(p)
        return out

    def _current(self, namespace: str) -> dict[str, Any]:
        if self.registry is None:
            from emergent.experiments.registry import DEFAULT_SCHEMAS

            return DEFAULT_SCHEMAS[namespace]().model_dump(mode="json")
        return dict(self.registry.current(namespace).values)

    def create(self, draft: ProposalDraft, *, actor: str = ACTOR, diff: str | None = None,
               check: codegen.PatchCheck | None = None) -> dict[str, Any]:
        """Store a draft, or return the open proposal with the same change (dedup)."""
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
               "impact": analyse_impact(draft, self.sql), "expected": draft.expected.model_dump(),
               "risk": draft.risk, "confidence": draft.confidence, "status": "draft", "strategy": draft.strategy,
               "diff": diff, "score": None, "approval_id": None, "experiment_id": None, "created_at": now,
               "updated_at": now, "decided_at": None, "decided_by": None, "reason": None}
        with self.sql.begin() as conn:
            conn.execute(proposals.insert().values(**row))
            conn.execute(proposal_events.insert().values(proposal_id=row["id"], at=now, from_status=None,
                                                         to_status="draft", actor=actor, reason=draft.strategy))
        self.gate.audit("proposal.created", actor, {"proposal": row["id"], "title": draft.title,
                                                    "strategy": draft.strategy})
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

    def _move(self, proposal_id: str, to: str, *, actor: str, reason: str | None = None,
              **extra: Any) -> dict[str, Any]:
        p = self.get(proposal_id)
        if to not in TRANSITIONS[p["status"]]:
            raise StateConflictError(f"proposal {proposal_id} is {p['status']}; it cannot become {to}",
                                     hint=f"from {p['status']} it can become: "
                                          f"{', '.join(TRANSITIONS[p['status']]) or 'nothing (final)'}",
                                     proposal_id=proposal_id, status=p["status"])
        now = self.clock.now()
        with self.sql.begin() as conn:
            res = conn.execute(proposals.update().where(proposals.c.id == proposal_id,
                                                        proposals.c.status == p["status"])
                               .values(status=to, updated_at=now, reason=reason, **extra))
            if res.rowcount != 1:
                raise StateConflictError(f"proposal {proposal_id} was changed by someone else meanwhile",
                                         hint="reload it; your decision was not recorded", proposal_id=proposal_id)
            conn.execute(proposal_events.insert().values(proposal_id=proposal_id, at=now, from_status=p["status"],
                                                         to_status=to, actor=actor, reason=reason))
        self.gate.audit(f"proposal.{to}", actor, {"proposal": proposal_id, "from": p["status"], "reason": reason})
        return self.get(proposal_id)

    def submit(self, proposal_id: str, *, actor: str = ACTOR) -> dict[str, Any]:
        """draft → pending, then ask the gate: allow approves at once, deny rejects, ask files an approval."""
        p = self._move(proposal_id, "pending", actor=actor, reason="submitted")
        verdict = self.gate.decide(actor, f"proposals.{p['kind']}", p["target"], confidence=p["confidence"])
        if verdict.effect == "allow":
            return self._decide(proposal_id, "approved", by="gate", reason=f"auto: {verdict.reason}")
        if verdict.effect == "deny":
            return self._decide(proposal_id, "rejected", by="gate", reason=f"denied: {verdict.reason}")
        approval = self.gate.request(actor, f"proposals.{p['kind']}", p["target"], p["title"],
                                     {"proposal": proposal_id, "change": p["change"]})
        if approval is not None:
            with self.sql.begin() as conn:
                conn.execute(proposals.update().where(proposals.c.id == proposal_id).values(approval_id=approval))
        return self.get(proposal_id)

    def approve(self, proposal_id: str, *, by: str, reason: str = "") -> dict[str, Any]:
        return self._decide(proposal_id, "approved", by=by, reason=reason)

    def reject(self, proposal_id: str, *, by: str, reason: str) -> dict[str, Any]:
        if not reason.strip():
            raise ValidationError("a rejection needs a reason", hint="say why, so the assistant can learn from it")
        return self._decide(proposal_id, "rejected", by=by, reason=reason)

    def _decide(self, proposal_id: str, to: str, *, by: str, reason: str) -> dict[str, Any]:
        p = self._move(proposal_id, to, actor=by, reason=reason, decided_at=self.clock.now(), decided_by=by)
        if p["approval_id"]:
            self.gate.resolve(p["approval_id"], to == "approved", by, reason)
        return p

    def sync_approvals(self) -> int:
        """Apply decisions made in the approvals queue (e.g. `emergent approvals approve`) to proposals."""
        status_of = getattr(self.gate, "status", None)
        if status_of is None:
            return 0
        n = 0
        for p in self.list("pending"):
            if p["approval_id"]:
                s = status_of(p["approval_id"])
                if s in ("approved", "rejected", "expired"):
                    try:
                        self._move(p["id"], "approved" if s == "approved" else "rejected", actor="approvals",
                                   reason=f"approval {s}", decided_at=self.clock.now(), decided_by="approvals")
                        n += 1
                    except StateConflictError:
                        continue
        return n

    def track(self, proposal_id: str, status: str, *, actor: str = ACTOR, reason: str = "",
              experiment_id: str | None = None) -> dict[str, Any]:
        """Record what happened downstream (experimenting, adopted, rolled_back)."""
        extra = {"experiment_id": experiment_id} if experiment_id else {}
        return self._move(proposal_id, status, actor=actor, reason=reason, **extra)

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
