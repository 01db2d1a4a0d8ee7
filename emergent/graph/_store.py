"""Low-level SQL helpers of the graph: chunked lookups, row snapshots for undo, and restores."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from emergent.graph.tables import ITEM_TABLES, graph_aliases, graph_edges, graph_nodes, graph_provenance

CHUNK = 500


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def select_in(conn: Connection, table: sa.Table, column: str, values: Iterable[Any], *extra: Any) -> list[Any]:
    """Rows of ``table`` whose ``column`` is in ``values`` (chunked so any number of values works)."""
    values = list(dict.fromkeys(values))
    out: list[Any] = []
    for part in chunks(values):
        out += conn.execute(sa.select(table).where(table.c[column].in_(part), *extra)).all()
    return out


def delete_in(conn: Connection, table: sa.Table, column: str, values: Iterable[Any]) -> int:
    values = list(dict.fromkeys(values))
    n = 0
    for part in chunks(values):
        n += conn.execute(sa.delete(table).where(table.c[column].in_(part))).rowcount or 0
    return n


def snapshot(conn: Connection, nodes: Iterable[str] = (), edges: Iterable[str] = (),
             alias_nodes: Iterable[str] = (), prov_items: Iterable[str] = ()) -> dict[str, list[dict[str, Any]]]:
    """The current rows behind the given ids, as JSON-friendly dicts (the before/after of an edit)."""
    return {
        "nodes": [dict(r._mapping) for r in select_in(conn, graph_nodes, "id", nodes)],
        "edges": [dict(r._mapping) for r in select_in(conn, graph_edges, "id", edges)],
        "aliases": [dict(r._mapping) for r in select_in(conn, graph_aliases, "node_id", alias_nodes)],
        "provenance": [dict(r._mapping) for r in select_in(conn, graph_provenance, "item_id", prov_items)],
    }


def scope_of(snap: dict[str, list[dict[str, Any]]]) -> dict[str, list[str]]:
    """Which ids a snapshot covers (kept beside it so an empty 'before' still says what to delete)."""
    return {"nodes": [r["id"] for r in snap["nodes"]], "edges": [r["id"] for r in snap["edges"]],
            "aliases": sorted({r["node_id"] for r in snap["aliases"]}),
            "provenance": sorted({r["item_id"] for r in snap["provenance"]})}


def restore(conn: Connection, covered: dict[str, list[str]], rows: dict[str, list[dict[str, Any]]]) -> None:
    """Make the rows under ``covered`` exactly ``rows``: delete what is there, insert the snapshot."""
    delete_in(conn, graph_nodes, "id", covered.get("nodes", []))
    delete_in(conn, graph_edges, "id", covered.get("edges", []))
    delete_in(conn, graph_aliases, "node_id", covered.get("aliases", []))
    delete_in(conn, graph_provenance, "item_id", covered.get("provenance", []))
    for name, table in ITEM_TABLES.items():
        if rows.get(name):
            if name == "aliases":  # an alias key may have moved to another node meanwhile
                keys = [(r["namespace"], r["key"]) for r in rows[name]]
                for ns, key in keys:
                    conn.execute(sa.delete(table).where(table.c.namespace == ns, table.c.key == key))
            conn.execute(table.insert(), rows[name])


def canonical(snap: dict[str, list[dict[str, Any]]]) -> dict[str, list[tuple[Any, ...]]]:
    """An order-free, comparable form of a snapshot."""
    return {k: sorted(tuple(sorted((kk, str(vv)) for kk, vv in r.items())) for r in v) for k, v in snap.items()}


def bulk_insert(conn: Connection, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
    """executemany straight on the driver: the same rows as ``conn.execute(table.insert(), rows)``,
    several times faster for large batches (no per-row parameter processing)."""
    if not rows:
        return
    compiled = table.insert().values({c: sa.bindparam(c) for c in rows[0]}).compile(dialect=conn.dialect)
    order = compiled.positiontup
    if order is None:  # a named paramstyle
        conn.exec_driver_sql(str(compiled), [dict(r) for r in rows])
        return
    conn.exec_driver_sql(str(compiled), [tuple(r[k] for k in order) for r in rows])
