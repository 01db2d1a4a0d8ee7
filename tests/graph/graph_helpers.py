"""Shared builders for the graph tests (real SQLite, real LanceDB, the hashing embedder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emergent.audit import AuditLog
from emergent.graph import KnowledgeGraph
from emergent.memory.types import Kind, MemoryRecord, Scope
from emergent.principals import Principal, Principals
from emergent.providers.embeddings import HashingEmbedder
from emergent.stores.lance import LanceStore
from emergent.stores.sql import SQLStore


def make_graph(tmp: Path, url: str | None = None, **kw: Any) -> KnowledgeGraph:
    """A graph with its own audit log and principal directory (as the Workstation wires it)."""
    sql = SQLStore(url or f"sqlite:///{tmp / 'g.db'}")
    audit = AuditLog(sql, flush_interval=None)
    return KnowledgeGraph(sql, LanceStore(tmp / "lance"), HashingEmbedder(64), audit=audit,
                          principals=Principals(sql, audit=audit), **kw)


def me(kg: KnowledgeGraph) -> Principal:
    """The human at the keyboard, issued by the graph's directory."""
    return kg.principals.os_user()  # type: ignore[no-any-return]


def rec(id: str, text: str, *, speaker: str | None = None, at: float = 1.7e9, scope: str = "a/u",
        **meta: Any) -> MemoryRecord:
    if speaker:
        meta["speaker"] = speaker
    return MemoryRecord(id=id, text=text, kind=Kind.EPISODIC, importance=0.5, scope=Scope.of(scope), created_at=at,
                        last_accessed=at, stability=1.0, meta=meta)


STORY = [
    rec("m1", "I moved to Boston last year. My friend Jolene works at Google.", speaker="Caroline", at=1.60e9),
    rec("m2", "I moved to Paris! Jolene visited Paris too.", speaker="Caroline", at=1.70e9),
    rec("m3", "Melanie went to the Louvre Museum with Caroline.", speaker="Melanie", at=1.71e9),
    rec("m4", "Jolene and Melanie planned a pottery class at Clayworks Studio.", speaker="Jolene", at=1.72e9),
]
