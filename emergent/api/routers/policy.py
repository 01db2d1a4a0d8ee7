"""``/v1/policy``: the permission matrix, pause, suspensions and overrides. Reading needs a viewer
token; every change an admin token (whose principal is a human: the gate also refuses anyone else),
and each change is audited by the gate with that principal before it takes effect."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from emergent.api.auth import Admin, Viewer
from emergent.api.routers._common import jsonable

router = APIRouter(prefix="/policy", tags=["policy"])

Effect = Literal["allow", "ask", "deny"]
Level = Literal["read", "write", "network", "execute"]


class RuleIn(BaseModel):
    subject: str = Field(min_length=1, max_length=200, description="human:NAME, agent:NAME, role:NAME, agent:*, *")
    tool: str = Field(min_length=1, max_length=200, description="a tool name or glob")
    effect: Effect
    resource: str = Field("*", min_length=1, max_length=500)
    side_effects: list[Level] | None = None
    min_cost: float | None = Field(None, ge=0)
    max_cost: float | None = Field(None, ge=0)
    note: str = Field("", max_length=500)


class RuleOut(BaseModel):
    id: str
    subject: str
    tool: str
    resource: str
    effect: str
    side_effects: list[str] | None = None
    min_cost: float | None = None
    max_cost: float | None = None
    note: str | None = None


class PolicyOut(BaseModel):
    rules: list[RuleOut]
    paused: dict[str, Any] | None
    suspended: dict[str, Any]
    overrides: list[dict[str, Any]]
    yaml: str = Field(description="the whole policy as YAML (emergent policy import takes it back)")


class YamlIn(BaseModel):
    yaml: str = Field(min_length=1, max_length=1_000_000)
    replace: bool = False


class Imported(BaseModel):
    rules: int


class ReasonIn(BaseModel):
    reason: str = Field("", max_length=2000)


class OverrideIn(BaseModel):
    subject: str = Field(min_length=1, max_length=200)
    tool: str = Field(min_length=1, max_length=200)
    effect: Effect
    resource: str = Field("*", min_length=1, max_length=500)
    ttl_s: float | None = Field(None, gt=0, le=366 * 86400)
    reason: str = Field(min_length=1, max_length=2000)


class Done(BaseModel):
    ok: bool = True
    id: str | None = None


class DecisionOut(BaseModel):
    effect: str
    reason: str
    rule: str | None


@router.get("", response_model=PolicyOut)
def show_policy(who: Viewer, request: Request) -> dict[str, Any]:
    gate = request.app.state.ws.autonomy
    snap = gate.snapshot()
    return jsonable({"rules": [r.to_dict() for r in gate.rules()], "paused": snap.paused,
                     "suspended": gate.suspended(), "overrides": gate.overrides(), "yaml": gate.export_yaml()})


@router.get("/explain", response_model=DecisionOut)
def explain(who: Viewer, request: Request,
            actor: Annotated[str, Query(min_length=3, max_length=200, description="a principal key: agent:scout")],
            tool: Annotated[str, Query(min_length=1, max_length=200)],
            side_effect: Annotated[Level, Query()] = "read",
            resource: Annotated[str, Query(max_length=500)] = "") -> dict[str, Any]:
    """What the gate would decide for ``actor`` calling ``tool`` (a diagnosis, not a permission)."""
    d = request.app.state.ws.autonomy.explain(actor, tool, side_effect=side_effect, resource=resource)
    rule = getattr(d, "rule", None)
    return {"effect": str(d.effect), "reason": str(getattr(d, "reason", "")),
            "rule": getattr(rule, "id", None) if rule is not None else None}


@router.post("/rules", response_model=RuleOut, status_code=201)
def add_rule(body: RuleIn, who: Admin, request: Request) -> dict[str, Any]:
    extra = {k: v for k, v in body.model_dump().items() if k not in ("subject", "tool", "effect", "resource")
             and v not in (None, "")}
    rule = request.app.state.ws.autonomy.add_rule(body.subject, body.tool, body.effect, resource=body.resource,
                                                  by=who.principal, **extra)
    return jsonable(rule.to_dict())


@router.delete("/rules/{rule_id}", response_model=Done)
def remove_rule(rule_id: str, who: Admin, request: Request) -> dict[str, Any]:
    request.app.state.ws.autonomy.remove_rule(rule_id, by=who.principal)
    return {"ok": True, "id": rule_id}


@router.put("", response_model=Imported)
def import_policy(body: YamlIn, who: Admin, request: Request) -> dict[str, Any]:
    """Import rules and settings from YAML (``replace``: instead of the current rules)."""
    return {"rules": request.app.state.ws.autonomy.import_yaml(body.yaml, replace=body.replace, by=who.principal)}


@router.post("/pause", response_model=Done)
def pause(body: ReasonIn, who: Admin, request: Request) -> dict[str, Any]:
    """Pause autonomy: agents and services act no more until resumed."""
    request.app.state.ws.autonomy.pause(by=who.principal, reason=body.reason or "paused through the API")
    return {"ok": True}


@router.post("/resume", response_model=Done)
def resume(who: Admin, request: Request) -> dict[str, Any]:
    request.app.state.ws.autonomy.resume(by=who.principal)
    return {"ok": True}


@router.post("/suspensions/{principal_key}", response_model=Done)
def suspend(principal_key: str, body: ReasonIn, who: Admin, request: Request) -> dict[str, Any]:
    """Suspend an agent or a service (``agent:scout``) until unsuspended."""
    request.app.state.ws.autonomy.suspend(principal_key, by=who.principal,
                                          reason=body.reason or "suspended through the API")
    return {"ok": True, "id": principal_key}


@router.delete("/suspensions/{principal_key}", response_model=Done)
def unsuspend(principal_key: str, who: Admin, request: Request) -> dict[str, Any]:
    from emergent.principals import parse_key

    parse_key(principal_key)
    request.app.state.ws.autonomy.unsuspend(principal_key, by=who.principal)
    return {"ok": True, "id": principal_key}


@router.post("/overrides", response_model=Done, status_code=201)
def add_override(body: OverrideIn, who: Admin, request: Request) -> dict[str, Any]:
    """A standing decision that beats the matrix (for ``ttl_s`` seconds, or until cleared)."""
    from emergent.autonomy.policy import Rule

    Rule(body.subject, body.tool, body.effect, body.resource)  # validated like a rule
    oid = request.app.state.ws.autonomy.override(body.subject, body.tool, body.effect, resource=body.resource,
                                                 ttl=body.ttl_s, by=who.principal, reason=body.reason)
    return {"ok": True, "id": oid}


@router.delete("/overrides/{override_id}", response_model=Done)
def clear_override(override_id: str, who: Admin, request: Request) -> dict[str, Any]:
    gate = request.app.state.ws.autonomy
    if override_id not in {o["id"] for o in gate.overrides()}:
        from emergent.errors import NotFoundError

        raise NotFoundError(f"no override {override_id!r}", hint="GET /v1/policy lists the overrides")
    gate.clear_override(override_id, by=who.principal)
    return {"ok": True, "id": override_id}
