"""The config registry: every tunable of the workstation, versioned in SQL.

A *namespace* (``memory``, ``tools``...) has a pydantic schema; a *version* is an immutable,
validated set of values (``memory@3``); exactly one version per namespace is *current*. Making a
version current and rolling back are single conditional updates in one transaction, so the current
config is never half-changed and two concurrent changes cannot both win. Every change writes a
``config_events`` row and, around it, its intent and outcome in the audit trail (``audit``, an
:class:`emergent.audit.Auditor`).

Who acts is a :class:`~emergent.principals.Principal` of the workspace: anyone issued one may
create versions (``principal=``); making a version current, rolling back and deleting are a
human's decisions (``by=``). Agents change what is current only through an experiment whose
adoption the autonomy gate allowed or a human approved (:meth:`Experiments.adopt`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from pydantic import ValidationError as PydanticValidationError

from emergent.clock import Clock, SystemClock
from emergent.config import MemoryConfig
from emergent.errors import NotFoundError, StateConflictError, UsageError, ValidationError
from emergent.experiments.tables import config_current, config_events, config_versions
from emergent.registry import suggest
from emergent.workspace.audited import human, recorded, verified

#: who bootstraps a namespace's defaults (version 1) in the event log
DEFAULTS_ACTOR = "system:defaults"


class RetryTunables(BaseModel):
    attempts: int = 1
    initial: float = 0.2
    max_wait: float = 5.0


class ToolsConfig(BaseModel):
    """Tunables of the tool runner: retry policies, timeouts and pinned versions, per tool."""

    retry: dict[str, RetryTunables] = {}
    timeouts: dict[str, float] = {}
    versions: dict[str, str] = {}


DEFAULT_SCHEMAS: dict[str, type[BaseModel]] = {"memory": MemoryConfig, "tools": ToolsConfig}


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    id: str
    namespace: str
    version: int
    values: dict[str, Any]
    fingerprint: str
    parent_id: str | None
    created_at: float
    created_by: str
    note: str | None

    def public(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__}  # type: ignore[attr-defined]


def fingerprint(values: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()


def _row(r: Any) -> ConfigVersion:
    return ConfigVersion(r.id, r.namespace, r.version, dict(r.values), r.fingerprint, r.parent_id,
                         r.created_at, r.created_by, r.note)


class ConfigRegistry:
    """Versioned tunables with one current version per namespace."""

    def __init__(self, sql: Any, *, clock: Clock | None = None, audit: Any = None, principals: Any = None,
                 schemas: dict[str, type[BaseModel]] | None = None) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()
        self.audit = audit
        self.principals = principals
        self.schemas: dict[str, type[BaseModel]] = dict(DEFAULT_SCHEMAS if schemas is None else schemas)
        self._listeners: dict[str, list[Callable[[BaseModel], None]]] = {}

    # ---------------------------------------------------------------- namespaces
    def register(self, namespace: str, schema: type[BaseModel]) -> None:
        self.schemas[namespace] = schema

    def schema(self, namespace: str) -> type[BaseModel]:
        try:
            return self.schemas[namespace]
        except KeyError:
            known = sorted(self.schemas)
            raise NotFoundError(f"no config namespace {namespace!r}",
                                hint=suggest(namespace, known) or f"known namespaces: {', '.join(known)}",
                                namespace=namespace) from None

    def on_change(self, namespace: str, fn: Callable[[BaseModel], None]) -> None:
        """Call ``fn(values)`` after the current version of ``namespace`` changes."""
        self._listeners.setdefault(namespace, []).append(fn)

    def validate(self, namespace: str, values: dict[str, Any] | BaseModel) -> dict[str, Any]:
        schema = self.schema(namespace)
        try:
            model = values if isinstance(values, schema) else schema.model_validate(
                values.model_dump() if isinstance(values, BaseModel) else values)
        except PydanticValidationError as exc:
            raise ValidationError(f"invalid {namespace} config: {exc.errors()[0]['loc']}: {exc.errors()[0]['msg']}",
                                  hint=f"see the fields of {schema.__name__}", namespace=namespace) from None
        return model.model_dump(mode="json")

    # ---------------------------------------------------------------- versions
    def create(self, namespace: str, values: dict[str, Any] | BaseModel | None = None, *,
               changes: dict[str, Any] | None = None, principal: Any, note: str | None = None,
               base: str | None = None) -> ConfigVersion:
        """A new version: ``values`` whole, or ``changes`` applied over ``base`` (default: current).

        It does not change what is current; ``principal`` is recorded as its author."""
        who = verified(self.principals, principal)
        if values is None:
            parent = self.get(base) if base else self.current(namespace)
            merged = {**parent.values, **(changes or {})}
            unknown = set(changes or {}) - set(self.schema(namespace).model_fields)
            if unknown:
                raise ValidationError(f"unknown {namespace} config keys {sorted(unknown)}",
                                      hint=f"see the fields of {self.schema(namespace).__name__}")
            parent_id: str | None = parent.id
        else:
            merged, parent_id = values if isinstance(values, dict) else values.model_dump(), base
        clean = self.validate(namespace, merged)
        with recorded(self.audit, "config.create", who, {"namespace": namespace, "parent": parent_id,
                                                         "fingerprint": fingerprint(clean), "note": note}) as out:
            with self.sql.begin() as conn:
                version = self._insert(conn, namespace, clean, parent_id, who.key, note)
            out["version"] = version.id
        return version

    def _insert(self, conn: Any, namespace: str, values: dict[str, Any], parent_id: str | None, actor: str,
                note: str | None) -> ConfigVersion:
        n = conn.execute(sa.select(sa.func.max(config_versions.c.version))
                         .where(config_versions.c.namespace == namespace)).scalar() or 0
        row: dict[str, Any] = {"id": f"{namespace}@{n + 1}", "namespace": namespace, "version": n + 1, "values": values,
               "fingerprint": fingerprint(values), "parent_id": parent_id, "created_at": self.clock.now(),
               "created_by": actor, "note": note}
        conn.execute(config_versions.insert().values(**row))
        conn.execute(config_events.insert().values(at=row["created_at"], namespace=namespace, action="create",
                                                   from_version=parent_id, to_version=row["id"], actor=actor,
                                                   reason=note))
        return ConfigVersion(**row)

    def get(self, version_id: str) -> ConfigVersion:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(config_versions).where(config_versions.c.id == version_id)).first()
        if r is None:
            ns = version_id.split("@", 1)[0]
            raise NotFoundError(f"config version {version_id!r} does not exist (it may have been deleted)",
                                hint=f"list the versions with `emergent experiments config {ns}`",
                                version_id=version_id)
        return _row(r)

    def versions(self, namespace: str) -> list[ConfigVersion]:
        with self.sql.connect() as conn:
            rows = conn.execute(sa.select(config_versions).where(config_versions.c.namespace == namespace)
                                .order_by(config_versions.c.version)).all()
        return [_row(r) for r in rows]

    def current(self, namespace: str) -> ConfigVersion:
        """The current version; the schema's defaults become version 1 on first use."""
        self.schema(namespace)
        with self.sql.connect() as conn:
            vid = conn.execute(sa.select(config_current.c.version_id)
                               .where(config_current.c.namespace == namespace)).scalar()
        if vid is not None:
            return self.get(vid)
        try:
            with self.sql.begin() as conn:
                v = self._insert(conn, namespace, self.validate(namespace, {}), None, DEFAULTS_ACTOR, "defaults")
                conn.execute(config_current.insert().values(namespace=namespace, version_id=v.id, revision=1,
                                                            updated_at=self.clock.now(), updated_by=DEFAULTS_ACTOR))
            return v
        except sa.exc.IntegrityError:  # another process bootstrapped it first
            return self.current(namespace)

    def values(self, namespace: str) -> BaseModel:
        """The current values as the namespace's pydantic model."""
        return self.schema(namespace).model_validate(self.current(namespace).values)

    # ---------------------------------------------------------------- changing what is current
    def make_current(self, version_id: str, *, by: Any, reason: str | None = None,
                     expected: str | None = None) -> ConfigVersion:
        """A human makes ``version_id`` current (one transaction); ``expected`` guards against a lost update.

        Agents and services are refused (:class:`PrincipalError`): they change the current config
        through an experiment, whose adoption the gate allows or a human approves."""
        who = human(self.principals, by, "make a config version current")
        return self._switch(version_id, principal=who, reason=reason, expected=expected, action="make_current")

    def _switch(self, version_id: str, *, principal: Any, reason: str | None = None, expected: str | None = None,
               action: str = "make_current") -> ConfigVersion:
        """Make ``version_id`` current as ``principal`` without asking who may: for callers that
        decided that already (:meth:`make_current`, :meth:`rollback`, an adoption the gate allowed
        or a human approved). Audited: intent before the switch, outcome after."""
        who = verified(self.principals, principal)
        ns = version_id.split("@", 1)[0]
        before = self.current(ns)
        target = self.get(version_id)
        if expected is not None and before.id != expected:
            raise StateConflictError(f"{ns} config is {before.id}, not {expected}: someone changed it meanwhile",
                                     hint="re-read the current version and decide again", namespace=ns)
        with recorded(self.audit, f"config.{action}", who, {"namespace": ns, "from": before.id, "to": target.id,
                                                            "reason": reason}):
            try:
                with self.sql.begin() as conn:
                    cur = conn.execute(sa.select(config_current).where(config_current.c.namespace == ns)).one()
                    if cur.version_id != before.id:
                        raise StateConflictError(f"{ns} config changed to {cur.version_id} while switching",
                                                 hint="re-read the current version and decide again")
                    if conn.execute(sa.select(config_versions.c.id)
                                    .where(config_versions.c.id == target.id)).first() is None:
                        raise NotFoundError(f"config version {target.id!r} was deleted while switching")
                    res = conn.execute(config_current.update()
                                       .where(config_current.c.namespace == ns,
                                              config_current.c.revision == cur.revision)
                                       .values(version_id=target.id, revision=cur.revision + 1,
                                               updated_at=self.clock.now(), updated_by=who.key))
                    if res.rowcount != 1:
                        raise StateConflictError(f"{ns} config changed while switching", hint="retry")
                    conn.execute(config_events.insert().values(at=self.clock.now(), namespace=ns, action=action,
                                                               from_version=before.id, to_version=target.id,
                                                               actor=who.key, reason=reason))
            except sa.exc.OperationalError as exc:  # SQLite: a concurrent writer held the lock
                raise StateConflictError(f"{ns} config is being changed by someone else: {exc.orig}",
                                         hint="retry in a moment") from exc
        self._after_change(ns)
        return target

    def rollback(self, namespace: str, to: str | None = None, *, by: Any,
                 reason: str | None = None) -> ConfigVersion:
        """A human makes the previous current version (or ``to``) current again. One call, audited."""
        who = human(self.principals, by, "roll back a config")
        cur = self.current(namespace)
        if to is None:
            with self.sql.connect() as conn:
                prev = conn.execute(sa.select(config_events.c.from_version)
                                    .where(config_events.c.namespace == namespace,
                                           config_events.c.action.in_(("make_current", "rollback", "adopt")),
                                           config_events.c.to_version == cur.id)
                                    .order_by(config_events.c.seq.desc()).limit(1)).scalar()
            if prev is None:
                raise UsageError(f"{namespace} config {cur.id} has no earlier current version to roll back to",
                                 hint="pass to=<version id> explicitly", namespace=namespace)
            to = prev
        if to.split("@", 1)[0] != namespace:
            raise ValidationError(f"version {to!r} is not a {namespace} version")
        return self._switch(to, principal=who, reason=reason or f"rollback from {cur.id}", expected=cur.id,
                           action="rollback")

    def delete_version(self, version_id: str, *, by: Any) -> None:
        """A human deletes a version that is not current (pruning); its id is never reused."""
        who = human(self.principals, by, "delete a config version")
        v = self.get(version_id)
        with recorded(self.audit, "config.delete", who, {"version": version_id}), self.sql.begin() as conn:
            in_use = conn.execute(sa.select(config_current.c.namespace)
                                  .where(config_current.c.version_id == version_id)).first()
            if in_use is not None:
                raise UsageError(f"{version_id} is current and cannot be deleted",
                                 hint="make another version current first")
            conn.execute(config_versions.delete().where(config_versions.c.id == version_id))
            conn.execute(config_events.insert().values(at=self.clock.now(), namespace=v.namespace, action="delete",
                                                       from_version=version_id, to_version=None, actor=who.key,
                                                       reason=None))

    def events(self, namespace: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        q = sa.select(config_events).order_by(config_events.c.seq.desc()).limit(limit)
        if namespace:
            q = q.where(config_events.c.namespace == namespace)
        with self.sql.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    @staticmethod
    def diff(a: ConfigVersion, b: ConfigVersion) -> dict[str, tuple[Any, Any]]:
        keys = sorted(set(a.values) | set(b.values))
        return {k: (a.values.get(k), b.values.get(k)) for k in keys if a.values.get(k) != b.values.get(k)}

    def _after_change(self, ns: str) -> None:
        if ns in self._listeners:
            model = self.values(ns)
            for fn in self._listeners[ns]:
                fn(model)
