"""The ``KnowledgeGraph`` service: incremental build from memories, forgetting, reads and export.

SQL is the state of record (one transaction per update, so a crash leaves the last committed
graph); node embeddings live in a LanceDB table beside it. Algorithms run on networkx views
(:meth:`KnowledgeGraph.to_networkx`) or, for search, on a cached sparse matrix
(:mod:`emergent.graph.search`). Editing, inference, search and communities are mixed in from
their own modules.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from emergent.clock import Clock, SystemClock
from emergent.errors import NotFoundError
from emergent.graph import _store as st
from emergent.graph.communities import CommunitiesMixin
from emergent.graph.edit import EditorMixin
from emergent.graph.extract import Extraction, Extractor, LLMExtractor, RuleExtractor
from emergent.graph.infer import InferenceMixin
from emergent.graph.model import (
    FUNCTIONAL,
    SYMMETRIC,
    Edge,
    Node,
    UpdateReport,
    edge_id,
    namespace_of,
    node_id,
    normalise,
)
from emergent.graph.search import SearchMixin
from emergent.graph.tables import graph_aliases, graph_edges, graph_nodes, graph_provenance
from emergent.graph.views import ViewsMixin
from emergent.memory.types import MemoryRecord, Scope

log = logging.getLogger(__name__)
VECTOR_TABLE = "graph_node_vectors"


class KnowledgeGraph(EditorMixin, InferenceMixin, SearchMixin, CommunitiesMixin, ViewsMixin):
    """Entities and relations extracted from memories, with provenance, time and an audited editor."""

    def __init__(self, sql: Any, lance: Any = None, embedder: Any = None, *, extractor: Extractor | None = None,
                 clock: Clock | None = None, llm: Any = None, audit: Any = None, principals: Any = None) -> None:
        self.sql = sql
        self.lance = lance
        self.embedder = embedder
        self.clock = clock or SystemClock()
        self.llm = llm
        self.audit = audit  # an emergent.audit.Auditor: every edit's intent and outcome
        self.principals = principals  # the workspace's directory: who may edit (emergent.principals)
        self.extractor: Extractor = extractor or (LLMExtractor(llm) if llm is not None else RuleExtractor())
        self.version = 0
        self.passage_weight = 0.0  # > 0: memories join the PageRank graph as nodes (HippoRAG 2 style)
        self.synonym_similarity: float | None = None  # link close node embeddings in the search index
        self.retrieve_limit = 20  # memories the recall retriever hands to fusion (a short list: measured best)
        self.passage_seed_weight = 0.05  # with passage nodes: weight of dense query-memory matches as seeds
        self.link_similarity = 0.8  # a query mention links to nodes whose label embedding is this close
        self.link_per_mention = 3  # at most this many embedding-linked nodes per query mention
        self.min_coverage = 2  # recall's graph list: memories supporting at least this many query mentions
        self.pending: set[str] = set()
        self.errors: list[str] = []
        self._lock = threading.RLock()
        self._cache: dict[str, Any] = {}
        self._existing: dict[str, Edge] = {}
        self._dirty: set[str] = set()
        self._vectors: Any = None

    # ================================================================== incremental updates
    def add_memories(self, records: Sequence[MemoryRecord]) -> UpdateReport:
        """Extract from ``records`` and fold them in; a memory already in the graph is replaced."""
        records = [r for r in records if isinstance(r, MemoryRecord)]
        if not records:
            return UpdateReport(strategy=self.extractor.name)
        extractions = [self.extractor.extract(r.text, r.meta, r.created_at) for r in records]
        with self._lock, self.sql.begin() as conn:
            affected = self._drop_provenance(conn, [r.id for r in records])
            added_nodes: list[Node] = []
            counts: dict[str, int] = defaultdict(int)
            by_ns: dict[str, list[tuple[MemoryRecord, Extraction]]] = defaultdict(list)
            for rec, ex in zip(records, extractions, strict=True):
                by_ns[namespace_of(rec.scope)].append((rec, ex))
            for ns, items in by_ns.items():
                added_nodes += self._fold(conn, ns, items, counts)
            removed = self._collect(conn, affected)
        self._changed()
        self._embed_nodes(added_nodes)
        strategies = sorted({ex.strategy for ex in extractions})
        return UpdateReport(len(records), len(added_nodes), counts["edges"], removed[0], removed[1],
                            counts["superseded"], "+".join(strategies))

    def remove_memories(self, memory_ids: Iterable[str]) -> UpdateReport:
        """Forget memories: drop their provenance and whatever only they supported."""
        ids = list(memory_ids)
        with self._lock, self.sql.begin() as conn:
            affected = self._drop_provenance(conn, ids)
            removed = self._collect(conn, affected)
        self._changed()
        return UpdateReport(memories=len(ids), nodes_removed=removed[0], edges_removed=removed[1])

    def _drop_provenance(self, conn: Connection, memory_ids: list[str]) -> set[str]:
        rows = st.select_in(conn, graph_provenance, "memory_id", memory_ids)
        st.delete_in(conn, graph_provenance, "memory_id", memory_ids)
        return {r.item_id for r in rows}

    def _fold(self, conn: Connection, ns: str, items: list[tuple[MemoryRecord, Extraction]],
              counts: dict[str, int]) -> list[Node]:
        now = self.clock.now()
        mentions: dict[str, tuple[str, str, float, float]] = {}  # key -> label, type, confidence, first seen
        for rec, ex in items:
            t = ex.valid_from if ex.valid_from is not None else rec.created_at
            labels = [(m.label, m.type, m.confidence) for m in ex.entities]
            labels += [(r.src, r.src_type, r.confidence) for r in ex.relations]
            labels += [(r.dst, r.dst_type, r.confidence) for r in ex.relations]
            for label, type_, conf in labels:
                key = normalise(label)
                if not key:
                    continue
                old = mentions.get(key)
                if old is None or (conf > old[2] and type_ != "concept"):
                    mentions[key] = (label.strip()[:1000], type_, max(conf, old[2] if old else 0.0),
                                     min(t, old[3]) if old else t)
        ids, created = self._resolve(conn, ns, mentions, now)
        prov: dict[tuple[str, str], dict[str, Any]] = {}
        new_edges: dict[str, Edge] = {}
        self._existing = self._prefetch_edges(conn, ns, items, ids)
        dirty: set[str] = set()
        self._dirty = dirty
        for rec, ex in items:
            t = ex.valid_from if ex.valid_from is not None else rec.created_at
            for m in ex.entities:
                if normalise(m.label) in ids:
                    nid = ids[normalise(m.label)]
                    prov[(nid, rec.id)] = {"item_id": nid, "memory_id": rec.id, "kind": "node",
                                           "confidence": m.confidence, "at": t}
            for r in ex.relations:
                src, dst = ids.get(normalise(r.src)), ids.get(normalise(r.dst))
                if src is None or dst is None or src == dst:
                    continue  # self-loops carry no information
                for nid in (src, dst):
                    prov.setdefault((nid, rec.id), {"item_id": nid, "memory_id": rec.id, "kind": "node",
                                                     "confidence": r.confidence, "at": t})
                if r.rel in SYMMETRIC and dst < src:
                    src, dst = dst, src
                eid = self._upsert_edge(conn, ns, src, r.rel, dst, r.confidence, t, now, new_edges, counts)
                prov[(eid, rec.id)] = {"item_id": eid, "memory_id": rec.id, "kind": "edge",
                                       "confidence": r.confidence, "at": t}
        if dirty:
            conn.execute(sa.update(graph_edges).where(graph_edges.c.id == sa.bindparam("eid")).values(
                weight=sa.bindparam("w"), confidence=sa.bindparam("c"), valid_from=sa.bindparam("vf")),
                [{"eid": e.id, "w": e.weight, "c": e.confidence, "vf": e.valid_from}
                 for e in (self._existing[i] for i in dirty)])
        if new_edges:
            st.bulk_insert(conn, graph_edges, [e.row() for e in new_edges.values()])
        if prov:
            st.bulk_insert(conn, graph_provenance, list(prov.values()))
        return created

    def _resolve(self, conn: Connection, ns: str, mentions: dict[str, tuple[str, str, float, float]],
                 now: float) -> tuple[dict[str, str], list[Node]]:
        """Map keys to node ids through the alias index, creating nodes for unknown keys."""
        rows = st.select_in(conn, graph_aliases, "key", list(mentions), graph_aliases.c.namespace == ns)
        ids = {r.key: r.node_id for r in rows}
        created: list[Node] = []
        fresh = [k for k in mentions if k not in ids]
        taken = {r.id for r in st.select_in(conn, graph_nodes, "id", [node_id(ns, k) for k in fresh])}
        for key in fresh:
            label, type_, conf, seen = mentions[key]
            nid = node_id(ns, key)
            if nid in taken:  # a deleted or merged node had this key: start a new one
                nid = node_id(ns, f"{key}\x00{now}\x00{len(created)}")
            created.append(Node(nid, ns, label, type_, conf, origin=self.extractor.name, created_at=now,
                                first_seen=seen))
            ids[key] = nid
        if created:
            st.bulk_insert(conn, graph_nodes, [n.row() for n in created])
            st.bulk_insert(conn, graph_aliases, [{"namespace": ns, "key": normalise(n.label), "node_id": n.id,
                                                   "alias": n.label} for n in created])
        earliest: dict[str, float] = {}
        for r in rows:
            earliest[r.node_id] = min(earliest.get(r.node_id, math.inf), mentions[r.key][3])
        for r in st.select_in(conn, graph_nodes, "id", earliest):  # memories may arrive out of order
            if earliest[r.id] < r.first_seen:
                conn.execute(sa.update(graph_nodes).where(graph_nodes.c.id == r.id).values(first_seen=earliest[r.id]))
        return ids, created

    def _upsert_edge(self, conn: Connection, ns: str, src: str, rel: str, dst: str, conf: float, t: float,
                     now: float, new_edges: dict[str, Edge], counts: dict[str, int]) -> str:
        eid = edge_id(ns, src, rel, dst)
        edge = new_edges.get(eid)
        if edge is None:
            old = self._existing.get(eid)
            if old is not None:
                if old.status != "active" or (old.valid_to is not None and t >= old.valid_to):
                    eid = edge_id(ns, src, rel, dst, salt=repr(t))  # a fact restated after it ended
                    edge = new_edges.get(eid)
                    if edge is None and conn.execute(sa.select(graph_edges.c.id).where(graph_edges.c.id == eid)).first():
                        return eid
                else:
                    edge = old
                    self._dirty.add(eid)
        if edge is not None:
            edge.weight += 1
            edge.confidence = 1 - (1 - edge.confidence) * (1 - conf)
            edge.valid_from = min(edge.valid_from if edge.valid_from is not None else t, t)
            return eid
        edge = Edge(eid, ns, src, dst, rel, conf, 1.0, t, None, origin=self.extractor.name, created_at=now)
        if rel in FUNCTIONAL:
            counts["superseded"] += self._supersede(conn, edge, new_edges)
        new_edges[eid] = edge
        counts["edges"] += 1
        return eid

    @staticmethod
    def _prefetch_edges(conn: Connection, ns: str, items: list[tuple[MemoryRecord, Extraction]],
                        ids: dict[str, str]) -> dict[str, Edge]:
        """The stored edges this batch may reinforce, in one query per 500 ids."""
        wanted = set()
        for _, ex in items:
            for r in ex.relations:
                src, dst = ids.get(normalise(r.src)), ids.get(normalise(r.dst))
                if src is not None and dst is not None and src != dst:
                    if r.rel in SYMMETRIC and dst < src:
                        src, dst = dst, src
                    wanted.add(edge_id(ns, src, r.rel, dst))
        return {r.id: Edge.from_row(r) for r in st.select_in(conn, graph_edges, "id", wanted)}

    def _supersede(self, conn: Connection, edge: Edge, pending: dict[str, Edge]) -> int:
        """A later value of a functional relation ends the earlier one (which is kept, not deleted)."""
        rows = conn.execute(sa.select(graph_edges).where(
            graph_edges.c.src == edge.src, graph_edges.c.rel == edge.rel, graph_edges.c.dst != edge.dst,
            graph_edges.c.status == "active")).all()
        others = [Edge.from_row(r) for r in rows] + [e for e in pending.values()
                                                     if e.src == edge.src and e.rel == edge.rel and e.dst != edge.dst]
        n = 0
        t = edge.valid_from or 0.0
        for other in others:
            start = other.valid_from or 0.0
            if start < t and (other.valid_to is None or other.valid_to > t):
                other.valid_to = t
                other.evidence = {**other.evidence, "superseded_by": edge.id}
                if other.id in pending:
                    continue
                conn.execute(sa.update(graph_edges).where(graph_edges.c.id == other.id)
                             .values(valid_to=t, evidence=json.dumps(other.evidence)))
                n += 1
            elif start > t and (edge.valid_to is None or start < edge.valid_to):
                edge.valid_to = start  # an older fact arriving late ends where the newer began
        return n

    def _collect(self, conn: Connection, affected: set[str]) -> tuple[int, int]:
        """Delete extracted items left with no provenance, the edges on them, and stale inferences."""
        if not affected:
            return 0, 0
        still = {r.item_id for r in st.select_in(conn, graph_provenance, "item_id", affected)}
        orphans = affected - still
        nodes = [r.id for r in st.select_in(conn, graph_nodes, "id", orphans) if r.origin != "manual"]
        edges = [r.id for r in st.select_in(conn, graph_edges, "id", orphans) if r.origin != "manual"]
        edges += [r.id for r in st.select_in(conn, graph_edges, "src", nodes)]
        edges += [r.id for r in st.select_in(conn, graph_edges, "dst", nodes)]
        edges = list(dict.fromkeys(edges))
        dead = set(edges)
        inferred = conn.execute(sa.select(graph_edges.c.id, graph_edges.c.evidence)
                                .where(graph_edges.c.inferred.is_(True))).all()
        edges += [r.id for r in inferred if r.id not in dead
                  and dead & set(json.loads(r.evidence or "{}").get("edges", []))]
        self._reopen(conn, set(edges))
        st.delete_in(conn, graph_edges, "id", edges)
        st.delete_in(conn, graph_provenance, "item_id", edges)
        st.delete_in(conn, graph_aliases, "node_id", nodes)
        st.delete_in(conn, graph_nodes, "id", nodes)
        self._drop_vectors(nodes)
        return len(nodes), len(edges)

    @staticmethod
    def _reopen(conn: Connection, deleted: set[str]) -> None:
        """Facts that only ended because a now-deleted edge superseded them are current again."""
        if not deleted:
            return
        rows = conn.execute(sa.select(graph_edges.c.id, graph_edges.c.evidence).where(
            graph_edges.c.rel.in_(sorted(FUNCTIONAL)), graph_edges.c.valid_to.is_not(None))).all()
        for r in rows:
            ev = json.loads(r.evidence or "{}")
            if ev.get("superseded_by") in deleted and r.id not in deleted:
                ev.pop("superseded_by")
                conn.execute(sa.update(graph_edges).where(graph_edges.c.id == r.id)
                             .values(valid_to=None, evidence=json.dumps(ev)))

    # ================================================================== wiring to Memory
    def attach(self, memory: Any, *, weight: float = 1.0, retriever: bool = True, listen: bool = True) -> None:
        """Follow ``memory``'s writes and deletes, and offer graph search to its recall."""
        self._memory = memory
        if listen:
            memory.add_listener(self.on_memory_event)
        if retriever:
            memory.add_retriever("graph", self.retrieve, weight)

    def on_memory_event(self, event: str, payload: Any) -> None:
        """Listener for ``Memory``: a failure leaves the graph at its last commit and marks the ids pending."""
        ids = [getattr(p, "id", p) for p in payload]
        try:
            if event in ("remember", "ingest", "update"):
                self.add_memories(list(payload))
            elif event == "forget":
                self.remove_memories(ids)
            self.pending.difference_update(ids)
        except Exception as exc:  # the memory write already happened; catch up with sync()
            self.pending.update(ids)
            self.errors.append(f"{event}: {type(exc).__name__}: {exc}")
            log.warning("knowledge graph update failed (%s); run graph.sync(memory) to catch up", exc)

    def sync(self, memory: Any, scope: Scope | str | None = None) -> UpdateReport:
        """Reconcile with memory (long- and short-term): add what is missing, drop what was forgotten.

        With ``scope`` it only adds; it drops nothing while short-term memory cannot be read."""
        sc = Scope.of(scope) if scope is not None else None
        present = {r.id: r for r in memory.ltm.records(sc.where() if sc is not None else None)}
        agents = {sc.agent} if sc is not None else {ns.split("/")[0] for ns in self.namespaces()}
        stm_ok = True
        for agent in agents | {memory.default_scope.agent}:
            try:
                present.update({r.id: r for r in memory.stm.scan(agent) if sc is None or sc.contains(r.scope)})
            except Exception:  # Redis down: add from LTM, remove nothing
                stm_ok = False
        with self.sql.connect() as conn:
            known = {r[0] for r in conn.execute(sa.select(graph_provenance.c.memory_id).distinct())}
        gone = sorted(known - set(present)) if sc is None and stm_ok else []
        missing = [present[i] for i in present if i not in known or i in self.pending]
        r1 = self.remove_memories(gone) if gone else UpdateReport()
        r2 = self.add_memories(missing) if missing else UpdateReport(strategy=self.extractor.name)
        self.pending.clear()
        return UpdateReport(len(missing) + len(gone), r2.nodes_added, r2.edges_added,
                            r1.nodes_removed + r2.nodes_removed, r1.edges_removed + r2.edges_removed,
                            r2.superseded, r2.strategy)

    # ================================================================== node embeddings (LanceDB)
    def _vector_table(self) -> Any | None:
        if self.lance is None or self.embedder is None:
            return None
        import pyarrow as pa

        schema = pa.schema([pa.field("id", pa.string()), pa.field("namespace", pa.string()),
                            pa.field("label", pa.string()), pa.field("vector", pa.list_(pa.float32(), self.embedder.dim))])
        return self.lance.open_table(VECTOR_TABLE, schema, 1)

    def _embed_nodes(self, nodes: Sequence[Node]) -> None:
        table = self._vector_table()
        if table is None or not nodes:
            return
        try:
            vectors = self.embedder.embed([n.label[:500] for n in nodes])
            table.add([{"id": n.id, "namespace": n.namespace, "label": n.label[:500], "vector": v}
                       for n, v in zip(nodes, vectors, strict=True)])
            self._vectors = None
        except Exception as exc:  # embeddings are derived data: search falls back to exact matches
            self.errors.append(f"embedding: {exc}")
            log.warning("node embeddings were not written (%s); run graph.reindex() to rebuild", exc)

    def _drop_vectors(self, ids: Sequence[str]) -> None:
        table = self._vector_table() if ids else None
        if table is not None:
            for part in st.chunks(list(ids)):
                table.delete("id IN (" + ", ".join("'" + i + "'" for i in part) + ")")
            self._vectors = None

    def reindex(self) -> int:
        """Rebuild every node embedding from the SQL labels."""
        if self.lance is None or self.embedder is None:
            return 0
        if VECTOR_TABLE in self.lance.table_names():
            self.lance.db.drop_table(VECTOR_TABLE)
        nodes = self.nodes()
        for part in st.chunks(nodes, 2000):
            self._embed_nodes(part)
        return len(nodes)

    # ================================================================== reads
    def _changed(self) -> None:
        self.version += 1
        self._cache.clear()

    def node(self, id: str) -> Node:
        with self.sql.connect() as conn:
            row = conn.execute(sa.select(graph_nodes).where(graph_nodes.c.id == id)).first()
        if row is None:
            raise NotFoundError(f"no graph node {id!r}", hint="list nodes with graph.nodes() or find(label)")
        return Node.from_row(row)

    def edge(self, id: str) -> Edge:
        with self.sql.connect() as conn:
            row = conn.execute(sa.select(graph_edges).where(graph_edges.c.id == id)).first()
        if row is None:
            raise NotFoundError(f"no graph edge {id!r}", hint="list edges with graph.edges(node_id)")
        return Edge.from_row(row)

    def find(self, label: str, scope: Scope | str | None = None) -> Node | None:
        """The node a label resolves to in ``scope``'s namespace (aliases included)."""
        ns = namespace_of(scope) if scope is not None else None
        q = sa.select(graph_aliases.c.node_id).where(graph_aliases.c.key == normalise(label))
        if ns is not None:
            q = q.where(graph_aliases.c.namespace == ns)
        with self.sql.connect() as conn:
            row = conn.execute(q).first()
        return self.node(row[0]) if row else None

    def nodes(self, namespace: str | None = None, *, status: str | None = "active") -> list[Node]:
        q = sa.select(graph_nodes)
        if namespace is not None:
            q = q.where(graph_nodes.c.namespace == namespace)
        if status is not None:
            q = q.where(graph_nodes.c.status == status)
        with self.sql.connect() as conn:
            return [Node.from_row(r) for r in conn.execute(q)]

    def edges(self, node: str | None = None, *, status: str | None = "active", namespace: str | None = None) -> list[Edge]:
        q = sa.select(graph_edges)
        if node is not None:
            q = q.where(sa.or_(graph_edges.c.src == node, graph_edges.c.dst == node))
        if status is not None:
            q = q.where(graph_edges.c.status == status)
        if namespace is not None:
            q = q.where(graph_edges.c.namespace == namespace)
        with self.sql.connect() as conn:
            return [Edge.from_row(r) for r in conn.execute(q)]

    def aliases(self, node: str) -> list[str]:
        with self.sql.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(graph_aliases.c.alias).where(graph_aliases.c.node_id == node))]

    def provenance(self, item: str) -> list[str]:
        """Ids of the memories behind a node or an edge."""
        with self.sql.connect() as conn:
            return [r[0] for r in conn.execute(sa.select(graph_provenance.c.memory_id)
                                               .where(graph_provenance.c.item_id == item))]

    def namespaces(self) -> list[str]:
        with self.sql.connect() as conn:
            return sorted(r[0] for r in conn.execute(sa.select(graph_nodes.c.namespace).distinct()))

    def counts(self) -> dict[str, int]:
        with self.sql.connect() as conn:
            def n(table: sa.Table, *where: Any) -> int:
                return int(conn.execute(sa.select(sa.func.count()).select_from(table).where(*where)).scalar() or 0)

            return {"nodes": n(graph_nodes, graph_nodes.c.status == "active"),
                    "edges": n(graph_edges, graph_edges.c.status == "active"),
                    "proposed": n(graph_edges, graph_edges.c.status == "proposed"),
                    "memories": int(conn.execute(sa.select(sa.func.count(sa.distinct(graph_provenance.c.memory_id))))
                                    .scalar() or 0)}

    def check(self) -> list[str]:
        """Consistency problems (empty when the graph is sound): dangling edges, orphan provenance..."""
        with self.sql.connect() as conn:
            nodes = {r.id: r.status for r in conn.execute(sa.select(graph_nodes.c.id, graph_nodes.c.status))}
            edges = conn.execute(sa.select(graph_edges.c.id, graph_edges.c.src, graph_edges.c.dst,
                                           graph_edges.c.status)).all()
            items = set(nodes) | {e.id for e in edges}
            prov = {r[0] for r in conn.execute(sa.select(graph_provenance.c.item_id).distinct())}
            aliases = conn.execute(sa.select(graph_aliases.c.key, graph_aliases.c.node_id)).all()
        problems = [f"edge {e.id} points at missing node" for e in edges if e.src not in nodes or e.dst not in nodes]
        problems += [f"active edge {e.id} touches inactive node" for e in edges if e.status == "active"
                     and (nodes.get(e.src) != "active" or nodes.get(e.dst) != "active")]
        problems += [f"edge {e.id} is a self-loop" for e in edges if e.src == e.dst]
        problems += [f"provenance for missing item {i}" for i in sorted(prov - items)]
        problems += [f"alias {a.key!r} points at missing or inactive node" for a in aliases
                     if nodes.get(a.node_id) != "active"]
        return problems
