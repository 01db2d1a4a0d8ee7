"""SQL tables of the knowledge graph (created by the ``graph`` Alembic branch).

Nodes, edges and provenance are the state of record; aliases make entity lookup an index probe;
merges and edits are append-only logs (a merge or an edit is undone by a later row, never erased).
"""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

graph_nodes = sa.Table(
    "graph_nodes", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("namespace", sa.String(300), nullable=False, index=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # active | merged | deleted
    sa.Column("merged_into", sa.String(40), nullable=True),
    sa.Column("origin", sa.String(16), nullable=False),  # rules | llm | manual
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("first_seen", sa.Float, nullable=False),
    sa.Column("attrs", sa.Text, nullable=False),
)

graph_aliases = sa.Table(
    "graph_aliases", metadata,
    sa.Column("namespace", sa.String(300), primary_key=True),
    sa.Column("key", sa.String(240), primary_key=True),
    sa.Column("node_id", sa.String(40), nullable=False, index=True),
    sa.Column("alias", sa.Text, nullable=False),
)

graph_edges = sa.Table(
    "graph_edges", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("namespace", sa.String(300), nullable=False, index=True),
    sa.Column("src", sa.String(40), nullable=False, index=True),
    sa.Column("dst", sa.String(40), nullable=False, index=True),
    sa.Column("rel", sa.String(64), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("weight", sa.Float, nullable=False),
    sa.Column("valid_from", sa.Float, nullable=True),
    sa.Column("valid_to", sa.Float, nullable=True),
    sa.Column("inferred", sa.Boolean, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),  # active | proposed | rejected | deleted
    sa.Column("origin", sa.String(16), nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

graph_provenance = sa.Table(
    "graph_provenance", metadata,
    sa.Column("item_id", sa.String(40), primary_key=True),
    sa.Column("memory_id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(8), nullable=False),  # node | edge
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("ix_graph_provenance_memory", "memory_id"),
)

graph_merges = sa.Table(
    "graph_merges", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("target", sa.String(40), nullable=False, index=True),
    sa.Column("sources", sa.Text, nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("edit_seq", sa.Integer, nullable=True),
    sa.Column("undone", sa.Boolean, nullable=False),
)

graph_edits = sa.Table(
    "graph_edits", metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("actor", sa.String(120), nullable=False),
    sa.Column("op", sa.String(32), nullable=False),
    sa.Column("summary", sa.Text, nullable=False),
    sa.Column("before", sa.Text, nullable=False),
    sa.Column("after", sa.Text, nullable=False),
    sa.Column("undone", sa.Boolean, nullable=False),
)

ITEM_TABLES = {"nodes": graph_nodes, "edges": graph_edges, "aliases": graph_aliases, "provenance": graph_provenance}
