"""``/proposals``: read proposals and their history; a person approves or rejects them.

Deciding acts as the token's principal through :class:`emergent.proposals.service.Proposals`, which
audits the transition and refuses what it refuses from the CLI: an agent or service token deciding
(403), the submitter approving its own proposal (403), a proposal decided twice (409).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel, Field

from emergent.api.auth import Operator, Viewer
from emergent.api.pagination import Page
from emergent.api.routers._api2 import WS, Paged, no_nul, problems, upto

router = APIRouter(prefix="/proposals", tags=["proposals"], dependencies=[Depends(no_nul)])

Status = Literal["draft", "pending", "approved", "rejected", "experimenting", "adopted", "rolled_back"]
ProposalId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class Proposal(BaseModel):
    """One proposed change: what, why, the evidence and the expected impact, and where it stands."""

    id: str
    title: str
    rationale: str
    kind: str
    target: str
    change: dict[str, Any]
    evidence: list[Any]
    impact: Any = None
    expected: dict[str, Any] | None = None
    risk: str
    confidence: float
    status: str
    strategy: str
    diff: str | None = None
    score: float | None = None
    approval_id: str | None = None
    experiment_id: str | None = None
    created_at: float
    updated_at: float
    decided_at: float | None = None
    decided_by: str | None = None
    reason: str | None = None


class ProposalEvent(BaseModel):
    at: float
    from_status: str | None
    to_status: str
    actor: str
    reason: str | None = None


class ProposalDetail(Proposal):
    events: list[ProposalEvent]


class ProposalMetrics(BaseModel):
    proposals_per_week: list[int]
    mean_per_week: float
    approval_rate: float | None
    decided: int
    open: int
    adopted: int
    by_strategy: dict[str, int]
    by_status: dict[str, int]


class Approve(BaseModel):
    reason: str = Field("", max_length=2000, description="why (recorded with the decision)")


class Reject(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, pattern=r"\S",
                        description="why (the preference model learns from it)")


@router.get("", response_model=Page[Proposal], responses=problems(401, 403))
def list_proposals(ws: WS, _: Viewer, page: Paged, status: Status | None = None) -> Any:
    """Proposals, newest first (``status`` filters)."""
    return page.slice(ws.proposals.list(status, limit=upto(page)))


@router.get("/metrics", response_model=ProposalMetrics, responses=problems(401, 403))
def proposal_metrics(ws: WS, _: Viewer) -> Any:
    """Proposals per week, approval rate, counts by status and strategy."""
    return ws.proposals.metrics()


class Synced(BaseModel):
    applied: int = Field(description="how many decisions were applied")


@router.post("/sync", response_model=Synced, responses=problems())
def sync_proposals(ws: WS, _: Operator) -> Any:
    """Apply decisions made in the approvals queue (POST /v1/approvals/{id}/approve or reject) to the
    proposals they were filed for, now rather than at the next improvement cycle. Each transition is
    recorded as the person who decided it."""
    return {"applied": ws.proposals.sync_approvals()}


@router.get("/{proposal_id}", response_model=ProposalDetail, responses=problems(401, 403, 404))
def get_proposal(proposal_id: ProposalId, ws: WS, _: Viewer) -> Any:
    """One proposal with its evidence, impact, diff and history."""
    return {**ws.proposals.get(proposal_id), "events": ws.proposals.events(proposal_id)}


@router.post("/{proposal_id}/approve", response_model=Proposal, responses=problems(401, 403, 404, 409))
def approve_proposal(proposal_id: ProposalId, ws: WS, who: Operator, body: Approve | None = None) -> Any:
    """A person approves a pending proposal (and the approval request filed for it, used once)."""
    return ws.proposals.approve(proposal_id, by=who.principal, reason=(body or Approve()).reason)


@router.post("/{proposal_id}/reject", response_model=Proposal, responses=problems(401, 403, 404, 409))
def reject_proposal(proposal_id: ProposalId, body: Reject, ws: WS,
                    who: Operator) -> Any:
    """A person rejects a pending proposal, saying why."""
    return ws.proposals.reject(proposal_id, by=who.principal, reason=body.reason)
