"""Graph search: personalised PageRank from the query's entities (after HippoRAG).

The graph is held as a CSR transition matrix (rebuilt when the graph changes) and PageRank is a
scipy.sparse power iteration, so a query over 100k nodes takes milliseconds. Seeds are the
query's entities found through the alias index, plus the nodes whose embeddings are nearest to
the query vector. A memory scores the PageRank mass of the nodes it supports, each weighted by
its specificity (1 / number of memories mentioning it), as HippoRAG weighs passages.

Recall's ``graph`` retriever is narrower (:meth:`GraphSearch.entity_memories`): each mention in the
query is linked to nodes by alias and by label-embedding similarity, and only memories that
support at least two of the mentions are offered, most specific first. On LoCoMo dev this short
intersection list lifts multi-hop R@10 where the PageRank list of every memory near the seeds
(fused the same way) did not: the vector and text searches already find what one entity points at.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from emergent.graph.extract import RuleExtractor
from emergent.graph.model import Node, normalise, visible
from emergent.graph.tables import graph_aliases, graph_edges, graph_nodes, graph_provenance
from emergent.memory.types import Scope

if TYPE_CHECKING:  # pragma: no cover
    from emergent.graph.store import GraphStore
    from emergent.memory.service import Memory

_QUERY_EXTRACTOR = RuleExtractor(cooccurrence=False)


@dataclass(slots=True)
class GraphIndex:
    """A frozen, algorithm-friendly copy of the active graph."""

    ids: list[str]
    index: dict[str, int]
    namespaces: np.ndarray  # namespace id per node
    ns_names: list[str]
    transition_t: Any  # scipy CSR: column-stochastic transition matrix, transposed for p <- P^T p
    adjacency: Any  # scipy CSR, symmetric weights
    alias: dict[tuple[int, str], int]
    node_memories: Any  # scipy CSR nodes x memories
    memory_ids: list[str]
    specificity: np.ndarray
    passages: bool = False  # memories are nodes n.. n+m-1 of the transition matrix

    def visible_mask(self, scope: Scope | None) -> np.ndarray:
        if scope is None:
            return np.ones(len(self.ids), dtype=bool)
        ok = np.array([visible(ns, scope) for ns in self.ns_names], dtype=bool)
        return ok[self.namespaces] if len(self.ns_names) else np.zeros(0, dtype=bool)


@dataclass(slots=True)
class GraphHit:
    node: Node
    score: float


@dataclass(slots=True)
class GraphSearchResult:
    seeds: list[str] = field(default_factory=list)
    nodes: list[GraphHit] = field(default_factory=list)
    paths: list[list[str]] = field(default_factory=list)
    memories: list[tuple[str, float]] = field(default_factory=list)


def build_index(ids: list[str], namespaces: list[str], edges: Sequence[tuple[str, str, float]],
                aliases: Sequence[tuple[str, str, str]] = (), provenance: Sequence[tuple[str, str]] = (),
                passage_weight: float = 0.0) -> GraphIndex:
    """An index from plain lists (also used by the benchmark to build 100k-node graphs quickly).

    With ``passage_weight > 0`` memories become nodes too, linked to the entities they mention
    (HippoRAG 2): the walk then crosses from a memory to the other entities it mentions."""
    import scipy.sparse as sp

    index = {n: i for i, n in enumerate(ids)}
    ns_names = sorted(set(namespaces))
    ns_index = {n: i for i, n in enumerate(ns_names)}
    nsv = np.array([ns_index[n] for n in namespaces], dtype=np.int32)
    src = np.array([index[a] for a, b, _ in edges if a in index and b in index], dtype=np.int64)
    dst = np.array([index[b] for a, b, _ in edges if a in index and b in index], dtype=np.int64)
    w = np.array([float(x) for a, b, x in edges if a in index and b in index], dtype=np.float32)
    n = len(ids)
    adj = sp.coo_matrix((np.concatenate([w, w]), (np.concatenate([src, dst]), np.concatenate([dst, src]))),
                        shape=(n, n)).tocsr()
    alias = {(ns_index[ns], key): index[nid] for ns, key, nid in aliases if nid in index}
    mem_ids = sorted({m for _, m in provenance})
    mem_index = {m: i for i, m in enumerate(mem_ids)}
    rows = np.array([index[a] for a, m in provenance if a in index], dtype=np.int64)
    cols = np.array([mem_index[m] for a, m in provenance if a in index], dtype=np.int64)
    nm = sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, len(mem_ids)))
    per_node = np.asarray(nm.sum(axis=1)).ravel()
    spec = np.divide(1.0, per_node, out=np.zeros_like(per_node), where=per_node > 0).astype(np.float32)
    full = adj
    if passage_weight > 0 and mem_ids:
        link = nm * np.float32(passage_weight)
        full = sp.bmat([[adj, link], [link.T, None]], format="csr")
    out = np.asarray(full.sum(axis=1)).ravel()
    inv = np.divide(1.0, out, out=np.zeros_like(out), where=out > 0).astype(np.float32)
    transition_t = (sp.diags(inv) @ full).T.tocsr().astype(np.float32)
    return GraphIndex(ids, index, nsv, ns_names, transition_t, adj, alias, nm, mem_ids, spec,
                      passage_weight > 0 and bool(mem_ids))


def _matvec(m: Any) -> Any:
    """``out <- m @ x`` without allocating (scipy's compiled kernel; plain ``@`` if it moved)."""
    try:
        from scipy.sparse._sparsetools import csr_matvec
    except ImportError:  # pragma: no cover - a future scipy
        def slow(x: np.ndarray, out: np.ndarray) -> None:
            out[:] = m @ x
        return slow
    n_rows, n_cols = m.shape

    def fast(x: np.ndarray, out: np.ndarray) -> None:
        out.fill(0.0)
        csr_matvec(n_rows, n_cols, m.indptr, m.indices, m.data, x, out)

    return fast


def personalized_pagerank(transition_t: Any, seeds: np.ndarray, *, damping: float = 0.5, tol: float = 1e-4,
                          max_iter: int = 100) -> np.ndarray:
    """Power iteration p <- (1-d) s + d (P^T p), with dangling mass returned to the seeds.

    Stops when the L1 change is below ``tol`` (1e-4 keeps the ranking of every node above ~1e-5).
    """
    s = np.asarray(seeds, dtype=np.float32)
    total = float(s.sum())
    if total <= 0:
        return np.zeros_like(s)
    s = s / total
    p = s.copy()
    nxt = np.empty_like(p)
    mv = _matvec(transition_t)
    for _ in range(max_iter):
        mv(p, nxt)
        nxt *= damping
        nxt += (1.0 - float(nxt.sum())) * s  # teleport plus the mass lost at dangling nodes
        change = float(np.abs(nxt - p).sum())
        p, nxt = nxt, p
        if change < tol:
            break
    return p


class GraphSearch:
    """Personalised PageRank and entity-linked memory lists over ``store``'s active graph.

    The attributes below are the tuning knobs (``KnowledgeGraph`` exposes them under the same names);
    ``memory`` is the memory service the graph is attached to (dense seeds of the HippoRAG 2 variant)."""

    def __init__(self, store: GraphStore) -> None:
        self.store = store
        self.passage_weight = 0.0  # > 0: memories join the PageRank graph as nodes (HippoRAG 2 style)
        self.synonym_similarity: float | None = None  # link close node embeddings in the search index
        self.retrieve_limit = 20  # memories the recall retriever hands to fusion (a short list: measured best)
        self.passage_seed_weight = 0.05  # with passage nodes: weight of dense query-memory matches as seeds
        self.link_similarity = 0.8  # a query mention links to nodes whose label embedding is this close
        self.link_per_mention = 3  # at most this many embedding-linked nodes per query mention
        self.min_coverage = 2  # recall's graph list: memories supporting at least this many query mentions
        self.memory: Memory | None = None
        self._index: tuple[int, GraphIndex] | None = None  # (store version, index)
        self._vectors: tuple[GraphIndex, int, np.ndarray] | None = None  # (index, vectors version, unit vectors)

    def index(self) -> GraphIndex:
        """The cached :class:`GraphIndex` of the active graph (rebuilt after any change)."""
        version = self.store.version
        cached = self._index
        if cached is not None and cached[0] == version:
            return cached[1]
        with self.store.sql.connect() as conn:
            nodes = conn.execute(sa.select(graph_nodes.c.id, graph_nodes.c.namespace)
                                 .where(graph_nodes.c.status == "active")).all()
            edges = conn.execute(sa.select(graph_edges.c.src, graph_edges.c.dst, graph_edges.c.confidence,
                                           graph_edges.c.weight).where(graph_edges.c.status == "active")).all()
            aliases = conn.execute(sa.select(graph_aliases.c.namespace, graph_aliases.c.key,
                                             graph_aliases.c.node_id)).all()
            prov = conn.execute(sa.select(graph_provenance.c.item_id, graph_provenance.c.memory_id)
                                .where(graph_provenance.c.kind == "node")).all()
        weighted = [(a, b, c * (1.0 + np.log(max(w, 1.0)))) for a, b, c, w in edges]
        if self.synonym_similarity is not None:
            weighted += self._synonym_edges(self.synonym_similarity)
        idx = build_index([r[0] for r in nodes], [r[1] for r in nodes], weighted,
                          [tuple(a) for a in aliases], [tuple(p) for p in prov],
                          passage_weight=self.passage_weight)
        self._index = (version, idx)
        return idx

    def _synonym_edges(self, threshold: float, per_node: int = 5, cap: int = 5000) -> list[tuple[str, str, float]]:
        """Index-only edges between nodes of one namespace whose label embeddings are close (HippoRAG's
        synonymy edges): derived data, never stored, so they need no review."""
        rows = self.store.vector_rows()
        by_ns: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_ns.setdefault(r["namespace"], []).append(r)
        out: list[tuple[str, str, float]] = []
        for items in by_ns.values():
            items = items[:cap]
            if len(items) < 2:
                continue
            m = np.stack([np.asarray(r["vector"], dtype=np.float32) for r in items])
            sims = m @ m.T
            np.fill_diagonal(sims, -1.0)
            top = np.argsort(-sims, axis=1)[:, :per_node]
            for i, js in enumerate(top):
                out += [(items[i]["id"], items[int(j)]["id"], float(sims[i, j])) for j in js
                        if sims[i, j] >= threshold and i < j]
        return out

    def seeds(self, query: str, scope: Scope | None = None, query_vector: np.ndarray | None = None, *,
              vector_k: int = 5, min_similarity: float = 0.55) -> dict[int, float]:
        """Seed nodes (index -> weight) for ``query``: exact entity matches, then nearest node embeddings."""
        idx = self.index()
        mask = idx.visible_mask(scope)
        out: dict[int, float] = {}
        ex = _QUERY_EXTRACTOR.extract(query, {}, 0.0)
        keys = {normalise(m.label) for m in ex.entities} | {normalise(query)}
        for ns_i, ns in enumerate(idx.ns_names):
            if scope is not None and not visible(ns, scope):
                continue
            for key in keys:
                i = idx.alias.get((ns_i, key))
                if i is not None:
                    out[i] = out.get(i, 0.0) + 1.0
        if query_vector is not None and self.store.lance is not None and self.store.embedder is not None:
            for i, sim in self._nearest_nodes(query_vector, scope, vector_k):
                if sim >= min_similarity and mask[i]:
                    out[i] = out.get(i, 0.0) + float(sim)
        return out

    def _nearest_nodes(self, vector: np.ndarray, scope: Scope | None, k: int) -> list[tuple[int, float]]:
        idx = self.index()
        return [(idx.index[i], sim) for i, sim in self.store.nearest(vector, scope, k) if i in idx.index]

    def search(self, query: str, *, scope: Scope | str | None = None, k: int = 10, query_vector: np.ndarray | None = None,
               damping: float = 0.5, paths: int = 5,
               passage_seeds: Sequence[tuple[str, float]] = (), with_nodes: bool = True) -> GraphSearchResult:
        """Personalised PageRank from the query's entities: top nodes, paths from seeds, and memories."""
        sc = Scope.of(scope) if scope is not None else None
        if query_vector is None and self.store.embedder is not None:
            query_vector = self.store.embedder.embed([query])[0]
        idx = self.index()
        seeds = self.seeds(query, sc, query_vector)
        if not seeds or not idx.ids:
            return GraphSearchResult()
        size = len(idx.ids)
        s = np.zeros(idx.transition_t.shape[0], dtype=np.float32)
        for i, w in seeds.items():
            s[i] = w * max(float(idx.specificity[i]), 0.05)
        if idx.passages and passage_seeds:  # HippoRAG 2: dense matches seed their memory nodes too
            mem_index = {m: j for j, m in enumerate(idx.memory_ids)}
            for m, sim in passage_seeds:
                if m in mem_index:
                    s[size + mem_index[m]] += self.passage_seed_weight * max(sim, 0.0)
        full = personalized_pagerank(idx.transition_t, s, damping=damping)
        p = full[:size].copy()
        p[~idx.visible_mask(sc)] = 0.0
        top = [int(i) for i in np.argsort(-p)[:k] if p[i] > 0]
        nodes = {n.id: n for n in self.store.nodes_by_id([idx.ids[i] for i in top])} if with_nodes else {}
        if idx.passages:
            mem = full[size:]
        else:
            mem = (idx.node_memories.T @ (p * idx.specificity)) if idx.memory_ids else np.zeros(0)
        order = np.argsort(-mem)[: max(k, 100)]
        memories = [(idx.memory_ids[i], float(mem[i])) for i in order if mem[i] > 0]
        found = [self._path(idx, list(seeds), t) for t in top[:paths] if t not in seeds]
        return GraphSearchResult([idx.ids[i] for i in seeds], [GraphHit(nodes[idx.ids[i]], float(p[i])) for i in top
                                                               if idx.ids[i] in nodes],
                                 [pp for pp in found if pp], memories)

    def retrieve(self, query: str, query_vector: np.ndarray, scope: Scope, n: int) -> list[str]:
        """The ``Memory.add_retriever`` hook: memory ids best first.

        Memories that support at least ``min_coverage`` of the query's mentions (see
        :meth:`entity_memories`): a short list of complementary evidence rather than a second ranking
        of everything the vector and text searches already found."""
        if self.passage_weight > 0:  # HippoRAG 2 variant: memories are PageRank nodes seeded by dense matches
            memory = self.memory
            dense: list[tuple[str, float]] = []
            if memory is not None:
                from emergent.memory.ltm import build_filter

                dense = [(c.record.id, c.score) for c in memory.ltm.vector_search(query_vector, build_filter(scope), 20)]
            res = self.search(query, scope=scope, k=10, query_vector=query_vector, paths=0, passage_seeds=dense,
                              with_nodes=False)
            return [m for m, _ in res.memories[: min(n, self.retrieve_limit)]]
        return [m for m, _ in self.entity_memories(query, scope, limit=min(n, self.retrieve_limit))]

    def link_mentions(self, query: str, scope: Scope | str | None = None) -> list[dict[int, float]]:
        """Entity linking of the query (HippoRAG's query NER + node retrieval): for each mention the
        query's rules extraction finds, the nodes it names (an alias: weight 1) and the
        ``link_per_mention`` nodes whose label embedding is at least ``link_similarity`` close to the
        mention's (weight: the similarity), within ``scope``."""
        scope = Scope.of(scope) if scope is not None else None
        idx = self.index()
        labels = list(dict.fromkeys(m.label for m in _QUERY_EXTRACTOR.extract(query, {}, 0.0).entities))
        if not labels or not idx.ids:
            return []
        namespaces = [i for i, ns in enumerate(idx.ns_names) if scope is None or visible(ns, scope)]
        linked: list[dict[int, float]] = [{} for _ in labels]
        for d, label in zip(linked, labels, strict=True):
            for ns_i in namespaces:
                i = idx.alias.get((ns_i, normalise(label)))
                if i is not None:
                    d[i] = 1.0
        vectors = self._node_vectors()
        if vectors is not None and self.store.embedder is not None and self.link_per_mention > 0:
            mask = idx.visible_mask(scope)
            q = np.asarray(self.store.embedder.embed(labels), dtype=np.float32)
            q /= np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-9)
            sims = q @ vectors.T  # cosine, mentions x nodes
            sims[:, ~mask] = -1.0
            k = min(self.link_per_mention, sims.shape[1])
            top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            for d, row, cols in zip(linked, sims, top, strict=True):
                for i in cols:
                    if row[i] >= self.link_similarity:
                        d[int(i)] = max(d.get(int(i), 0.0), float(row[i]))
        return [d for d in linked if d]

    def entity_memories(self, query: str, scope: Scope | str | None = None, *, limit: int = 20) -> list[tuple[str, float]]:
        """Memories ranked by how many of the query's mentions they support, then by how specifically.

        Each linked mention gives a memory the best ``weight x sqrt(specificity)`` among the mention's
        nodes it supports (specificity = 1 / memories mentioning the node, an IDF: the speaker of half
        the conversation counts little). Only memories supporting at least ``min_coverage`` mentions
        are returned: the intersection a multi-hop question needs ("Where has Melanie camped?":
        Melanie and camping), which single retrievers rank low. A question that links fewer mentions
        gets no list (vector and text search answer it alone)."""
        idx = self.index()
        linked = self.link_mentions(query, scope)
        need = max(1, self.min_coverage)
        if len(linked) < need or not idx.memory_ids:
            return []
        m = len(idx.memory_ids)
        coverage = np.zeros(m, dtype=np.float32)
        score = np.zeros(m, dtype=np.float32)
        nm = idx.node_memories
        for d in linked:
            rows = np.fromiter(d, dtype=np.int64, count=len(d))
            weights = np.fromiter(d.values(), dtype=np.float32, count=len(d)) * np.sqrt(idx.specificity[rows])
            sub = nm[rows].tocoo()
            best = np.zeros(m, dtype=np.float32)
            np.maximum.at(best, sub.col, weights[sub.row])
            coverage += best > 0
            score += best
        cand = np.flatnonzero(coverage >= need)
        if not len(cand):
            return []
        total = coverage[cand] + score[cand] / (float(score[cand].max()) + 1e-9)  # coverage first
        order = cand[np.argsort(-total, kind="stable")][:limit]
        return [(idx.memory_ids[j], float(coverage[j] + score[j])) for j in order]

    def _node_vectors(self) -> np.ndarray | None:
        """Unit label embeddings aligned with :meth:`index` rows (zero rows for nodes without one)."""
        idx = self.index()
        version = self.store.vectors_version
        cached = self._vectors
        if cached is not None and cached[0] is idx and cached[1] == version:
            return cached[2]
        embedder = self.store.embedder
        if embedder is None or not self.store.has_vectors():
            return None
        table = self.store.vectors_arrow().select(["id", "vector"])
        out = np.zeros((len(idx.ids), embedder.dim), dtype=np.float32)
        rows = [idx.index.get(i) for i in table.column("id").to_pylist()]
        keep = np.array([r is not None for r in rows], dtype=bool)
        if keep.any():
            flat = np.asarray(table.column("vector").combine_chunks().flatten(), dtype=np.float32)
            vecs = flat.reshape(len(rows), embedder.dim)[keep]
            norms = np.linalg.norm(vecs, axis=1, keepdims=True)
            out[np.array([r for r in rows if r is not None], dtype=np.int64)] = vecs / np.maximum(norms, 1e-9)
        self._vectors = (idx, version, out)
        return out

    @staticmethod
    def _path(idx: GraphIndex, seeds: list[int], target: int, max_depth: int = 4) -> list[str]:
        """Shortest path (node ids) from any seed to ``target`` by breadth-first search."""
        prev: dict[int, int] = {s: -1 for s in seeds}
        queue = deque((s, 0) for s in seeds)
        adj = idx.adjacency
        while queue:
            u, d = queue.popleft()
            if u == target:
                path = [u]
                while prev[path[-1]] != -1:
                    path.append(prev[path[-1]])
                return [idx.ids[i] for i in reversed(path)]
            if d >= max_depth:
                continue
            for v in adj.indices[adj.indptr[u]:adj.indptr[u + 1]]:
                if int(v) not in prev:
                    prev[int(v)] = u
                    queue.append((int(v), d + 1))
        return []
