"""Relationship inference and entity-resolution candidates.

Inferred edges are written with ``status="proposed"``, ``inferred=True`` and their evidence
(the rule and the edges it used, or the co-occurrence counts and PMI, or the similarity) and a
confidence. :meth:`GraphInference.accept` / :meth:`reject` are audited edits; a rejected triple is
never proposed again, and each rule's confidence is scaled by its acceptance rate so far.
Rules run to a fixed point over a set of triples, so cyclic rule sets and cyclic graphs terminate.
"""

from __future__ import annotations

import difflib
import json
import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import sqlalchemy as sa

from emergent.errors import ValidationError
from emergent.graph.model import SYMMETRIC, Edge, check_rel, edge_id, normalise
from emergent.graph.tables import graph_edges, graph_nodes
from emergent.workspace.audited import require

if TYPE_CHECKING:  # pragma: no cover
    from emergent.clock import Clock
    from emergent.graph.edit import GraphEditor
    from emergent.graph.search import GraphIndex
    from emergent.graph.store import GraphStore
    from emergent.principals import Principal

Triple = tuple[str, str, str]


@dataclass(frozen=True, slots=True)
class Rule:
    """``transitive``: a-r->b, b-r->c => a-r->c. ``inverse``: a-r->b => b-out->a.
    ``chain``: a-r->b, b-r2->c => a-out->c."""

    kind: str
    rel: str
    rel2: str = ""
    out: str = ""
    confidence: float = 0.9

    def __post_init__(self) -> None:
        if self.kind not in ("transitive", "inverse", "chain"):
            raise ValidationError(f"unknown rule kind {self.kind!r}", hint="use transitive, inverse or chain")
        for r in (self.rel, self.rel2, self.out):
            if r:
                check_rel(r)

    @property
    def name(self) -> str:
        return f"{self.kind}:{self.rel}" + (f"+{self.rel2}" if self.rel2 else "") + (f"->{self.out}" if self.out else "")


DEFAULT_RULES = (
    Rule("transitive", "part_of"), Rule("transitive", "located_in"), Rule("transitive", "subclass_of"),
    Rule("inverse", "parent_of", out="child_of"), Rule("inverse", "child_of", out="parent_of"),
    Rule("inverse", "works_at", out="employs"), Rule("chain", "works_at", "located_in", out="works_in"),
    Rule("chain", "lives_in", "located_in", out="lives_in_region"),
)


@dataclass(frozen=True, slots=True)
class MergeCandidate:
    target: str
    source: str
    score: float
    reason: str


def apply_rules(edges: dict[Triple, tuple[str, float]], rules: Sequence[Rule], *, max_rounds: int = 10,
                max_new: int = 100_000) -> dict[Triple, dict[str, Any]]:
    """New triples (with rule, evidence triples and confidence) from ``edges`` {triple: (id, confidence)}.

    Terminates on any input: only unseen, non-self-loop triples are added, and rounds are capped.
    """
    known: dict[Triple, float] = {t: c for t, (_, c) in edges.items()}
    ids = {t: i for t, (i, _) in edges.items()}
    new: dict[Triple, dict[str, Any]] = {}
    for _ in range(max_rounds):
        by_rel_src: dict[tuple[str, str], list[Triple]] = defaultdict(list)
        for t in known:
            by_rel_src[(t[1], t[0])].append(t)
        found: dict[Triple, dict[str, Any]] = {}
        for t in list(known):
            a, r, b = t
            for rule in rules:
                outs: list[tuple[Triple, list[Triple]]] = []
                if rule.kind == "inverse" and r == rule.rel:
                    outs.append(((b, rule.out, a), [t]))
                elif rule.kind in ("transitive", "chain") and r == rule.rel:
                    second = rule.rel if rule.kind == "transitive" else rule.rel2
                    out_rel = rule.rel if rule.kind == "transitive" else rule.out
                    outs += [((a, out_rel, t2[2]), [t, t2]) for t2 in by_rel_src.get((second, b), [])]
                for triple, evidence in outs:
                    if triple[0] == triple[2] or triple in known or triple in found:
                        continue
                    conf = rule.confidence * math.prod(known[e] for e in evidence)
                    found[triple] = {"rule": rule.name, "evidence": evidence, "confidence": conf}
        if not found:
            break
        for triple, info in found.items():
            known[triple] = info["confidence"]
            ids[triple] = ""
            new[triple] = info
            if len(new) >= max_new:
                return new
    return new


class GraphInference:
    """Proposes inferred edges in ``store`` and merge candidates; accepting, rejecting and merging are
    edits of ``editor``. ``index`` returns the current search index (co-occurrence counts)."""

    def __init__(self, store: GraphStore, clock: Clock, editor: GraphEditor, index: Callable[[], GraphIndex]) -> None:
        self.store = store
        self.clock = clock
        self.editor = editor
        self.index = index

    def rule_stats(self) -> dict[str, tuple[int, int]]:
        """Per inference rule: (accepted, rejected) so far."""
        stats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        with self.store.sql.connect() as conn:
            for r in conn.execute(sa.select(graph_edges.c.status, graph_edges.c.evidence)
                                  .where(graph_edges.c.inferred.is_(True),
                                         graph_edges.c.status.in_(["active", "rejected"]))):
                rule = json.loads(r.evidence or "{}").get("rule", "?")
                stats[rule][0 if r.status == "active" else 1] += 1
        return {k: (v[0], v[1]) for k, v in stats.items()}

    def infer(self, *, namespace: str | None = None, rules: Sequence[Rule] = DEFAULT_RULES, cooccurrence_min: int = 3,
              pmi_min: float = 1.0, similarity_min: float | None = 0.92, auto_accept: bool = False,
              by: Principal | None = None) -> list[Edge]:
        """Propose inferred edges from rules, co-occurrence statistics and embedding similarity.

        ``auto_accept=True`` accepts every proposal at once, as the decision of ``by`` (required then)."""
        if auto_accept:
            require(by, "accepting inferred edges (auto_accept=True)")
        stats = self.rule_stats()
        proposals: list[Edge] = []
        with self.store.sql.connect() as conn:
            q = sa.select(graph_edges)
            if namespace is not None:
                q = q.where(graph_edges.c.namespace == namespace)
            all_edges = [Edge.from_row(r) for r in conn.execute(q)]
        seen = {(e.namespace, e.src, e.rel, e.dst) for e in all_edges}  # rejected ones included: never re-proposed
        by_ns: dict[str, dict[Triple, tuple[str, float]]] = defaultdict(dict)
        for e in all_edges:
            if e.status == "active":
                by_ns[e.namespace][(e.src, e.rel, e.dst)] = (e.id, e.confidence)
        now = self.clock.now()
        for ns, edges in by_ns.items():
            for (a, r, b), info in apply_rules(edges, rules).items():
                acc, rej = stats.get(info["rule"], (0, 0))
                conf = info["confidence"] * (acc + 1) / (acc + rej + 2) * 2 if (acc or rej) else info["confidence"]
                ev = [edges[t][0] if t in edges else edge_id(ns, *t) for t in info["evidence"]]
                proposals.append(self._proposal(ns, a, r, b, min(conf, 0.99), {"rule": info["rule"], "edges": ev}, now))
        proposals += self._cooccurrence(namespace, cooccurrence_min, pmi_min, now)
        if similarity_min is not None:
            proposals += [self._proposal(ns, c.target, "similar_to", c.source, c.score,
                                         {"rule": "embedding_similarity", "similarity": c.score}, now)
                          for ns, c in self._similar(namespace, similarity_min)]
        fresh: dict[str, Edge] = {}
        for p in proposals:
            if (p.namespace, p.src, p.rel, p.dst) not in seen and p.src != p.dst and p.id not in fresh:
                fresh[p.id] = p
        if fresh:
            with self.store.sql.begin() as conn:
                conn.execute(graph_edges.insert(), [e.row() for e in fresh.values()])
            self.store.changed()
        if auto_accept and by is not None:  # required above
            for e in fresh.values():
                self.accept(e.id, by=by)
        return list(fresh.values())

    @staticmethod
    def _proposal(ns: str, a: str, rel: str, b: str, conf: float, evidence: dict[str, Any], now: float) -> Edge:
        if rel in SYMMETRIC and b < a:
            a, b = b, a
        return Edge(edge_id(ns, a, rel, b), ns, a, b, rel, float(conf), 1.0, None, None, True, "proposed",
                    "inferred", evidence, now)

    def _cooccurrence(self, namespace: str | None, min_count: int, pmi_min: float, now: float) -> list[Edge]:
        idx = self.index()
        nm = idx.node_memories
        if nm.shape[1] == 0:
            return []
        counts = np.asarray(nm.sum(axis=1)).ravel()
        keep = np.flatnonzero(counts >= min_count)
        if namespace is not None:
            ns_i = idx.ns_names.index(namespace) if namespace in idx.ns_names else -1
            keep = keep[idx.namespaces[keep] == ns_i]
        if len(keep) < 2:
            return []
        sub = nm[keep]
        co = (sub @ sub.T).tocoo()
        total = nm.shape[1]
        out = []
        for i, j, c in zip(co.row, co.col, co.data, strict=True):
            if i >= j or c < min_count or idx.namespaces[keep[i]] != idx.namespaces[keep[j]]:
                continue
            pmi = math.log(total * c / (counts[keep[i]] * counts[keep[j]]))
            if pmi >= pmi_min:
                a, b = idx.ids[keep[i]], idx.ids[keep[j]]
                conf = min(0.9, (c / (c + 2.0)) * min(1.0, pmi / 3.0))
                out.append(self._proposal(idx.ns_names[idx.namespaces[keep[i]]], a, "related_to", b, conf,
                                          {"rule": "cooccurrence", "count": int(c), "pmi": round(pmi, 3)}, now))
        return out

    def _similar(self, namespace: str | None, threshold: float, limit: int = 5000) -> list[tuple[str, MergeCandidate]]:
        if not self.store.has_vectors():
            return []
        active = {n.id for n in self.store.nodes(namespace)}
        rows = [r for r in self.store.vector_rows() if r["id"] in active]
        out: list[tuple[str, MergeCandidate]] = []
        by_ns: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            by_ns[r["namespace"]].append(r)
        for ns, items in by_ns.items():
            items = items[:limit]
            if len(items) < 2:
                continue
            m = np.stack([np.asarray(r["vector"], dtype=np.float32) for r in items])
            sims = m @ m.T
            ii, jj = np.nonzero(np.triu(sims, 1) >= threshold)
            out += [(ns, MergeCandidate(items[i]["id"], items[j]["id"], float(sims[i, j]), "embedding"))
                    for i, j in zip(ii, jj, strict=True) if normalise(items[i]["label"]) != normalise(items[j]["label"])]
        return out

    def accept(self, edge: str, *, by: Principal) -> Edge:
        """Accept a proposed (inferred) edge: ``by`` decides (an audited edit)."""
        return self.editor.update_edge(edge, status="active", principal=by)

    def reject(self, edge: str, *, by: Principal) -> Edge:
        """Reject a proposed edge: it is never proposed again, and its rule's confidence drops."""
        return self.editor.update_edge(edge, status="rejected", principal=by)

    # ------------------------------------------------------------------ entity resolution
    def merge_candidates(self, *, namespace: str | None = None, string_min: float = 0.9,
                         similarity_min: float = 0.95) -> list[MergeCandidate]:
        """Pairs that may be one entity: near-identical labels (blocked by prefix) and close embeddings."""
        with self.store.sql.connect() as conn:
            q = sa.select(graph_nodes.c.id, graph_nodes.c.namespace, graph_nodes.c.label, graph_nodes.c.type).where(
                graph_nodes.c.status == "active", graph_nodes.c.type != "concept")
            if namespace is not None:
                q = q.where(graph_nodes.c.namespace == namespace)
            rows = conn.execute(q).all()
        blocks: dict[tuple[str, str], list[Any]] = defaultdict(list)
        for r in rows:
            blocks[(r.namespace, normalise(r.label)[:2])].append(r)
        out: list[MergeCandidate] = []
        for items in blocks.values():
            items = items[:500]
            for i, a in enumerate(items):
                for b in items[i + 1:]:
                    ka, kb = normalise(a.label), normalise(b.label)
                    score = difflib.SequenceMatcher(None, ka, kb).ratio()
                    if score >= string_min:
                        out.append(MergeCandidate(a.id, b.id, score, "label"))
        out += [c for _, c in self._similar(namespace, similarity_min)]
        return sorted(out, key=lambda c: -c.score)

    def resolve(self, *, namespace: str | None = None, string_min: float = 0.9, similarity_min: float = 0.95,
                principal: Principal) -> list[str]:
        """Merge every candidate pair (each merge recorded and reversible with ``unmerge``)."""
        merged: list[str] = []
        gone: set[str] = set()
        for c in self.merge_candidates(namespace=namespace, string_min=string_min, similarity_min=similarity_min):
            if c.target in gone or c.source in gone:
                continue
            merged.append(self.editor.merge(c.target, [c.source], reason=c.reason, score=c.score,
                                            principal=principal))
            gone.add(c.source)
        return merged
