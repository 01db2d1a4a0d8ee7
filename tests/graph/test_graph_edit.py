"""The editor: audited, undoable edits; merges recorded and reversible; bad edits refused cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from graph_helpers import STORY, make_graph

from emergent.errors import OperationalError, ValidationError


@pytest.fixture
def kg(tmp_path: Path):
    g = make_graph(tmp_path)
    g.add_memories(STORY)
    return g


def state(kg):
    return (sorted((n.id, n.label, n.status) for n in kg.nodes(status=None)),
            sorted((e.id, e.src, e.dst, e.rel, e.status) for e in kg.edges(status=None)))


def test_add_relabel_and_delete_are_logged_and_undone_in_reverse(kg) -> None:
    before = state(kg)
    n = kg.add_node("Clay Guild", scope="a/u", type="org")
    jolene = kg.find("Jolene", "a/u")
    kg.add_edge(jolene.id, "member_of", n.id, confidence=0.9)
    kg.relabel(n.id, "The Clay Guild of Boston")
    assert kg.find("clay guild", "a/u").id == n.id  # the old label stays an alias
    kg.delete_node(n.id, cascade=True)
    assert [e.op for e in kg.edits()][:4] == ["delete_node", "relabel", "add_edge", "add_node"]
    for _ in range(4):
        kg.undo()
    assert state(kg) == before and kg.check() == []


def test_undo_refuses_when_a_later_edit_touched_the_same_rows(kg) -> None:
    n = kg.add_node("Kiln", scope="a/u")
    first = kg.edits()[0].seq
    kg.relabel(n.id, "Big Kiln")
    with pytest.raises(OperationalError, match="later edits"):
        kg.undo(first)
    kg.undo()
    kg.undo(first)
    assert kg.find("kiln", "a/u") is None


def test_merge_is_recorded_rewires_edges_and_unmerges(kg) -> None:
    before = state(kg)
    paris, louvre = kg.find("Paris", "a/u"), kg.find("Louvre Museum", "a/u")
    prov = set(kg.provenance(paris.id)) | set(kg.provenance(louvre.id))
    mid = kg.merge(paris.id, [louvre.id], reason="test")
    assert kg.find("Louvre Museum", "a/u").id == paris.id and set(kg.provenance(paris.id)) == prov
    assert kg.node(louvre.id).status == "merged" and kg.merges()[-1]["id"] == mid
    assert kg.check() == []
    kg.unmerge(mid)
    assert state(kg) == before and kg.merges()[-1]["undone"] and kg.check() == []


def test_merge_folds_duplicate_edges_and_drops_self_loops(kg) -> None:
    caroline, melanie = kg.find("Caroline", "a/u"), kg.find("Melanie", "a/u")
    kg.merge(caroline.id, [melanie.id])
    edges = kg.edges(caroline.id)
    triples = [(e.src, e.rel, e.dst) for e in edges]
    assert len(triples) == len(set(triples)) and all(e.src != e.dst for e in edges)
    assert kg.check() == []


def test_split_moves_chosen_memories_and_refuses_to_orphan_provenance(kg) -> None:
    jolene = kg.find("Jolene", "a/u")
    with pytest.raises(ValidationError, match="orphan"):
        kg.split(jolene.id, "Jolene (cousin)", kg.provenance(jolene.id))
    with pytest.raises(ValidationError, match="do not support"):
        kg.split(jolene.id, "Jolene (cousin)", ["nope"])
    new = kg.split(jolene.id, "Jolene (cousin)", ["m4"])
    assert kg.provenance(new.id) == ["m4"] and "m4" not in kg.provenance(jolene.id)
    assert kg.check() == []
    kg.undo()
    assert sorted(kg.provenance(jolene.id)) == ["m1", "m2", "m4"] and kg.check() == []


def test_bad_edits_are_refused_and_leave_the_graph_unchanged(kg) -> None:
    before = state(kg)
    jolene, google = kg.find("Jolene", "a/u"), kg.find("Google", "a/u")
    with pytest.raises(ValidationError, match="self-loop"):
        kg.add_edge(jolene.id, "knows", jolene.id)
    with pytest.raises(ValidationError, match="already exists"):
        kg.add_edge(jolene.id, "works_at", google.id)
    with pytest.raises(ValidationError, match="dangling"):
        kg.delete_node(jolene.id)
    with pytest.raises(ValidationError, match="relation"):
        kg.add_edge(jolene.id, "Works At!", google.id)
    with pytest.raises(ValidationError, match="limit"):
        kg.add_node("x" * 5000, scope="a/u")
    with pytest.raises(ValidationError, match="letter or digit"):
        kg.add_node(" ... ", scope="a/u")
    with pytest.raises(ValidationError, match="already names"):
        kg.add_node("JOLENE", scope="a/u")
    assert state(kg) == before and kg.check() == []


def test_unicode_and_long_labels_round_trip(kg) -> None:
    long = "Ünïcødé 東京 " + "label " * 150
    n = kg.add_node(long, scope="a/u")
    assert kg.node(n.id).label == long.strip() and kg.find(long, "a/u").id == n.id


def test_an_entity_with_thousands_of_aliases_resolves_and_merges(tmp_path: Path) -> None:
    from graph_helpers import rec

    kg = make_graph(tmp_path)
    kg.add_memories([rec("a", "Acme shipped."), *(rec(f"a{i}", f"Acme Unit{i} shipped.") for i in range(2000))])
    target = kg.find("Acme", "a/u")
    others = [n.id for n in kg.nodes() if n.label.startswith("Acme Unit")]
    assert len(others) == 2000
    mid = kg.merge(target.id, others, reason="bulk")
    assert len(kg.aliases(target.id)) == 2001 and kg.find("acme unit1234", "a/u").id == target.id
    assert kg.check() == []
    kg.unmerge(mid)
    assert kg.find("acme unit1234", "a/u").id != target.id and kg.check() == []


def test_workstation_graph_edits_land_in_the_audit_chain(ws) -> None:
    kg = ws.graph
    n = kg.add_node("Audited Thing", scope="a/u", actor="alice")
    kg.relabel(n.id, "Audited Thing 2", actor="alice")
    entries = [e for e in ws.autonomy.audit.entries() if e.kind.startswith("graph.")]
    assert [e.kind for e in entries][-2:] == ["graph.add_node", "graph.relabel"] and entries[-1].actor == "alice"
    assert ws.autonomy.audit.verify().ok
