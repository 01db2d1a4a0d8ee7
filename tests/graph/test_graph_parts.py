"""The knowledge graph is composed of parts that share only the store: each part works on its own,
the service's API is theirs, and caches follow the store's version."""

from __future__ import annotations

from pathlib import Path

from graph_helpers import STORY, make_graph, me

from emergent.clock import SystemClock
from emergent.graph import KnowledgeGraph, RuleExtractor
from emergent.graph.build import GraphBuilder
from emergent.graph.edit import GraphEditor
from emergent.graph.search import GraphSearch
from emergent.graph.store import GraphStore
from emergent.stores.sql import SQLStore


def test_the_service_api_is_the_parts_api(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    assert KnowledgeGraph.add_node is GraphEditor.add_node and kg.add_node.__self__ is kg.editor
    assert kg.search.__self__ is kg.searcher and kg.sync.__self__ is kg.builder and kg.node.__self__ is kg.store
    assert kg.relabel.__doc__ == GraphEditor.relabel.__doc__
    kg.min_coverage, kg.synonym_similarity = 1, 0.9
    assert (kg.searcher.min_coverage, kg.searcher.synonym_similarity) == (1, 0.9)
    parts = (kg.builder, kg.editor, kg.inference, kg.searcher, kg.analysis, kg.views)
    assert all(p.store is kg.store for p in parts) and kg.sql is kg.store.sql


def test_parts_work_without_the_others(tmp_path: Path) -> None:
    """Building and searching need no editor, audit or principals: each part takes what it uses."""
    store = GraphStore(SQLStore(f"sqlite:///{tmp_path / 'g.db'}"))
    GraphBuilder(store, RuleExtractor(), SystemClock()).add_memories(STORY)
    res = GraphSearch(store).search("Where did Jolene go?", scope="a/u")
    assert store.find("Jolene", "a/u").id in res.seeds and res.memories and store.check() == []


def test_caches_follow_the_store_version(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    idx, comms, version = kg.index(), kg.communities(), kg.version
    assert kg.index() is idx and kg.communities() is comms  # unchanged graph: cached
    node = kg.add_node("Harbour Lab", scope="a/u", principal=me(kg))
    assert kg.version > version and node.id in kg.index().ids and kg.index() is not idx
    assert kg.communities() is not comms
    vectors = kg.searcher._node_vectors()
    assert vectors is not None and kg.searcher._node_vectors() is vectors
    kg.reindex()  # rewriting the embeddings refreshes the vectors the linker uses
    assert kg.searcher._node_vectors() is not vectors
