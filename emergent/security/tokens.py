"""API tokens of the REST API: each maps to one principal and one role, expires, and can be revoked.

- The secret (``emk_`` + 256 random bits) is returned once, by :meth:`ApiTokens.create`; the table
  keeps its sha256 only. A high-entropy secret needs no slow hash: nothing can be guessed from the
  digest, and a lookup stays one indexed read.
- Roles: ``admin`` ⊃ ``operator`` ⊃ ``viewer``, and ``agent``. ``admin`` and ``operator`` tokens act
  only as a human (a bearer credential with a human's trust is issued to that human, by a human);
  an ``agent`` token acts only as an agent principal, in its own memory scope; ``viewer`` reads.
- Who creates or revokes: a human principal (at the CLI, or behind an admin token, whose principal
  is a human by the rule above).
- Every token expires: ``ttl_s`` is at most ``max_ttl_s`` (``EMERGENT_API__TOKEN_MAX_TTL_DAYS``).
- Every creation and revocation is in the audit trail before it is written; a failed audit write
  fails it. Verification reads the table on each call (nothing cached), so a revocation takes
  effect on the next request of every instance sharing the database.
"""

from __future__ import annotations

import builtins
import hashlib
import math
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, PrincipalError, ValidationError
from emergent.principals import Principal
from emergent.security.tables import api_tokens

#: a token's row by its secret's digest, built once (every API request asks it)
_BY_DIGEST = sa.select(api_tokens).where(api_tokens.c.token_sha256 == sa.bindparam("digest"))

PREFIX = "emk_"
ROLES: tuple[str, ...] = ("admin", "operator", "viewer", "agent")
HUMAN_ONLY = frozenset({"admin", "operator"})
MAX_LABEL = 200


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """A token's record (never its secret)."""

    id: str
    principal: str
    role: str
    label: str | None
    created_by: str
    created_at: float
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None

    def active(self, now: float) -> bool:
        return self.revoked_at is None and now < self.expires_at

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}


def _info(r: Any) -> TokenInfo:
    return TokenInfo(r.id, r.principal, r.role, r.label, r.created_by, r.created_at, r.expires_at, r.revoked_at,
                     r.revoked_by)


def check_role(role: Any) -> str:
    if role not in ROLES:
        raise ValidationError(f"token role {role!r} is unknown", hint=f"use one of {', '.join(ROLES)}", field="role")
    return str(role)


class ApiTokens:
    """Create, list, revoke and verify REST API tokens (table ``api_tokens``)."""

    def __init__(self, sql: Any, *, principals: Any, audit: Any = None, clock: Clock | None = None,
                 max_ttl_s: float = 90 * 86400.0) -> None:
        self.sql = sql
        self.principals = principals
        self.audit = audit
        self.clock = clock or SystemClock()
        self.max_ttl_s = float(max_ttl_s)

    def _human(self, by: Any, what: str) -> Principal:
        who: Principal = self.principals.verify(by)
        if not who.is_human:
            raise PrincipalError(f"{who.key} may not {what}",
                                 hint="a person manages API tokens (`emergent tokens ...`, or an admin token)",
                                 principal=who.key)
        return who

    def _ttl(self, ttl_s: Any) -> float:
        if ttl_s is None:
            return self.max_ttl_s
        if isinstance(ttl_s, bool) or not isinstance(ttl_s, int | float) or not math.isfinite(ttl_s) or ttl_s <= 0:
            raise ValidationError(f"token lifetime {ttl_s!r} is not a positive number of seconds",
                                  hint="give a lifetime such as 3600 (seconds) or --ttl 30d", field="ttl_s")
        if ttl_s > self.max_ttl_s:
            raise ValidationError(
                f"token lifetime {ttl_s:g} s is longer than the longest allowed ({self.max_ttl_s:g} s = "
                f"{self.max_ttl_s / 86400:g} days)",
                hint="ask for a shorter lifetime, or raise EMERGENT_API__TOKEN_MAX_TTL_DAYS", field="ttl_s")
        return float(ttl_s)

    def create(self, principal: Principal, role: str, *, by: Principal, ttl_s: float | None = None,
               label: str | None = None) -> tuple[TokenInfo, str]:
        """A new token acting as ``principal`` with ``role``: (its record, the secret).

        The secret is returned here only; the table keeps its sha256."""
        who = self._human(by, "create API tokens")
        role = check_role(role)
        p: Principal = self.principals.verify(principal)
        if role in HUMAN_ONLY and not p.is_human:
            raise ValidationError(f"an {role} token acts only as a person, not as {p.key}",
                                  hint="give an agent an agent token (--role agent), a service a viewer token",
                                  field="role")
        if role == "agent" and not p.is_agent:
            raise ValidationError(f"an agent token acts only as an agent, not as {p.key}",
                                  hint="create it `--as agent:NAME`; a person takes an admin, operator or viewer "
                                       "token", field="role")
        if label is not None and (not isinstance(label, str) or len(label) > MAX_LABEL or "\x00" in label):
            raise ValidationError(f"token label must be text of at most {MAX_LABEL} characters", field="label")
        ttl = self._ttl(ttl_s)
        secret = PREFIX + secrets.token_urlsafe(32)
        now = self.clock.now()
        info = TokenInfo(uuid.uuid4().hex[:16], p.key, role, label, who.key, now, now + ttl, None, None)
        if self.audit is not None:
            self.audit.append("api.token_created", who, {"token": info.id, "principal": p.key, "role": role,
                                                         "label": label, "expires_at": info.expires_at},
                              durable=True)
        with self.sql.begin() as conn:
            conn.execute(api_tokens.insert(), {"id": info.id, "token_sha256": digest(secret), "principal": p.key,
                                               "role": role, "label": label, "created_by": who.key,
                                               "created_at": now, "expires_at": info.expires_at})
        return info, secret

    def get(self, token_id: str) -> TokenInfo:
        with self.sql.connect() as conn:
            row = conn.execute(sa.select(api_tokens).where(api_tokens.c.id == str(token_id))).first()
        if row is None:
            raise NotFoundError(f"no API token {token_id!r}", hint="`emergent tokens list` shows the tokens")
        return _info(row)

    def list(self, *, include_inactive: bool = False, principal: str | None = None) -> builtins.list[TokenInfo]:
        """Tokens, oldest first: the active ones, or also the revoked and expired ones."""
        q = sa.select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
        if not include_inactive:
            q = q.where(api_tokens.c.revoked_at.is_(None), api_tokens.c.expires_at > self.clock.now())
        if principal is not None:
            q = q.where(api_tokens.c.principal == principal)
        with self.sql.connect() as conn:
            return [_info(r) for r in conn.execute(q)]

    def revoke(self, token_id: str, *, by: Principal) -> TokenInfo:
        """Revoke one token; its record after. A token already revoked is a NotFoundError."""
        who = self._human(by, "revoke API tokens")
        info = self.get(token_id)
        if info.revoked_at is not None:
            raise NotFoundError(f"API token {token_id!r} is already revoked",
                                hint="`emergent tokens list` shows the active tokens")
        if self.audit is not None:
            self.audit.append("api.token_revoked", who, {"token": info.id, "principal": info.principal},
                              durable=True)
        now = self.clock.now()
        with self.sql.begin() as conn:
            conn.execute(api_tokens.update().where(api_tokens.c.id == info.id, api_tokens.c.revoked_at.is_(None))
                         .values(revoked_at=now, revoked_by=who.key))
        return self.get(token_id)

    def verify(self, secret: str) -> tuple[TokenInfo, Principal] | None:
        """The token's record and principal, or None (unknown, expired, revoked, or its principal is gone)."""
        if not isinstance(secret, str) or not secret.startswith(PREFIX) or len(secret) > 200:
            return None
        with self.sql.connect() as conn:
            row = conn.execute(_BY_DIGEST, {"digest": digest(secret)}).first()
        if row is None or row.revoked_at is not None or self.clock.now() >= row.expires_at:
            return None
        # the directory asks its table each time: a principal removed since (another process, a
        # restore) is not one its tokens act as
        principal = self.principals.current(row.principal)
        if principal is None:
            return None
        return _info(row), principal
