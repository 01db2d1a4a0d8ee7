"""crypto: data keys of envelope encryption, stored wrapped by the key-encryption key

Revision ID: crypto_0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "crypto_0001"
down_revision = None
branch_labels = ("crypto",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crypto_keys",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("purpose", sa.String(100), nullable=False),
        sa.Column("wrapped", sa.LargeBinary, nullable=False),
        sa.Column("kek_fp", sa.String(64), nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("retired_at", sa.Float, nullable=True),
    )
    op.create_index("ix_crypto_keys_purpose", "crypto_keys", ["purpose"])


def downgrade() -> None:
    op.drop_index("ix_crypto_keys_purpose", table_name="crypto_keys")
    op.drop_table("crypto_keys")
