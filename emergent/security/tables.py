"""SQL tables of the REST API's credentials (migration ``security_0001``): API tokens.

A token is stored only as its sha256 (the secret is 256 random bits, so a fast hash is enough: there
is nothing to brute-force); the secret is shown once, when it is created."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

api_tokens = sa.Table(
    "api_tokens", metadata,
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

# the other tables of the security package, declared in their own modules (one migration branch each);
# imported here so that the package's metadata (and the migrations contract test) holds them all
from emergent.security import crypto_tables as crypto_tables  # noqa: E402,F401  (crypto_0001)

# The package's other tables live beside their services (crypto: keys, branch crypto_0001; retention: policies,
# erasures, branch retention_0001). Imported here so that `emergent.security.tables` declares every table of the
# package, as the migration contract test and backup expect of a capability's tables module.
from emergent.security.crypto_tables import *  # noqa: E402,F403
from emergent.security.retention_tables import *  # noqa: E402,F403
