"""``/v1/tokens``: API tokens, managed with an admin token.

An admin token's principal (always a person) creates tokens acting as itself (any role) or as an
agent or a service (``agent`` / ``viewer``); never as another person, so nobody mints a credential
in someone else's name. The secret is in the creation's answer only. Creation and revocation are
audited with the admin's principal.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field

from emergent.api.auth import Admin
from emergent.api.pagination import Page, PageParams, page_params
from emergent.errors import PrincipalError
from emergent.principals import parse_key

router = APIRouter(prefix="/tokens", tags=["tokens"])


class TokenOut(BaseModel):
    id: str
    principal: str
    role: str
    label: str | None
    created_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None


class CreateIn(BaseModel):
    principal: str | None = Field(None, max_length=200, description="who the token acts as (human:me, agent:NAME, "
                                                                   "service:NAME); default: the admin itself")
    role: Literal["admin", "operator", "viewer", "agent"]
    ttl_s: float | None = Field(None, gt=0, description="lifetime in seconds (default and maximum: "
                                                      "EMERGENT_API__TOKEN_MAX_TTL_DAYS)")
    label: str | None = Field(None, max_length=200)


class Created(BaseModel):
    token: TokenOut
    secret: str = Field(description="the bearer secret: shown this once, stored only hashed")


@router.get("", response_model=Page[TokenOut])
def list_tokens(who: Admin, request: Request, page: Annotated[PageParams, Depends(page_params)],
                include_inactive: Annotated[bool, Query(description="also revoked and expired ones")] = False
                ) -> dict[str, Any]:
    found = request.app.state.ws.tokens.list(include_inactive=include_inactive)
    return page.slice([t.to_dict() for t in found])


@router.post("", response_model=Created, status_code=201)
def create_token(body: CreateIn, who: Admin, request: Request) -> dict[str, Any]:
    ws = request.app.state.ws
    target = who.principal
    if body.principal is not None and body.principal != who.principal.key:
        kind, _ = parse_key(body.principal)
        if kind == "human":
            raise PrincipalError(f"{who.principal.key} may not create a token acting as {body.principal}",
                                 hint="a person creates their own tokens (`emergent tokens create`)",
                                 principal=body.principal)
        target = ws.principals.get(body.principal)
    info, secret = ws.tokens.create(target, body.role, by=who.principal, ttl_s=body.ttl_s, label=body.label)
    return {"token": info.to_dict(), "secret": secret}


@router.delete("/{token_id}", response_model=TokenOut)
def revoke_token(token_id: str, who: Admin, request: Request) -> dict[str, Any]:
    return request.app.state.ws.tokens.revoke(token_id[:64], by=who.principal).to_dict()  # type: ignore[no-any-return]
