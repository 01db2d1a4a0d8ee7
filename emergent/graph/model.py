"""Value types of the knowledge graph, ids and validation at its boundary."""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from emergent.errors import ValidationError
from emergent.memory.types import Scope

MAX_LABEL_CHARS = 1000
KEY_CHARS = 200
_REL = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_SPACE = re.compile(r"\s+")
_EDGE_PUNCT = "\"'`.,;:!?()[]{}<>«»“”‘’"

# relations the rules know about: functional ones have one current value (a later fact supersedes)
FUNCTIONAL = frozenset({"lives_in", "works_at", "married_to", "age", "job", "status"})
SYMMETRIC = frozenset({"married_to", "sibling_of", "friend_of", "talked_with", "co_occurs", "related_to",
                       "similar_to"})


def normalise(label: str) -> str:
    """The lookup key of a label: NFKC, case-folded, spaces collapsed, edge punctuation and a
    leading article or trailing possessive removed. Long keys keep a prefix plus a hash."""
    s = _SPACE.sub(" ", unicodedata.normalize("NFKC", label).casefold()).strip().strip(_EDGE_PUNCT).strip()
    for suffix in ("'s", "’s"):
        if s.endswith(suffix):
            s = s[: -len(suffix)]
    for article in ("the ", "a ", "an "):
        if s.startswith(article) and len(s) > len(article) + 2:
            s = s[len(article):]
    if len(s) > KEY_CHARS:
        s = s[: KEY_CHARS - 17] + "#" + hashlib.blake2b(s.encode(), digest_size=8).hexdigest()
    return s


def namespace_of(scope: Scope | str) -> str:
    """Entities are shared across an agent's sessions with one user: the namespace drops the session."""
    s = Scope.of(scope)
    return Scope(s.agent, s.user).key


def visible(namespace: str, scope: Scope) -> bool:
    agent, _, user = namespace.partition("/")
    return agent == scope.agent and (scope.user is None or scope.user == (user or None))


def _digest(*parts: str) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=10).hexdigest()


def node_id(namespace: str, key: str) -> str:
    return "n" + _digest(namespace, key)


def edge_id(namespace: str, src: str, rel: str, dst: str, salt: str = "") -> str:
    return "e" + _digest(namespace, src, rel, dst, salt)


def check_label(label: Any) -> str:
    if not isinstance(label, str):
        raise ValidationError(f"a node label must be a str, not {type(label).__name__}", field="label")
    label = _SPACE.sub(" ", unicodedata.normalize("NFC", label)).strip()
    if not normalise(label):
        raise ValidationError("a node label must contain at least one letter or digit", field="label")
    if len(label) > MAX_LABEL_CHARS:
        raise ValidationError(f"a node label is {len(label):,} characters, above the limit of {MAX_LABEL_CHARS:,}",
                              hint="shorten it; keep long descriptions in attrs['summary']", field="label")
    try:
        label.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("a node label contains unpaired surrogates (invalid Unicode)", field="label") from None
    return label


def check_rel(rel: Any) -> str:
    if not isinstance(rel, str) or not _REL.match(rel):
        raise ValidationError(f"relation {rel!r} is not a valid name",
                              hint="use lower_snake_case, 1-64 characters, starting with a letter", field="rel")
    return rel


def check_confidence(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
        raise ValidationError(f"confidence must be a number in [0, 1], got {value!r}", field="confidence")
    return float(value)


@dataclass(slots=True)
class Node:
    id: str
    namespace: str
    label: str
    type: str = "entity"
    confidence: float = 0.5
    status: str = "active"
    merged_into: str | None = None
    origin: str = "rules"
    created_at: float = 0.0
    first_seen: float = 0.0
    attrs: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in _NODE_FIELDS}
        d["attrs"] = json.dumps(self.attrs, ensure_ascii=False)
        return d

    @classmethod
    def from_row(cls, row: Any) -> Node:
        d = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
        d["attrs"] = json.loads(d["attrs"] or "{}")
        return cls(**d)


@dataclass(slots=True)
class Edge:
    id: str
    namespace: str
    src: str
    dst: str
    rel: str
    confidence: float = 0.5
    weight: float = 1.0
    valid_from: float | None = None
    valid_to: float | None = None
    inferred: bool = False
    status: str = "active"
    origin: str = "rules"
    evidence: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0

    def row(self) -> dict[str, Any]:
        d = {f: getattr(self, f) for f in _EDGE_FIELDS}
        d["evidence"] = json.dumps(self.evidence, ensure_ascii=False)
        return d

    @classmethod
    def from_row(cls, row: Any) -> Edge:
        d = dict(row._mapping) if hasattr(row, "_mapping") else dict(row)
        d["evidence"] = json.loads(d["evidence"] or "{}")
        d["inferred"] = bool(d["inferred"])
        return cls(**d)

    def valid_at(self, t: float) -> bool:
        start = self.valid_from if self.valid_from is not None else self.created_at
        return start <= t and (self.valid_to is None or t < self.valid_to)


_NODE_FIELDS = [f.name for f in fields(Node)]
_EDGE_FIELDS = [f.name for f in fields(Edge)]


@dataclass(frozen=True, slots=True)
class UpdateReport:
    """What one incremental update did."""

    memories: int = 0
    nodes_added: int = 0
    edges_added: int = 0
    nodes_removed: int = 0
    edges_removed: int = 0
    superseded: int = 0
    strategy: str = "rules"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
