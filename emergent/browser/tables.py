"""SQL tables of the browser branch (migration ``browser_0001``): saved scripts and extraction
templates (versioned, one row per version) and replay runs."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

#: scripts and extraction templates, one row per (kind, name, version); status active | proposed | rejected
browser_artifacts = sa.Table(
    "browser_artifacts", metadata,
    sa.Column("kind", sa.String(16), primary_key=True),  # script | template
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("version", sa.String(40), primary_key=True),
    sa.Column("body", sa.Text, nullable=False),  # the model as JSON
    sa.Column("digest", sa.String(40), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_by", sa.String(100), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
)

#: one row per replay: who ran which version, how it went, what it healed, where its trace is
browser_runs = sa.Table(
    "browser_runs", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("script", sa.String(100), nullable=False, index=True),
    sa.Column("version", sa.String(40), nullable=False),
    sa.Column("principal", sa.String(100), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("healed", sa.Integer, nullable=False),
    sa.Column("proposed_version", sa.String(40), nullable=True),
    sa.Column("trace", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("result", sa.Text, nullable=True),  # the ReplayResult as JSON
    sa.Column("started_at", sa.Float, nullable=False, index=True),
    sa.Column("finished_at", sa.Float, nullable=True),
)
