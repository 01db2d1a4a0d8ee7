"""tools: versions of every tool and call telemetry

Revision ID: tools_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "tools_0001"
down_revision = None
branch_labels = ("tools",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tool_versions",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("side_effect", sa.String(16), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("source", sa.String(400), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("deprecated", sa.Boolean, nullable=False),
        sa.Column("successor", sa.String(264), nullable=True),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("registered_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "tool_calls",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.Float, nullable=False, index=True),
        sa.Column("call_id", sa.String(40), nullable=False),
        sa.Column("tool", sa.String(200), nullable=False, index=True),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error_class", sa.String(120), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("tool_calls")
    op.drop_table("tool_versions")
