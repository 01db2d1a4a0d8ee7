"""SQL tables of the jobs branch (migration ``jobs_0001``)."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

jobs = sa.Table(
    "jobs", metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("paused", sa.Boolean, nullable=False, default=False),
    sa.Column("next_run_at", sa.Float, nullable=True, index=True),
    sa.Column("lease_owner", sa.String(200), nullable=True),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
)

job_runs = sa.Table(
    "job_runs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job", sa.String(100), nullable=False, index=True),
    sa.Column("slot", sa.Float, nullable=False),
    sa.Column("attempt", sa.Integer, nullable=False),
    sa.Column("trigger", sa.String(32), nullable=False),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("lease_until", sa.Float, nullable=True),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("parameters", sa.Text, nullable=False),
    sa.Column("output_path", sa.Text, nullable=True),
    sa.Column("outputs", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("error_cell", sa.Integer, nullable=True),
    sa.Column("error_name", sa.String(200), nullable=True),
    sa.UniqueConstraint("job", "slot", "attempt", name="uq_job_runs_slot_attempt"),
)
