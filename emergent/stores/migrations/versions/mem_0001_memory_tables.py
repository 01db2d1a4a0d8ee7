"""memory: operation log and backup catalogue

Revision ID: mem_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "mem_0001"
down_revision = None
branch_labels = ("memory",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "memory_ops",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("op", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(400), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("hit", sa.Boolean, nullable=True),
        sa.Column("detail", sa.Text, nullable=True),
    )
    op.create_table(
        "backups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("memories", sa.Integer, nullable=False),
        sa.Column("note", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("backups")
    op.drop_table("memory_ops")
