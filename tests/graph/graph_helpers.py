"""Shared builders for the graph tests (real SQLite, real LanceDB, the hashing embedder)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from emergent.graph import KnowledgeGraph
from emergent.memory.types import Kind, MemoryRecord, Scope
from emergent.providers.embeddings import HashingEmbedder
from emergent.stores.lance import LanceStore
from emergent.stores.sql import SQLStore


def make_graph(tmp: Path, url: str | None = None, **kw: Any) -> KnowledgeGraph:
    sql = SQLStore(url or f"sqlite:///{tmp / 'g.db'}")
    return KnowledgeGraph(sql, LanceStore(tmp / "lance"), HashingEmbedder(64), **kw)


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
