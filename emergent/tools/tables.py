"""SQL tables of the tools capability (created by the ``tools`` Alembic branch)."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

tool_versions = sa.Table(
    "tool_versions",
    metadata,
    sa.Column("name", sa.String(200), primary_key=True),
    sa.Column("version", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("side_effect", sa.String(16), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("source", sa.String(400), nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False),
    sa.Column("deprecated", sa.Boolean, nullable=False),
    sa.Column("successor", sa.String(264), nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("registered_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

tool_calls = sa.Table(
    "tool_calls",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("call_id", sa.String(40), nullable=False),
    sa.Column("tool", sa.String(200), nullable=False, index=True),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False),
    sa.Column("error_class", sa.String(120), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
)
