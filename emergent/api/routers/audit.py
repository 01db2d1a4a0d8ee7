"""``/v1/audit``: the audit trail, oldest first, paged by position; and its verification."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from emergent.api.auth import Viewer
from emergent.api.pagination import Page, PageParams, encode_cursor, int_position, page_params
from emergent.api.routers._common import jsonable

router = APIRouter(prefix="/audit", tags=["audit"])


class EntryOut(BaseModel):
    seq: int
    at: float
    kind: str
    actor: str
    data: dict[str, Any]
    prev_hash: str
    hash: str


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    last_seq: int
    head: str
    anchored: bool | None
    problems: list[dict[str, Any]]
    summary: str


@router.get("", response_model=Page[EntryOut])
def entries(who: Viewer, request: Request, page: Annotated[PageParams, Depends(page_params)],
            kind: Annotated[str | None, Query(max_length=32, description="only entries of this kind")] = None,
            start: Annotated[int, Query(ge=1, le=2**62, description="the first position (seq) to read")] = 1
            ) -> dict[str, Any]:
    """Entries from position ``start`` (or the cursor) on, oldest first."""
    after = int_position(page.position, "after", start - 1)
    got = request.app.state.ws.audit.entries(start=after + 1, limit=page.limit + 1, kind=kind or None)
    items = got[:page.limit]
    more = len(got) > page.limit
    return {"items": [jsonable(e.to_dict()) for e in items],
            "next_cursor": encode_cursor({"after": items[-1].seq}) if more and items else None}


@router.get("/verify", response_model=VerifyOut)
def verify(who: Viewer, request: Request) -> dict[str, Any]:
    """Walk the hash chain and check it against the anchored head."""
    r = request.app.state.ws.audit.verify()
    return {"ok": r.ok, "entries": r.entries, "last_seq": r.last_seq, "head": r.head, "anchored": r.anchored,
            "problems": [{"position": p, "problem": what} for p, what in r.problems[:100]], "summary": r.summary()}
