"""SQL tables of retention and right-to-erasure (migration ``retention_0001``).

``retention_policies``: how long memories of a kind in a scope are kept. ``retention_erasures``: the
ledger of erasures and purges (who, when, why, how many; never text). ``retention_erased_ids``: the
ids each erasure removed (a restore re-purges them from an older backup). ``retention_backup_marks``:
per erasure, each backup that existed then and may hold what it erased (``holds``), or provably not.
A workspace restore keeps all four as they are now (emergent.workspace.backup)."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

retention_policies = sa.Table(
    "retention_policies", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("kind", sa.String(16), nullable=False),  # episodic | semantic | procedural | *
    sa.Column("scope", sa.String(400), nullable=False),  # agent[/user[/session]] or *
    sa.Column("max_age_days", sa.Float, nullable=False),
    sa.Column("note", sa.Text, nullable=True),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.UniqueConstraint("kind", "scope", name="uq_retention_policy"),
)

retention_erasures = sa.Table(
    "retention_erasures", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("op", sa.String(16), nullable=False),  # erase | purge
    sa.Column("started_at", sa.Float, nullable=False, index=True),
    sa.Column("finished_at", sa.Float, nullable=True),
    sa.Column("status", sa.String(16), nullable=False),  # started | done | failed
    sa.Column("by", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text, nullable=True),
    sa.Column("selector", sa.Text, nullable=False),  # JSON: {"by": ids|user|scope|policies, ...}; subjects hashed
    sa.Column("count", sa.Integer, nullable=False, default=0),
    sa.Column("ids_sha256", sa.String(64), nullable=True),
    sa.Column("detail", sa.Text, nullable=True),  # JSON counts
)

retention_erased_ids = sa.Table(
    "retention_erased_ids", metadata,
    sa.Column("erasure_id", sa.String(32), primary_key=True),
    sa.Column("memory_id", sa.String(64), primary_key=True),
)

retention_backup_marks = sa.Table(
    "retention_backup_marks", metadata,
    sa.Column("backup_id", sa.String(64), primary_key=True),
    sa.Column("erasure_id", sa.String(32), primary_key=True),
    sa.Column("holds", sa.Boolean, nullable=False),
    sa.Column("marked_at", sa.Float, nullable=False),
    sa.Column("archive_sha256", sa.String(64), nullable=True),
)

TABLES = (retention_policies.name, retention_erasures.name, retention_erased_ids.name, retention_backup_marks.name)
