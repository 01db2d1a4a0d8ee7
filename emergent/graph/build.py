"""``GraphBuilder``: the graph follows memory, one transaction per update.

:meth:`GraphBuilder.add_memories` extracts entities and relations from memories and folds them in
(aliases resolve mentions to nodes, repeated facts reinforce an edge, a later value of a functional
relation ends the earlier one); :meth:`GraphBuilder.remove_memories` drops their provenance and
whatever only they supported. A crash leaves the last committed graph; the ids of memories whose
update failed stay in ``pending`` until :meth:`GraphBuilder.sync` catches up.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from emergent.graph import _store as st
from emergent.graph.extract import Extraction, Extractor
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
from emergent.graph.store import GraphStore
from emergent.graph.tables import graph_aliases, graph_edges, graph_nodes, graph_provenance
from emergent.memory.types import MemoryRecord, Scope

if TYPE_CHECKING:  # pragma: no cover
    from emergent.clock import Clock

log = logging.getLogger(__name__)


class GraphBuilder:
    """Extraction of ``store``'s graph from memories with ``extractor``; ``clock`` dates new items."""

    def __init__(self, store: GraphStore, extractor: Extractor, clock: Clock) -> None:
        self.store = store
        self.extractor = extractor
        self.clock = clock
        self.pending: set[str] = set()  # memories whose update failed (sync() catches up)
        self._lock = threading.RLock()
        self._existing: dict[str, Edge] = {}  # per fold: the stored edges the batch may reinforce
        self._dirty: set[str] = set()  # per fold: which of those changed

    def add_memories(self, records: Sequence[MemoryRecord]) -> UpdateReport:
        """Extract from ``records`` and fold them in; a memory already in the graph is replaced."""
        records = [r for r in records if isinstance(r, MemoryRecord)]
        if not records:
            return UpdateReport(strategy=self.extractor.name)
        extractions = [self.extractor.extract(r.text, r.meta, r.created_at) for r in records]
        with self._lock, self.store.sql.begin() as conn:
            affected = self._drop_provenance(conn, [r.id for r in records])
            added_nodes: list[Node] = []
            counts: dict[str, int] = defaultdict(int)
            by_ns: dict[str, list[tuple[MemoryRecord, Extraction]]] = defaultdict(list)
            for rec, ex in zip(records, extractions, strict=True):
                by_ns[namespace_of(rec.scope)].append((rec, ex))
            for ns, items in by_ns.items():
                added_nodes += self._fold(conn, ns, items, counts)
            removed = self._collect(conn, affected)
        self.store.changed()
        self.store.embed_nodes(added_nodes)
        strategies = sorted({ex.strategy for ex in extractions})
        return UpdateReport(len(records), len(added_nodes), counts["edges"], removed[0], removed[1],
                            counts["superseded"], "+".join(strategies))

    def remove_memories(self, memory_ids: Iterable[str]) -> UpdateReport:
        """Forget memories: drop their provenance and whatever only they supported."""
        ids = list(memory_ids)
        with self._lock, self.store.sql.begin() as conn:
            affected = self._drop_provenance(conn, ids)
            removed = self._collect(conn, affected)
        self.store.changed()
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
        self.store.drop_vectors(nodes)
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
            self.store.errors.append(f"{event}: {type(exc).__name__}: {exc}")
            log.warning("knowledge graph update failed (%s); run graph.sync(memory) to catch up", exc)

    def sync(self, memory: Any, scope: Scope | str | None = None) -> UpdateReport:
        """Reconcile with memory (long- and short-term): add what is missing, drop what was forgotten.

        With ``scope`` it only adds; it drops nothing while short-term memory cannot be read."""
        sc = Scope.of(scope) if scope is not None else None
        present = {r.id: r for r in memory.ltm.records(sc.where() if sc is not None else None)}
        agents = {sc.agent} if sc is not None else {ns.split("/")[0] for ns in self.store.namespaces()}
        stm_ok = True
        for agent in agents | {memory.default_scope.agent}:
            try:
                present.update({r.id: r for r in memory.stm.scan(agent) if sc is None or sc.contains(r.scope)})
            except Exception:  # Redis down: add from LTM, remove nothing
                stm_ok = False
        known = self.store.memory_ids()
        gone = sorted(known - set(present)) if sc is None and stm_ok else []
        missing = [present[i] for i in present if i not in known or i in self.pending]
        r1 = self.remove_memories(gone) if gone else UpdateReport()
        r2 = self.add_memories(missing) if missing else UpdateReport(strategy=self.extractor.name)
        self.pending.clear()
        return UpdateReport(len(missing) + len(gone), r2.nodes_added, r2.edges_added,
                            r1.nodes_removed + r2.nodes_removed, r1.edges_removed + r2.edges_removed,
                            r2.superseded, r2.strategy)
