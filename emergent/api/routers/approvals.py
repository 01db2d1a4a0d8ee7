"""``/v1/approvals``: list, show, approve, reject, and resume an approved call.

Decisions are the gate's (:mod:`emergent.autonomy.approvals`): only a human approves, never a request
of their own; a human rejects, or the requester withdraws its own request. A token carries its
principal, so an operator token of ana approves as ana. An approval already decided is a 409. When an
assistant's run waits on the approval, deciding it continues the run (its result is in the answer).
An agent token sees only the requests it made.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from emergent.api.auth import Caller, OperatorOrAgent, ViewerOrAgent
from emergent.api.pagination import Page, PageParams, page_params
from emergent.api.routers._common import PENDING, jsonable
from emergent.errors import NotFoundError, StateConflictError, UsageError

router = APIRouter(prefix="/approvals", tags=["approvals"])

Status = Literal["pending", "approved", "rejected", "expired", "consumed", "all"]


class ApprovalOut(BaseModel):
    id: str
    status: str
    requester: str
    tool: str
    args: dict[str, Any]
    resource: str | None
    reason: str
    confidence: float | None
    created_at: float
    expires_at: float
    decided_by: str | None
    decided_at: float | None
    decision_reason: str | None
    digest: str | None
    files: dict[str, str]
    consumed_at: float | None
    consumed_by: str | None


class RunOut(BaseModel):
    run_id: str
    assistant: str
    status: str
    stop_reason: str | None
    answer: str


class DecisionOut(BaseModel):
    approval: ApprovalOut
    assistant_run: RunOut | None = Field(None, description="the assistant run that waited on it, continued")


class DecideIn(BaseModel):
    reason: str = Field("", max_length=2000, description="why (kept in the audit trail)")


class RejectIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000, description="why (kept in the audit trail)")


class ResumeOut(BaseModel):
    approval: str
    tool: str
    result: Any


def view(a: Any) -> dict[str, Any]:
    d = a.to_dict()
    return jsonable({"id": d["id"], "status": d["status"], "requester": d["actor"], "tool": d["tool"],
                     "args": d["args"] if isinstance(d["args"], dict) else {"value": d["args"]},
                     "resource": d["resource"], "reason": d["reason"] or "", "confidence": d["confidence"],
                     "created_at": d["created_at"], "expires_at": d["expires_at"], "decided_by": d["decided_by"],
                     "decided_at": d["decided_at"], "decision_reason": d["decision_reason"], "digest": d["digest"],
                     "files": d["files"] or {}, "consumed_at": d["consumed_at"], "consumed_by": d["consumed_by"]})


def _visible(ws: Any, approval_id: str, who: Caller) -> Any:
    """The approval, if this caller may see it (an agent: its own requests only)."""
    try:
        a = ws.autonomy.approvals.get(approval_id)
    except NotFoundError:
        a = None
    if a is None or (who.is_agent and a.actor != who.principal.key):
        raise NotFoundError(f"no approval request {approval_id!r}", hint="GET /v1/approvals lists them",
                            approval=approval_id)
    return a


def _pending(a: Any) -> None:
    if a.status != "pending":
        raise StateConflictError(f"approval {a.id} is already {a.status}", hint="only pending requests can be decided",
                                 approval=a.id, status=a.status)


def _continue_run(ws: Any, approval_id: str) -> dict[str, Any] | None:
    found = ws.assistants_waiting_on(approval_id)
    if found is None:
        return None
    bot, run_id = found
    r = bot.resume(run_id)
    return {"run_id": r.run_id, "assistant": r.assistant, "status": r.status, "stop_reason": r.stop_reason,
            "answer": r.answer}


@router.get("", response_model=Page[ApprovalOut])
def list_approvals(who: ViewerOrAgent, request: Request, page: Annotated[PageParams, Depends(page_params)],
                   status: Annotated[Status, Query()] = "pending") -> dict[str, Any]:
    """Approval requests, newest first (default: the pending ones)."""
    found = request.app.state.ws.autonomy.approvals.list(None if status == "all" else status, limit=5000)
    if who.is_agent:
        found = [a for a in found if a.actor == who.principal.key]
    return page.slice([view(a) for a in found])


@router.get("/{approval_id}", response_model=ApprovalOut)
def show_approval(approval_id: str, who: ViewerOrAgent, request: Request) -> dict[str, Any]:
    return view(_visible(request.app.state.ws, approval_id, who))


@router.post("/{approval_id}/approve", response_model=DecisionOut)
def approve(approval_id: str, body: DecideIn, who: OperatorOrAgent, request: Request) -> dict[str, Any]:
    """Approve a pending request as the token's principal (a human, not the requester)."""
    from emergent.agents.card import choice_hint

    ws = request.app.state.ws
    a = _visible(ws, approval_id, who)
    _pending(a)
    hint = choice_hint(a)
    if hint:  # approving it here would record no choice: the vote or conflict would stay undecided
        raise UsageError(hint, approval=approval_id)
    decided = ws.autonomy.approvals.approve(approval_id, by=who.principal, reason=body.reason)
    return {"approval": view(decided), "assistant_run": _continue_run(ws, approval_id)}


@router.post("/{approval_id}/reject", response_model=DecisionOut)
def reject(approval_id: str, body: RejectIn, who: OperatorOrAgent, request: Request) -> dict[str, Any]:
    """Reject a pending request (a human), or withdraw one's own request."""
    ws = request.app.state.ws
    a = _visible(ws, approval_id, who)
    _pending(a)
    decided = ws.autonomy.approvals.reject(approval_id, by=who.principal, reason=body.reason)
    return {"approval": view(decided), "assistant_run": _continue_run(ws, approval_id)}


@router.post("/{approval_id}/resume", response_model=ResumeOut, responses=PENDING)
def resume(approval_id: str, who: OperatorOrAgent, request: Request) -> dict[str, Any]:
    """Run an approved call, once, as its requester (the requester's token or a person's)."""
    ws = request.app.state.ws
    a = _visible(ws, approval_id, who)
    if not who.principal.is_human and a.actor != who.principal.key:
        raise NotFoundError(f"no approval request {approval_id!r}", approval=approval_id)
    return {"approval": a.id, "tool": a.tool, "result": jsonable(ws.tools.resume(approval_id))}
