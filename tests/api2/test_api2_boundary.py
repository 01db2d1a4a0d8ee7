"""What every api2 route refuses before a service sees it."""

from __future__ import annotations

from typing import Any

from .conftest import problem


def test_attack_nul_characters_are_refused_in_bodies_queries_and_paths(ws: Any, client: Any, headers: Any) -> None:
    # PostgreSQL text cannot hold NUL: it would be a 500 there; here it is a 400 before any service runs
    body = problem(client.post("/v1/graph/nodes", json={"label": "a\x00b", "scope": "scout"},
                               headers=headers["operator"]), 400)
    assert body["field"] == "body" and "NUL" in body["detail"]
    problem(client.post("/v1/agents/tasks", json={"text": "hi", "skills": ["a"], "x\x00": 1},
                        headers=headers["operator"]), 400)
    problem(client.get("/v1/graph/search", params={"q": "x\x00y"}, headers=headers["viewer"]), 400)
    r = client.get("/v1/jobs/a%00b", headers=headers["viewer"])
    assert r.status_code in (400, 422) and r.headers["content-type"].startswith("application/problem+json")
    assert ws.graph.counts()["nodes"] == 0 and ws.agents.tasks() == []


def test_an_escaped_backslash_before_u0000_is_text_not_a_nul(client: Any, headers: Any) -> None:
    r = client.post("/v1/graph/nodes", content=b'{"label": "path C:\\\\u0000x", "scope": "scout"}',
                    headers={**headers["operator"], "content-type": "application/json"})
    assert r.status_code == 201, r.text
    assert r.json()["label"] == "path C:\\u0000x"
