"""How proposals and experiments go through the autonomy gate.

:class:`Gate` adapts the workstation's :class:`emergent.autonomy.service.Autonomy`: the permission
matrix decides (``allow`` / ``ask`` / ``deny``) for the :class:`~emergent.principals.Principal`
that acts, with its roles from the workspace's directory; an *ask* becomes an approval request
filed by that principal and bound to the sha256 digest of exactly what it asks for
(``{action, resource, args}`` as canonical JSON); a human decides it (``by=``), and the approved
action is carried out once, by consuming the approval as its requester with the same digest.

What an agent does here counts its confidence: proposals pass the proposal's own, adoptions
``1 - p`` of the experiment's deciding test. Audit entries are written by the services (they
receive an :class:`emergent.audit.Auditor`); the approvals queue records its own decisions.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from emergent.audit import canonical
from emergent.principals import Principal

#: the agent that runs the self-improvement cycle (``ws.principals.agent(SELF_IMPROVEMENT, ...)``)
SELF_IMPROVEMENT = "self-improvement"


@dataclass(frozen=True, slots=True)
class GateDecision:
    effect: str  # allow | ask | deny
    reason: str


def action_digest(action: str, resource: str, args: dict[str, Any]) -> str:
    """What an approval is bound to: sha256 of the canonical JSON of {action, resource, args}."""
    return hashlib.sha256(canonical({"action": action, "resource": resource, "args": args}).encode()).hexdigest()


class Gate:
    """The autonomy service (matrix, approvals queue, principal directory) for proposals and experiments."""

    def __init__(self, autonomy: Any) -> None:
        self.autonomy = autonomy

    @property
    def principals(self) -> Any:
        return self.autonomy.principals

    def verify(self, principal: Any) -> Principal:
        return self.autonomy.principals.verify(principal)  # type: ignore[no-any-return]

    def principal(self, key: str) -> Principal | str:
        """The principal with key ``key`` re-issued (a requester), or ``key`` itself for a system actor."""
        from emergent.audit import SYSTEM_ACTORS

        return key if key in SYSTEM_ACTORS else self.autonomy.principals.get(key)

    def decide(self, principal: Principal, action: str, resource: str = "", *, side_effect: str = "write",
               confidence: float | None = None) -> GateDecision:
        d = self.autonomy.decide(self.autonomy.request_for(principal, action, side_effect, resource,
                                                           confidence=confidence))
        return GateDecision(d.effect, d.reason)

    def request(self, principal: Principal, action: str, resource: str, reason: str, args: dict[str, Any],
                *, confidence: float | None = None) -> str:
        """File an approval request by ``principal`` for ``action`` on ``resource`` with ``args``."""
        a = self.autonomy.approvals.request(principal=principal, tool=action, args=args, reason=reason,
                                            digest=action_digest(action, resource, args), resource=resource,
                                            confidence=confidence)
        return str(a.id)

    def get(self, approval_id: str) -> Any:
        return self.autonomy.approvals.get(approval_id)

    def status(self, approval_id: str) -> str:
        return str(self.autonomy.approvals.get(approval_id).status)

    def approve(self, approval_id: str, *, by: Principal, reason: str = "") -> None:
        """A human approves a pending request (the queue refuses agents, services and the requester)."""
        if self.status(approval_id) == "pending":
            self.autonomy.approvals.approve(approval_id, by=by, reason=reason)

    def reject(self, approval_id: str, *, by: Principal, reason: str = "") -> None:
        if self.status(approval_id) == "pending":
            self.autonomy.approvals.reject(approval_id, by=by, reason=reason)

    def consume(self, approval_id: str, *, action: str, resource: str, args: dict[str, Any], call_id: str) -> Any:
        """Use an approved request once, as its requester, for exactly the digest it was granted for."""
        a = self.autonomy.approvals.get(approval_id)
        return self.autonomy.approvals.consume(approval_id, principal=self.autonomy.principals.get(a.actor),
                                               tool=action, digest=action_digest(action, resource, args),
                                               files={}, call_id=call_id)


__all__ = ["SELF_IMPROVEMENT", "Gate", "GateDecision", "action_digest"]
