"""``/v1/tools``: list, show, call (through the gate as the token's principal), enable and disable.

A call runs exactly as ``ws.tools.call(name, args, principal=<the token's principal>, wait=False)``:
validation, the policy, approvals, the audit trail and telemetry all apply. An ``ask`` answers 202
with the approval id (a person decides it at ``/v1/approvals``; the requester runs it once approved
with ``POST /v1/approvals/{id}/resume``), a ``deny`` 403.
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from emergent.api import pools
from emergent.api.auth import Admin, OperatorOrAgent, ViewerOrAgent
from emergent.api.pagination import Page, PageParams, page_params
from emergent.api.routers._common import PENDING, jsonable
from emergent.errors import EmergentError, ValidationError
from emergent.tools.builtin.memory import QUICK_TOOLS, READ_TOOLS

router = APIRouter(prefix="/tools", tags=["tools"])

ToolName = Annotated[str, Field(min_length=1, max_length=200)]


class ToolVersion(BaseModel):
    name: str
    version: str
    description: str
    side_effect: str
    enabled: bool
    deprecated: bool
    successor: str | None
    note: str | None
    source: str
    loaded: bool


class ToolDetail(BaseModel):
    name: str
    version: str
    description: str
    side_effect: str
    args_schema: dict[str, Any]
    tags: list[str]
    sandboxed: bool
    cost: float
    timeout: float | None
    versions: list[ToolVersion]


class CallIn(BaseModel):
    args: dict[str, Any] = Field(default_factory=dict, description="the tool's arguments (see its args_schema)")
    confidence: float | None = Field(None, ge=0.0, le=1.0, description="what an agent states about its call "
                                                                       "(counts for agents only)")


class CallOut(BaseModel):
    tool: str
    result: Any = Field(description="what the tool returned, as JSON")


def _version(v: Any) -> dict[str, Any]:
    return {"name": v.name, "version": v.version, "description": v.description or "",
            "side_effect": str(getattr(v.side_effect, "value", v.side_effect)), "enabled": bool(v.enabled),
            "deprecated": bool(v.deprecated), "successor": v.successor, "note": v.note, "source": str(v.source),
            "loaded": bool(v.loaded)}


def _name(value: str) -> str:
    if "\x00" in value or not value.isprintable():
        raise ValidationError(f"tool name {value[:60]!r} is not valid", hint="GET /v1/tools lists the tools",
                              field="name")
    return value


@router.get("", response_model=Page[ToolVersion])
def list_tools(who: ViewerOrAgent, request: Request, page: Annotated[PageParams, Depends(page_params)],
               q: Annotated[str, Query(max_length=200, description="text in the name or description")] = ""
               ) -> dict[str, Any]:
    """Every registered tool version (newest first per tool), filtered by ``q``."""
    found = request.app.state.ws.tools.list(_name(q) if q else "")
    return page.slice([_version(v) for v in found])


@router.get("/{name}", response_model=ToolDetail)
def show_tool(name: str, who: ViewerOrAgent, request: Request) -> dict[str, Any]:
    """One tool: its current version, argument schema and every version."""
    tools = request.app.state.ws.tools
    spec = tools.resolve(_name(name))
    versions = tools.versions(spec.name)
    return {"name": spec.name, "version": spec.version, "description": spec.description or "",
            "side_effect": str(getattr(spec.side_effect, "value", spec.side_effect)),
            "args_schema": jsonable(spec.args_schema), "tags": list(spec.tags), "sandboxed": bool(spec.sandboxed),
            "cost": float(spec.cost), "timeout": spec.timeout, "versions": [_version(v) for v in versions]}


@router.post("/{name}/call", response_model=CallOut, responses=PENDING)
async def call_tool(name: str, body: CallIn, who: OperatorOrAgent, request: Request) -> dict[str, Any]:
    """Call a tool through the gate as the token's principal."""
    tools = request.app.state.ws.tools

    def call() -> Any:
        return tools.call(_name(name), body.args, principal=who.principal, wait=False, confidence=body.confidence)

    # the tool is looked up where reads run; a read tool (with reads on threads: any quick one) is called there
    here = {"read"} if pools.reads_inline() else {"read", "quick"}

    def call_if_here() -> tuple[bool, Any]:
        try:
            lane = lane_of(tools.resolve(_name(name)))
        except EmergentError:
            return True, call()  # not a tool (or not callable): the call says why, at once
        return (True, call()) if lane in here else (False, lane)

    done, result = await pools.run_read(call_if_here)
    if not done:
        result = await (pools.run_quick(call) if result == "quick" else
                        anyio.to_thread.run_sync(call))  # it may wait for seconds (a program, the network): 40
    return {"tool": name, "result": jsonable(result)}


def lane_of(spec: Any) -> str:
    """Where a call of ``spec`` runs: ``read`` (a read of this process's memory: the event loop when
    reads run inline), ``quick`` (a quick write: the quick pool) or ``slow`` (the pool of 40)."""
    if spec.func in READ_TOOLS:
        return "read"
    return "quick" if in_process(spec) else "slow"


def in_process(spec: Any) -> bool:
    """A tool that answers from this process in milliseconds: one of this package's own memory tools.

    The choice rests on which function the tool runs, not on what a tool declares about itself: an
    installed tool that called itself a no-code tool over a scope but then blocked would otherwise
    hold one of a worker's few quick threads (and the token checks queued behind it) per call."""
    return spec.func in QUICK_TOOLS


class Changed(BaseModel):
    versions: list[str]


@router.post("/{name}/enable", response_model=Changed)
def enable_tool(name: str, who: Admin, request: Request) -> dict[str, Any]:
    """Enable a tool (``name`` or ``name@version``); audited."""
    return {"versions": request.app.state.ws.tools.enable(_name(name), by=who.principal)}


@router.post("/{name}/disable", response_model=Changed)
def disable_tool(name: str, who: Admin, request: Request) -> dict[str, Any]:
    """Disable a tool (``name`` or ``name@version``); audited."""
    return {"versions": request.app.state.ws.tools.disable(_name(name), by=who.principal)}
