"""SQL tables of the assistant branch (migration ``assistant_0001``): runs and their checkpoints."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

assistant_runs = sa.Table(
    "assistant_runs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("assistant", sa.String(64), nullable=False, index=True),
    sa.Column("principal", sa.String(100), nullable=False),
    sa.Column("asked_by", sa.String(100), nullable=False),
    sa.Column("status", sa.String(24), nullable=False, index=True),
    sa.Column("stop_reason", sa.String(24), nullable=True),
    sa.Column("mode", sa.String(160), nullable=False),
    sa.Column("question", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, nullable=True),
    sa.Column("pending_approval", sa.String(40), nullable=True, index=True),
    sa.Column("state", sa.Text, nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)
