"""``/graph``: read the knowledge graph (search, nodes, proposed edges, the edit log) and edit it.

Reads are a viewer's; an agent token reads only its own scope's part of the graph (search, nodes
and edges in the namespaces of its agent). Edits (add a node, accept or reject an inferred edge,
merge, undo) are an operator's and go through :class:`emergent.graph.edit.GraphEditor` as the
token's principal: each is audited (intent before, outcome after) and undoable.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, Field

from emergent.api.auth import Caller, Operator, Viewer, ViewerOrAgent
from emergent.api.pagination import Page
from emergent.api.routers._api2 import WS, Paged, no_nul, problems
from emergent.errors import NotFoundError, OperationalError, StateConflictError

router = APIRouter(prefix="/graph", tags=["graph"], dependencies=[Depends(no_nul)])

ItemId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_:.@/-]+$")]
ScopeQ = Annotated[str | None, Query(max_length=200, pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$",
                                     description="agent[/user[/session]]")]


class Node(BaseModel):
    id: str
    namespace: str
    label: str
    type: str
    confidence: float
    status: str
    merged_into: str | None = None
    origin: str
    created_at: float
    first_seen: float
    attrs: dict[str, Any]


class Edge(BaseModel):
    id: str
    namespace: str
    src: str
    dst: str
    rel: str
    confidence: float
    weight: float
    valid_from: float | None = None
    valid_to: float | None = None
    inferred: bool
    status: str
    origin: str
    evidence: dict[str, Any]
    created_at: float


class NodeDetail(BaseModel):
    node: Node
    aliases: list[str]
    edges: list[Edge]
    memories: list[str] = Field(description="ids of the memories behind the node")


class Hit(BaseModel):
    node: Node
    score: float


class MemoryHit(BaseModel):
    id: str
    score: float


class SearchResult(BaseModel):
    seeds: list[str]
    nodes: list[Hit]
    paths: list[list[str]]
    memories: list[MemoryHit]


class Edit(BaseModel):
    seq: int
    at: float
    actor: str
    op: str
    summary: str
    undone: bool


class Community(BaseModel):
    id: int
    nodes: list[str]
    label: str
    summary: str
    top_terms: list[str]
    strategy: str


class NewNode(BaseModel):
    label: str = Field(min_length=1, max_length=300)
    scope: str = Field(max_length=200, pattern=r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+){0,2}$",
                       description="agent[/user]: the namespace the node lives in")
    type: str = Field("entity", min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")
    confidence: float = Field(1.0, ge=0, le=1)


class Merge(BaseModel):
    target: str = Field(min_length=1, max_length=200)
    sources: list[str] = Field(min_length=1, max_length=100)
    reason: str = Field("api", max_length=500)


class Merged(BaseModel):
    merge_id: str


class Undo(BaseModel):
    seq: int | None = Field(None, ge=1, le=2**31 - 1, description="the edit to undo; default: the latest")


class Undone(BaseModel):
    edit: int = Field(description="the number of the edit that undid it")


def _sees(who: Caller, namespace: str) -> bool:
    """An agent token sees only its own agent's namespaces (``agent`` and ``agent/user``)."""
    return not who.is_agent or namespace.partition("/")[0] == who.principal.id


def _own(who: Caller, namespace: str) -> None:
    if not _sees(who, namespace):
        raise NotFoundError(f"no graph item in namespace {namespace!r} for {who.principal.key}",
                            hint="an agent token reads its own scope only")


def _namespace(who: Caller, scope: str | None) -> str | None:
    """The namespace a list asks for (None: all; an agent token's are filtered by :func:`_sees`)."""
    from emergent.graph.model import namespace_of

    scoped = who.own_scope(scope) if scope is not None else None
    return namespace_of(scoped) if scoped is not None else None


@router.get("/stats", response_model=dict[str, int], responses=problems(401, 403))
def graph_stats(ws: WS, _: Viewer) -> Any:
    """Node, edge, proposal and memory counts."""
    return ws.graph.counts()


@router.get("/search", response_model=SearchResult, responses=problems(400, 401, 403))
def graph_search(ws: WS, who: ViewerOrAgent, q: Annotated[str, Query(min_length=1, max_length=2000)],
                 scope: ScopeQ = None, k: Annotated[int, Query(ge=1, le=100)] = 10) -> Any:
    """Personalised PageRank from the query's entities: nodes, paths and the memories behind them."""
    res = ws.graph.search(q, scope=who.own_scope(scope), k=k)
    return {"seeds": res.seeds, "nodes": [{"node": asdict(h.node), "score": h.score} for h in res.nodes],
            "paths": res.paths, "memories": [{"id": m, "score": s} for m, s in res.memories[:k]]}


@router.get("/nodes", response_model=Page[Node], responses=problems(400, 401, 403))
def list_nodes(ws: WS, who: ViewerOrAgent, page: Paged, scope: ScopeQ = None) -> Any:
    """Active nodes (of one scope's namespace; an agent token: of its own namespaces), in a stable order."""
    ns = _namespace(who, scope)
    nodes = [n for n in ws.graph.nodes(ns) if _sees(who, n.namespace)]
    return page.slice([asdict(x) for x in sorted(nodes, key=lambda n: n.id)])


@router.get("/nodes/{node_id}", response_model=NodeDetail, responses=problems(401, 403, 404))
def get_node(node_id: ItemId, ws: WS, who: ViewerOrAgent) -> Any:
    """A node with its aliases, relations and the memories behind it."""
    kg = ws.graph
    node = kg.node(node_id)
    _own(who, node.namespace)
    return {"node": asdict(node), "aliases": kg.aliases(node.id)[:200],
            "edges": [asdict(e) for e in kg.edges(node.id)[:500]], "memories": kg.provenance(node.id)}


@router.get("/edges", response_model=Page[Edge], responses=problems(400, 401, 403))
def list_edges(ws: WS, who: ViewerOrAgent, page: Paged,
               status: Literal["active", "proposed", "rejected"] = "proposed", scope: ScopeQ = None) -> Any:
    """Edges by status; by default the inferred ones waiting for a person to accept or reject them."""
    edges = [e for e in ws.graph.edges(status=status, namespace=_namespace(who, scope)) if _sees(who, e.namespace)]
    return page.slice([asdict(e) for e in sorted(edges, key=lambda e: e.id)])


@router.get("/communities", response_model=list[Community], responses=problems())
def graph_communities(ws: WS, _: Viewer) -> Any:
    """Louvain communities of the active graph, largest first, each labelled (cached per graph version)."""
    return [asdict(c) for c in ws.graph.communities()]


@router.get("/edits", response_model=list[Edit], responses=problems(401, 403))
def list_edits(ws: WS, _: Viewer, limit: Annotated[int, Query(ge=1, le=500)] = 20) -> Any:
    """The edit log, newest first."""
    return [asdict(e) for e in ws.graph.edits(limit)]


@router.post("/nodes", status_code=201, response_model=Node, responses=problems(400, 401, 403, 409, 422))
def add_node(body: NewNode, ws: WS, who: Operator) -> Any:
    """Add a node (an audited, undoable edit)."""
    return asdict(ws.graph.add_node(body.label, scope=body.scope, type=body.type, confidence=body.confidence,
                                    principal=who.principal))


@router.post("/edges/{edge_id}/accept", response_model=Edge, responses=problems(401, 403, 404))
def accept_edge(edge_id: ItemId, ws: WS, who: Operator) -> Any:
    """Accept a proposed (inferred) edge."""
    return asdict(ws.graph.accept(edge_id, by=who.principal))


@router.post("/edges/{edge_id}/reject", response_model=Edge, responses=problems(401, 403, 404))
def reject_edge(edge_id: ItemId, ws: WS, who: Operator) -> Any:
    """Reject a proposed edge (it is not proposed again)."""
    return asdict(ws.graph.reject(edge_id, by=who.principal))


@router.post("/merge", response_model=Merged, responses=problems(400, 401, 403, 404, 422))
def merge_nodes(body: Merge, ws: WS, who: Operator) -> Any:
    """Merge ``sources`` into ``target`` (recorded; undo or unmerge reverses it)."""
    return {"merge_id": ws.graph.merge(body.target, body.sources, reason=body.reason, principal=who.principal)}


@router.post("/undo", response_model=Undone, responses=problems(400, 401, 403, 404, 409))
def undo_edit(ws: WS, who: Operator, body: Undo | None = None) -> Any:
    """Undo an edit (the latest by default); refused while a later edit changed the same rows."""
    try:
        return {"edit": ws.graph.undo((body or Undo()).seq, principal=who.principal)}
    except OperationalError as exc:
        if type(exc) is not OperationalError:  # a store failure stays what it is
            raise
        raise StateConflictError(exc.message, hint=exc.hint or None) from None
