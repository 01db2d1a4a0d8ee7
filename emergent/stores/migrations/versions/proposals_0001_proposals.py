"""proposals: proposals and their lifecycle events

Revision ID: proposals_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "proposals_0001"
down_revision = None
branch_labels = ("proposals",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "proposals",
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
    op.create_table(
        "proposal_events",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("proposal_id", sa.String(32), nullable=False, index=True),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("from_status", sa.String(20), nullable=True),
        sa.Column("to_status", sa.String(20), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("proposal_events")
    op.drop_table("proposals")
