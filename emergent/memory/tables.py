"""SQL tables of the memory capability (created by the ``memory`` Alembic branch)."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

memory_ops = sa.Table(
    "memory_ops",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("op", sa.String(32), nullable=False),
    sa.Column("scope", sa.String(400), nullable=False),
    sa.Column("count", sa.Integer, nullable=False, default=0),
    sa.Column("latency_ms", sa.Float, nullable=False),
    sa.Column("hit", sa.Boolean, nullable=True),
    sa.Column("detail", sa.Text, nullable=True),
)

backups = sa.Table(
    "backups",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("size_bytes", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("memories", sa.Integer, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
)
