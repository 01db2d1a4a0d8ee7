"""/v1/graph: reads (an agent token in its own scope only) and audited, undoable edits."""

from __future__ import annotations

from typing import Any

from .conftest import audited, problem


def add(client: Any, headers: Any, label: str, scope: str) -> dict[str, Any]:
    r = client.post("/v1/graph/nodes", json={"label": label, "scope": scope}, headers=headers["operator"])
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


def test_an_operator_adds_a_node_as_its_principal_and_undoes_it(ws: Any, me: Any, client: Any, headers: Any) -> None:
    node = add(client, headers, "Oxygen optode", "scout")
    got = client.get(f"/v1/graph/nodes/{node['id']}", headers=headers["viewer"]).json()
    assert got["node"]["label"] == "Oxygen optode" and got["edges"] == []
    edits = client.get("/v1/graph/edits", headers=headers["viewer"]).json()
    assert edits[0]["op"] == "add_node" and edits[0]["actor"] == me.key
    assert [e.actor for e in audited(ws, "graph.add_node")] == [me.key]
    r = client.post("/v1/graph/undo", headers=headers["operator"])  # the body is optional
    assert r.status_code == 200, r.text
    problem(client.get(f"/v1/graph/nodes/{node['id']}", headers=headers["viewer"]), 404)


def test_a_viewer_token_may_not_edit_the_graph(ws: Any, client: Any, headers: Any) -> None:
    problem(client.post("/v1/graph/nodes", json={"label": "x", "scope": "scout"}, headers=headers["viewer"]), 403)
    assert ws.graph.counts()["nodes"] == 0


def test_an_agent_token_reads_its_own_scope_only(client: Any, headers: Any) -> None:
    mine, theirs = add(client, headers, "My note", "researcher"), add(client, headers, "Their note", "scout")
    with_ana = add(client, headers, "Ana's note", "researcher/ana")  # its own scope with one user
    assert client.get(f"/v1/graph/nodes/{mine['id']}", headers=headers["agent"]).status_code == 200
    problem(client.get(f"/v1/graph/nodes/{theirs['id']}", headers=headers["agent"]), 404)
    listed = client.get("/v1/graph/nodes", headers=headers["agent"]).json()["items"]
    assert sorted(n["id"] for n in listed) == sorted([mine["id"], with_ana["id"]])
    assert len(client.get("/v1/graph/nodes", headers=headers["viewer"]).json()["items"]) == 3
    problem(client.get("/v1/graph/nodes", params={"scope": "scout"}, headers=headers["agent"]), 403)
    problem(client.get("/v1/graph/search", params={"q": "note", "scope": "scout"}, headers=headers["agent"]), 403)
    assert client.get("/v1/graph/search", params={"q": "note"}, headers=headers["agent"]).status_code == 200


def test_undo_with_nothing_to_undo_is_a_404(client: Any, headers: Any) -> None:
    assert problem(client.post("/v1/graph/undo", json={}, headers=headers["operator"]), 404)["hint"]


def test_merging_nodes_of_two_scopes_is_refused(client: Any, headers: Any) -> None:
    a, b = add(client, headers, "Alpha", "scout"), add(client, headers, "Beta", "critic")
    problem(client.post("/v1/graph/merge", json={"target": a["id"], "sources": [b["id"]]}, headers=headers["operator"]),
            400)


def test_a_proposed_edge_is_accepted_by_an_operator(ws: Any, me: Any, client: Any, headers: Any) -> None:
    a, b = add(client, headers, "Alpha", "scout"), add(client, headers, "Beta", "scout")
    edge = ws.graph.add_edge(a["id"], "related_to", b["id"], principal=me)
    ws.graph.update_edge(edge.id, status="proposed", principal=me)
    proposed = client.get("/v1/graph/edges", headers=headers["viewer"]).json()["items"]
    assert [e["id"] for e in proposed] == [edge.id]
    r = client.post(f"/v1/graph/edges/{edge.id}/accept", headers=headers["operator"])
    assert r.status_code == 200 and r.json()["status"] == "active"
    assert client.get("/v1/graph/edges", headers=headers["viewer"]).json()["items"] == []


def test_communities_group_connected_nodes(ws: Any, me: Any, client: Any, headers: Any) -> None:
    ids = [add(client, headers, label, "scout")["id"] for label in ("Oxygen", "Optode", "Sensor")]
    for a, b in zip(ids, ids[1:], strict=False):
        ws.graph.add_edge(a, "related_to", b, principal=me)
    groups = client.get("/v1/graph/communities", headers=headers["viewer"]).json()
    assert [sorted(g["nodes"]) for g in groups] == [sorted(ids)] and groups[0]["label"]
