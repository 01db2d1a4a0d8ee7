"""autonomy: the principals directory; approvals bound to a digest of what they approve, used once

Revision ID: autonomy_0002
Revises: autonomy_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "autonomy_0002"
down_revision = "autonomy_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "principals",
        sa.Column("key", sa.String(80), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(80), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("roles", sa.Text, nullable=False),
    )
    with op.batch_alter_table("approvals") as batch:
        batch.add_column(sa.Column("digest", sa.String(64), nullable=True))
        batch.add_column(sa.Column("files", sa.Text, nullable=True))
        batch.add_column(sa.Column("consumed_at", sa.Float, nullable=True))
        batch.add_column(sa.Column("consumed_by", sa.String(64), nullable=True))
    # approvals filed before this revision approved no digest: they can no longer be resumed
    op.execute("UPDATE approvals SET status = 'expired', decision_reason = 'approval predates content binding' "
               "WHERE status IN ('pending', 'approved')")


def downgrade() -> None:
    with op.batch_alter_table("approvals") as batch:
        for col in ("consumed_by", "consumed_at", "files", "digest"):
            batch.drop_column(col)
    op.drop_table("principals")
