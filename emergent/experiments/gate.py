"""How proposals and experiments go through the autonomy gate: a small contract and its adapters.

``decide(actor, action, resource)`` answers ``allow`` (do it automatically), ``ask`` (a human
approves first) or ``deny``; ``request(...)`` files an approval request and returns its id (or
``None`` when the gate keeps no queue); ``resolve(id, approve, by, reason)`` decides it;
``audit(kind, actor, data)`` appends to the decision audit trail.

:class:`AutonomyGate` adapts :class:`emergent.autonomy.service.Autonomy` (permission matrix,
approvals queue, hash-chained audit log). :class:`StaticGate` is a fixed table for workspaces and
tests without one; its default is ``ask``, so nothing is adopted without a human.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

ACTOR = "agent:self-improvement"


@dataclass(frozen=True, slots=True)
class GateDecision:
    effect: str  # allow | ask | deny
    reason: str


class Gate(Protocol):
    def decide(self, actor: str, action: str, resource: str = "", *, side_effect: str = "write",
               confidence: float | None = None) -> GateDecision: ...

    def request(self, actor: str, action: str, resource: str, reason: str, args: dict[str, Any]) -> str | None: ...

    def resolve(self, approval_id: str, approve: bool, by: str, reason: str) -> None: ...

    def audit(self, kind: str, actor: str, data: dict[str, Any]) -> None: ...


@dataclass
class StaticGate:
    """Effects by pattern over ``action:resource`` or ``action`` (``config.adopt:memory`` → ``allow``)."""

    rules: Mapping[str, str] = field(default_factory=dict)
    default: str = "ask"
    entries: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    def decide(self, actor: str, action: str, resource: str = "", *, side_effect: str = "write",
               confidence: float | None = None) -> GateDecision:
        key = f"{action}:{resource}" if resource else action
        for pattern, effect in self.rules.items():
            if fnmatch.fnmatchcase(key, pattern) or fnmatch.fnmatchcase(action, pattern):
                return GateDecision(effect, f"rule {pattern!r}")
        return GateDecision(self.default, "default (no autonomy policy configured)")

    def request(self, actor: str, action: str, resource: str, reason: str, args: dict[str, Any]) -> str | None:
        return None

    def resolve(self, approval_id: str, approve: bool, by: str, reason: str) -> None:
        return None

    def audit(self, kind: str, actor: str, data: dict[str, Any]) -> None:
        self.entries.append((kind, actor, data))


class AutonomyGate:
    """The workstation's autonomy service (matrix, approvals queue, audit chain) as a :class:`Gate`."""

    def __init__(self, autonomy: Any) -> None:
        self.autonomy = autonomy

    def decide(self, actor: str, action: str, resource: str = "", *, side_effect: str = "write",
               confidence: float | None = None) -> GateDecision:
        from emergent.autonomy.policy import Request

        d = self.autonomy.decide(Request(actor=actor, tool=action, side_effect=side_effect, resource=resource,
                                         confidence=confidence))
        return GateDecision(d.effect, d.reason)

    def request(self, actor: str, action: str, resource: str, reason: str, args: dict[str, Any]) -> str | None:
        return str(self.autonomy.approvals.request(actor=actor, tool=action, args=args, reason=reason,
                                                   resource=resource).id)

    def resolve(self, approval_id: str, approve: bool, by: str, reason: str) -> None:
        q = self.autonomy.approvals
        current = q.get(approval_id)
        if current.status == "pending":
            (q.approve if approve else q.reject)(approval_id, by=by, reason=reason)

    def status(self, approval_id: str) -> str:
        return str(self.autonomy.approvals.get(approval_id).status)

    def audit(self, kind: str, actor: str, data: dict[str, Any]) -> None:
        self.autonomy.audit.append(kind, actor, data, durable=True)


def gate_from(autonomy: Any) -> Gate:
    """An :class:`AutonomyGate` over the workstation's autonomy service, else a conservative StaticGate."""
    if autonomy is None:
        return StaticGate()
    return AutonomyGate(autonomy)
