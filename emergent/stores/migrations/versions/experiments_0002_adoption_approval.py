"""experiments: the approval request an adoption waits for

Revision ID: experiments_0002
Revises: experiments_0001
"""

import sqlalchemy as sa
from alembic import op

revision = "experiments_0002"
down_revision = "experiments_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.add_column(sa.Column("approval_id", sa.String(40), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("experiments") as batch:
        batch.drop_column("approval_id")
