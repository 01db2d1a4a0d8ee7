"""``/v1/calls``: the tool-call telemetry (newest first) and per-tool statistics.

An agent token sees only its own calls."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel

from emergent.api.auth import Viewer, ViewerOrAgent
from emergent.api.pagination import Page, PageParams, int_position, page_params
from emergent.api.routers._common import jsonable
from emergent.errors import ValidationError

router = APIRouter(prefix="/calls", tags=["calls"])

#: the deepest a client may page into the telemetry
MAX_DEPTH = 10_000


class CallRow(BaseModel):
    id: int | None = None
    at: float | None
    call_id: str | None
    tool: str
    version: str | None
    actor: str | None
    latency_ms: float | None
    outcome: str | None
    attempts: int | None
    error_class: str | None
    error: str | None


class ToolStatsOut(BaseModel):
    tool: str
    version: str
    calls: int
    success_rate: float | None
    p50_ms: float | None
    p95_ms: float | None
    last_error: str | None
    last_error_at: float | None


@router.get("", response_model=Page[CallRow])
def list_calls(who: ViewerOrAgent, request: Request, page: Annotated[PageParams, Depends(page_params)],
               tool: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """Tool calls, newest first (``tool``: only that tool's)."""
    start = int_position(page.position, "offset")
    if start + page.limit > MAX_DEPTH:
        raise ValidationError(f"the telemetry pages only to its newest {MAX_DEPTH} calls",
                              hint="filter by tool, or read older calls from the audit trail", field="cursor")
    rows = request.app.state.ws.tools.telemetry.rows(tool or None, limit=MAX_DEPTH if who.is_agent else
                                                     start + page.limit + 1)
    if who.is_agent:
        rows = [r for r in rows if r.get("actor") == who.principal.key]
    return page.slice([jsonable(r) for r in rows])


@router.get("/stats", response_model=list[ToolStatsOut])
def call_stats(who: Viewer, request: Request, tool: Annotated[str | None, Query(max_length=200)] = None
               ) -> list[dict[str, Any]]:
    """Calls, success rate, p50/p95 latency and the last error of every tool version."""
    return [jsonable(s.to_dict()) for s in request.app.state.ws.tools.stats(tool or None)]
