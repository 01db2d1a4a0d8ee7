"""graph: nodes, aliases, edges, provenance, merges and the edit log

Revision ID: graph_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "graph_0001"
down_revision = None
branch_labels = ("graph",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "graph_nodes",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("namespace", sa.String(300), nullable=False, index=True),
        sa.Column("label", sa.Text, nullable=False),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("merged_into", sa.String(40), nullable=True),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("first_seen", sa.Float, nullable=False),
        sa.Column("attrs", sa.Text, nullable=False),
    )
    op.create_table(
        "graph_aliases",
        sa.Column("namespace", sa.String(300), primary_key=True),
        sa.Column("key", sa.String(240), primary_key=True),
        sa.Column("node_id", sa.String(40), nullable=False, index=True),
        sa.Column("alias", sa.Text, nullable=False),
    )
    op.create_table(
        "graph_edges",
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
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("origin", sa.String(16), nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "graph_provenance",
        sa.Column("item_id", sa.String(40), primary_key=True),
        sa.Column("memory_id", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )
    op.create_index("ix_graph_provenance_memory", "graph_provenance", ["memory_id"])
    op.create_table(
        "graph_merges",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("target", sa.String(40), nullable=False, index=True),
        sa.Column("sources", sa.Text, nullable=False),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("edit_seq", sa.Integer, nullable=True),
        sa.Column("undone", sa.Boolean, nullable=False),
    )
    op.create_table(
        "graph_edits",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("op", sa.String(32), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("before", sa.Text, nullable=False),
        sa.Column("after", sa.Text, nullable=False),
        sa.Column("undone", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    for name in ("graph_edits", "graph_merges", "graph_provenance", "graph_edges", "graph_aliases", "graph_nodes"):
        op.drop_table(name)
