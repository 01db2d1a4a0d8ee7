"""The GraphExplorer widget drives the service: search, time, communities, details, audited edits."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from graph_helpers import STORY, make_graph, me

pytest.importorskip("ipywidgets")
from emergent.ui.graph_explorer import ALL, GraphExplorer  # noqa: E402


def test_explorer_searches_filters_and_edits_with_undo(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    ex = GraphExplorer(kg, principal=me(kg))
    assert "srcdoc" in ex.picture.value and len(ex.time.options) > 2
    ex.query.value = "Jolene"
    ex.search()
    jolene = kg.find("Jolene", "a/u")
    assert jolene.id in ex.focus and jolene.id in ex.view
    ex.node.value = jolene.id
    assert "provenance (3 memories)" in ex.details.value and "works_at" in ex.details.value
    ex.time.value = ex.time.options[0][1]  # the earliest day: later entities disappear
    assert all(d["first_seen"] <= ex.at for _, d in ex.view.nodes(data=True))
    ex.time.value = "now"
    comm = [c for c in ex.community.options if c != ALL][0]
    ex.community.value = comm
    assert ex.view.number_of_nodes() >= 1
    ex.community.value = ALL
    ex.node.value = jolene.id
    ex.label.value = "Jolene Q"
    ex.buttons["relabel"].click()
    assert kg.node(jolene.id).label == "Jolene Q" and kg.edits(1)[0].actor == me(kg).key
    ex.buttons["undo"].click()
    assert kg.node(jolene.id).label == "Jolene"
    ex.other.value = "no such node"
    ex.buttons["merge other into node"].click()
    assert "no node named" in ex.message.value and kg.check() == []


def test_an_explorer_without_a_principal_reads_but_does_not_edit(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    ex = GraphExplorer(kg)
    jolene = kg.find("Jolene", "a/u")
    ex.node.value = jolene.id
    ex.label.value = "Jolene Q"
    ex.buttons["relabel"].click()
    assert "not a principal" in ex.message.value and kg.node(jolene.id).label == "Jolene" and kg.edits() == []


def test_explorer_opens_a_100k_node_graph_capped_with_a_note(tmp_path: Path) -> None:
    from emergent.graph.synthetic import load_random_graph

    kg = make_graph(tmp_path)
    load_random_graph(kg, 100_000, 1)
    t0 = time.perf_counter()
    ex = GraphExplorer(kg, max_nodes=200)
    elapsed = time.perf_counter() - t0
    assert ex.view.number_of_nodes() <= 200 and "of 100,000 nodes" in ex.note.value
    ex.query.value = "Entity 5"
    ex.search()
    assert kg.find("Entity 5", "bench").id in ex.focus and ex.view.number_of_nodes() <= 800
    assert elapsed < 30


def test_node_details_show_memory_text_through_the_memory_service(ws) -> None:
    kg = ws.graph
    ws.memory.ingest([{"text": "Jolene works at Google.", "meta": {"speaker": "Caroline"}}], scope="a/u")
    ex = GraphExplorer(kg, memory=ws.memory)
    ex.node.value = kg.find("Jolene", "a/u").id
    assert "Jolene works at Google." in ex.details.value
