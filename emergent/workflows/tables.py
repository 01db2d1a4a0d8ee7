"""SQL tables of the workflows branch (migration ``workflows_0001``): runs, their steps, saved workflows."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

workflow_runs = sa.Table(
    "workflow_runs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("workflow", sa.String(100), nullable=False, index=True),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("inputs", sa.Text, nullable=False),
    sa.Column("status", sa.String(24), nullable=False, index=True),
    sa.Column("principal", sa.String(100), nullable=False),
    sa.Column("parent", sa.String(40), nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("outputs", sa.Text, nullable=True),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False, index=True),
    sa.Column("updated_at", sa.Float, nullable=False),
)

workflow_steps = sa.Table(
    "workflow_steps", metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("key", sa.String(120), primary_key=True),
    sa.Column("step_id", sa.String(100), nullable=False),
    sa.Column("status", sa.String(24), nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("output", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("approval_id", sa.String(40), nullable=True),
    sa.Column("seq", sa.Integer, nullable=True),
    sa.Column("started_at", sa.Float, nullable=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sqlite_with_rowid=False,  # one b-tree per row written (the key), not two: rows are written per step
)

#: workflows saved by name (``Workflows.register``): sub-workflows and templates refer to them
workflow_defs = sa.Table(
    "workflow_defs", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("registered_by", sa.String(100), nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)
