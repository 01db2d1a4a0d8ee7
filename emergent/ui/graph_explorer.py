"""``GraphExplorer``: search, neighbourhood depth, a time slider, a community filter, node details
with provenance, and an editor (add, merge, split, relabel, delete, undo). It reads and edits only
through the ``KnowledgeGraph`` service, so every edit is audited there and undoable.

Big graphs stay responsive: the view is an SQL overview or neighbourhood (never the whole graph)
and the renderer caps what it draws, saying so.
"""

from __future__ import annotations

import html
from datetime import UTC, datetime
from typing import Any

import ipywidgets as widgets

from emergent.errors import EmergentError

ALL = "all communities"


def _day(t: float) -> str:
    return datetime.fromtimestamp(t, tz=UTC).strftime("%Y-%m-%d")


class GraphExplorer(widgets.VBox):
    """``GraphExplorer(ws.graph, memory=ws.memory, principal=ws.principal)`` in a notebook cell.

    Edits are made (and audited) as ``principal``; without one the explorer only reads."""

    def __init__(self, graph: Any, *, memory: Any = None, max_nodes: int = 300, height: int = 520,
                 principal: Any = None) -> None:
        self.kg, self.memory, self.max_nodes, self.height = graph, memory, max_nodes, height
        self.principal = principal
        self.focus: list[str] = []
        self.view: Any = None
        self.query = widgets.Text(placeholder="search entities or ask a question", layout={"width": "40%"})
        self.search_button = widgets.Button(description="Search", icon="search")
        self.depth = widgets.IntSlider(value=1, min=0, max=3, description="depth")
        self.time = widgets.SelectionSlider(options=["now"], value="now", description="as of",
                                            continuous_update=False, layout={"width": "45%"})
        self.community = widgets.Dropdown(options=[ALL], value=ALL, description="community")
        self.picture = widgets.HTML()
        self.note = widgets.HTML()
        self.node = widgets.Dropdown(options=[], description="node", layout={"width": "50%"})
        self.details = widgets.HTML()
        self.message = widgets.HTML()
        self._editor = self._build_editor()
        self.search_button.on_click(lambda _b: self.search())
        self.query.on_submit(lambda _w: self.search())
        for w in (self.depth, self.time, self.community):
            w.observe(lambda _c: self.refresh(), names="value")
        self.node.observe(lambda _c: self.show_node(), names="value")
        super().__init__([widgets.HBox([self.query, self.search_button, self.depth]),
                          widgets.HBox([self.time, self.community]), self.note, self.picture,
                          self.node, self.details, self._editor, self.message])
        self.add_class("emergent-graph-explorer")
        self._init_time()
        self.refresh()

    # ------------------------------------------------------------------ view
    def _init_time(self) -> None:
        span = self.kg.first_seen_range() if self.kg.counts()["nodes"] else None
        if span is None or span[1] <= span[0]:
            return
        lo, hi = span
        steps = [lo + (hi - lo) * i / 24 for i in range(25)]
        self.time.options = [(_day(t), t) for t in steps] + [("now", "now")]
        self.time.value = "now"

    @property
    def at(self) -> float | None:
        return None if self.time.value == "now" else float(self.time.value)

    def search(self) -> None:
        q = self.query.value.strip()
        if not q:
            self.focus = []
        else:
            res = self.kg.search(q, k=10, paths=0)
            self.focus = list(dict.fromkeys([*res.seeds, *(h.node.id for h in res.nodes[:5])]))
            if not self.focus:
                self._say(f"no entity matches {q!r}", error=True)
        self.refresh()

    def refresh(self) -> None:
        from emergent.graph.render import render

        try:
            if self.focus:
                g = self.kg.neighbourhood(self.focus, depth=self.depth.value, at=self.at, limit=self.max_nodes * 4)
            else:
                g = self.kg.overview(limit=self.max_nodes, at=self.at)
            comms = self._communities(g)
            if self.community.value != ALL:
                keep = [n for n, c in comms.items() if c == self.community.value]
                g = g.subgraph(keep).copy()
            self.view = g
            rendered = render(g, communities=comms, max_nodes=self.max_nodes, height=self.height,
                              highlight=set(self.focus))
            total = self.kg.counts()["nodes"]
            shown = f"{rendered.shown_nodes:,} of {total:,} nodes shown"
            self.note.value = html.escape(rendered.note or shown) + (" · " + html.escape(shown) if rendered.note else "")
            self.picture.value = rendered.iframe()
            opts = sorted(((str(d.get("label", n))[:80], n) for n, d in g.nodes(data=True)), key=lambda x: x[0].lower())
            self.node.options = opts[: self.max_nodes]
        except EmergentError as exc:
            self._say(exc.message + (f" — {exc.hint}" if exc.hint else ""), error=True)

    def _communities(self, g: Any) -> dict[str, int]:
        import networkx as nx

        if self.kg.counts()["nodes"] <= 5000:
            comms = self.kg.community_of(at=self.at)
        else:  # a very large graph: communities of what is on screen
            parts = nx.community.louvain_communities(nx.Graph(g), seed=7) if g.number_of_nodes() else []
            comms = {n: i for i, p in enumerate(sorted(parts, key=len, reverse=True)) for n in p}
        options = [ALL, *sorted({c for n, c in comms.items() if n in g})]
        if list(self.community.options) != options:
            value = self.community.value if self.community.value in options else ALL
            with self.community.hold_trait_notifications():
                self.community.options = options
                self.community.value = value
        return comms

    def show_node(self) -> None:
        nid = self.node.value
        if not nid:
            self.details.value = ""
            return
        n = self.kg.node(nid)
        aliases = self.kg.aliases(nid)
        memories = self.kg.provenance(nid)
        edges = self.kg.edges(nid)[:30]
        names = {x: str(self.view.nodes[x].get("label", x)) for x in self.view} if self.view is not None else {}
        rows = "".join(f"<li>{html.escape(names.get(e.src, e.src)[:60])} <b>{html.escape(e.rel)}</b> "
                       f"{html.escape(names.get(e.dst, e.dst)[:60])} <small>({e.confidence:.2f}"
                       f"{', inferred' if e.inferred else ''})</small></li>" for e in edges)
        mems = "".join(f"<li><code>{html.escape(m)}</code> {html.escape(self._memory_text(m, n.namespace))}</li>"
                       for m in memories[:10])
        more = f"<li>… and {len(memories) - 10:,} more</li>" if len(memories) > 10 else ""
        alias_text = ", ".join(html.escape(a[:60]) for a in aliases[:20]) + (
            f" … and {len(aliases) - 20:,} more" if len(aliases) > 20 else "")
        self.details.value = (f"<b>{html.escape(n.label[:200])}</b> <small>{html.escape(n.type)} · {n.origin} · "
                              f"confidence {n.confidence:.2f} · first seen {_day(n.first_seen)}</small>"
                              f"<br>aliases: {alias_text}<br>relations:<ul>{rows}</ul>"
                              f"provenance ({len(memories):,} memories):<ul>{mems}{more}</ul>")

    def _memory_text(self, mid: str, namespace: str) -> str:
        if self.memory is None:
            return ""
        try:
            return str(self.memory.get(mid, scope=namespace).text[:160])
        except EmergentError:
            return "(no longer in memory)"

    # ------------------------------------------------------------------ editor
    def _build_editor(self) -> widgets.Widget:
        self.label = widgets.Text(placeholder="label / new label", description="label")
        self.rel = widgets.Text(placeholder="relation, e.g. works_at", description="relation")
        self.other = widgets.Text(placeholder="other node label (edge target, merge source)", description="other")
        self.split_ids = widgets.Text(placeholder="memory ids for split, comma-separated", description="memories")
        buttons = {"add node": self.add_node, "add edge": self.add_edge, "relabel": self.relabel,
                   "merge other into node": self.merge, "split": self.split, "delete node": self.delete,
                   "undo": self.undo}
        row = []
        for name, fn in buttons.items():
            b = widgets.Button(description=name)
            b.on_click(lambda _b, fn=fn: self._act(fn))
            row.append(b)
        self.buttons = dict(zip(buttons, row, strict=True))
        return widgets.VBox([widgets.HTML("<b>Edit</b> (every edit is logged and can be undone)"),
                             widgets.HBox([self.label, self.rel]), widgets.HBox([self.other, self.split_ids]),
                             widgets.HBox(row)])

    def _act(self, fn: Any) -> None:
        try:
            msg = fn()
        except EmergentError as exc:
            self._say(exc.message + (f" — {exc.hint}" if exc.hint else ""), error=True)
            return
        self._say(msg)
        self.refresh()

    def _other(self) -> str:
        scope = self._namespace()
        n = self.kg.find(self.other.value, scope)
        if n is None:
            from emergent.errors import NotFoundError

            raise NotFoundError(f"no node named {self.other.value!r}", hint="type the label of an existing node")
        return str(n.id)

    def _namespace(self) -> str | None:
        return self.kg.node(self.node.value).namespace if self.node.value else None

    def _selected(self) -> str:
        if not self.node.value:
            from emergent.errors import ValidationError

            raise ValidationError("no node selected", hint="pick one in the node list first")
        return str(self.node.value)

    def add_node(self) -> str:
        n = self.kg.add_node(self.label.value, scope=self._namespace(), principal=self.principal)
        self.focus = [n.id, *self.focus]
        return f"added {n.label!r}"

    def add_edge(self) -> str:
        e = self.kg.add_edge(self._selected(), self.rel.value, self._other(), principal=self.principal)
        return f"added edge {e.rel}"

    def relabel(self) -> str:
        return f"relabelled to {self.kg.relabel(self._selected(), self.label.value, principal=self.principal).label!r}"

    def merge(self) -> str:
        return f"merged (merge id {self.kg.merge(self._selected(), [self._other()], principal=self.principal)})"

    def split(self) -> str:
        ids = [x.strip() for x in self.split_ids.value.split(",") if x.strip()]
        n = self.kg.split(self._selected(), self.label.value, ids, principal=self.principal)
        return f"split off {n.label!r}"

    def delete(self) -> str:
        nid = self._selected()
        self.kg.delete_node(nid, cascade=True, principal=self.principal)
        self.focus = [f for f in self.focus if f != nid]
        return "deleted"

    def undo(self) -> str:
        self.kg.undo(principal=self.principal)
        return f"undone: {self.kg.edits(1)[0].summary}"

    def _say(self, text: str, *, error: bool = False) -> None:
        colour = "#cf222e" if error else "#1a7f37"
        self.message.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"
