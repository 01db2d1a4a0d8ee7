"""Fixtures of the api2 router tests: the real app over a tmp workstation, a token per role."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def client(ws: Any) -> Iterator[TestClient]:
    from emergent.api import create_app

    with TestClient(create_app(ws), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def headers(ws: Any, me: Any, agent: Any) -> dict[str, dict[str, str]]:
    """``Authorization`` headers of one token per role: admin, operator, viewer (the human ``me``) and
    agent (``agent:researcher``)."""
    out = {}
    for role in ("admin", "operator", "viewer"):
        out[role] = ws.tokens.create(me, role, by=me, ttl_s=3600)[1]
    out["agent"] = ws.tokens.create(agent, "agent", by=me, ttl_s=3600)[1]
    return {role: {"Authorization": f"Bearer {secret}"} for role, secret in out.items()}


def problem(r: Any, status: int) -> dict[str, Any]:
    """The problem+json body of ``r``, after checking its status and media type."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json"), r.headers["content-type"]
    body: dict[str, Any] = r.json()
    assert body["status"] == status and body["detail"]
    return body


def audited(ws: Any, kind: str, phase: str | None = "done") -> list[Any]:
    """Audit entries of ``kind`` (of that phase, for actions recorded as intent and outcome)."""
    return [e for e in ws.audit.entries() if e.kind == kind and (phase is None or e.data.get("phase") == phase)]


def until(fn: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.05)
