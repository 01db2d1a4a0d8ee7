"""security: API tokens of the REST API (stored hashed), each mapped to a principal and a role, expiring

Revision ID: security_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "security_0001"
down_revision = None
branch_labels = ("security",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
        sa.Column("principal", sa.String(200), nullable=False, index=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("label", sa.String(200), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.Column("revoked_at", sa.Float, nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
