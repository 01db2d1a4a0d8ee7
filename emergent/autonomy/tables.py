"""SQL tables of the autonomy gate (created by the ``autonomy`` Alembic branch)."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

policy_rules = sa.Table(
    "policy_rules",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("tool", sa.String(200), nullable=False),
    sa.Column("resource", sa.String(400), nullable=False),
    sa.Column("effect", sa.String(8), nullable=False),
    sa.Column("side_effects", sa.String(100), nullable=True),
    sa.Column("min_cost", sa.Float, nullable=True),
    sa.Column("max_cost", sa.Float, nullable=True),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

overrides = sa.Table(
    "autonomy_overrides",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("subject", sa.String(200), nullable=False),
    sa.Column("tool", sa.String(200), nullable=False),
    sa.Column("resource", sa.String(400), nullable=False),
    sa.Column("effect", sa.String(8), nullable=False),
    sa.Column("expires_at", sa.Float, nullable=True),
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

state = sa.Table(
    "autonomy_state",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

approvals = sa.Table(
    "approvals",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("expires_at", sa.Float, nullable=False),
    sa.Column("status", sa.String(16), nullable=False, index=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("tool", sa.String(264), nullable=False),
    sa.Column("args", sa.Text, nullable=False),
    sa.Column("resource", sa.Text, nullable=True),
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("confidence", sa.Float, nullable=True),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("decided_at", sa.Float, nullable=True),
    sa.Column("decision_reason", sa.Text, nullable=True),
    sa.Column("digest", sa.String(64), nullable=True),
    sa.Column("files", sa.Text, nullable=True),
    sa.Column("consumed_at", sa.Float, nullable=True),
    sa.Column("consumed_by", sa.String(64), nullable=True),
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("data", sa.Text, nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False),
    sa.Column("hash", sa.String(64), nullable=False),
)

principals = sa.Table(
    "principals",
    metadata,
    sa.Column("key", sa.String(80), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("id", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(80), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("roles", sa.Text, nullable=False),
)
