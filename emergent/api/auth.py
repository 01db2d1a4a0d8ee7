"""Who calls: an API token (``Authorization: Bearer emk_...``) → a :class:`Caller`.

The token decides the principal and the role; nothing in the request body or query can name
another. Roles: ``admin`` ⊃ ``operator`` ⊃ ``viewer``; ``agent`` is separate (its own scope's
reads, memory writes, tool calls and assistant runs, as the agent principal). The autonomy gate
still decides every tool call of the principal, whatever the role.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from emergent.api import pools
from emergent.api.errors import AuthenticationError
from emergent.errors import PermissionDenied, PrincipalError, ScopeError
from emergent.principals import Principal

_bearer = HTTPBearer(auto_error=False, description="an API token: `emergent tokens create`")

#: the roles each role includes
INCLUDES: dict[str, frozenset[str]] = {
    "admin": frozenset({"admin", "operator", "viewer"}),
    "operator": frozenset({"operator", "viewer"}),
    "viewer": frozenset({"viewer"}),
    "agent": frozenset({"agent"}),
}


@dataclass(frozen=True, slots=True)
class Caller:
    """The principal and role of the token a request carries."""

    principal: Principal
    token_id: str
    role: str

    def has(self, role: str) -> bool:
        return role in INCLUDES.get(self.role, frozenset())

    @property
    def is_agent(self) -> bool:
        return self.role == "agent"

    def own_scope(self, scope: str | None) -> str | None:
        """The memory scope an agent token may use: its own (filled in when left out); others unchanged."""
        if not self.is_agent:
            return scope
        if scope is None or scope == "":
            return self.principal.id
        if scope.split("/", 1)[0] != self.principal.id:
            raise ScopeError(f"{self.principal.key} acts only in its own memory scope ({self.principal.id!r}), "
                             f"not {scope!r}", hint="an agent token reaches its own scope; a person's token others",
                             scope=scope, principal=self.principal.key)
        return scope


def _verify(request: Request, secret: str) -> Caller:
    ws = request.app.state.ws
    found = ws.tokens.verify(secret)
    if found is None:
        raise AuthenticationError("the API token is unknown, expired or revoked",
                                  hint="create a new one with `emergent tokens create`")
    info, principal = found
    if not principal.is_human and principal.key in ws.autonomy.suspended():
        raise PermissionDenied(f"{principal.key} is suspended: its tokens act no more until a person unsuspends it",
                               hint="`emergent policy unsuspend` (or DELETE /v1/policy/suspensions/KEY with an admin "
                                    "token)", principal=principal.key)
    return Caller(principal=principal, token_id=info.id, role=info.role)


async def caller(request: Request,
                 credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)] = None) -> Caller:
    """The request's caller from its bearer token (401 without a valid one); counts it against the
    token's rate limit (429 over it)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise AuthenticationError("this request carries no API token",
                                  hint="send Authorization: Bearer <token> (`emergent tokens create` makes one)")
    return await pools.run_read(_verify_and_count, request, credentials.credentials)


def _verify_and_count(request: Request, secret: str) -> Caller:
    """The caller, counted against its token's limit: one trip to a worker thread for both."""
    who = _verify(request, secret)
    request.state.caller = who  # known before the limit is checked: a 429 is logged with its principal
    limiter = getattr(request.app.state, "limiter", None)
    if limiter is not None:
        limiter.hit(who.token_id)
    return who


def require(*roles: str) -> Callable[..., Any]:
    """A dependency: the caller, if its role is (or includes) one of ``roles``; a 403 otherwise."""
    wanted = frozenset(roles)

    async def dependency(who: Annotated[Caller, Depends(caller)]) -> Caller:
        if not (INCLUDES.get(who.role, frozenset()) & wanted):
            raise PrincipalError(f"a {who.role} token may not do this (it needs {' or '.join(sorted(wanted))})",
                                 hint="use a token with that role (`emergent tokens create --role ...`)",
                                 role=who.role)
        return who

    return dependency


Viewer = Annotated[Caller, Depends(require("viewer"))]
ViewerOrAgent = Annotated[Caller, Depends(require("viewer", "agent"))]
Operator = Annotated[Caller, Depends(require("operator"))]
OperatorOrAgent = Annotated[Caller, Depends(require("operator", "agent"))]
Admin = Annotated[Caller, Depends(require("admin"))]
