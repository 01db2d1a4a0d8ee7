"""Who acts: a typed :class:`Principal`, established at the boundary that knows who it is.

A principal is a kind (``human``, ``agent`` or ``service``) and an id. It is never parsed from a
string a caller picks: the :class:`Principals` directory of a workspace issues them.

- ``human``: the OS user of the process (:meth:`Principals.os_user`), created by the CLI, a
  notebook kernel or a magic: the boundaries where a person is at the keyboard.
- ``service``: a process acting on its own schedule (:meth:`Principals.service`): the scheduler.
- ``agent``: created by a human (:meth:`Principals.agent` with ``created_by``) or by the workspace's
  configuration (``[agents]`` in ``emergent.toml``); it gets its own principal and its own memory
  scope.

An issued principal carries a seal (an HMAC over kind and id with a key that exists only in the
memory of the directory that issued it), so the gate can tell a principal it issued from one a
caller built by hand: ``Principal("human", "root")`` is refused. Roles are never carried by the
principal: the gate asks the directory, which knows only what a human granted or the
configuration says.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

# SQLAlchemy is imported where the directory reads its table: importing this module (every memory
# call site does, for the Principal type) costs a notebook's first recall nothing.
from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, PrincipalError, ValidationError

KINDS: tuple[str, ...] = ("human", "agent", "service")
#: ids: letters, digits, ``_ . -`` (no ``:``, ``/`` or glob characters, so neither a rule's
#: ``agent:*`` nor a memory scope can be widened by a name); ``\Z``, not ``$``, which also matches
#: before a final newline (``"researcher\n"`` would be a second principal that looks like the first)
_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
_ROLE = re.compile(r"^role:[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")
HOW_TO_GET_ONE = ("pass principal=ws.principal (the OS user at the keyboard), an agent's principal from "
                  "ws.principals.agent(name, created_by=ws.principal), or the scheduler's from "
                  "ws.principals.service('scheduler')")


def check_id(value: Any, what: str = "principal id") -> str:
    if not isinstance(value, str) or not _ID.match(value):
        raise ValidationError(f"{what} {value!r} is not valid",
                              hint="use 1-64 characters from letters, digits and _ . - (no ':' or '/')")
    return value


def check_role(value: Any) -> str:
    if not isinstance(value, str) or not _ROLE.match(value):
        raise ValidationError(f"role {value!r} is not valid", hint="roles look like role:analyst")
    return value


@dataclass(frozen=True, slots=True)
class Principal:
    """Who acts. Build one through a :class:`Principals` directory; hand-built ones are refused."""

    kind: str
    id: str
    seal: bytes = field(default=b"", compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValidationError(f"principal kind {self.kind!r} is unknown", hint=f"use one of {', '.join(KINDS)}")
        check_id(self.id)

    @property
    def key(self) -> str:
        """``kind:id``, e.g. ``human:ana``, ``agent:researcher``, ``service:scheduler``."""
        return f"{self.kind}:{self.id}"

    @property
    def is_human(self) -> bool:
        return self.kind == "human"

    @property
    def is_agent(self) -> bool:
        return self.kind == "agent"

    @property
    def is_service(self) -> bool:
        return self.kind == "service"

    def __str__(self) -> str:
        return self.key


def parse_key(key: str) -> tuple[str, str]:
    """``kind:id`` → (kind, id), validated; used for rule subjects and stored keys, never for trust."""
    kind, sep, pid = str(key).partition(":")
    if not sep or kind not in KINDS:
        raise ValidationError(f"{key!r} is not a principal key", hint="use human:NAME, agent:NAME or service:NAME")
    return kind, check_id(pid)


def os_user_name() -> str:
    """The name of the OS user running this process (from the password database, not $USER)."""
    try:
        import pwd

        name = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):  # pragma: no cover - non-POSIX or a uid without an entry
        name = f"uid{os.getuid()}" if hasattr(os, "getuid") else "user"
    return name if _ID.match(name) else "uid" + hashlib.sha256(name.encode()).hexdigest()[:8]


class Principals:
    """The directory of one workspace: issues principals, knows their roles, records who made whom.

    ``audit`` is an :class:`emergent.audit.Auditor`; ``config`` maps principal keys to what the
    workspace's configuration says about them (``{"agent:scout": {"roles": ["role:analyst"]}}``):
    configured agents exist without a human creating them, and configured roles are granted.
    """

    def __init__(self, sql: Any, *, clock: Clock | None = None, audit: Any = None,
                 config: Mapping[str, Mapping[str, Any]] | None = None, os_user: str | None = None) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()
        self._key = secrets.token_bytes(32)
        self.audit = audit
        self._config = {k: dict(v) for k, v in (config or {}).items()}
        for key, entry in self._config.items():
            parse_key(key)
            for role in entry.get("roles", ()):
                check_role(role)
        self._os_user = os_user or os_user_name()
        self._lock = threading.Lock()
        self._roles: dict[str, frozenset[str]] = {}
        self._known: set[str] = set()
        self._issued: dict[Principal, bytes] = {}  # fast path of verify(): the seals we computed

    @property
    def audit(self) -> Any:
        return self._audit

    @audit.setter
    def audit(self, value: Any) -> None:
        """The audit trail; it is given this directory, to check the principal of what it does
        itself on a person's word (re-anchoring its head)."""
        self._audit = value
        if value is not None:
            with contextlib.suppress(AttributeError):
                value.directory = self

    # ------------------------------------------------------------------ issuing and checking
    def _seal(self, kind: str, pid: str) -> bytes:
        return hmac.new(self._key, f"{kind}:{pid}".encode(), hashlib.sha256).digest()

    def _issue(self, kind: str, pid: str) -> Principal:
        p = Principal(kind, pid, self._seal(kind, pid))
        self._issued[p] = p.seal
        return p

    def verify(self, principal: Any) -> Principal:
        """The principal, if this directory issued it; a :class:`PrincipalError` otherwise."""
        if principal.__class__ is Principal and self._issued.get(principal) == principal.seal:
            return principal  # type: ignore[no-any-return]
        if not isinstance(principal, Principal):
            what = "no principal" if principal is None else f"{type(principal).__name__} {principal!r}"
            raise PrincipalError(f"{what} is not a principal: every action needs one", hint=HOW_TO_GET_ONE)
        if principal.__class__ is not Principal:
            # a subclass can carry a valid seal (over kind and id) and still answer key, is_human... as
            # it likes: only what this directory issued is a principal
            raise PrincipalError(f"{type(principal).__name__} is not a principal issued by this workspace",
                                 hint="principals cannot be built by hand; " + HOW_TO_GET_ONE)
        if not hmac.compare_digest(principal.seal, self._seal(principal.kind, principal.id)):
            raise PrincipalError(f"principal {principal.key} was not issued by this workspace",
                                 hint="principals cannot be built by hand; " + HOW_TO_GET_ONE,
                                 principal=principal.key)
        return principal

    def os_user(self) -> Principal:
        """The human at the keyboard: the OS user of this process."""
        p = self._issue("human", self._os_user)
        self._register(p, created_by="os")
        return p

    def service(self, name: str) -> Principal:
        """A service principal (``scheduler``): a process that acts on its own schedule."""
        p = self._issue("service", check_id(name, "service name"))
        self._register(p, created_by="system")
        return p

    def agent(self, name: str, *, created_by: Principal | None = None) -> Principal:
        """An agent's principal: created by a human (``created_by``) or named in the configuration."""
        p = self._issue("agent", check_id(name, "agent name"))
        if p.key in self._known:
            return p
        if created_by is None:
            if p.key in self._config or self._exists(p.key):
                self._register(p, created_by="configuration" if p.key in self._config else None)
                return p
            raise PrincipalError(f"agent {name!r} does not exist yet",
                                 hint="a human creates it: ws.principals.agent(name, created_by=ws.principal), "
                                      "or name it under [agents] in emergent.toml")
        creator = self.verify(created_by)
        if not creator.is_human:
            raise PrincipalError(f"{creator.key} may not create agents", hint="only a human creates an agent")
        self._register(p, created_by=creator.key)
        return p

    def get(self, key: str) -> Principal:
        """Re-issue a principal this workspace already knows (resuming an approved call as its requester)."""
        kind, pid = parse_key(key)
        if key not in self._known and not self._exists(key) and key not in self._config:
            raise NotFoundError(f"no principal {key!r} in this workspace", hint="`emergent principals list`")
        return self._issue(kind, pid)

    def current(self, key: str) -> Principal | None:
        """The principal ``key`` names if the configuration or the table holds it *now* (the table
        is asked each time, whatever this process knew: another process or a restore may have
        removed it); None otherwise. What an API token's check needs, in one query."""
        try:
            kind, pid = parse_key(key)
        except ValidationError:
            return None
        if key not in self._config and not self._exists(key):
            return None
        return self._issue(kind, pid)

    # ------------------------------------------------------------------ roles
    def roles(self, principal: Principal) -> frozenset[str]:
        """Roles granted to ``principal`` by a human or the configuration (never by the caller)."""
        hit = self._roles.get(principal.key)
        if hit is None:
            granted = self._stored(principal.key).get("roles", [])
            hit = frozenset([*granted, *self._config.get(principal.key, {}).get("roles", ())])
            self._roles[principal.key] = hit
        return hit

    def grant(self, role: str, *, to: str, by: Principal) -> frozenset[str]:
        return self._change_roles(check_role(role), to, by, add=True)

    def revoke(self, role: str, *, to: str, by: Principal) -> frozenset[str]:
        return self._change_roles(check_role(role), to, by, add=False)

    def _change_roles(self, role: str, key: str, by: Principal, *, add: bool) -> frozenset[str]:
        who = self.verify(by)
        if not who.is_human:
            raise PrincipalError(f"{who.key} may not change roles", hint="only a human grants or revokes roles")
        parse_key(key)
        if not self._exists(key):
            raise NotFoundError(f"no principal {key!r} in this workspace", hint="`emergent principals list`")
        import sqlalchemy as sa

        from emergent.autonomy.tables import principals as table
        from emergent.autonomy.tables import state

        kind = "principal.role_granted" if add else "principal.role_revoked"
        if self.audit is not None:
            self.audit.append(kind, who, {"principal": key, "role": role}, durable=True)
        with self.sql.begin() as conn:
            row = conn.execute(sa.select(table.c.roles).where(table.c.key == key)).first()
            roles = set(json.loads(row[0]) if row and row[0] else [])
            roles = roles | {role} if add else roles - {role}
            conn.execute(table.update().where(table.c.key == key).values(roles=json.dumps(sorted(roles))))
            # the gate's version moves with it: every other process (a server, a kernel) drops the roles
            # it cached at its next look at the policy, as it does after a rule change
            cur = conn.execute(sa.select(state.c.value).where(state.c.key == "version")).first()
            conn.execute(state.delete().where(state.c.key == "version"))
            conn.execute(state.insert(), {"key": "version", "value": json.dumps((json.loads(cur[0]) if cur else 0) + 1)})
        self._roles.pop(key, None)
        return self.roles(self.get(key))

    def refresh(self) -> None:
        """Forget cached roles (another process may have granted some)."""
        self._roles.clear()

    # ------------------------------------------------------------------ the table
    def list(self) -> list[dict[str, Any]]:
        import sqlalchemy as sa

        from emergent.autonomy.tables import principals as table

        with self.sql.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(sa.select(table).order_by(table.c.created_at))]
        for r in rows:
            r["roles"] = sorted({*json.loads(r["roles"] or "[]"), *self._config.get(r["key"], {}).get("roles", ())})
        return rows

    def _stored(self, key: str) -> dict[str, Any]:
        with self.sql.connect() as conn:
            row = conn.execute(_by_key(), {"key": key}).first()
        if row is None:
            return {}
        out = dict(row._mapping)
        out["roles"] = json.loads(out["roles"] or "[]")
        return out

    def _exists(self, key: str) -> bool:
        return bool(self._stored(key))

    def _register(self, p: Principal, *, created_by: str | None) -> None:
        if p.key in self._known:
            return
        with self._lock:
            if p.key in self._known:
                return
            if not self._exists(p.key):
                import sqlalchemy as sa

                from emergent.autonomy.tables import principals as table

                row = {"key": p.key, "kind": p.kind, "id": p.id, "created_by": created_by or "unknown",
                       "created_at": self.clock.now(), "roles": "[]"}
                if self.audit is not None:
                    self.audit.append("principal.created", p, {"principal": p.key, "created_by": row["created_by"]},
                                      durable=True)
                try:
                    with self.sql.begin() as conn:
                        conn.execute(table.insert(), row)
                except sa.exc.IntegrityError:  # another process registered it meanwhile
                    pass
            self._known.add(p.key)


@functools.cache
def _by_key() -> Any:
    """The principal row by key, built once (every API request asks it)."""
    import sqlalchemy as sa

    from emergent.autonomy.tables import principals as table

    return sa.select(table).where(table.c.key == sa.bindparam("key"))


def subjects(principal: Principal, roles: Iterable[str]) -> tuple[str, ...]:
    """What a policy rule's subject may name for this principal: its key, its roles, ``*``."""
    return (principal.key, *sorted(roles), "*")


def keys(items: Sequence[Principal]) -> list[str]:
    return [p.key for p in items]
