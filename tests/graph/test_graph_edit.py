"""The editor: audited, undoable edits; merges recorded and reversible; bad edits refused cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest
from graph_helpers import STORY, make_graph, me

from emergent.errors import AuditWriteError, OperationalError, PrincipalError, ValidationError


@pytest.fixture
def kg(tmp_path: Path):
    g = make_graph(tmp_path)
    g.add_memories(STORY)
    return g


@pytest.fixture
def who(kg):
    return me(kg)


def state(kg):
    return (sorted((n.id, n.label, n.status) for n in kg.nodes(status=None)),
            sorted((e.id, e.src, e.dst, e.rel, e.status) for e in kg.edges(status=None)))


def test_add_relabel_and_delete_are_logged_and_undone_in_reverse(kg, who) -> None:
    before = state(kg)
    n = kg.add_node("Clay Guild", scope="a/u", type="org", principal=who)
    jolene = kg.find("Jolene", "a/u")
    kg.add_edge(jolene.id, "member_of", n.id, confidence=0.9, principal=who)
    kg.relabel(n.id, "The Clay Guild of Boston", principal=who)
    assert kg.find("clay guild", "a/u").id == n.id  # the old label stays an alias
    kg.delete_node(n.id, cascade=True, principal=who)
    assert [e.op for e in kg.edits()][:4] == ["delete_node", "relabel", "add_edge", "add_node"]
    for _ in range(4):
        kg.undo(principal=who)
    assert state(kg) == before and kg.check() == []


def test_undo_refuses_when_a_later_edit_touched_the_same_rows(kg, who) -> None:
    n = kg.add_node("Kiln", scope="a/u", principal=who)
    first = kg.edits()[0].seq
    kg.relabel(n.id, "Big Kiln", principal=who)
    with pytest.raises(OperationalError, match="later edits"):
        kg.undo(first, principal=who)
    kg.undo(principal=who)
    kg.undo(first, principal=who)
    assert kg.find("kiln", "a/u") is None


def test_merge_is_recorded_rewires_edges_and_unmerges(kg, who) -> None:
    before = state(kg)
    paris, louvre = kg.find("Paris", "a/u"), kg.find("Louvre Museum", "a/u")
    prov = set(kg.provenance(paris.id)) | set(kg.provenance(louvre.id))
    mid = kg.merge(paris.id, [louvre.id], reason="test", principal=who)
    assert kg.find("Louvre Museum", "a/u").id == paris.id and set(kg.provenance(paris.id)) == prov
    assert kg.node(louvre.id).status == "merged" and kg.merges()[-1]["id"] == mid
    assert kg.check() == []
    kg.unmerge(mid, principal=who)
    assert state(kg) == before and kg.merges()[-1]["undone"] and kg.check() == []


def test_merge_folds_duplicate_edges_and_drops_self_loops(kg, who) -> None:
    caroline, melanie = kg.find("Caroline", "a/u"), kg.find("Melanie", "a/u")
    kg.merge(caroline.id, [melanie.id], principal=who)
    edges = kg.edges(caroline.id)
    triples = [(e.src, e.rel, e.dst) for e in edges]
    assert len(triples) == len(set(triples)) and all(e.src != e.dst for e in edges)
    assert kg.check() == []


def test_split_moves_chosen_memories_and_refuses_to_orphan_provenance(kg, who) -> None:
    jolene = kg.find("Jolene", "a/u")
    with pytest.raises(ValidationError, match="orphan"):
        kg.split(jolene.id, "Jolene (cousin)", kg.provenance(jolene.id), principal=who)
    with pytest.raises(ValidationError, match="do not support"):
        kg.split(jolene.id, "Jolene (cousin)", ["nope"], principal=who)
    new = kg.split(jolene.id, "Jolene (cousin)", ["m4"], principal=who)
    assert kg.provenance(new.id) == ["m4"] and "m4" not in kg.provenance(jolene.id)
    assert kg.check() == []
    kg.undo(principal=who)
    assert sorted(kg.provenance(jolene.id)) == ["m1", "m2", "m4"] and kg.check() == []


def test_bad_edits_are_refused_and_leave_the_graph_unchanged(kg, who) -> None:
    before = state(kg)
    jolene, google = kg.find("Jolene", "a/u"), kg.find("Google", "a/u")
    with pytest.raises(ValidationError, match="self-loop"):
        kg.add_edge(jolene.id, "knows", jolene.id, principal=who)
    with pytest.raises(ValidationError, match="already exists"):
        kg.add_edge(jolene.id, "works_at", google.id, principal=who)
    with pytest.raises(ValidationError, match="dangling"):
        kg.delete_node(jolene.id, principal=who)
    with pytest.raises(ValidationError, match="relation"):
        kg.add_edge(jolene.id, "Works At!", google.id, principal=who)
    with pytest.raises(ValidationError, match="limit"):
        kg.add_node("x" * 5000, scope="a/u", principal=who)
    with pytest.raises(ValidationError, match="letter or digit"):
        kg.add_node(" ... ", scope="a/u", principal=who)
    with pytest.raises(ValidationError, match="already names"):
        kg.add_node("JOLENE", scope="a/u", principal=who)
    assert state(kg) == before and kg.check() == []


def test_unicode_and_long_labels_round_trip(kg, who) -> None:
    long = "Ünïcødé 東京 " + "label " * 150
    n = kg.add_node(long, scope="a/u", principal=who)
    assert kg.node(n.id).label == long.strip() and kg.find(long, "a/u").id == n.id


def test_an_entity_with_thousands_of_aliases_resolves_and_merges(tmp_path: Path) -> None:
    from graph_helpers import rec

    kg = make_graph(tmp_path)
    who = me(kg)
    kg.add_memories([rec("a", "Acme shipped."), *(rec(f"a{i}", f"Acme Unit{i} shipped.") for i in range(2000))])
    target = kg.find("Acme", "a/u")
    others = [n.id for n in kg.nodes() if n.label.startswith("Acme Unit")]
    assert len(others) == 2000
    mid = kg.merge(target.id, others, reason="bulk", principal=who)
    assert len(kg.aliases(target.id)) == 2001 and kg.find("acme unit1234", "a/u").id == target.id
    assert kg.check() == []
    kg.unmerge(mid, principal=who)
    assert kg.find("acme unit1234", "a/u").id != target.id and kg.check() == []


def test_workstation_graph_edits_land_in_the_audit_chain(ws, me) -> None:
    kg = ws.graph
    n = kg.add_node("Audited Thing", scope="a/u", principal=me)
    kg.relabel(n.id, "Audited Thing 2", principal=me)
    entries = [e for e in ws.audit.entries() if e.kind.startswith("graph.")]
    assert [(e.kind, e.data["phase"]) for e in entries][-4:] == [
        ("graph.add_node", "intent"), ("graph.add_node", "done"), ("graph.relabel", "intent"), ("graph.relabel", "done")]
    assert entries[-1].actor == me.key and entries[-1].data["edit"] == kg.edits(1)[0].seq
    assert kg.edits(1)[0].actor == me.key
    assert ws.audit.verify().ok


def test_an_edit_without_a_principal_or_with_a_forged_one_is_refused(kg, who) -> None:
    from emergent.principals import Principal

    before = state(kg)
    with pytest.raises(PrincipalError, match="not a principal"):
        kg.add_node("Nobody's", scope="a/u", principal=None)
    with pytest.raises(PrincipalError, match="not issued by this workspace"):
        kg.add_node("Forged", scope="a/u", principal=Principal("human", who.id))
    assert state(kg) == before and kg.edits() == []


def test_an_edit_whose_intent_cannot_be_audited_is_not_applied(kg, who) -> None:
    with kg.sql.begin() as conn:  # the audit table becomes unwritable
        conn.exec_driver_sql("ALTER TABLE audit_log RENAME TO audit_log_gone")
    kg.audit.busy_retry_s = 0.2
    before, edits = state(kg), len(kg.edits())
    with pytest.raises(AuditWriteError):
        kg.add_node("Unrecorded", scope="a/u", principal=who)
    assert state(kg) == before and len(kg.edits()) == edits


def test_accepting_inferred_edges_is_the_deciders(kg, who) -> None:
    with pytest.raises(PrincipalError, match="needs to know who acts"):
        kg.infer(auto_accept=True)
