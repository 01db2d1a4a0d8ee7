"""SQL tables of the proposals capability (created by the ``proposals`` Alembic branch)."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

proposals = sa.Table(
    "proposals",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("fingerprint", sa.String(64), nullable=False, index=True),
    sa.Column("title", sa.String(300), nullable=False),
    sa.Column("rationale", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("target", sa.String(200), nullable=False),
    sa.Column("change", sa.JSON, nullable=False),
    sa.Column("evidence", sa.JSON, nullable=False),
    sa.Column("impact", sa.JSON, nullable=True),
    sa.Column("expected", sa.JSON, nullable=True),
    sa.Column("risk", sa.String(16), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("strategy", sa.String(120), nullable=False),
    sa.Column("diff", sa.Text, nullable=True),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("approval_id", sa.String(40), nullable=True),
    sa.Column("experiment_id", sa.String(64), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("decided_at", sa.Float, nullable=True),
    sa.Column("decided_by", sa.String(200), nullable=True),
    sa.Column("reason", sa.Text, nullable=True),
)

proposal_events = sa.Table(
    "proposal_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("proposal_id", sa.String(32), nullable=False, index=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("from_status", sa.String(20), nullable=True),
    sa.Column("to_status", sa.String(20), nullable=False),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
)
