"""Fixtures of the REST API tests: a workstation, its app in process, tokens of each role."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def app(ws: Any) -> Any:
    from emergent.api import create_app

    return create_app(ws)


@pytest.fixture
def client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def tokens(ws: Any, me: Any, agent: Any) -> dict[str, str]:
    """Secrets of one token per role: admin, operator, viewer (as the human ``me``), agent (as ``agent``)."""
    out = {}
    for role in ("admin", "operator", "viewer"):
        out[role] = ws.tokens.create(me, role, by=me, ttl_s=3600, label=f"test {role}")[1]
    out["agent"] = ws.tokens.create(agent, "agent", by=me, ttl_s=3600)[1]
    return out


@pytest.fixture
def headers(tokens: dict[str, str]) -> dict[str, dict[str, str]]:
    return {role: bearer(secret) for role, secret in tokens.items()}

