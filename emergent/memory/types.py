"""Value types of the memory system and validation at its boundary."""

from __future__ import annotations

import json
import math
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import numpy as np

from emergent.errors import ValidationError


class Kind(StrEnum):
    EPISODIC = "episodic"  # what happened
    SEMANTIC = "semantic"  # what is true
    PROCEDURAL = "procedural"  # how to do things


class Tier(StrEnum):
    STM = "stm"
    LTM = "ltm"


_NAME = re.compile(r"^[A-Za-z0-9_.:@+\-]{1,128}$")


def _check_name(field_name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _NAME.match(value):
        raise ValidationError(
            f"scope {field_name} {value!r} is not a valid name",
            hint="use 1-128 characters from letters, digits and _ . : @ + -",
            field=field_name,
        )
    return value


@dataclass(frozen=True, slots=True)
class Scope:
    """Who a memory belongs to: an agent, optionally narrowed to a user and a session.

    A read or delete with scope ``S`` touches exactly the memories whose fields equal every field
    that ``S`` sets: ``Scope(agent="a", user="u")`` sees all of u's sessions with agent a, never
    another user's memories. ``agent`` is always set.
    """

    agent: str = "default"
    user: str | None = None
    session: str | None = None

    def __post_init__(self) -> None:
        _check_name("agent", self.agent)
        _check_name("user", self.user)
        _check_name("session", self.session)
        if self.agent is None:
            raise ValidationError("scope agent must be set", hint="use Scope(agent='default')")
        if self.session is not None and self.user is None:
            raise ValidationError(
                f"scope session {self.session!r} has no user",
                hint="a session scope needs a user: Scope(agent=..., user=..., session=...)",
            )

    @classmethod
    def of(cls, value: Scope | str | dict[str, Any] | None, default: Scope | None = None) -> Scope:
        """Accept a Scope, ``"agent/user/session"`` (trailing parts optional) or a dict."""
        if value is None:
            return default or cls()
        if isinstance(value, Scope):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"agent", "user", "session"}
            if unknown:
                raise ValidationError(f"unknown scope fields {sorted(unknown)}", hint="use agent, user, session")
            return cls(**value)
        if isinstance(value, str):
            parts = value.split("/")
            if len(parts) > 3 or not parts[0]:
                raise ValidationError(
                    f"scope {value!r} is not of the form agent[/user[/session]]",
                    hint="for example 'assistant/alice/2024-05-01'",
                )
            return cls(*[p or None for p in parts])  # type: ignore[arg-type]
        raise ValidationError(f"scope must be a Scope, str or dict, not {type(value).__name__}")

    @property
    def key(self) -> str:
        return "/".join(p for p in (self.agent, self.user, self.session) if p is not None)

    def contains(self, other: Scope) -> bool:
        """True when a memory stored under ``other`` is visible through this scope."""
        return (
            self.agent == other.agent
            and (self.user is None or self.user == other.user)
            and (self.session is None or self.session == other.session)
        )

    def where(self) -> str:
        """SQL-ish filter for LanceDB (names are validated, so quoting is safe)."""
        parts = [f"agent = '{self.agent}'"]
        if self.user is not None:
            parts.append(f"user_id = '{self.user}'")
        if self.session is not None:
            parts.append(f"session_id = '{self.session}'")
        return " AND ".join(parts)


#: Seconds between the learned times of consecutive items of one ``ingest`` call: a batch keeps its
#: order (and temporal ranking never sees identical stamps) while staying within a millisecond per
#: thousand items. Float64 epochs resolve ~0.25 us today, so steps of 1 us stay distinct.
ITEM_STEP_S = 1e-6


def new_id(now: float | None = None) -> str:
    """Time-ordered 24-hex-digit id (48-bit ms timestamp + 48 random bits)."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{ms:012x}{secrets.token_hex(6)}"


@dataclass(slots=True)
class MemoryRecord:
    """One memory. It has two times: when it happened and when it was learned.

    ``created_at`` is the *event time* (also :attr:`event_time`): the ``at`` it was remembered
    with, or when it was learned if none was given. Time filters (``since``/``until``) and temporal
    reasoning use it. ``learned_at`` is when this memory was stored; ``last_accessed`` starts there
    and moves with every recall or reinforcement. The forgetting curve, short-term lifetimes and
    archiving count from ``last_accessed``, never from the event time: a note about last year,
    learned today, is as fresh as any other memory learned today.
    """

    id: str
    text: str
    kind: Kind
    importance: float
    scope: Scope
    created_at: float  # the event time; the column keeps its name for existing stores
    last_accessed: float
    stability: float  # days; the forgetting curve's time constant
    #: when it was stored; a record built without it was learned at its last access (the best known)
    learned_at: float = math.nan
    access_count: int = 0
    meta: dict[str, Any] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)  # ids merged into this one (provenance)
    tier: Tier = Tier.STM
    vector: np.ndarray | None = None

    def __post_init__(self) -> None:
        if math.isnan(self.learned_at):  # not given
            self.learned_at = self.last_accessed

    @property
    def event_time(self) -> float:
        """When it happened (``created_at``)."""
        return self.created_at

    def with_(self, **changes: Any) -> MemoryRecord:
        return replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """A JSON-friendly view without the vector."""
        return {
            "id": self.id,
            "text": self.text,
            "kind": self.kind.value,
            "importance": self.importance,
            "scope": self.scope.key,
            "created_at": self.created_at,
            "learned_at": self.learned_at,
            "last_accessed": self.last_accessed,
            "stability": self.stability,
            "access_count": self.access_count,
            "meta": self.meta,
            "sources": self.sources,
            "tier": self.tier.value,
        }


@dataclass(frozen=True, slots=True)
class RecallHit:
    record: MemoryRecord
    score: float
    relevance: float
    recency: float
    strength: float
    sources: tuple[str, ...] = ()  # which retrievers found it: vector, text, stm, neighbor, ...

    @property
    def id(self) -> str:
        return self.record.id

    @property
    def text(self) -> str:
        return self.record.text


# ------------------------------------------------------------------------------ validation
def check_text(text: Any, max_bytes: int) -> str:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ValidationError(
                f"text is not valid UTF-8 (bad byte at position {exc.start})",
                hint="decode it with the right encoding first, or pass errors='replace' text",
                field="text",
            ) from None
    if not isinstance(text, str):
        raise ValidationError(f"text must be a str, not {type(text).__name__}", field="text")
    if not text.strip():
        raise ValidationError("text is empty or only whitespace", hint="pass the content to remember", field="text")
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise ValidationError(
            f"text is {size:,} bytes, above the limit of {max_bytes:,}",
            hint="split it into chunks, or raise EMERGENT_MEMORY__MAX_TEXT_BYTES",
            field="text",
        )
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("text contains unpaired surrogates (invalid Unicode)", field="text") from None
    return text


def check_importance(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError(f"importance must be a number in [0, 1], not {value!r}", field="importance")
    v = float(value)
    if math.isnan(v) or not 0.0 <= v <= 1.0:
        raise ValidationError(f"importance must be in [0, 1], got {value!r}", field="importance")
    return v


def check_kind(value: Any) -> Kind:
    try:
        return Kind(value)
    except ValueError:
        raise ValidationError(
            f"unknown memory kind {value!r}",
            hint=f"use one of {', '.join(k.value for k in Kind)}",
            field="kind",
        ) from None


def check_meta(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise ValidationError(f"meta must be a dict, not {type(meta).__name__}", field="meta")
    try:
        json.dumps(meta, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValidationError(f"meta must be JSON-serialisable: {exc}", field="meta") from None
    return dict(meta)
