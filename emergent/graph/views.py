"""Views of the graph: networkx (whole, point-in-time, scoped), neighbourhoods and overviews that
stay cheap on very large graphs, and GraphML/JSON export."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from emergent.clock import to_epoch
from emergent.graph import _store as st
from emergent.graph.model import Edge, Node, visible
from emergent.graph.tables import graph_edges, graph_nodes
from emergent.memory.types import Scope

if TYPE_CHECKING:  # pragma: no cover
    from emergent.clock import Clock
    from emergent.graph.store import GraphStore


class GraphViews:
    """networkx views and exports of ``store``'s graph (``clock``: what "now" is)."""

    def __init__(self, store: GraphStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def to_networkx(self, *, at: Any = None, namespace: str | None = None, scope: Scope | str | None = None,
                    inferred: bool = True, proposed: bool = False) -> Any:
        """A ``networkx.MultiDiGraph`` of active nodes and edges: all of history, or what held at ``at``
        (an epoch, datetime, ISO string or ``"now"``)."""
        import networkx as nx

        t = self.clock.now() if at == "now" else to_epoch(at, 0.0) if at is not None else None
        sc = Scope.of(scope) if scope is not None else None
        g = nx.MultiDiGraph()
        for n in self.store.nodes(namespace):
            if (t is None or n.first_seen <= t) and (sc is None or visible(n.namespace, sc)):
                g.add_node(n.id, label=n.label, type=n.type, confidence=n.confidence, namespace=n.namespace,
                           first_seen=n.first_seen, origin=n.origin)
        statuses = ("active", "proposed") if proposed else ("active",)
        for s in statuses:
            for e in self.store.edges(status=s, namespace=namespace):
                if e.src in g and e.dst in g and (inferred or not e.inferred) and (t is None or e.valid_at(t)):
                    g.add_edge(e.src, e.dst, key=e.id, rel=e.rel, confidence=e.confidence, weight=e.weight,
                               valid_from=e.valid_from, valid_to=e.valid_to, inferred=e.inferred, status=e.status)
        return g

    def export_json(self, path: str | Path | None = None, **view: Any) -> dict[str, Any]:
        import networkx as nx

        data = nx.node_link_data(self.to_networkx(**view), edges="edges")
        data["graph"] = {"exported_at": self.clock.now(), "version": self.store.version}
        if path is not None:
            Path(path).write_text(json.dumps(data, ensure_ascii=False, default=str), "utf-8")
        return data

    def export_graphml(self, path: str | Path, **view: Any) -> Path:
        import networkx as nx

        g = self.to_networkx(**view)
        for _, d in g.nodes(data=True):
            for k in [k for k, v in d.items() if v is None]:
                del d[k]
        for _, _, d in g.edges(data=True):
            for k in [k for k, v in d.items() if v is None]:
                d[k] = math.nan if k.startswith("valid") else ""
        nx.write_graphml(g, str(path))
        return Path(path)

    @staticmethod
    def _add(g: Any, nodes: list[Node], edges: list[Edge], t: float | None, inferred: bool) -> Any:
        for n in nodes:
            if n.status == "active" and (t is None or n.first_seen <= t):
                g.add_node(n.id, label=n.label, type=n.type, confidence=n.confidence, namespace=n.namespace,
                           first_seen=n.first_seen, origin=n.origin)
        for e in edges:
            if (e.status in ("active", "proposed") and e.src in g and e.dst in g and (inferred or not e.inferred)
                    and (t is None or e.valid_at(t))):
                g.add_edge(e.src, e.dst, key=e.id, rel=e.rel, confidence=e.confidence, weight=e.weight,
                           valid_from=e.valid_from, valid_to=e.valid_to, inferred=e.inferred, status=e.status)
        return g

    def neighbourhood(self, seeds: list[str], *, depth: int = 1, at: Any = None, limit: int = 2000,
                      inferred: bool = True) -> Any:
        """The ``depth``-hop neighbourhood of ``seeds`` (at most ``limit`` nodes), read from SQL directly."""
        import networkx as nx

        t = to_epoch(at, 0.0) if at is not None else None
        seen = list(dict.fromkeys(seeds))
        frontier = list(seen)
        edges: dict[str, Edge] = {}
        with self.store.sql.connect() as conn:
            for _ in range(max(0, depth)):
                if not frontier or len(seen) >= limit:
                    break
                rows = st.select_in(conn, graph_edges, "src", frontier) + st.select_in(conn, graph_edges, "dst", frontier)
                nxt = []
                for r in rows:
                    e = Edge.from_row(r)
                    if e.status not in ("active", "proposed") or (t is not None and not e.valid_at(t)):
                        continue
                    for x in (e.src, e.dst):
                        if x not in seen and len(seen) < limit:
                            seen.append(x)
                            nxt.append(x)
                    edges[e.id] = e
                frontier = nxt
            nodes = [Node.from_row(r) for r in st.select_in(conn, graph_nodes, "id", seen)]
        return self._add(nx.MultiDiGraph(), nodes, list(edges.values()), t, inferred)

    def overview(self, *, limit: int = 300, namespace: str | None = None, at: Any = None) -> Any:
        """The ``limit`` best-connected nodes and the edges among them (an SQL aggregate, no full load)."""
        import networkx as nx

        t = to_epoch(at, 0.0) if at is not None else None
        e = graph_edges
        live = e.c.status == "active"
        if namespace is not None:
            live = sa.and_(live, e.c.namespace == namespace)
        ends = sa.union_all(sa.select(e.c.src.label("n")).where(live), sa.select(e.c.dst.label("n")).where(live)).subquery()
        q = sa.select(ends.c.n, sa.func.count().label("d")).group_by(ends.c.n).order_by(sa.desc("d")).limit(limit)
        with self.store.sql.connect() as conn:
            ids = [r[0] for r in conn.execute(q)]
            if len(ids) < limit:
                extra = sa.select(graph_nodes.c.id).where(graph_nodes.c.status == "active")
                if namespace is not None:
                    extra = extra.where(graph_nodes.c.namespace == namespace)
                ids += [r[0] for r in conn.execute(extra.limit(limit - len(ids) + len(ids)))
                        if r[0] not in set(ids)][: limit - len(ids)]
            nodes = [Node.from_row(r) for r in st.select_in(conn, graph_nodes, "id", ids)]
            chosen = set(ids)
            edges = [Edge.from_row(r) for r in st.select_in(conn, graph_edges, "src", ids) if r.dst in chosen]
        return self._add(nx.MultiDiGraph(), nodes, edges, t, True)
