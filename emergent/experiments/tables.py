"""SQL tables of the experiments capability (created by the ``experiments`` Alembic branch)."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

config_versions = sa.Table(
    "config_versions",
    metadata,
    sa.Column("id", sa.String(160), primary_key=True),
    sa.Column("namespace", sa.String(120), nullable=False, index=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("values", sa.JSON, nullable=False),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("parent_id", sa.String(160), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.UniqueConstraint("namespace", "version", name="uq_config_versions_ns_version"),
)

config_current = sa.Table(
    "config_current",
    metadata,
    sa.Column("namespace", sa.String(120), primary_key=True),
    sa.Column("version_id", sa.String(160), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("updated_by", sa.String(200), nullable=False),
)

config_events = sa.Table(
    "config_events",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False, index=True),
    sa.Column("namespace", sa.String(120), nullable=False, index=True),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_version", sa.String(160), nullable=True),
    sa.Column("to_version", sa.String(160), nullable=True),
    sa.Column("actor", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
)

experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("namespace", sa.String(120), nullable=False, index=True),
    sa.Column("control_version", sa.String(160), nullable=False),
    sa.Column("candidate_version", sa.String(160), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("metric", sa.String(120), nullable=False),
    sa.Column("status", sa.String(32), nullable=False, index=True),
    sa.Column("decision", sa.String(32), nullable=True),
    sa.Column("design", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("proposal_id", sa.String(64), nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("approval_id", sa.String(40), nullable=True),  # experiments_0002: the adoption's approval
)

experiment_observations = sa.Table(
    "experiment_observations",
    metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("experiment_id", sa.String(64), nullable=False, index=True),
    sa.Column("unit", sa.String(200), nullable=False),
    sa.Column("arm", sa.String(16), nullable=False),
    sa.Column("value", sa.Float, nullable=True),
    sa.Column("guardrails", sa.JSON, nullable=True),
    sa.Column("at", sa.Float, nullable=False),
)

improvement_cycles = sa.Table(
    "improvement_cycles",
    metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("started_at", sa.Float, nullable=False, index=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("namespace", sa.String(120), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("decision", sa.String(32), nullable=True),
    sa.Column("report", sa.JSON, nullable=True),
)
