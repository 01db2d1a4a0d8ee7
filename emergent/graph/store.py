"""``GraphStore``: the persistence of the knowledge graph, shared by its components.

SQL is the state of record (nodes, edges, aliases, provenance; the tables in
:mod:`emergent.graph.tables`); node label embeddings live in a LanceDB table beside it (derived
data: a failed write is reported in ``errors`` and rebuilt by :meth:`GraphStore.reindex`). The
builder, editor, inference, search, analysis and views receive this store; none of them holds
state of another. A change to the graph calls :meth:`GraphStore.changed`, which moves ``version``:
caches (the search index, communities) are stamped with the version they were computed at.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from emergent.errors import NotFoundError
from emergent.graph import _store as st
from emergent.graph.model import Edge, Node, namespace_of, normalise
from emergent.graph.tables import graph_aliases, graph_edges, graph_nodes, graph_provenance
from emergent.memory.types import Scope

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from emergent.providers.embeddings import Embedder
    from emergent.stores.lance import LanceStore
    from emergent.stores.sql import SQLStore

log = logging.getLogger(__name__)
VECTOR_TABLE = "graph_node_vectors"


class GraphStore:
    """Nodes, edges, aliases and provenance in ``sql``; node embeddings (``embedder``) in ``lance``."""

    def __init__(self, sql: SQLStore, lance: LanceStore | None = None, embedder: Embedder | None = None) -> None:
        self.sql = sql
        self.lance = lance
        self.embedder = embedder
        self.version = 0  # moves on every change of nodes or edges
        self.vectors_version = 0  # moves on every write of node embeddings
        self.errors: list[str] = []  # derived data that could not be updated (embeddings, memory events)

    def changed(self) -> None:
        """Nodes or edges changed: every cache stamped with an older ``version`` is stale."""
        self.version += 1

    # ================================================================== reads
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

    def nodes_by_id(self, ids: Sequence[str]) -> list[Node]:
        with self.sql.connect() as conn:
            return [Node.from_row(r) for r in st.select_in(conn, graph_nodes, "id", ids)]

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

    def memory_ids(self) -> set[str]:
        """Every memory the graph was built from."""
        with self.sql.connect() as conn:
            return {r[0] for r in conn.execute(sa.select(graph_provenance.c.memory_id).distinct())}

    def namespaces(self) -> list[str]:
        with self.sql.connect() as conn:
            return sorted(r[0] for r in conn.execute(sa.select(graph_nodes.c.namespace).distinct()))

    def first_seen_range(self) -> tuple[float, float] | None:
        """The earliest and latest ``first_seen`` of any node (None for an empty graph)."""
        with self.sql.connect() as conn:
            lo, hi = conn.execute(sa.select(sa.func.min(graph_nodes.c.first_seen),
                                            sa.func.max(graph_nodes.c.first_seen))).one()
        return None if lo is None or hi is None else (float(lo), float(hi))

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

    # ================================================================== node embeddings (LanceDB)
    def has_vectors(self) -> bool:
        """Whether node embeddings were written (no LanceDB or no table: search uses exact matches only)."""
        return self.lance is not None and VECTOR_TABLE in self.lance.table_names()

    def _vector_table(self) -> Any | None:
        if self.lance is None or self.embedder is None:
            return None
        import pyarrow as pa

        schema = pa.schema([pa.field("id", pa.string()), pa.field("namespace", pa.string()),
                            pa.field("label", pa.string()), pa.field("vector", pa.list_(pa.float32(), self.embedder.dim))])
        return self.lance.open_table(VECTOR_TABLE, schema, 1)

    def vectors_arrow(self) -> Any:
        """The node embedding table as a pyarrow Table (id, namespace, label, vector); call
        :meth:`has_vectors` first."""
        assert self.lance is not None
        return self.lance.db.open_table(VECTOR_TABLE).to_arrow()

    def vector_rows(self) -> list[dict[str, Any]]:
        """Every node embedding as a dict (empty when there are none)."""
        return self.vectors_arrow().to_pylist() if self.has_vectors() else []  # type: ignore[no-any-return]

    def nearest(self, vector: np.ndarray, scope: Scope | None, k: int) -> list[tuple[str, float]]:
        """(node id, cosine similarity) of the ``k`` node embeddings nearest ``vector`` within ``scope``."""
        import numpy as np

        if not self.has_vectors():
            return []
        assert self.lance is not None
        q: Any = self.lance.db.open_table(VECTOR_TABLE).search(np.asarray(vector, dtype=np.float32))
        q = q.distance_type("cosine")
        if scope is not None:
            cond = (f"namespace = '{scope.agent}' OR namespace LIKE '{scope.agent}/%'" if scope.user is None
                    else f"namespace = '{Scope(scope.agent, scope.user).key}'")
            q = q.where(cond, prefilter=True)
        rows = q.select(["id", "_distance"]).limit(k).to_arrow().to_pylist()
        return [(r["id"], 1.0 - float(r["_distance"])) for r in rows]

    def embed_nodes(self, nodes: Sequence[Node]) -> None:
        table = self._vector_table()
        if table is None or not nodes:
            return
        try:
            assert self.embedder is not None
            vectors = self.embedder.embed([n.label[:500] for n in nodes])
            table.add([{"id": n.id, "namespace": n.namespace, "label": n.label[:500], "vector": v}
                       for n, v in zip(nodes, vectors, strict=True)])
            self.vectors_version += 1
        except Exception as exc:  # embeddings are derived data: search falls back to exact matches
            self.errors.append(f"embedding: {exc}")
            log.warning("node embeddings were not written (%s); run graph.reindex() to rebuild", exc)

    def drop_vectors(self, ids: Sequence[str]) -> None:
        table = self._vector_table() if ids else None
        if table is not None:
            for part in st.chunks(list(ids)):
                table.delete("id IN (" + ", ".join("'" + i + "'" for i in part) + ")")
            self.vectors_version += 1

    def reindex(self) -> int:
        """Rebuild every node embedding from the SQL labels."""
        if self.lance is None or self.embedder is None:
            return 0
        if VECTOR_TABLE in self.lance.table_names():
            self.lance.db.drop_table(VECTOR_TABLE)
        nodes = self.nodes()
        for part in st.chunks(nodes, 2000):
            self.embed_nodes(part)
        return len(nodes)
