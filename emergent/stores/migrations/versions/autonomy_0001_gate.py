"""autonomy: permission rules, overrides, state, approvals queue and the audit hash chain

Revision ID: autonomy_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "autonomy_0001"
down_revision = None
branch_labels = ("autonomy",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_rules",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("resource", sa.String(400), nullable=False),
        sa.Column("effect", sa.String(8), nullable=False),
        sa.Column("side_effects", sa.String(100), nullable=True),
        sa.Column("min_cost", sa.Float, nullable=True),
        sa.Column("max_cost", sa.Float, nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "autonomy_overrides",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("tool", sa.String(200), nullable=False),
        sa.Column("resource", sa.String(400), nullable=False),
        sa.Column("effect", sa.String(8), nullable=False),
        sa.Column("expires_at", sa.Float, nullable=True),
        sa.Column("by", sa.String(200), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "autonomy_state",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    op.create_table(
        "approvals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("status", sa.String(16), nullable=False, index=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("tool", sa.String(264), nullable=False),
        sa.Column("args", sa.Text, nullable=False),
        sa.Column("resource", sa.Text, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("confidence", sa.Float, nullable=True),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", sa.Float, nullable=True),
        sa.Column("decision_reason", sa.Text, nullable=True),
    )
    op.create_table(
        "audit_log",
        sa.Column("seq", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("at", sa.Float, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("data", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )


def downgrade() -> None:
    for name in ("audit_log", "approvals", "autonomy_state", "autonomy_overrides", "policy_rules"):
        op.drop_table(name)
