"""Extraction, incremental updates, temporal edges, persistence and export."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
from graph_helpers import STORY, make_graph, me, rec

from emergent.graph import RuleExtractor
from emergent.graph.extract import parse_date


def labels(kg, **view):
    g = kg.to_networkx(**view)
    return {d["label"] for _, d in g.nodes(data=True)}


def test_rule_extractor_finds_names_speaker_patterns_and_dates() -> None:
    ex = RuleExtractor().extract("My friend Jolene works at Google in New York since 8 May, 2023. Mail jo@ex.org",
                                 {"speaker": "Caroline", "date": "1:56 pm on 9 May, 2023"}, 0.0)
    names = {m.label: m.type for m in ex.entities}
    assert names["Caroline"] == "person" and "Jolene" in names and "New York" in names
    assert names["jo@ex.org"] == "email" and names["8 May, 2023"] == "date"
    rels = {(r.src, r.rel, r.dst) for r in ex.relations}
    assert ("Jolene", "works_at", "Google") in rels and ("Caroline", "friend_of", "Jolene") in rels
    assert ex.valid_from == parse_date("9 May 2023")


def test_building_keeps_provenance_and_resolves_repeated_entities(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    report = kg.add_memories(STORY)
    assert report.memories == 4 and report.nodes_added > 5 and report.strategy == "rules"
    jolene = kg.find("jolene", "a/u")
    assert jolene is not None and sorted(kg.provenance(jolene.id)) == ["m1", "m2", "m4"]
    works = [e for e in kg.edges(jolene.id) if e.rel == "works_at"]
    assert len(works) == 1 and kg.provenance(works[0].id) == ["m1"] and 0 < works[0].confidence <= 1
    assert kg.check() == []


def test_later_fact_supersedes_earlier_one_and_point_in_time_views(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    caroline = kg.find("Caroline", "a/u")
    lives = {kg.node(e.dst).label: e for e in kg.edges(caroline.id) if e.rel == "lives_in"}
    assert lives["Boston"].valid_to == lives["Paris"].valid_from == 1.70e9 and lives["Paris"].valid_to is None

    def lives_at(t: float) -> set[str]:
        g = kg.to_networkx(at=t)
        return {g.nodes[b]["label"] for a, b, d in g.edges(data=True) if d["rel"] == "lives_in"}

    assert lives_at(1.65e9) == {"Boston"} and lives_at(1.75e9) == {"Paris"}
    assert "Clayworks Studio" not in labels(kg, at=1.705e9) and "Clayworks Studio" in labels(kg)


def test_forgetting_removes_only_what_the_memory_alone_supported(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    report = kg.remove_memories(["m2"])
    assert report.edges_removed > 0 and "Paris" not in labels(kg) and "Jolene" in labels(kg)
    caroline = kg.find("Caroline", "a/u")
    boston = next(e for e in kg.edges(caroline.id) if e.rel == "lives_in")
    assert boston.valid_to is None  # the superseding fact is gone, so Boston is current again
    assert kg.check() == []


def test_updating_a_memory_replaces_what_it_said(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY[:1])
    kg.add_memories([rec("m1", "I moved to Lisbon last year.", speaker="Caroline", at=1.60e9)])
    assert "Lisbon" in labels(kg) and "Google" not in labels(kg) and kg.check() == []


def test_scopes_get_separate_entities(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories([rec("x1", "Alice met Bob.", scope="a/u1"), rec("x2", "Alice met Carol.", scope="a/u2")])
    a1, a2 = kg.find("Alice", "a/u1"), kg.find("Alice", "a/u2")
    assert a1.id != a2.id and "Carol" not in labels(kg, scope="a/u1")


def test_graph_persists_and_exports_to_graphml_and_json(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    again = make_graph(tmp_path)
    assert again.counts() == kg.counts()
    path = kg.export_graphml(tmp_path / "g.graphml")
    g = nx.read_graphml(path)
    assert g.number_of_nodes() == kg.counts()["nodes"]
    data = kg.export_json(tmp_path / "g.json")
    assert json.loads((tmp_path / "g.json").read_text())["nodes"] and data["edges"]


def test_node_embeddings_live_in_lancedb(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    table = kg.lance.db.open_table("graph_node_vectors")
    assert table.count_rows() == kg.counts()["nodes"]
    kg.remove_memories(["m4"])
    assert kg.lance.db.open_table("graph_node_vectors").count_rows() == kg.counts()["nodes"]


@pytest.mark.parametrize("text", ["Zoë visited 東京 with Ünal 🎉", "Ünal " + "Very " * 5 + "Long Name"])
def test_unicode_text_builds_a_consistent_graph(tmp_path: Path, text: str) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories([rec("u1", text)])
    assert kg.check() == [] and kg.counts()["nodes"] >= 1


def test_a_fact_repeated_in_later_batches_reinforces_one_edge(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    for i in range(3):
        kg.add_memories([rec(f"w{i}", "Jolene works at Google.", at=1.6e9 + i)])
    works = [e for e in kg.edges() if e.rel == "works_at"]
    assert len(works) == 1 and works[0].weight == 3 and works[0].confidence > 0.9
    assert sorted(kg.provenance(works[0].id)) == ["w0", "w1", "w2"]


def test_build_edit_and_forget_on_every_sql_backend(tmp_path: Path, sql_url: str) -> None:
    kg = make_graph(tmp_path, url=sql_url)
    kg.add_memories(STORY)
    jolene, google = kg.find("Jolene", "a/u"), kg.find("Google", "a/u")
    mid = kg.merge(jolene.id, [google.id], principal=me(kg))
    kg.unmerge(mid, principal=me(kg))
    kg.remove_memories(["m1"])
    assert kg.find("Google", "a/u") is None and kg.check() == []
    assert kg.search("Jolene", scope="a/u").memories
