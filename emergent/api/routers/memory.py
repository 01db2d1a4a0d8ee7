"""``/v1/memory``: remember, recall, get and forget.

A person's token (operator or admin) writes in any scope, audited with its principal
(``api.memory.remember``, intent before, outcome after). An agent token acts only in its own scope
(filled in when left out; another is a 403), and its writes are calls of the ``memory.remember`` tool
through the autonomy gate, and so are its forgets (``memory.forget``, destructive: a person approves
them unless a rule allows it), so a paused gate, a suspended agent or an ``ask`` rule hold them: 202
with the approval id. Viewers read any scope; nobody reads or forgets across a scope they name.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from emergent.api.auth import OperatorOrAgent, ViewerOrAgent
from emergent.api.pools import quick, read
from emergent.api.routers._common import PENDING
from emergent.errors import ValidationError
from emergent.workspace.audited import recorded

router = APIRouter(prefix="/memory", tags=["memory"])

KindName = Literal["episodic", "semantic", "procedural"]
ScopeText = Annotated[str | None, Field(max_length=400, description="agent[/user[/session]]; an agent token's "
                                                                    "own scope when left out")]


class RememberIn(BaseModel):
    text: str = Field(min_length=1, max_length=100_000, description="what to remember")
    kind: KindName = "episodic"
    importance: float = Field(0.5, ge=0.0, le=1.0)
    scope: ScopeText = None
    meta: dict[str, Any] | None = Field(None, description="extra JSON metadata")
    tier: Literal["stm", "ltm"] = "stm"


class Remembered(BaseModel):
    id: str


class MemoryOut(BaseModel):
    id: str
    text: str
    kind: str
    importance: float
    scope: str
    created_at: float = Field(description="the event time (epoch seconds)")
    learned_at: float | None
    last_accessed: float
    access_count: int
    tier: str
    meta: dict[str, Any]


class HitOut(MemoryOut):
    score: float


class Recalled(BaseModel):
    items: list[HitOut]


def _num(x: Any) -> float | None:
    x = float(x)
    return x if x == x and abs(x) != float("inf") else None


def memory_out(rec: Any) -> dict[str, Any]:
    return {"id": rec.id, "text": rec.text, "kind": str(getattr(rec.kind, "value", rec.kind)),
            "importance": float(rec.importance), "scope": rec.scope.key, "created_at": float(rec.created_at),
            "learned_at": _num(rec.learned_at), "last_accessed": float(rec.last_accessed),
            "access_count": int(rec.access_count), "tier": str(getattr(rec.tier, "value", rec.tier)),
            "meta": dict(rec.meta or {})}


def _check_text(value: str, what: str) -> str:
    if "\x00" in value:
        raise ValidationError(f"{what} contains a NUL character", hint="send plain text", field=what)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(f"{what} contains a lone surrogate", hint="send plain Unicode text", field=what) from None
    return value


@router.post("", status_code=201, response_model=Remembered, responses=PENDING)
@quick
def remember(body: RememberIn, who: OperatorOrAgent, request: Request, response: Response) -> dict[str, Any]:
    """Remember one text; returns its id."""
    ws = request.app.state.ws
    _check_text(body.text, "text")
    scope = who.own_scope(body.scope)
    if who.is_agent:
        args: dict[str, Any] = {"text": body.text, "kind": body.kind, "importance": body.importance, "scope": scope}
        if body.meta is not None:
            args["meta"] = body.meta
        mid = ws.tools.call("memory.remember", args, principal=who.principal, wait=False)
        return {"id": str(mid)}
    with recorded(ws.audit, "api.memory.remember", who.principal,
                  {"scope": scope, "kind": body.kind, "chars": len(body.text), "token": who.token_id}) as outcome:
        rec = ws.memory.remember(body.text, kind=body.kind, importance=body.importance, scope=scope, meta=body.meta,
                                 tier=body.tier)
        outcome["id"] = rec.id
    return {"id": rec.id}


@router.get("/recall", response_model=Recalled)
@read
def recall(who: ViewerOrAgent, request: Request,
           query: Annotated[str, Query(min_length=1, max_length=10_000, description="what to look for")],
           k: Annotated[int, Query(ge=1, le=100)] = 10,
           scope: Annotated[str | None, Query(max_length=400)] = None,
           kinds: Annotated[list[KindName] | None, Query()] = None) -> dict[str, Any]:
    """The ``k`` memories that best answer ``query`` in ``scope``, best first."""
    _check_text(query, "query")
    hits = request.app.state.ws.memory.recall(query, k=k, scope=who.own_scope(scope), kinds=kinds or None)
    return {"items": [memory_out(h.record) | {"score": float(h.score)} for h in hits]}


@router.get("/{memory_id}", response_model=MemoryOut)
@read
def get(memory_id: str, who: ViewerOrAgent, request: Request,
        scope: Annotated[str | None, Query(max_length=400)] = None) -> dict[str, Any]:
    """One memory by id, in ``scope``."""
    return memory_out(request.app.state.ws.memory.get(_check_text(memory_id, "id"), scope=who.own_scope(scope)))


class Forgotten(BaseModel):
    forgotten: int


@router.delete("/{memory_id}", response_model=Forgotten, responses=PENDING)
def forget(memory_id: str, who: OperatorOrAgent, request: Request,
           scope: Annotated[str | None, Query(max_length=400)] = None) -> dict[str, Any]:
    """Forget one memory (audited by the memory service with the token's principal). An agent's forget
    is a call of the ``memory.forget`` tool through the gate, like its writes: a destructive action a
    person approves unless a rule allows it (202 with the approval id)."""
    ws = request.app.state.ws
    scope = who.own_scope(scope)
    memory_id = _check_text(memory_id, "id")
    if who.is_agent:
        n = ws.tools.call("memory.forget", {"memory_id": memory_id, "scope": scope}, principal=who.principal,
                          wait=False)
        return {"forgotten": int(n)}
    return {"forgotten": ws.memory.forget(memory_id, principal=who.principal, scope=scope)}
