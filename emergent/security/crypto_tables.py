"""SQL table of envelope encryption (migration ``crypto_0001``): data keys, stored only wrapped by the KEK."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

crypto_keys = sa.Table(
    "crypto_keys", metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # 16 random bytes, hex; also in every blob's header
    sa.Column("purpose", sa.String(100), nullable=False, index=True),
    sa.Column("wrapped", sa.LargeBinary, nullable=False),  # AES key wrap (RFC 3394) of the 32-byte key
    sa.Column("kek_fp", sa.String(64), nullable=False),  # fingerprint of the KEK that wrapped it
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("retired_at", sa.Float, nullable=True),  # set: no new writes use it (still opens old blobs)
)
