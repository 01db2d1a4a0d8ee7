"""retention: retention policies per memory kind and scope, the erasure ledger, erased ids and backup marks

Revision ID: retention_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "retention_0001"
down_revision = None
branch_labels = ("retention",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "retention_policies",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("scope", sa.String(400), nullable=False),
        sa.Column("max_age_days", sa.Float, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.UniqueConstraint("kind", "scope", name="uq_retention_policy"),
    )
    op.create_table(
        "retention_erasures",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("op", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False, index=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("selector", sa.Text, nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("ids_sha256", sa.String(64), nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_table(
        "retention_erased_ids",
        sa.Column("erasure_id", sa.String(32), primary_key=True),
        sa.Column("memory_id", sa.String(64), primary_key=True),
    )
    op.create_table(
        "retention_backup_marks",
        sa.Column("backup_id", sa.String(64), primary_key=True),
        sa.Column("erasure_id", sa.String(32), primary_key=True),
        sa.Column("holds", sa.Boolean, nullable=False),
        sa.Column("marked_at", sa.Float, nullable=False),
        sa.Column("archive_sha256", sa.String(64), nullable=True),
    )


def downgrade() -> None:
    for name in ("retention_backup_marks", "retention_erased_ids", "retention_erasures", "retention_policies"):
        op.drop_table(name)
