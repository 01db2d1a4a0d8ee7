"""Tokens and the API on each SQL backend (SQLite always; PostgreSQL when EMERGENT_TEST_POSTGRES_URL is set)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from emergent import Workstation
from emergent.api import create_app


def test_tokens_and_api_round_trip(tmp_path: Path, sql_url: str) -> None:
    ws: Any = Workstation.open(tmp_path / "w", embedder="hashing", database_url=sql_url, create=True)
    try:
        me = ws.principal
        info, secret = ws.tokens.create(me, "operator", by=me, ttl_s=600, label="pg")
        h = {"Authorization": f"Bearer {secret}"}
        with TestClient(create_app(ws), raise_server_exceptions=False) as c:
            mid = c.post("/v1/memory", json={"text": "stored in either database", "scope": "lab"}, headers=h)
            assert mid.status_code == 201, mid.text
            hits = c.get("/v1/memory/recall", params={"query": "database", "scope": "lab"}, headers=h).json()["items"]
            assert hits[0]["id"] == mid.json()["id"]
            assert c.get("/v1/approvals/ab%00cd", headers=h).status_code == 400  # no NUL reaches the database
            assert c.get("/v1/tools", headers=h).status_code == 200
            ws.tokens.revoke(info.id, by=me)
            assert c.get("/v1/tools", headers=h).status_code == 401
        assert [t.id for t in ws.tokens.list(include_inactive=True)] == [info.id]
    finally:
        ws.close()
