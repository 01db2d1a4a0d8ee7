"""assistant: runs of the assistant with their checkpoints (paused for approval, resumable)

Revision ID: assistant_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "assistant_0001"
down_revision = None
branch_labels = ("assistant",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "assistant_runs",
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


def downgrade() -> None:
    op.drop_table("assistant_runs")
