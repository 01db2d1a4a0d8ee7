"""The ``KnowledgeGraph`` service, composed of parts that each receive what they need.

* ``store`` (:class:`~emergent.graph.store.GraphStore`): SQL state of record (nodes, edges, aliases,
  provenance) and node embeddings in LanceDB; every read;
* ``builder`` (:class:`~emergent.graph.build.GraphBuilder`): follows memory, one transaction per update;
* ``editor`` (:class:`~emergent.graph.edit.GraphEditor`): audited, undoable edits by a principal;
* ``inference`` (:class:`~emergent.graph.infer.GraphInference`): proposed edges, merge candidates;
* ``searcher`` (:class:`~emergent.graph.search.GraphSearch`): personalised PageRank, recall's retriever;
* ``analysis`` (:class:`~emergent.graph.communities.GraphAnalysis`): centrality and communities;
* ``views`` (:class:`~emergent.graph.views.GraphViews`): networkx views, neighbourhoods, exports.

``KnowledgeGraph`` keeps one public API over them: ``kg.add_node`` *is* ``kg.editor.add_node``
(same signature and docstring), ``kg.min_coverage`` reads and sets ``kg.searcher.min_coverage``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

from emergent.clock import Clock, SystemClock
from emergent.graph.build import GraphBuilder
from emergent.graph.communities import GraphAnalysis
from emergent.graph.edit import GraphEditor
from emergent.graph.extract import Extractor, LLMExtractor, RuleExtractor
from emergent.graph.infer import GraphInference
from emergent.graph.search import GraphSearch
from emergent.graph.store import VECTOR_TABLE, GraphStore
from emergent.graph.views import GraphViews

if TYPE_CHECKING:  # pragma: no cover
    from emergent.audit import Auditor
    from emergent.memory.service import Memory
    from emergent.principals import Principals
    from emergent.providers.embeddings import Embedder
    from emergent.providers.llm import ChatModel
    from emergent.stores.lance import LanceStore
    from emergent.stores.sql import SQLStore

__all__ = ["VECTOR_TABLE", "KnowledgeGraph"]

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


class _Via(Generic[P, R]):
    """A method of the graph that is a method of one of its parts: ``kg.add_node`` is
    ``kg.editor.add_node`` (signature and docstring included), looked up on each access. On the
    class it is the part's function (``help(KnowledgeGraph)`` and ``inspect`` show it)."""

    def __init__(self, part: str, method: Callable[Concatenate[Any, P], R]) -> None:
        self.part, self.name, self.method = part, method.__name__, method

    @overload
    def __get__(self, obj: None, owner: type) -> Callable[Concatenate[Any, P], R]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> Callable[P, R]: ...
    def __get__(self, obj: object | None, owner: type) -> Any:
        if obj is None:
            return self.method
        return getattr(getattr(obj, self.part), self.name)


class _Attr(Generic[T]):
    """An attribute of the graph that is an attribute of one of its parts (read and set there)."""

    def __init__(self, part: str, doc: str = "") -> None:
        self.part, self.__doc__ = part, doc

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, obj: None, owner: type) -> _Attr[T]: ...
    @overload
    def __get__(self, obj: object, owner: type) -> T: ...
    def __get__(self, obj: object | None, owner: type) -> Any:
        if obj is None:
            return self
        return getattr(getattr(obj, self.part), self.name)

    def __set__(self, obj: object, value: T) -> None:
        setattr(getattr(obj, self.part), self.name, value)


class KnowledgeGraph:
    """Entities and relations extracted from memories, with provenance, time and an audited editor."""

    def __init__(self, sql: SQLStore, lance: LanceStore | None = None, embedder: Embedder | None = None, *,
                 extractor: Extractor | None = None, clock: Clock | None = None, llm: ChatModel | None = None,
                 audit: Auditor | None = None, principals: Principals | None = None) -> None:
        self.clock: Clock = clock or SystemClock()
        self.llm = llm
        self.store = GraphStore(sql, lance, embedder)
        self.builder = GraphBuilder(self.store, extractor or (LLMExtractor(llm) if llm is not None else RuleExtractor()),
                                    self.clock)
        self.editor = GraphEditor(self.store, self.clock, audit, principals)
        self.searcher = GraphSearch(self.store)
        self.inference = GraphInference(self.store, self.clock, self.editor, self.searcher.index)
        self.views = GraphViews(self.store, self.clock)
        self.analysis = GraphAnalysis(self.store, self.views, llm)

    # ------------------------------------------------------------------ collaborators
    sql: _Attr[SQLStore] = _Attr("store", "The SQL store of record.")
    lance: _Attr[LanceStore | None] = _Attr("store", "The LanceDB store of node embeddings (None: exact matches only).")
    embedder: _Attr[Embedder | None] = _Attr("store", "The embedder of node labels and queries.")
    audit: _Attr[Auditor | None] = _Attr("editor", "The audit trail every edit is recorded in.")
    principals: _Attr[Principals | None] = _Attr("editor", "The workspace's directory: who may edit.")
    extractor: _Attr[Extractor] = _Attr("builder", "What turns a memory into entities and relations.")

    # ------------------------------------------------------------------ state and tuning
    version: _Attr[int] = _Attr("store", "Moves on every change of the graph.")
    errors: _Attr[list[str]] = _Attr("store", "Derived data that could not be updated (see sync, reindex).")
    pending: _Attr[set[str]] = _Attr("builder", "Memories whose update failed; sync() catches up.")
    passage_weight: _Attr[float] = _Attr("searcher", "> 0: memories join the PageRank graph (HippoRAG 2).")
    synonym_similarity: _Attr[float | None] = _Attr("searcher", "Link close node embeddings in the search index.")
    retrieve_limit: _Attr[int] = _Attr("searcher", "Memories the recall retriever hands to fusion.")
    passage_seed_weight: _Attr[float] = _Attr("searcher", "With passage nodes: weight of dense seeds.")
    link_similarity: _Attr[float] = _Attr("searcher", "A query mention links to nodes this close.")
    link_per_mention: _Attr[int] = _Attr("searcher", "At most this many embedding-linked nodes per mention.")
    min_coverage: _Attr[int] = _Attr("searcher", "Recall's graph list: memories supporting this many mentions.")

    # ------------------------------------------------------------------ following memory
    def attach(self, memory: Memory, *, weight: float = 1.0, retriever: bool = True, listen: bool = True) -> None:
        """Follow ``memory``'s writes and deletes, and offer graph search to its recall."""
        self.searcher.memory = memory
        if listen:
            memory.add_listener(self.builder.on_memory_event)
        if retriever:
            memory.add_retriever("graph", self.searcher.retrieve, weight)

    add_memories = _Via("builder", GraphBuilder.add_memories)
    remove_memories = _Via("builder", GraphBuilder.remove_memories)
    on_memory_event = _Via("builder", GraphBuilder.on_memory_event)
    sync = _Via("builder", GraphBuilder.sync)

    # ------------------------------------------------------------------ reads
    node = _Via("store", GraphStore.node)
    edge = _Via("store", GraphStore.edge)
    find = _Via("store", GraphStore.find)
    nodes = _Via("store", GraphStore.nodes)
    edges = _Via("store", GraphStore.edges)
    aliases = _Via("store", GraphStore.aliases)
    provenance = _Via("store", GraphStore.provenance)
    namespaces = _Via("store", GraphStore.namespaces)
    first_seen_range = _Via("store", GraphStore.first_seen_range)
    counts = _Via("store", GraphStore.counts)
    check = _Via("store", GraphStore.check)
    reindex = _Via("store", GraphStore.reindex)

    # ------------------------------------------------------------------ edits (audited, undoable)
    edits = _Via("editor", GraphEditor.edits)
    undo = _Via("editor", GraphEditor.undo)
    add_node = _Via("editor", GraphEditor.add_node)
    relabel = _Via("editor", GraphEditor.relabel)
    delete_node = _Via("editor", GraphEditor.delete_node)
    add_edge = _Via("editor", GraphEditor.add_edge)
    delete_edge = _Via("editor", GraphEditor.delete_edge)
    update_edge = _Via("editor", GraphEditor.update_edge)
    merge = _Via("editor", GraphEditor.merge)
    merges = _Via("editor", GraphEditor.merges)
    unmerge = _Via("editor", GraphEditor.unmerge)
    split = _Via("editor", GraphEditor.split)

    # ------------------------------------------------------------------ inference and entity resolution
    rule_stats = _Via("inference", GraphInference.rule_stats)
    infer = _Via("inference", GraphInference.infer)
    accept = _Via("inference", GraphInference.accept)
    reject = _Via("inference", GraphInference.reject)
    merge_candidates = _Via("inference", GraphInference.merge_candidates)
    resolve = _Via("inference", GraphInference.resolve)

    # ------------------------------------------------------------------ search
    index = _Via("searcher", GraphSearch.index)
    seeds = _Via("searcher", GraphSearch.seeds)
    search = _Via("searcher", GraphSearch.search)
    retrieve = _Via("searcher", GraphSearch.retrieve)
    link_mentions = _Via("searcher", GraphSearch.link_mentions)
    entity_memories = _Via("searcher", GraphSearch.entity_memories)

    # ------------------------------------------------------------------ analysis and views
    centrality = _Via("analysis", GraphAnalysis.centrality)
    communities = _Via("analysis", GraphAnalysis.communities)
    community_of = _Via("analysis", GraphAnalysis.community_of)
    to_networkx = _Via("views", GraphViews.to_networkx)
    export_json = _Via("views", GraphViews.export_json)
    export_graphml = _Via("views", GraphViews.export_graphml)
    neighbourhood = _Via("views", GraphViews.neighbourhood)
    overview = _Via("views", GraphViews.overview)
