"""Synthetic graphs for benchmarks and scale tests: a preferential-attachment-like random graph
written straight to the graph tables (no extraction), or returned as plain lists."""

from __future__ import annotations

from typing import Any

import numpy as np

from emergent.graph.model import Edge, Node, edge_id, node_id


def random_graph(n: int, degree: int = 4, *, seed: int = 0, namespace: str = "bench") -> tuple[list[str], list[tuple[str, str, float]]]:
    """``n`` node ids and about ``n * degree / 2`` weighted edges; endpoints skewed towards early nodes."""
    rng = np.random.default_rng(seed)
    ids = [node_id(namespace, f"entity {i}") for i in range(n)]
    m = max(1, n * degree // 2)
    a = rng.integers(0, n, m)
    b = (rng.pareto(1.2, m) * 10).astype(np.int64) % n  # hubs: a few nodes collect many edges
    w = rng.uniform(0.3, 1.0, m).astype(np.float32)
    keep = a != b
    return ids, [(ids[x], ids[y], float(z)) for x, y, z in zip(a[keep], b[keep], w[keep], strict=True)]


def load_random_graph(kg: Any, n: int, degree: int = 4, *, seed: int = 0, namespace: str = "bench") -> int:
    """Write a random graph of ``n`` nodes into ``kg``'s tables in bulk; returns the edge count."""
    from emergent.graph._store import bulk_insert
    from emergent.graph.tables import graph_aliases, graph_edges, graph_nodes

    ids, edges = random_graph(n, degree, seed=seed, namespace=namespace)
    now = kg.clock.now()
    nodes = [Node(nid, namespace, f"Entity {i}", "entity", 0.5, origin="synthetic", created_at=now,
                  first_seen=now - (n - i)).row() for i, nid in enumerate(ids)]
    seen: set[str] = set()
    rows = []
    for a, b, w in edges:
        eid = edge_id(namespace, a, "related_to", b)
        if eid not in seen:
            seen.add(eid)
            rows.append(Edge(eid, namespace, a, b, "related_to", w, 1.0, None, None, origin="synthetic",
                             created_at=now).row())
    nodes.sort(key=lambda r: r["id"])
    rows.sort(key=lambda r: r["id"])
    with kg.store.sql.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA cache_size=-262144")  # 256 MB: random-key index inserts stay in memory
        for i in range(0, n, 20_000):
            bulk_insert(conn, graph_nodes, nodes[i:i + 20_000])
            bulk_insert(conn, graph_aliases, [{"namespace": namespace, "key": f"entity {j}", "node_id": ids[j],
                                                   "alias": f"Entity {j}"} for j in range(i, min(n, i + 20_000))])
        for i in range(0, len(rows), 20_000):
            bulk_insert(conn, graph_edges, rows[i:i + 20_000])
    kg.store.changed()
    return len(rows)
