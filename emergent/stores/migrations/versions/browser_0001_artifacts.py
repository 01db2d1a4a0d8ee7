"""browser: saved scripts and extraction templates (versioned), replay runs

Revision ID: browser_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "browser_0001"
down_revision = None
branch_labels = ("browser",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "browser_artifacts",
        sa.Column("kind", sa.String(16), primary_key=True),
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.String(40), primary_key=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("digest", sa.String(40), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("note", sa.Text, nullable=True),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "browser_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("script", sa.String(100), nullable=False, index=True),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("principal", sa.String(100), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("healed", sa.Integer, nullable=False),
        sa.Column("proposed_version", sa.String(40), nullable=True),
        sa.Column("trace", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("result", sa.Text, nullable=True),
        sa.Column("started_at", sa.Float, nullable=False, index=True),
        sa.Column("finished_at", sa.Float, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("browser_runs")
    op.drop_table("browser_artifacts")
