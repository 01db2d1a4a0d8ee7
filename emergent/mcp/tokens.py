"""Bearer tokens for ``emergent mcp serve --http``: each maps to one principal, stored hashed.

A human creates a token for an agent or a service (never for a person: a bearer credential that
leaks must not carry a human's trust); the secret is returned once and only its sha256 is kept.
Revoking a token (or every token of a principal) takes effect on the next HTTP request: every
request is verified against the table, nothing is cached.
"""

from __future__ import annotations

import builtins
import hashlib
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, PrincipalError, UsageError
from emergent.mcp.tables import mcp_tokens
from emergent.principals import Principal

PREFIX = "emt_"


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    id: str
    principal: str
    label: str | None
    created_by: str
    created_at: float
    revoked_at: float | None
    revoked_by: str | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__} | {"active": self.active}


def _info(r: Any) -> TokenInfo:
    return TokenInfo(r.id, r.principal, r.label, r.created_by, r.created_at, r.revoked_at, r.revoked_by)


class TokenStore:
    """Create, list, revoke and verify MCP bearer tokens (table ``mcp_tokens``)."""

    def __init__(self, sql: Any, *, principals: Any, audit: Any = None, clock: Clock | None = None) -> None:
        self.sql = sql
        self.principals = principals
        self.audit = audit
        self.clock = clock or SystemClock()

    def _human(self, by: Any, what: str) -> Principal:
        who: Principal = self.principals.verify(by)
        if not who.is_human:
            raise PrincipalError(f"{who.key} may not {what}", hint="a human manages MCP tokens")
        return who

    def create(self, principal: Principal, *, by: Principal, label: str | None = None) -> tuple[TokenInfo, str]:
        """A new token acting as ``principal`` (an agent or a service): (its record, the secret).

        The secret is returned here only; the table keeps its sha256."""
        who = self._human(by, "create MCP tokens")
        p: Principal = self.principals.verify(principal)
        if p.is_human:
            raise UsageError(f"an MCP token cannot act as a person ({p.key})",
                             hint="create it for an agent (`--as agent:NAME`) or a service; a person connects "
                                  "over stdio (`emergent mcp serve`), as the OS user")
        secret = PREFIX + secrets.token_urlsafe(32)
        info = TokenInfo(uuid.uuid4().hex[:16], p.key, label, who.key, self.clock.now(), None, None)
        if self.audit is not None:
            self.audit.append("mcp.token_created", who, {"token": info.id, "principal": p.key, "label": label},
                              durable=True)
        with self.sql.begin() as conn:
            conn.execute(mcp_tokens.insert(), {"id": info.id, "token_sha256": digest(secret), "principal": p.key,
                                               "label": label, "created_by": who.key,
                                               "created_at": info.created_at})
        return info, secret

    def list(self, *, include_revoked: bool = False) -> builtins.list[TokenInfo]:
        q = sa.select(mcp_tokens).order_by(mcp_tokens.c.created_at)
        if not include_revoked:
            q = q.where(mcp_tokens.c.revoked_at.is_(None))
        with self.sql.connect() as conn:
            return [_info(r) for r in conn.execute(q)]

    def revoke(self, token_id: str | None = None, *, principal: str | None = None, by: Principal) -> builtins.list[str]:
        """Revoke one token (by id) or every active token of ``principal`` (a key); the ids revoked."""
        who = self._human(by, "revoke MCP tokens")
        if (token_id is None) == (principal is None):
            raise UsageError("revoke takes a token id or a principal, not both and not neither",
                             hint="`emergent mcp token revoke ID` or `emergent mcp token revoke --principal "
                                  "agent:NAME`")
        cond = mcp_tokens.c.id == token_id if token_id is not None else mcp_tokens.c.principal == principal
        with self.sql.connect() as conn:
            ids = [r.id for r in conn.execute(sa.select(mcp_tokens.c.id).where(
                cond, mcp_tokens.c.revoked_at.is_(None)))]
        if not ids:
            raise NotFoundError(f"no active MCP token {'with id ' + repr(token_id) if token_id else 'for ' + repr(principal)}",
                                hint="`emergent mcp token list` shows the active tokens")
        if self.audit is not None:
            self.audit.append("mcp.token_revoked", who, {"tokens": ids, "principal": principal}, durable=True)
        with self.sql.begin() as conn:
            conn.execute(mcp_tokens.update().where(mcp_tokens.c.id.in_(ids))
                         .values(revoked_at=self.clock.now(), revoked_by=who.key))
        return ids

    def verify(self, secret: str) -> tuple[TokenInfo, Principal] | None:
        """The token's record and principal, or None (unknown, revoked, or its principal is gone)."""
        if not secret or not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        with self.sql.connect() as conn:
            row = conn.execute(sa.select(mcp_tokens).where(mcp_tokens.c.token_sha256 == digest(secret))).first()
        if row is None or row.revoked_at is not None:
            return None
        # the directory asks its table each time (not what this process once knew): a principal
        # removed since (another process, a restore) is not one its tokens act as
        principal = self.principals.current(row.principal)
        return None if principal is None else (_info(row), principal)
