"""``emergent graph``: build/sync, search, show, communities, infer, accept/reject, merge, undo, export, render."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from emergent.cli._common import HOME, workstation

app = typer.Typer(no_args_is_help=True)


@app.command()
def sync(scope: str = typer.Option(None, help="only this scope (agent[/user])"), home: str = HOME) -> None:
    """Bring the graph up to date with memory (adds what is missing, drops what was forgotten)."""
    with workstation(home) as ws:
        typer.echo(json.dumps(ws.graph.sync(ws.memory, scope).as_dict()))


@app.command()
def stats(home: str = HOME) -> None:
    """Node, edge, proposal and memory counts."""
    with workstation(home) as ws:
        typer.echo(json.dumps(ws.graph.counts()))


@app.command()
def search(query: str, scope: str = typer.Option(None), k: int = 10, as_json: bool = typer.Option(False, "--json"),
           home: str = HOME) -> None:
    """Personalised PageRank from QUERY's entities: nodes, paths and memories."""
    with workstation(home) as ws:
        res = ws.graph.search(query, scope=scope, k=k)
        out = {"seeds": res.seeds, "nodes": [{"id": h.node.id, "label": h.node.label, "score": h.score} for h in res.nodes],
               "paths": res.paths, "memories": [{"id": m, "score": s} for m, s in res.memories[:k]]}
        if as_json:
            typer.echo(json.dumps(out, ensure_ascii=False))
            return
        for h in res.nodes:
            typer.echo(f"{h.score:.4f}  {h.node.label}  ({h.node.type}, {h.node.id})")
        labels = {h.node.id: h.node.label for h in res.nodes}
        for p in res.paths:
            typer.echo("path: " + " -> ".join(labels.get(x, x) for x in p))


@app.command()
def show(label: str, scope: str = typer.Option(None), home: str = HOME) -> None:
    """A node by LABEL (or id): aliases, relations and the memories behind it."""
    from emergent.errors import NotFoundError

    with workstation(home) as ws:
        kg = ws.graph
        node = kg.find(label, scope)
        if node is None:
            try:
                node = kg.node(label)
            except NotFoundError:
                raise NotFoundError(f"no node labelled {label!r}", hint="try `emergent graph search`") from None
        typer.echo(json.dumps({"node": node.row(), "aliases": kg.aliases(node.id)[:50],
                               "edges": [e.row() for e in kg.edges(node.id)[:100]],
                               "memories": kg.provenance(node.id)}, ensure_ascii=False, indent=1, default=str))


@app.command()
def communities(home: str = HOME) -> None:
    """Louvain communities with their labels."""
    with workstation(home) as ws:
        for c in ws.graph.communities():
            typer.echo(f"[{c.id}] {c.label} ({len(c.nodes)} nodes, {c.strategy}): {c.summary}")


@app.command()
def infer(accept_all: bool = typer.Option(False, "--accept-all"), home: str = HOME) -> None:
    """Propose inferred edges (rules, co-occurrence, embedding similarity)."""
    with workstation(home) as ws:
        for e in ws.graph.infer(auto_accept=accept_all, by=ws.principal if accept_all else None):
            typer.echo(f"{e.id}  {e.src} -{e.rel}-> {e.dst}  {e.confidence:.2f}  {e.evidence.get('rule')}")


@app.command()
def accept(edge_id: str, home: str = HOME) -> None:
    """Accept a proposed (inferred) edge."""
    with workstation(home) as ws:
        typer.echo(ws.graph.accept(edge_id, by=ws.principal).status)


@app.command()
def reject(edge_id: str, home: str = HOME) -> None:
    """Reject a proposed edge (it will not be proposed again)."""
    with workstation(home) as ws:
        typer.echo(ws.graph.reject(edge_id, by=ws.principal).status)


@app.command()
def merge(target: str, sources: list[str], reason: str = "cli", home: str = HOME) -> None:
    """Merge SOURCES node ids into TARGET (recorded; `emergent graph undo` or unmerge reverses it)."""
    with workstation(home) as ws:
        typer.echo(ws.graph.merge(target, sources, reason=reason, principal=ws.principal))


@app.command()
def undo(seq: int = typer.Option(None, help="edit number (default: the latest)"), home: str = HOME) -> None:
    """Undo an edit (the edit log: `emergent graph edits`)."""
    with workstation(home) as ws:
        typer.echo(f"undone by edit #{ws.graph.undo(seq, principal=ws.principal)}")


@app.command()
def edits(limit: int = 20, home: str = HOME) -> None:
    """The edit log, newest first."""
    with workstation(home) as ws:
        for e in ws.graph.edits(limit):
            typer.echo(f"#{e.seq} {e.op} by {e.actor}{' (undone)' if e.undone else ''}: {e.summary}")


@app.command()
def export(path: Path, fmt: str = typer.Option("graphml", "--format", help="graphml | json"),
           at: str = typer.Option(None, help="point in time (ISO date)"), home: str = HOME) -> None:
    """Export the graph (optionally as known at AT) to GraphML or JSON."""
    from emergent.errors import ValidationError

    with workstation(home) as ws:
        if fmt == "graphml":
            ws.graph.export_graphml(path, at=at)
        elif fmt == "json":
            ws.graph.export_json(path, at=at)
        else:
            raise ValidationError(f"unknown export format {fmt!r}", hint="use graphml or json")
        typer.echo(str(path))


@app.command()
def render(path: Path, max_nodes: int = 300, home: str = HOME) -> None:
    """Write a self-contained HTML view (no network needed to open it)."""
    from emergent.graph.render import render_graph

    with workstation(home) as ws:
        r = render_graph(ws.graph, max_nodes=max_nodes)
        r.save(path)
        typer.echo(f"{path} ({r.shown_nodes} of {r.total_nodes} nodes){' — ' + r.note if r.note else ''}")
