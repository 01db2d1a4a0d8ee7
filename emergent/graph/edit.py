"""The graph editor: add, relabel, merge, split, delete; every edit audited and undoable.

Every edit takes the :class:`~emergent.principals.Principal` who makes it (``principal=``; accepting
or rejecting an inferred edge is a decision: ``by=``). Its intent is written to the audit trail
before the transaction and its outcome (the edit's number) after; a failed audit write stops the
edit. An edit runs in one transaction that snapshots the rows it touches before and after and appends
both to ``graph_edits``. :meth:`GraphEditor.undo` restores the before-rows, but only while the
rows still match the after-snapshot (a later edit must be undone first), and is itself an edit.
Merges are also listed in ``graph_merges`` so entity resolution is never silent.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from emergent.errors import NotFoundError, OperationalError, ValidationError
from emergent.graph import _store as st
from emergent.graph.model import (
    SYMMETRIC,
    Edge,
    Node,
    check_confidence,
    check_label,
    check_rel,
    edge_id,
    namespace_of,
    node_id,
    normalise,
)
from emergent.graph.store import GraphStore
from emergent.graph.tables import (
    graph_aliases,
    graph_edges,
    graph_edits,
    graph_merges,
    graph_nodes,
    graph_provenance,
)
from emergent.workspace.audited import recorded, verified

if TYPE_CHECKING:  # pragma: no cover
    from emergent.audit import Auditor
    from emergent.clock import Clock
    from emergent.principals import Principal, Principals


@dataclass(frozen=True, slots=True)
class EditRecord:
    seq: int
    at: float
    actor: str
    op: str
    summary: str
    undone: bool


Cover = dict[str, list[str]]


class GraphEditor:
    """Audited, undoable edits of ``store``'s graph: ``audit`` records each edit's intent and outcome,
    ``principals`` (the workspace's directory) says who may edit."""

    def __init__(self, store: GraphStore, clock: Clock, audit: Auditor | None = None,
                 principals: Principals | None = None) -> None:
        self.store = store
        self.clock = clock
        self.audit = audit
        self.principals = principals

    # ------------------------------------------------------------------ the audited transaction
    def _edit(self, op: str, summary: str, principal: Principal, cover: Cover,
              fn: Callable[[Connection], Cover | None]) -> int:
        who = verified(self.principals, principal)
        with recorded(self.audit, f"graph.{op}", who, {"summary": summary[:500]}) as outcome:
            with self.store.sql.begin() as conn:
                before = st.snapshot(conn, **cover)
                extra = fn(conn) or {}
                full = {k: sorted(set(cover.get(k, [])) | set(extra.get(k, [])))
                        for k in ("nodes", "edges", "alias_nodes", "prov_items")}
                after = st.snapshot(conn, **full)
                key = conn.execute(graph_edits.insert().values(
                    at=self.clock.now(), actor=who.key[:120], op=op, summary=summary[:2000],
                    before=json.dumps({"cover": full, "rows": before}, ensure_ascii=False, default=str),
                    after=json.dumps(after, ensure_ascii=False, default=str), undone=False)).inserted_primary_key
                assert key is not None  # an insert has a primary key
                seq = int(key[0])
            self.store.changed()
            outcome["edit"] = seq
        return seq

    def edits(self, limit: int = 100) -> list[EditRecord]:
        """The edit log, newest first."""
        with self.store.sql.connect() as conn:
            rows = conn.execute(sa.select(graph_edits.c.seq, graph_edits.c.at, graph_edits.c.actor, graph_edits.c.op,
                                          graph_edits.c.summary, graph_edits.c.undone)
                                .order_by(graph_edits.c.seq.desc()).limit(limit)).all()
        return [EditRecord(r.seq, r.at, r.actor, r.op, r.summary, bool(r.undone)) for r in rows]

    def undo(self, seq: int | None = None, *, principal: Principal) -> int:
        """Undo edit ``seq`` (default: the latest edit not undone; undoing an undo redoes). Returns the new seq."""
        with self.store.sql.connect() as conn:
            q = sa.select(graph_edits).where(graph_edits.c.undone.is_(False))
            q = (q.where(graph_edits.c.seq == seq) if seq is not None  # default: the latest edit, never an undo
                 else q.where(graph_edits.c.op != "undo").order_by(graph_edits.c.seq.desc()))
            row = conn.execute(q.limit(1)).first()
        if row is None:
            raise NotFoundError(f"no edit {seq!r} to undo" if seq is not None else "nothing to undo",
                                hint="see graph.edits() for the log")
        meta, after = json.loads(row.before), json.loads(row.after)
        cover = meta["cover"]

        def apply(conn: Connection) -> Cover:
            now = st.snapshot(conn, **cover)
            if st.canonical(now) != st.canonical(after):
                raise OperationalError(f"edit {row.seq} ({row.op}) cannot be undone: later edits changed the same "
                                       "nodes or edges", hint="undo the later edits first (graph.edits())")
            st.restore(conn, {"nodes": cover["nodes"], "edges": cover["edges"], "aliases": cover["alias_nodes"],
                              "provenance": cover["prov_items"]}, meta["rows"])
            conn.execute(sa.update(graph_edits).where(graph_edits.c.seq == row.seq).values(undone=True))
            conn.execute(sa.update(graph_merges).where(graph_merges.c.edit_seq == row.seq).values(undone=True))
            return cover

        return self._edit("undo", f"undo #{row.seq}: {row.summary}", principal, cover, apply)

    # ------------------------------------------------------------------ helpers
    def _active(self, conn: Connection, ids: Sequence[str]) -> list[Node]:
        rows = {r.id: Node.from_row(r) for r in st.select_in(conn, graph_nodes, "id", ids)}
        for i in ids:
            if i not in rows:
                raise NotFoundError(f"no graph node {i!r}", hint="find nodes with graph.find(label)")
            if rows[i].status != "active":
                raise ValidationError(f"node {i!r} is {rows[i].status}", hint="undo the edit that changed it first")
        return [rows[i] for i in ids]

    @staticmethod
    def _touching(conn: Connection, ids: Sequence[str]) -> list[str]:
        rows = st.select_in(conn, graph_edges, "src", ids) + st.select_in(conn, graph_edges, "dst", ids)
        return list(dict.fromkeys(r.id for r in rows))

    # ------------------------------------------------------------------ nodes
    def add_node(self, label: str, *, scope: Any = None, type: str = "entity", confidence: float = 1.0,
                 attrs: dict[str, Any] | None = None, principal: Principal) -> Node:
        label, conf, ns = check_label(label), check_confidence(confidence), namespace_of(scope)
        key = normalise(label)
        now = self.clock.now()
        node = Node(node_id(ns, f"{key}\x00manual\x00{secrets.token_hex(4)}"), ns, label, str(type)[:64], conf,
                    origin="manual", created_at=now, first_seen=now, attrs=dict(attrs or {}))

        def fn(conn: Connection) -> Cover:
            clash = conn.execute(sa.select(graph_aliases.c.node_id).where(
                graph_aliases.c.namespace == ns, graph_aliases.c.key == key)).first()
            if clash is not None:
                raise ValidationError(f"{label!r} already names node {clash[0]} in {ns!r}",
                                      hint="relabel or merge that node instead of adding a duplicate")
            conn.execute(graph_nodes.insert().values(**node.row()))
            conn.execute(graph_aliases.insert().values(namespace=ns, key=key, node_id=node.id, alias=label))
            return {"nodes": [node.id], "alias_nodes": [node.id]}

        self._edit("add_node", f"add node {label[:80]!r}", principal, {}, fn)
        self.store.embed_nodes([node])
        return node

    def relabel(self, node: str, label: str, *, principal: Principal) -> Node:
        """Rename a node; the old label stays an alias."""
        label = check_label(label)

        def fn(conn: Connection) -> None:
            n = self._active(conn, [node])[0]
            key = normalise(label)
            owner = conn.execute(sa.select(graph_aliases.c.node_id).where(
                graph_aliases.c.namespace == n.namespace, graph_aliases.c.key == key)).first()
            if owner is not None and owner[0] != node:
                raise ValidationError(f"{label!r} already names node {owner[0]}", hint="merge the two nodes instead")
            conn.execute(sa.update(graph_nodes).where(graph_nodes.c.id == node).values(label=label))
            if owner is None:
                conn.execute(graph_aliases.insert().values(namespace=n.namespace, key=key, node_id=node, alias=label))

        self._edit("relabel", f"relabel {node} to {label[:80]!r}", principal, {"nodes": [node], "alias_nodes": [node]}, fn)
        return self.store.node(node)

    def delete_node(self, node: str, *, cascade: bool = False, principal: Principal) -> int:
        """Delete a node (and, with ``cascade``, its edges). Kept in the log, so undo restores it."""
        with self.store.sql.connect() as conn:
            self._active(conn, [node])
            edges = [i for i in self._touching(conn, [node])]
            live = [r.id for r in st.select_in(conn, graph_edges, "id", edges) if r.status in ("active", "proposed")]
        if live and not cascade:
            raise ValidationError(f"node {node} has {len(live)} edges that would be left dangling",
                                  hint="delete them first, or pass cascade=True to delete them with it")

        def fn(conn: Connection) -> None:
            conn.execute(sa.update(graph_nodes).where(graph_nodes.c.id == node).values(status="deleted"))
            st.delete_in(conn, graph_aliases, "node_id", [node])
            for part in st.chunks(edges):
                conn.execute(sa.update(graph_edges).where(graph_edges.c.id.in_(part)).values(status="deleted"))

        return self._edit("delete_node", f"delete node {node}", principal,
                          {"nodes": [node], "edges": edges, "alias_nodes": [node]}, fn)

    # ------------------------------------------------------------------ edges
    def add_edge(self, src: str, rel: str, dst: str, *, confidence: float = 1.0, valid_from: Any = None,
                 valid_to: Any = None, principal: Principal) -> Edge:
        from emergent.clock import to_epoch

        rel, conf = check_rel(rel), check_confidence(confidence)
        if src == dst:
            raise ValidationError(f"edge {src} -{rel}-> {dst} is a self-loop",
                                  hint="a relation needs two different nodes; put properties in node attrs")
        vf = to_epoch(valid_from, 0.0) if valid_from is not None else None
        vt = to_epoch(valid_to, 0.0) if valid_to is not None else None
        if vf is not None and vt is not None and vt <= vf:
            raise ValidationError("valid_to must be after valid_from", field="valid_to")
        if rel in SYMMETRIC and dst < src:
            src, dst = dst, src
        holder: dict[str, Edge] = {}

        def fn(conn: Connection) -> Cover:
            a, b = self._active(conn, [src, dst])
            if a.namespace != b.namespace:
                raise ValidationError(f"nodes {src} and {dst} live in different namespaces "
                                      f"({a.namespace!r}, {b.namespace!r})", hint="edges stay within one scope")
            eid = edge_id(a.namespace, src, rel, dst)
            old = conn.execute(sa.select(graph_edges).where(graph_edges.c.id == eid)).first()
            if old is not None and old.status in ("active", "proposed"):
                raise ValidationError(f"edge {src} -{rel}-> {dst} already exists ({eid})",
                                      hint="edit that edge, or delete it first")
            if old is not None:
                eid = edge_id(a.namespace, src, rel, dst, salt=secrets.token_hex(4))
            e = Edge(eid, a.namespace, src, dst, rel, conf, 1.0, vf, vt, origin="manual", created_at=self.clock.now())
            conn.execute(graph_edges.insert().values(**e.row()))
            holder["e"] = e
            return {"edges": [eid]}

        self._edit("add_edge", f"add edge {src} -{rel}-> {dst}", principal, {}, fn)
        return holder["e"]

    def delete_edge(self, edge: str, *, principal: Principal) -> int:
        def fn(conn: Connection) -> None:
            row = conn.execute(sa.select(graph_edges.c.status).where(graph_edges.c.id == edge)).first()
            if row is None or row.status == "deleted":
                raise NotFoundError(f"no live graph edge {edge!r}", hint="list edges with graph.edges(node)")
            conn.execute(sa.update(graph_edges).where(graph_edges.c.id == edge).values(status="deleted"))

        return self._edit("delete_edge", f"delete edge {edge}", principal, {"edges": [edge]}, fn)

    def update_edge(self, edge: str, *, principal: Principal, **changes: Any) -> Edge:
        """Change rel, confidence, valid_from/valid_to or status of an edge."""
        from emergent.clock import to_epoch

        allowed = {"rel", "confidence", "valid_from", "valid_to", "status"}
        if set(changes) - allowed:
            raise ValidationError(f"cannot change {sorted(set(changes) - allowed)} of an edge", hint=f"use {sorted(allowed)}")
        if "rel" in changes:
            check_rel(changes["rel"])
        if "confidence" in changes:
            check_confidence(changes["confidence"])
        for k in ("valid_from", "valid_to"):
            if changes.get(k) is not None:
                changes[k] = to_epoch(changes[k], 0.0)
        if changes.get("status") not in (None, "active", "proposed", "rejected", "deleted"):
            raise ValidationError(f"unknown edge status {changes['status']!r}")

        def fn(conn: Connection) -> None:
            if conn.execute(sa.update(graph_edges).where(graph_edges.c.id == edge).values(**changes)).rowcount == 0:
                raise NotFoundError(f"no graph edge {edge!r}")

        self._edit("update_edge", f"update edge {edge}: {sorted(changes)}", principal, {"edges": [edge]}, fn)
        return self.store.edge(edge)

    # ------------------------------------------------------------------ merge / split
    def merge(self, target: str, sources: Sequence[str], *, reason: str = "manual", score: float | None = None,
              principal: Principal) -> str:
        """Merge ``sources`` into ``target`` (edges rewired, aliases and provenance moved). Returns the merge id."""
        sources = [s for s in dict.fromkeys(sources)]
        if not sources or target in sources:
            raise ValidationError("merge needs a target and at least one other node", hint="merge(target, [a, b])")
        merge_id = "m" + secrets.token_hex(8)
        with self.store.sql.connect() as conn:
            nodes = self._active(conn, [target, *sources])
            if len({n.namespace for n in nodes}) > 1:
                raise ValidationError("cannot merge nodes from different namespaces", hint="merge within one scope")
            edges = self._touching(conn, [target, *sources])
        ids = [target, *sources]

        def fn(conn: Connection) -> None:
            self._rewire(conn, target, sources, nodes)
            conn.execute(graph_merges.insert().values(id=merge_id, at=self.clock.now(), target=target,
                                                      sources=json.dumps(sources), score=score, reason=reason[:500],
                                                      edit_seq=None, undone=False))

        seq = self._edit("merge", f"merge {len(sources)} into {target} ({reason[:80]})", principal,
                         {"nodes": ids, "edges": edges, "alias_nodes": ids, "prov_items": [*ids, *edges]}, fn)
        with self.store.sql.begin() as conn:
            conn.execute(sa.update(graph_merges).where(graph_merges.c.id == merge_id).values(edit_seq=seq))
        return merge_id

    def _rewire(self, conn: Connection, target: str, sources: list[str], nodes: list[Node]) -> None:
        src_set = set(sources)
        rows = [Edge.from_row(r) for r in st.select_in(conn, graph_edges, "id", self._touching(conn, [target, *sources]))]
        live = {(e.src, e.rel, e.dst): e for e in rows if e.status == "active" and not (src_set & {e.src, e.dst})}
        for e in rows:
            if not src_set & {e.src, e.dst}:
                continue
            a, b = (target if e.src in src_set else e.src), (target if e.dst in src_set else e.dst)
            if e.rel in SYMMETRIC and b < a:
                a, b = b, a
            twin = live.get((a, e.rel, b))
            if a == b or (twin is not None and e.status == "active"):
                if twin is not None:  # fold a duplicate into its twin
                    conn.execute(sa.update(graph_edges).where(graph_edges.c.id == twin.id).values(
                        weight=twin.weight + e.weight, confidence=max(twin.confidence, e.confidence)))
                    self._move_provenance(conn, e.id, twin.id)
                conn.execute(sa.delete(graph_provenance).where(graph_provenance.c.item_id == e.id))
                conn.execute(sa.delete(graph_edges).where(graph_edges.c.id == e.id))
                continue
            conn.execute(sa.update(graph_edges).where(graph_edges.c.id == e.id).values(src=a, dst=b))
            if e.status == "active":
                live[(a, e.rel, b)] = e
        self._move_provenance(conn, sources, target)
        for part in st.chunks(sources):
            conn.execute(sa.update(graph_aliases).where(graph_aliases.c.node_id.in_(part)).values(node_id=target))
            conn.execute(sa.update(graph_nodes).where(graph_nodes.c.id.in_(part)).values(status="merged",
                                                                                        merged_into=target))
        conn.execute(sa.update(graph_nodes).where(graph_nodes.c.id == target).values(
            confidence=max(n.confidence for n in nodes), first_seen=min(n.first_seen for n in nodes)))

    @staticmethod
    def _move_provenance(conn: Connection, old: str | Sequence[str], new: str) -> None:
        olds = [old] if isinstance(old, str) else list(old)
        have = {r.memory_id for r in conn.execute(sa.select(graph_provenance.c.memory_id)
                                                  .where(graph_provenance.c.item_id == new))}
        moved: dict[str, dict[str, Any]] = {}
        for r in st.select_in(conn, graph_provenance, "item_id", olds):
            if r.memory_id not in have:
                moved.setdefault(r.memory_id, {**dict(r._mapping), "item_id": new})
        st.delete_in(conn, graph_provenance, "item_id", olds)
        if moved:
            conn.execute(graph_provenance.insert(), list(moved.values()))

    def merges(self) -> list[dict[str, Any]]:
        with self.store.sql.connect() as conn:
            rows = conn.execute(sa.select(graph_merges).order_by(graph_merges.c.at)).all()
        return [{**dict(r._mapping), "sources": json.loads(r.sources)} for r in rows]

    def unmerge(self, merge_id: str, *, principal: Principal) -> int:
        """Reverse a recorded merge (entity resolution is never final)."""
        with self.store.sql.connect() as conn:
            row = conn.execute(sa.select(graph_merges).where(graph_merges.c.id == merge_id)).first()
        if row is None or row.edit_seq is None:
            raise NotFoundError(f"no merge {merge_id!r}", hint="see graph.merges()")
        if row.undone:
            raise ValidationError(f"merge {merge_id} was already undone")
        return self.undo(row.edit_seq, principal=principal)

    def split(self, node: str, label: str, memory_ids: Sequence[str], *, principal: Principal) -> Node:
        """Move the mentions from ``memory_ids`` (and edges only they support) to a new node ``label``."""
        label = check_label(label)
        wanted = list(dict.fromkeys(memory_ids))
        with self.store.sql.connect() as conn:
            n = self._active(conn, [node])[0]
            have = {r.memory_id for r in conn.execute(sa.select(graph_provenance.c.memory_id)
                                                      .where(graph_provenance.c.item_id == node))}
            edges = self._touching(conn, [node])
        unknown = [m for m in wanted if m not in have]
        if not wanted or unknown:
            raise ValidationError(f"split of {node} names memories that do not support it: {unknown[:5]}",
                                  hint=f"choose among its {len(have)} memories (graph.provenance(node))")
        if set(wanted) >= have:
            raise ValidationError(f"split would move all {len(have)} memories and orphan node {node}'s provenance",
                                  hint="relabel the node instead, or leave at least one memory with it")
        new = Node(node_id(n.namespace, f"{normalise(label)}\x00split\x00{secrets.token_hex(4)}"), n.namespace, label,
                   n.type, n.confidence, origin="manual", created_at=self.clock.now(), first_seen=n.first_seen)

        def fn(conn: Connection) -> Cover:
            key = normalise(label)
            if conn.execute(sa.select(graph_aliases.c.node_id).where(graph_aliases.c.namespace == n.namespace,
                                                                      graph_aliases.c.key == key)).first():
                raise ValidationError(f"{label!r} already names a node", hint="merge into that node instead")
            conn.execute(graph_nodes.insert().values(**new.row()))
            conn.execute(graph_aliases.insert().values(namespace=n.namespace, key=key, node_id=new.id, alias=label))
            conn.execute(sa.update(graph_provenance).where(graph_provenance.c.item_id == node,
                                                           graph_provenance.c.memory_id.in_(wanted)).values(item_id=new.id))
            for e in st.select_in(conn, graph_edges, "id", edges):
                support = {r.memory_id for r in conn.execute(sa.select(graph_provenance.c.memory_id)
                                                             .where(graph_provenance.c.item_id == e.id))}
                if support and support <= set(wanted):
                    a, b = (new.id if e.src == node else e.src), (new.id if e.dst == node else e.dst)
                    conn.execute(sa.update(graph_edges).where(graph_edges.c.id == e.id).values(src=a, dst=b))
            return {"nodes": [new.id], "alias_nodes": [new.id], "prov_items": [new.id]}

        self._edit("split", f"split {node}: {len(wanted)} memories to {label[:80]!r}", principal,
                   {"nodes": [node], "edges": edges, "alias_nodes": [node], "prov_items": [node]}, fn)
        self.store.embed_nodes([new])
        return new
