"""The permission matrix: subject × tool pattern × resource pattern → allow / ask / deny.

A rule matches a request when its subject names the principal or one of its roles (``agent:scout``,
``role:analyst``, ``human:ana``, ``service:scheduler``, ``agent:*``, ``*``), its tool pattern matches the tool name
(``files.read``, ``files.*``, ``*``), its resource pattern matches the resource (``/data/*``), and
its conditions hold (side-effect levels, a cost range). Among matching rules **deny overrides**
ask, ask overrides allow; the decision names the rule that won. No matching rule falls back to the
default for the action's side-effect level.

Rules are indexed by exact tool name, with a short list of wildcard rules beside it, and every
pattern is compiled once, so a decision over 10,000 rules looks at a handful of them.
"""

from __future__ import annotations

import contextlib
import fnmatch
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from emergent.errors import ValidationError

Effect = Literal["allow", "ask", "deny"]
EFFECTS: tuple[str, ...] = ("allow", "ask", "deny")
LEVELS: tuple[str, ...] = ("read", "write", "external", "destructive", "execute")
#: what an agent may do when no rule matches (humans and services: see Autonomy.decide)
DEFAULTS: dict[str, str] = {"read": "allow", "write": "ask", "external": "ask", "destructive": "ask",
                            "execute": "ask"}
_WILD = re.compile(r"[*?\[]")
_SUBJECT = re.compile(r"^(\*|(human|agent|service|role):[A-Za-z0-9_.*?\[\]-]+)\Z")


@dataclass(frozen=True, slots=True)
class Rule:
    subject: str
    tool: str
    effect: str
    resource: str = "*"
    side_effects: frozenset[str] | None = None
    min_cost: float | None = None
    max_cost: float | None = None
    note: str = ""
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self) -> None:
        if self.effect not in EFFECTS:
            raise ValidationError(f"rule effect {self.effect!r} is not one of allow, ask, deny", rule=self.id)
        bad = set(self.side_effects or ()) - set(LEVELS)
        if bad:
            raise ValidationError(f"rule {self.id}: unknown side-effect level(s) {sorted(bad)}",
                                  hint=f"use {', '.join(LEVELS)}", rule=self.id)
        for what in ("subject", "tool", "resource"):
            if not getattr(self, what):
                raise ValidationError(f"rule {self.id}: {what} must not be empty", hint="use '*' to match anything")
        if not _SUBJECT.match(self.subject):
            raise ValidationError(f"rule {self.id}: subject {self.subject!r} names no principal or role",
                                  hint="use human:NAME, agent:NAME, service:NAME, role:NAME, a glob such as "
                                       "agent:*, or *", rule=self.id)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rule:
        known = {"subject", "tool", "effect", "resource", "side_effects", "min_cost", "max_cost", "note", "id"}
        extra = set(d) - known
        if extra:
            raise ValidationError(f"unknown rule field(s) {sorted(extra)}", hint=f"rule fields: {sorted(known)}")
        missing = {"subject", "tool", "effect"} - set(d)
        if missing:
            raise ValidationError(f"rule {dict(d)} lacks {sorted(missing)}", hint="give subject, tool and effect")
        se = d.get("side_effects")
        if isinstance(se, str):
            se = [s.strip() for s in se.split(",") if s.strip()]
        kw = {k: v for k, v in d.items() if k != "side_effects" and v is not None}
        return cls(**kw, side_effects=frozenset(se) if se else None)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "subject": self.subject, "tool": self.tool,
                               "resource": self.resource, "effect": self.effect}
        if self.side_effects:
            out["side_effects"] = sorted(self.side_effects, key=LEVELS.index)
        for k in ("min_cost", "max_cost"):
            if getattr(self, k) is not None:
                out[k] = getattr(self, k)
        if self.note:
            out["note"] = self.note
        return out

    def describe(self) -> str:
        cond = []
        if self.side_effects:
            cond.append("side effect in " + "/".join(sorted(self.side_effects, key=LEVELS.index)))
        if self.min_cost is not None:
            cond.append(f"cost ≥ {self.min_cost}")
        if self.max_cost is not None:
            cond.append(f"cost ≤ {self.max_cost}")
        when = f" when {' and '.join(cond)}" if cond else ""
        return f"rule {self.id}: {self.effect} {self.subject} → {self.tool} on {self.resource}{when}"


@dataclass(frozen=True, slots=True)
class Request:
    """One proposed action, as the gate sees it (build it with ``Autonomy.request_for``)."""

    actor: str  # the principal's key
    tool: str
    side_effect: str = "read"
    resource: str = ""
    cost: float = 0.0
    roles: tuple[str, ...] = ()
    confidence: float | None = None
    kind: str = "agent"  # the principal's kind: human | agent | service
    network: bool = False  # the action reaches the network (a read that pause stops too)
    foreign_scope: bool = False  # a memory scope that is not the agent's own


@dataclass(frozen=True, slots=True)
class Decision:
    effect: str
    reason: str
    rule: Rule | None = None
    source: str = "matrix"  # matrix | default | override | pause | suspension | confidence | execute | scope

    @property
    def rule_id(self) -> str | None:
        return self.rule.id if self.rule else None

    def explain(self) -> str:
        return f"{self.effect}: {self.reason}"


_URL_PATTERN = re.compile(r"^(https?)://([^/]*)(.*)\Z", re.IGNORECASE | re.DOTALL)
_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})


def resource_pattern(pattern: str) -> str:
    """A rule's URL pattern spelled as the gate spells the URLs it matches
    (``emergent.tools.runner.canonical_resource``): scheme and host lower-case, the host's
    punycode labels (``xn--bcher-kva``) in their Unicode form (``bücher``), full-width dots plain. A
    deny rule written in either spelling of a host applies to both."""
    m = _URL_PATTERN.match(pattern)
    if m is None:
        return pattern
    scheme, host, rest = m.groups()
    labels = []
    for label in host.translate(_DOTS).lower().split("."):
        if label.startswith("xn--"):
            with contextlib.suppress(UnicodeError, ValueError):  # not valid punycode: as written
                label = label.encode("ascii").decode("idna")
        labels.append(label)
    return f"{scheme.lower()}://{'.'.join(labels)}{rest}"


def _matcher(pattern: str) -> Any:
    """None for '*', a string for an exact value, a compiled regex's match for a glob."""
    if pattern == "*":
        return None
    if _WILD.search(pattern):
        return re.compile(fnmatch.translate(pattern)).match
    return pattern


class _Compiled:
    __slots__ = ("desc", "max_cost", "min_cost", "resource", "rule", "side_effects", "subject", "tool")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.desc = rule.describe() + (" (deny overrides)" if rule.effect == "deny" else "")
        self.subject = _matcher(rule.subject)
        self.tool = _matcher(rule.tool)
        self.resource = _matcher(resource_pattern(rule.resource))
        self.side_effects = rule.side_effects
        self.min_cost = rule.min_cost
        self.max_cost = rule.max_cost

    def matches(self, req: Request, subjects: tuple[str, ...]) -> bool:
        s = self.subject
        if s is not None:
            if s.__class__ is str:
                if s not in subjects:
                    return False
            elif not any(s(x) for x in subjects):
                return False
        t = self.tool
        if t is not None and t.__class__ is not str and not t(req.tool):
            return False
        r = self.resource
        if r is not None and (r != req.resource if r.__class__ is str else not r(req.resource)):
            return False
        if self.side_effects is not None and req.side_effect not in self.side_effects:
            return False
        if self.min_cost is not None and req.cost < self.min_cost:
            return False
        return not (self.max_cost is not None and req.cost > self.max_cost)


class Matrix:
    """An immutable, indexed set of rules."""

    def __init__(self, rules: Iterable[Rule] = (), defaults: Mapping[str, str] | None = None) -> None:
        self.rules = list(rules)
        self.defaults = {**DEFAULTS, **(defaults or {})}
        self._by_tool: dict[str, list[_Compiled]] = {}
        self._wild: list[_Compiled] = []
        for rule in self.rules:
            c = _Compiled(rule)
            if c.tool is None or c.tool.__class__ is not str:
                self._wild.append(c)
            else:
                self._by_tool.setdefault(rule.tool, []).append(c)

    def __len__(self) -> int:
        return len(self.rules)

    def decide(self, req: Request) -> Decision:
        subjects = (req.actor, *req.roles, "*") if req.roles else (req.actor, "*")
        ask = allow = None
        for group in (self._by_tool.get(req.tool, ()), self._wild):
            for c in group:
                if not c.matches(req, subjects):
                    continue
                eff = c.rule.effect
                if eff == "deny":
                    return Decision("deny", c.desc, c.rule)
                if eff == "ask":
                    ask = ask or c
                else:
                    allow = allow or c
        won = ask or allow
        if won is not None:
            return Decision(won.rule.effect, won.desc, won.rule)
        eff = self.defaults.get(req.side_effect, "ask")
        return Decision(eff, f"no rule matched; default for {req.side_effect} actions is {eff}", None, "default")

    def decide_linear(self, req: Request) -> Decision:
        """The naive baseline: fnmatch every rule in turn (what an unindexed engine does)."""
        subjects = (req.actor, *req.roles, "*")
        found: dict[str, Rule] = {}
        for rule in self.rules:
            if (any(fnmatch.fnmatchcase(s, rule.subject) for s in subjects)
                    and fnmatch.fnmatchcase(req.tool, rule.tool)
                    and fnmatch.fnmatchcase(req.resource, resource_pattern(rule.resource))
                    and (rule.side_effects is None or req.side_effect in rule.side_effects)
                    and (rule.min_cost is None or req.cost >= rule.min_cost)
                    and (rule.max_cost is None or req.cost <= rule.max_cost)):
                found.setdefault(rule.effect, rule)
        for eff in ("deny", "ask", "allow"):
            if eff in found:
                return Decision(eff, found[eff].describe(), found[eff])
        eff = self.defaults.get(req.side_effect, "ask")
        return Decision(eff, f"no rule matched; default for {req.side_effect} actions is {eff}", None, "default")


def load_yaml(text: str) -> tuple[list[Rule], dict[str, Any]]:
    """Rules and settings from YAML: ``rules: [...]``, ``defaults: {level: effect}``,
    ``thresholds: {level: confidence}``, ``require_isolation: network``."""
    import yaml

    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ValidationError(f"policy YAML does not parse: {exc}", hint="check indentation and quoting") from None
    if isinstance(doc, list):
        doc = {"rules": doc}
    if not isinstance(doc, dict):
        raise ValidationError("policy YAML must be a mapping with a 'rules' list")
    rules = [Rule.from_dict(r) for r in doc.get("rules") or []]
    settings = {k: v for k, v in doc.items() if k != "rules"}
    unknown = set(settings) - {"defaults", "thresholds", "require_isolation"}
    if unknown:
        raise ValidationError(f"unknown policy section(s) {sorted(unknown)}",
                              hint="use rules, defaults, thresholds, require_isolation")
    return rules, settings


def dump_yaml(rules: Iterable[Rule], settings: Mapping[str, Any] | None = None) -> str:
    import yaml

    doc: dict[str, Any] = dict(settings or {})
    doc["rules"] = [r.to_dict() for r in rules]
    return yaml.safe_dump(doc, sort_keys=False, allow_unicode=True)
