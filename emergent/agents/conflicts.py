"""Conflicting proposals resolved by a stated rule, and the resolution explained.

- **priority**: the proposal with the highest priority wins; a tie falls to confidence;
- **confidence**: the proposal with the highest confidence wins; a tie falls to priority;
- **escalate**: a person decides (the service files an approval).

Proposals that all say the same thing are no conflict: they are resolved as agreed. A tie that
neither key breaks is escalated too: the rule never picks by order of arrival.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from emergent.errors import ValidationError

RULES = ("priority", "confidence", "escalate")
RESOLVED, AGREED, ESCALATED = "resolved", "agreed", "escalated"


@dataclass(frozen=True, slots=True)
class Proposal:
    agent: str  # a registered agent's name
    proposal: str
    priority: int = 0
    confidence: float = 0.5
    principal: str = ""  # the agent's principal key (filled by the service from the card)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def describe(self) -> str:
        return f"{self.agent} proposes {self.proposal!r} (priority {self.priority}, confidence {self.confidence:.2f})"


@dataclass
class Resolution:
    id: str
    rule: str
    status: str  # resolved | agreed | escalated
    proposals: list[Proposal]
    winner: Proposal | None
    explanation: str
    approval_id: str | None = None
    called_by: str = ""
    decided_by: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["proposals"] = [p.to_dict() for p in self.proposals]
        d["winner"] = self.winner.to_dict() if self.winner else None
        return d

    def __str__(self) -> str:
        return f"resolution {self.id} [{self.status}]: {self.explanation}"


def proposal_of(p: Proposal | Mapping[str, Any], i: int) -> Proposal:
    if isinstance(p, Proposal):
        return p
    if not isinstance(p, Mapping) or "agent" not in p or "proposal" not in p:
        raise ValidationError(f"field 'proposals' (#{i}): a proposal needs 'agent' and 'proposal'",
                              hint="e.g. {'agent': 'scout', 'proposal': 'use redis', 'priority': 2, "
                                   "'confidence': 0.8}", field="proposals")
    extra = set(p) - {"agent", "proposal", "priority", "confidence"}
    if extra:
        raise ValidationError(f"field 'proposals' (#{i}): unknown key(s) {sorted(extra)}",
                              hint="keys: agent, proposal, priority, confidence", field="proposals")
    conf = float(p.get("confidence", 0.5))
    if not 0.0 <= conf <= 1.0:
        raise ValidationError(f"field 'proposals' (#{i}): confidence must be in [0, 1], got {conf}",
                              field="proposals")
    return Proposal(str(p["agent"]), str(p["proposal"]), int(p.get("priority", 0)), conf)


def _best(props: Sequence[Proposal], first: str) -> tuple[Proposal | None, str]:
    keys = ("priority", "confidence") if first == "priority" else ("confidence", "priority")
    pool = list(props)
    steps = []
    for k in keys:
        top = max(getattr(p, k) for p in pool)
        pool = [p for p in pool if getattr(p, k) == top]
        if len({p.proposal for p in pool}) == 1:
            steps.append(f"highest {k} {top:g}")
            return pool[0], " then ".join(steps)
        steps.append(f"{k} {top:g} tied between {', '.join(p.agent for p in pool)}")
    return None, "; ".join(steps)


def decide(rule: str, props: Sequence[Proposal]) -> tuple[str, Proposal | None, str]:
    """(status, winner, explanation) of ``rule`` over ``props``."""
    listing = "; ".join(p.describe() for p in props)
    if len({p.proposal for p in props}) == 1:
        return AGREED, props[0], f"no conflict: all {len(props)} proposal(s) agree on {props[0].proposal!r}"
    if rule == "escalate":
        return ESCALATED, None, f"escalated by rule to a person, who chooses among: {listing}"
    win, why = _best(props, rule)
    if win is None:
        return ESCALATED, None, f"by {rule}: {why}; the tie stands, so a person decides among: {listing}"
    losers = ", ".join(f"{p.agent} ({p.proposal!r})" for p in props if p.proposal != win.proposal)
    return RESOLVED, win, (f"by {rule}: {win.agent}'s {win.proposal!r} wins with the {why}; "
                           f"set aside: {losers}. Proposals: {listing}")
