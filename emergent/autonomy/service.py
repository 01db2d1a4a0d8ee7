"""The autonomy gate: one place that decides whether an action runs alone, asks, or is refused.

Who acts is a :class:`~emergent.principals.Principal` issued by this workspace's directory; its roles
come from the directory, never from the caller. Order of precedence:

1. for agents and services, every action that is not a plain read (writes, and reads over the
   network): the global pause switch, then a suspension of the principal;
2. a human's override, then the permission matrix (deny overrides ask overrides allow);
3. without a matching rule, the default of the principal's kind: humans may do anything; services
   anything short of destructive or host-code actions; agents what the matrix defaults say (reads
   alone, the rest asks), and only in their own memory scope;
4. ``execute`` actions (code that runs on the host, outside the sandbox) always ask for agents
   and services, whatever a rule says;
5. for agents only, the confidence threshold of the action's level (an *allow* below it becomes
   *ask*; a missing confidence counts as 0) and the cost conditions of rules (the tool's declared
   cost is a floor the caller cannot lower).

Rules, overrides and switches live in SQL; a process re-reads them when another one changed them
(checked at most every ``refresh_interval`` seconds). Every change is written to the audit chain.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from emergent.audit import AuditLog
from emergent.autonomy.approvals import ApprovalQueue
from emergent.autonomy.policy import (
    DEFAULTS,
    EFFECTS,
    LEVELS,
    Decision,
    Matrix,
    Request,
    Rule,
    dump_yaml,
    load_yaml,
)
from emergent.autonomy.tables import overrides, policy_rules, state
from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError, PrincipalError, ValidationError
from emergent.principals import KINDS, Principal, Principals, parse_key

THRESHOLDS: dict[str, float] = {"read": 0.0, "write": 0.6, "external": 0.8, "destructive": 0.95, "execute": 1.0}
ISOLATION_LEVELS = ("none", "process", "network", "namespace")
ISOLATION_ORDER = {lvl: i for i, lvl in enumerate(ISOLATION_LEVELS)}
#: the least isolation a sandboxed run of an agent gets unless the policy asks for more
AGENT_ISOLATION = "network"
#: what a service may do when no rule matches (the rest follows the matrix defaults)
SERVICE_ALLOWED = ("read", "write", "external")


@dataclass
class _Override:
    rule: Rule
    expires_at: float | None
    by: str
    reason: str


@dataclass
class _Snapshot:
    version: int = -1
    matrix: Matrix = field(default_factory=Matrix)
    thresholds: dict[str, float] = field(default_factory=lambda: dict(THRESHOLDS))
    paused: dict[str, Any] | None = None
    suspended: dict[str, dict[str, Any]] = field(default_factory=dict)
    overrides: list[_Override] = field(default_factory=list)
    require_isolation: str = "none"


class Autonomy:
    """Permission matrix, thresholds, overrides, pause/suspend, principals, approvals and the audit chain."""

    def __init__(self, sql: Any, *, clock: Clock | None = None, audit: AuditLog | None = None,
                 principals: Principals | None = None, approvals: ApprovalQueue | None = None,
                 refresh_interval: float = 0.5) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()
        self.audit = audit or AuditLog(sql, clock=self.clock)
        self.principals = principals or Principals(sql, clock=self.clock, audit=self.audit)
        self.approvals = approvals or ApprovalQueue(sql, principals=self.principals, clock=self.clock,
                                                    audit=self.audit)
        self.refresh_interval = refresh_interval
        self._snap = _Snapshot()
        self._checked = 0.0
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ state in SQL
    def _get(self, conn: Any, key: str, default: Any) -> Any:
        r = conn.execute(sa.select(state.c.value).where(state.c.key == key)).first()
        return json.loads(r[0]) if r else default

    def _put(self, conn: Any, key: str, value: Any) -> None:
        conn.execute(state.delete().where(state.c.key == key))
        if value is not None:
            conn.execute(state.insert(), {"key": key, "value": json.dumps(value)})

    def _bump(self, conn: Any) -> None:
        self._put(conn, "version", self._get(conn, "version", 0) + 1)
        self._checked = 0.0

    def _load(self) -> None:
        with self.sql.connect() as conn:
            version = self._get(conn, "version", 0)
            if version == self._snap.version:
                return
            rules = [Rule.from_dict({k: v for k, v in r._mapping.items() if k != "created_at"})
                     for r in conn.execute(sa.select(policy_rules).order_by(policy_rules.c.created_at))]
            ovs = [_Override(Rule(r.subject, r.tool, r.effect, r.resource, id=r.id), r.expires_at, r.by, r.reason)
                   for r in conn.execute(sa.select(overrides).order_by(overrides.c.created_at))]
            self._snap = _Snapshot(
                version=version, matrix=Matrix(rules, self._get(conn, "defaults", {})),
                thresholds={**THRESHOLDS, **self._get(conn, "thresholds", {})},
                paused=self._get(conn, "paused", None), suspended=self._get(conn, "suspended", {}),
                overrides=ovs, require_isolation=self._get(conn, "require_isolation", "none"))
        self.principals.refresh()

    def snapshot(self) -> _Snapshot:
        now = time.monotonic()
        if now - self._checked > self.refresh_interval:
            with self._lock:
                self._load()
                self._checked = now
        return self._snap

    def _human(self, by: Any, what: str) -> Principal:
        who = self.principals.verify(by)
        if not who.is_human:
            raise PrincipalError(f"{who.key} may not {what}", hint="only a human changes the policy, pauses, "
                                                                   "suspends or overrides", principal=who.key)
        return who

    def _change(self, kind: str, by: Any, data: dict[str, Any], fn: Any, what: str = "change the policy") -> None:
        who = self._human(by, what)
        self.audit.append(kind, who, data, durable=True)  # recorded before it takes effect
        with self.sql.begin() as conn:
            fn(conn)
            self._bump(conn)

    # ------------------------------------------------------------------ the decision
    def request_for(self, principal: Principal, tool: str, side_effect: str = "read", resource: str = "", *,
                    cost: float = 0.0, confidence: float | None = None, network: bool = False,
                    scope_resource: bool = False) -> Request:
        """The gate's view of an action by ``principal`` (verified; roles from the directory).

        Confidence and a caller's cost count only for agents: a missing confidence is 0, and the
        tool's declared ``cost`` is a floor (pass the larger of it and the caller's estimate)."""
        who = self.principals.verify(principal)
        self.snapshot()  # first: a role granted or revoked elsewhere drops the cached roles read below
        foreign = False
        if scope_resource and who.is_agent:
            foreign = not (resource == who.id or resource.startswith(who.id + "/"))
        return Request(who.key, tool, side_effect, resource, float(cost), tuple(self.principals.roles(who)),
                       (0.0 if confidence is None else float(confidence)) if who.is_agent else None,
                       kind=who.kind, network=network, foreign_scope=foreign)

    def decide_for(self, principal: Principal, tool: str, side_effect: str = "read", resource: str = "",
                   **kw: Any) -> Decision:
        return self.decide(self.request_for(principal, tool, side_effect, resource, **kw))

    def decide(self, req: Request) -> Decision:
        """The decision for a request built by :meth:`request_for` (which fills kind and roles)."""
        snap = self.snapshot()
        if req.kind != "human" and (req.side_effect != "read" or req.network):
            if snap.paused is not None:
                return Decision("deny", f"autonomy is paused by {snap.paused['by']}: {snap.paused['reason']}",
                                source="pause")
            s = snap.suspended.get(req.actor)
            if s is not None:
                return Decision("deny", f"{req.actor} is suspended by {s['by']}: {s['reason']}",
                                source="suspension")
        d = self._override(snap, req) if snap.overrides else None
        if d is None:
            d = snap.matrix.decide(req)
            if d.source == "default":
                d = self._default(req, d)
        if req.side_effect == "execute" and req.kind != "human" and d.effect == "allow":
            return Decision("ask", f"{req.tool} runs code on the host, outside the sandbox: a human approves each "
                                   f"run by an {req.kind} (else: {d.reason})", d.rule, "execute")
        if d.effect == "allow" and req.kind == "agent":
            need = snap.thresholds.get(req.side_effect, 1.0)
            conf = req.confidence or 0.0
            if conf < need:
                given = "no confidence given (counts as 0)" if req.confidence in (None, 0.0) else \
                    f"confidence {conf:.2f}"
                return Decision("ask", f"{given} is below the {need:.2f} threshold for {req.side_effect} actions "
                                       f"(else: {d.reason})", d.rule, "confidence")
        return d

    @staticmethod
    def _default(req: Request, d: Decision) -> Decision:
        if req.kind == "human":
            return Decision("allow", f"no rule matched; {req.actor} is a human at the keyboard", None, "default")
        if req.kind == "agent" and req.foreign_scope:
            return Decision("deny", f"no rule matched; agents reach only their own memory scope, and "
                                    f"{req.resource!r} is not {req.actor}'s", None, "scope")
        if req.kind == "service" and req.side_effect in SERVICE_ALLOWED:
            return Decision("allow", f"no rule matched; services may take {req.side_effect} actions", None, "default")
        return d

    def _override(self, snap: _Snapshot, req: Request) -> Decision | None:
        now = self.clock.now()
        live = [o for o in snap.overrides if o.expires_at is None or o.expires_at > now]
        d = Matrix([o.rule for o in live], {lvl: "none" for lvl in LEVELS}).decide(req)
        if d.rule is None:
            return None
        o = next(o for o in live if o.rule.id == d.rule.id)
        return Decision(d.effect, f"override {o.rule.id} by {o.by}: {o.reason}", d.rule, "override")

    def explain(self, actor: str, tool: str, *, side_effect: str = "read", resource: str = "", cost: float = 0.0,
                confidence: float | None = None, network: bool = False) -> Decision:
        """What the gate would decide for the principal with key ``actor`` (a diagnosis, not a permission)."""
        kind, pid = parse_key(actor)
        try:
            roles = tuple(self.principals.roles(self.principals.get(actor)))
        except NotFoundError:
            roles = ()
        foreign = kind == "agent" and tool.startswith("memory.") and bool(resource) and \
            not (resource == pid or resource.startswith(pid + "/"))
        return self.decide(Request(actor, tool, side_effect, resource, cost, roles,
                                   (confidence or 0.0) if kind == "agent" else None, kind=kind, network=network,
                                   foreign_scope=foreign))

    def required_isolation_for(self, principal: Principal) -> str:
        """The least sandbox isolation a run by ``principal`` may get (agents: ``network`` or better)."""
        need = self.required_isolation
        if principal.kind != "human" and ISOLATION_ORDER[need] < ISOLATION_ORDER[AGENT_ISOLATION]:
            return AGENT_ISOLATION
        return need

    # ------------------------------------------------------------------ rules
    def rules(self) -> list[Rule]:
        return list(self.snapshot().matrix.rules)

    def add_rules(self, rules: Iterable[Rule], *, by: Principal, replace: bool = False) -> list[Rule]:
        """Add rules (``replace=True``: instead of the current ones, in the same transaction)."""
        rules = list(rules)
        now = self.clock.now()

        def write(conn: Any) -> None:
            if replace:
                conn.execute(policy_rules.delete())
            rows = []
            for i, r in enumerate(rules):
                d = r.to_dict()
                d["side_effects"] = ",".join(d.get("side_effects", [])) or None
                rows.append({"min_cost": None, "max_cost": None, "note": None, **d, "created_at": now + i * 1e-6})
            if rows:
                conn.execute(policy_rules.delete().where(policy_rules.c.id.in_([r["id"] for r in rows])))
                conn.execute(policy_rules.insert(), rows)

        self._change("policy.rules_replaced" if replace else "policy.rules_added", by,
                     {"rules": [r.to_dict() for r in rules[:50]], "count": len(rules)}, write)
        return rules

    def add_rule(self, subject: str, tool: str, effect: str, *, resource: str = "*", by: Principal,
                 **conditions: Any) -> Rule:
        return self.add_rules([Rule.from_dict({"subject": subject, "tool": tool, "effect": effect,
                                               "resource": resource, **conditions})], by=by)[0]

    def remove_rule(self, rule_id: str, *, by: Principal) -> None:
        if rule_id not in {r.id for r in self.rules()}:
            raise NotFoundError(f"no policy rule {rule_id!r}", hint="`emergent policy list` shows the rules")
        self._change("policy.rule_removed", by, {"rule": rule_id},
                     lambda c: c.execute(policy_rules.delete().where(policy_rules.c.id == rule_id)))

    def import_yaml(self, text: str, *, replace: bool = False, by: Principal) -> int:
        rules, settings = load_yaml(text)
        self.add_rules(rules, by=by, replace=replace)
        for level, eff in (settings.get("defaults") or {}).items():
            self.set_default(level, eff, by=by)
        for level, t in (settings.get("thresholds") or {}).items():
            self.set_threshold(level, t, by=by)
        if settings.get("require_isolation"):
            self.require_isolation(settings["require_isolation"], by=by)
        return len(rules)

    def export_yaml(self) -> str:
        snap = self.snapshot()
        return dump_yaml(snap.matrix.rules, {"defaults": snap.matrix.defaults, "thresholds": snap.thresholds,
                                             "require_isolation": snap.require_isolation})

    # ------------------------------------------------------------------ thresholds and defaults
    def set_threshold(self, level: str, value: float, *, by: Principal) -> None:
        if level not in LEVELS or not 0.0 <= float(value) <= 1.0:
            raise ValidationError(f"threshold {level}={value!r} is invalid",
                                  hint=f"level in {', '.join(LEVELS)}, value between 0 and 1")
        self._change("policy.threshold", by, {"level": level, "value": float(value)},
                     lambda c: self._put(c, "thresholds", {**self._get(c, "thresholds", {}), level: float(value)}))

    def set_default(self, level: str, effect: str, *, by: Principal) -> None:
        if level not in LEVELS or effect not in EFFECTS:
            raise ValidationError(f"default {level}={effect!r} is invalid",
                                  hint=f"level in {', '.join(LEVELS)}, effect in {', '.join(EFFECTS)}")
        self._change("policy.default", by, {"level": level, "effect": effect},
                     lambda c: self._put(c, "defaults", {**DEFAULTS, **self._get(c, "defaults", {}), level: effect}))

    def require_isolation(self, level: str, *, by: Principal) -> None:
        """Refuse sandboxed runs that get less isolation than ``level`` (none|process|network|namespace)."""
        if level not in ISOLATION_LEVELS:
            raise ValidationError(f"isolation level {level!r} is unknown", hint=f"use {', '.join(ISOLATION_LEVELS)}")
        self._change("policy.require_isolation", by, {"level": level},
                     lambda c: self._put(c, "require_isolation", level))

    @property
    def required_isolation(self) -> str:
        return self.snapshot().require_isolation

    # ------------------------------------------------------------------ pause, suspension, overrides
    def pause(self, *, by: Principal, reason: str = "paused by a human") -> None:
        info = {"by": getattr(by, "key", None), "reason": reason, "at": self.clock.now()}
        self._change("autonomy.paused", by, info, lambda c: self._put(c, "paused", info), "pause autonomy")

    def resume(self, *, by: Principal) -> None:
        self._change("autonomy.resumed", by, {}, lambda c: self._put(c, "paused", None))

    @property
    def paused(self) -> bool:
        return self.snapshot().paused is not None

    def suspend(self, agent: str, *, by: Principal, reason: str = "suspended by a human") -> None:
        """Stop principal ``agent`` (a key such as ``agent:scout``) from acting until unsuspended."""
        kind, _ = parse_key(agent)
        if kind == "human":
            raise ValidationError(f"{agent} is a human; suspension stops agents and services")
        info = {"by": getattr(by, "key", None), "reason": reason, "at": self.clock.now()}
        self._change("agent.suspended", by, {"agent": agent, **info},
                     lambda c: self._put(c, "suspended", {**self._get(c, "suspended", {}), agent: info}))

    def unsuspend(self, agent: str, *, by: Principal) -> None:
        def write(c: Any) -> None:
            cur = self._get(c, "suspended", {})
            cur.pop(agent, None)
            self._put(c, "suspended", cur)

        self._change("agent.unsuspended", by, {"agent": agent}, write)

    def suspended(self) -> dict[str, dict[str, Any]]:
        return dict(self.snapshot().suspended)

    def override(self, subject: str, tool: str, effect: str, *, resource: str = "*", ttl: float | None = None,
                 by: Principal, reason: str) -> str:
        """A human's standing decision that beats the matrix (until ``ttl`` seconds pass)."""
        rule = Rule(subject, tool, effect, resource, id="ov-" + uuid.uuid4().hex[:10])
        now = self.clock.now()
        row = {"id": rule.id, "subject": subject, "tool": tool, "resource": resource, "effect": effect,
               "expires_at": None if ttl is None else now + ttl, "by": getattr(by, "key", None), "reason": reason,
               "created_at": now}
        self._change("override.added", by, dict(row), lambda c: c.execute(overrides.insert(), row))
        return rule.id

    def clear_override(self, override_id: str, *, by: Principal) -> None:
        self._change("override.cleared", by, {"override": override_id},
                     lambda c: c.execute(overrides.delete().where(overrides.c.id == override_id)))

    def overrides(self) -> list[dict[str, Any]]:
        return [{"id": o.rule.id, "subject": o.rule.subject, "tool": o.rule.tool, "resource": o.rule.resource,
                 "effect": o.rule.effect, "expires_at": o.expires_at, "by": o.by, "reason": o.reason}
                for o in self.snapshot().overrides]

    def close(self) -> None:
        self.audit.close()


__all__ = ["KINDS", "Autonomy"]
