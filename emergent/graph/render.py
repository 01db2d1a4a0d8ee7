"""Offline pyvis rendering: self-contained HTML, isolated in an iframe, capped for big graphs.

pyvis ``cdn_resources="in_line"`` inlines vis-network but still links bootstrap from a CDN and a
``../node_modules`` stylesheet; every ``<link>`` and external ``<script src>`` is stripped, so the
page makes no request at all. Notebook output goes in an ``<iframe srcdoc>`` with
``sandbox="allow-scripts"`` so the page's CSS and scripts cannot touch the notebook. Nodes are
coloured by community and sized by centrality; graphs above ``max_nodes`` are cut to the most
central nodes, and the page says so.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any

from emergent.errors import MissingExtraError

PALETTE = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f",
           "#bab0ac", "#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22"]
_EXTERNAL = [re.compile(r"<link\b[^>]*>", re.I | re.S),
             re.compile(r"<script\b[^>]*\bsrc\s*=[^>]*>\s*</script>", re.I | re.S)]
LABEL_CHARS = 40


@dataclass(slots=True)
class Rendered:
    """Self-contained HTML of a graph; displays itself in an isolated iframe in Jupyter."""

    html: str
    shown_nodes: int
    total_nodes: int
    note: str = ""
    height: int = 600

    def iframe(self) -> str:
        return (f'<iframe sandbox="allow-scripts" style="width:100%;height:{self.height + 40}px;border:0" '
                f'srcdoc="{html.escape(self.html, quote=True)}"></iframe>')

    def _repr_html_(self) -> str:
        note = f"<div style='font:12px sans-serif;color:#666'>{html.escape(self.note)}</div>" if self.note else ""
        return note + self.iframe()

    def save(self, path: Any) -> Any:
        from pathlib import Path

        Path(path).write_text(self.html, "utf-8")
        return Path(path)


def strip_external(page: str) -> str:
    """Remove every tag that would fetch something (CDN links, external scripts)."""
    for rx in _EXTERNAL:
        page = rx.sub("", page)
    return page


def _short(label: str) -> str:
    label = " ".join(str(label).split())
    return label if len(label) <= LABEL_CHARS else label[: LABEL_CHARS - 1] + "…"


def cap(g: Any, max_nodes: int, centrality: dict[str, float] | None = None, keep: set[str] | None = None) -> tuple[Any, str]:
    """The ``max_nodes`` most central nodes of ``g`` (``keep`` always included), and a note when cut."""
    n = g.number_of_nodes()
    if n <= max_nodes:
        return g, ""
    score = centrality or dict(g.degree())
    ranked = sorted(g.nodes, key=lambda x: -score.get(x, 0.0))
    chosen = list(dict.fromkeys([*(keep or ()), *ranked]))[:max_nodes]
    return g.subgraph(chosen).copy(), (f"showing {len(chosen):,} of {n:,} nodes (the most central); "
                                       "search or filter to see the rest")


def render(g: Any, *, communities: dict[str, int] | None = None, centrality: dict[str, float] | None = None,
           max_nodes: int = 300, height: int = 600, highlight: set[str] | None = None,
           stabilization: int = 200) -> Rendered:
    """Render a networkx graph (nodes with ``label``/``type``, edges with ``rel``) to offline HTML."""
    try:
        from pyvis.network import Network
    except ImportError as exc:
        raise MissingExtraError("graph rendering", "jupyter", "pyvis") from exc
    total = g.number_of_nodes()
    sub, note = cap(g, max_nodes, centrality, highlight)
    cent = centrality or {k: float(v) for k, v in sub.degree()}
    top = max((cent.get(x, 0.0) for x in sub.nodes), default=0.0) or 1.0
    net = Network(height=f"{height}px", width="100%", directed=True, cdn_resources="in_line", notebook=False)
    for nid, d in sub.nodes(data=True):
        label = str(d.get("label", nid))
        comm = (communities or {}).get(nid)
        color = PALETTE[comm % len(PALETTE)] if comm is not None else "#97a3b6"
        title = f"{label}\n{d.get('type', '')}" + (f"\ncommunity {comm}" if comm is not None else "")
        net.add_node(str(nid), label=_short(label), title=html.escape(title[:2000]), color=color,
                     size=10 + 30 * (cent.get(nid, 0.0) / top), borderWidth=3 if highlight and nid in highlight else 1)
    for a, b, d in sub.edges(data=True):
        dashes = bool(d.get("inferred")) or d.get("status") == "proposed"
        net.add_edge(str(a), str(b), title=html.escape(str(d.get("rel", ""))), label=_short(str(d.get("rel", ""))),
                     dashes=dashes, width=1 + 2 * float(d.get("confidence", 0.5)))
    net.options.physics.stabilization.iterations = stabilization
    net.options.edges.smooth = False
    page = strip_external(net.generate_html(notebook=False))
    style = "<style>body{margin:0;font-family:sans-serif}#mynetwork{border:0!important}.card{border:0}</style>"
    page = page.replace("</head>", style + "</head>", 1)
    if note:
        page = page.replace("<body>", f"<body><div id='emergent-note' style='font:12px sans-serif;color:#666'>"
                                      f"{html.escape(note)}</div>", 1)
    return Rendered(page, sub.number_of_nodes(), total, note, height)


def render_graph(kg: Any, *, max_nodes: int = 300, **view: Any) -> Rendered:
    """Render a knowledge graph view (``at=``, ``scope=``, ``namespace=``) coloured by community."""
    g = kg.to_networkx(**view)
    return render(g, communities=kg.community_of(**view), centrality=kg.centrality(**view), max_nodes=max_nodes)
