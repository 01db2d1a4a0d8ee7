"""SQL tables of the MCP capability (migration ``mcp_0001``): bearer tokens for ``emergent mcp serve --http``.

A token is stored only as its sha256; the secret is printed once, when a human creates it."""

from __future__ import annotations

import sqlalchemy as sa

from emergent.stores.sql import metadata

mcp_tokens = sa.Table(
    "mcp_tokens", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("token_sha256", sa.String(64), nullable=False, unique=True),
    sa.Column("principal", sa.String(200), nullable=False, index=True),
    sa.Column("label", sa.String(200), nullable=True),
    sa.Column("created_by", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("revoked_at", sa.Float, nullable=True),
    sa.Column("revoked_by", sa.String(200), nullable=True),
)
