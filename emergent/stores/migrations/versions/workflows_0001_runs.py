"""workflows: runs of workflows, their steps (checkpoints) and workflows saved by name

Revision ID: workflows_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "workflows_0001"
down_revision = None
branch_labels = ("workflows",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "workflow_runs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("workflow", sa.String(100), nullable=False, index=True),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("inputs", sa.Text, nullable=False),
        sa.Column("status", sa.String(24), nullable=False, index=True),
        sa.Column("principal", sa.String(100), nullable=False),
        sa.Column("parent", sa.String(40), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("outputs", sa.Text, nullable=True),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False, index=True),
        sa.Column("updated_at", sa.Float, nullable=False),
    )
    op.create_table(
        "workflow_steps",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(120), primary_key=True),
        sa.Column("step_id", sa.String(100), nullable=False),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("output", sa.Text, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("approval_id", sa.String(40), nullable=True),
        sa.Column("seq", sa.Integer, nullable=True),
        sa.Column("started_at", sa.Float, nullable=True),
        sa.Column("finished_at", sa.Float, nullable=True),
        sqlite_with_rowid=False,  # one b-tree per row written (the key), not two: rows are written per step
    )
    op.create_table(
        "workflow_defs",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("registered_by", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("workflow_defs")
    op.drop_table("workflow_steps")
    op.drop_table("workflow_runs")
