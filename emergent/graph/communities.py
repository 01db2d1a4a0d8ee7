"""Communities (Louvain, networkx) with a label and summary each, and centrality measures.

Labels come from the configured LLM when there is one, else from the community's most central
members and most frequent terms; every community says which strategy named it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from emergent.graph.model import normalise

if TYPE_CHECKING:  # pragma: no cover
    from emergent.graph.store import GraphStore
    from emergent.graph.views import GraphViews
    from emergent.providers.llm import ChatModel


class CommunityTitle(BaseModel):
    title: str
    summary: str


@dataclass(slots=True)
class Community:
    id: int
    nodes: list[str]
    label: str
    summary: str
    top_terms: list[str] = field(default_factory=list)
    strategy: str = "top-terms"


class GraphAnalysis:
    """Centrality and communities of ``views``' networkx graphs, cached until ``store`` changes;
    communities are named by ``llm`` when there is one."""

    def __init__(self, store: GraphStore, views: GraphViews, llm: ChatModel | None = None) -> None:
        self.store = store
        self.views = views
        self.llm = llm
        self._cache: dict[str, Any] = {}
        self._cache_version = store.version

    def _cached(self, key: str) -> Any:
        if self._cache_version != self.store.version:
            self._cache, self._cache_version = {}, self.store.version
        return self._cache.get(key)

    def centrality(self, *, kind: str = "pagerank", **view: Any) -> dict[str, float]:
        """Centrality of every node: ``pagerank`` (default), ``degree`` or ``betweenness`` (sampled)."""
        import networkx as nx

        key = f"centrality:{kind}:{sorted(view.items())}"
        version = self.store.version
        cached = self._cached(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        g = nx.Graph(self.views.to_networkx(**view))
        if g.number_of_nodes() == 0:
            return {}
        if kind == "pagerank":
            out = nx.pagerank(g, weight="confidence")
        elif kind == "degree":
            out = nx.degree_centrality(g)
        elif kind == "betweenness":
            out = nx.betweenness_centrality(g, k=min(200, g.number_of_nodes()), seed=7)
        else:
            from emergent.errors import ValidationError

            raise ValidationError(f"unknown centrality {kind!r}", hint="use pagerank, degree or betweenness")
        self._keep(key, out, version)
        return out

    def communities(self, *, resolution: float = 1.0, seed: int = 7, min_size: int = 2, **view: Any) -> list[Community]:
        """Louvain communities of the active graph, largest first, each labelled."""
        import networkx as nx

        key = f"communities:{resolution}:{seed}:{min_size}:{sorted(view.items())}"
        version = self.store.version
        cached = self._cached(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        mg = self.views.to_networkx(**view)
        g = nx.Graph()
        g.add_nodes_from(mg.nodes(data=True))
        for a, b, d in mg.edges(data=True):
            w = g.get_edge_data(a, b, {}).get("weight", 0.0)
            g.add_edge(a, b, weight=w + float(d.get("confidence", 0.5)))
        parts = nx.community.louvain_communities(g, weight="weight", resolution=resolution, seed=seed) if g else []
        parts = sorted((sorted(p) for p in parts if len(p) >= min_size), key=lambda p: (-len(p), p[0]))
        rank = nx.pagerank(g, weight="weight") if g.number_of_nodes() else {}
        out = [self._label(i, p, g, rank) for i, p in enumerate(parts)]
        self._keep(key, out, version)
        return out

    def _keep(self, key: str, value: Any, version: int) -> None:
        """Cache ``value`` computed at graph ``version`` (dropped when the graph changed meanwhile)."""
        if version == self.store.version == self._cache_version:
            self._cache[key] = value

    def _label(self, i: int, members: list[str], g: Any, rank: dict[str, float]) -> Community:
        central = sorted(members, key=lambda n: -rank.get(n, 0.0))
        labels = [g.nodes[n].get("label", n) for n in central]
        terms = Counter(w for n in members for w in normalise(g.nodes[n].get("label", "")).split() if len(w) > 2)
        top = [w for w, _ in terms.most_common(5)]
        names = ", ".join(lb[:40] for lb in labels[:3])
        comm = Community(i, members, f"{names}" + (" …" if len(members) > 3 else ""),
                         f"{len(members)} entities around {names}; frequent terms: {', '.join(top) or '—'}", top)
        if self.llm is not None:
            from emergent.graph.extract import llm_json

            try:
                out = llm_json(self.llm, [{"role": "user", "content": "Give a short title (at most 6 words) and a "
                                           "one-sentence summary of this group of entities: " + "; ".join(labels[:30])}],
                               CommunityTitle)
                comm.label, comm.summary, comm.strategy = out.title[:80], out.summary[:500], "llm"
            except Exception:  # the model is optional; keep the deterministic label
                comm.strategy = "top-terms (llm failed)"
        return comm

    def community_of(self, **view: Any) -> dict[str, int]:
        return {n: c.id for c in self.communities(**view) for n in c.nodes}
