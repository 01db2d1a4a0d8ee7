"""Graph search (personalised PageRank), recall fusion, inference, communities and the memory hook."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp
from graph_helpers import STORY, make_graph, me, rec

from emergent.graph import Rule, personalized_pagerank
from emergent.graph.build import GraphBuilder
from emergent.graph.infer import apply_rules


def test_scipy_ppr_matches_networkx_pagerank() -> None:
    import networkx as nx

    g = nx.gnm_random_graph(300, 1200, seed=3)
    nodes = list(g)
    a = nx.to_scipy_sparse_array(g, nodelist=nodes, format="csr").astype(np.float32)
    deg = np.asarray(a.sum(axis=1)).ravel()
    t = (sp.diags(1 / np.where(deg > 0, deg, 1)) @ a).T.tocsr()
    seeds = np.zeros(300, dtype=np.float32)
    seeds[[0, 7]] = 1
    ours = personalized_pagerank(t.astype(np.float32), seeds, damping=0.85, tol=1e-7)
    ref = nx.pagerank(g, alpha=0.85, personalization={0: 1, 7: 1}, tol=1e-10)
    assert np.allclose(ours, [ref[n] for n in nodes], atol=1e-4)


def test_search_returns_nodes_paths_and_memories_from_query_entities(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    res = kg.search("Where did Jolene go?", scope="a/u")
    jolene = kg.find("Jolene", "a/u")
    assert jolene.id in res.seeds and res.nodes[0].node.id == jolene.id
    assert {m for m, _ in res.memories} >= {"m1", "m2", "m4"}
    assert res.paths and all(p[0] in res.seeds for p in res.paths)
    assert kg.search("Where did Jolene go?", scope="other").memories == []


def test_graph_retriever_is_fused_into_recall_and_follows_memory(ws) -> None:
    kg = ws.graph
    mem = ws.memory
    assert "graph" in mem.retrievers
    ids = mem.ingest([{"text": "Jolene moved to Lisbon in spring.", "meta": {"speaker": "Jolene"}},
                      {"text": "The Lisbon studio sells blue tiles.", "meta": {"speaker": "Melanie"}},
                      {"text": "Unrelated note about taxes."}], scope="a/u")
    assert kg.find("Lisbon", "a/u") is not None and kg.counts()["memories"] == 3
    hits = mem.recall("When did Jolene come to Lisbon?", scope="a/u", k=3)
    assert ids[0] in {h.id for h in hits if "graph" in h.sources}
    mem.forget(ids[1], scope="a/u", principal=ws.principal)
    assert kg.find("studio", "a/u") is None and kg.check() == []
    rec_ = mem.remember("Melanie joined Clayworks Studio.", scope="a/u", meta={"speaker": "Melanie"})
    assert rec_.id in kg.provenance(kg.find("Clayworks Studio", "a/u").id)


def test_graph_recall_list_holds_memories_supporting_two_query_mentions_most_specific_first(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY + [rec("m5", "Jolene bought a pottery wheel.", speaker="Melanie", at=1.73e9)])
    kg.link_per_mention = 0  # aliases only: the 64-dim hashing embedder makes unrelated names look alike
    got = [m for m, _ in kg.entity_memories("Did Jolene and Melanie take a pottery class?", "a/u")]
    # m4 supports Jolene, Melanie and pottery; m5 two of them; m1-m3 at most one mention or none
    assert got[:2] == ["m4", "m5"] and not {"m1", "m2"} & set(got)
    assert kg.entity_memories("Tell me about Jolene", "a/u") == []  # one mention: no intersection to offer
    assert kg.entity_memories("Did Jolene and Melanie take a pottery class?", "other/u") == []
    kg.min_coverage = 1
    assert {"m1", "m2"} <= {m for m, _ in kg.entity_memories("Tell me about Jolene", "a/u")}


def test_query_mentions_link_to_nodes_by_alias_and_label_embedding(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    ids = kg.index().ids
    jolene, studio = kg.find("Jolene", "a/u").id, kg.find("Clayworks Studio", "a/u").id
    query = "Was Jolene at the Clayworks studios?"  # "Clayworks studios" is no alias of any node
    kg.link_per_mention = 0
    assert [{ids[i] for i in d} for d in kg.link_mentions(query, "a/u")] == [{jolene}]
    kg.link_per_mention, kg.link_similarity = 3, 0.3  # the 64-dim hashing embedder's scale
    linked = kg.link_mentions(query, "a/u")
    assert any(ids[i] == studio and 0.3 <= w < 1.0 for d in linked for i, w in d.items())
    assert kg.link_mentions(query, "other/u") == []


def test_a_crash_during_an_incremental_update_leaves_the_last_commit(ws, monkeypatch: pytest.MonkeyPatch) -> None:
    kg, mem = ws.graph, ws.memory
    mem.ingest([s.text for s in STORY[:2]], scope="a/u")
    before = kg.counts()

    def boom(*a, **k):
        raise RuntimeError("power cut")

    monkeypatch.setattr(GraphBuilder, "_collect", boom)  # fails after nodes and edges were written
    ids = mem.ingest(["Jolene visited Madrid with Caroline."], scope="a/u")
    assert kg.counts() == before and kg.check() == [] and set(ids) <= kg.pending and kg.errors
    assert kg.find("Madrid", "a/u") is None
    monkeypatch.undo()
    report = kg.sync(mem)
    assert report.memories >= 1 and kg.find("Madrid", "a/u") is not None and not kg.pending and kg.check() == []


def test_inference_rules_terminate_on_cycles_and_record_evidence() -> None:
    edges = {("a", "part_of", "b"): ("e1", 0.9), ("b", "part_of", "c"): ("e2", 0.9), ("c", "part_of", "a"): ("e3", 0.9)}
    rules = [Rule("transitive", "part_of"), Rule("inverse", "part_of", out="has_part"),
             Rule("inverse", "has_part", out="part_of")]
    new = apply_rules(edges, rules)
    assert ("a", "part_of", "c") in new and all(t[0] != t[2] for t in new)
    assert new[("a", "part_of", "c")]["rule"] == "transitive:part_of"
    assert 0 < new[("a", "part_of", "c")]["confidence"] < 0.9


def test_proposals_need_acceptance_and_rejections_are_not_reproposed(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories([rec(f"c{i}", f"Ada and Babbage built the Engine {i}.") for i in range(4)]
                    + [rec(f"d{i}", f"Noise {i} about Zed.") for i in range(6)])
    who = me(kg)
    n = [kg.add_node(x, scope="a/u", principal=who) for x in ("Wing A", "Hall B", "Campus C")]
    kg.add_edge(n[0].id, "part_of", n[1].id, principal=who)
    kg.add_edge(n[1].id, "part_of", n[2].id, principal=who)
    proposed = kg.infer(cooccurrence_min=3, pmi_min=0.1, similarity_min=None)
    rules = {p.evidence["rule"] for p in proposed}
    assert {"transitive:part_of", "cooccurrence"} <= rules and all(p.status == "proposed" and p.inferred for p in proposed)
    trans = next(p for p in proposed if p.evidence["rule"] == "transitive:part_of")
    assert trans.src == n[0].id and trans.dst == n[2].id and len(trans.evidence["edges"]) == 2
    assert trans.id not in {e.id for e in kg.edges()}
    kg.accept(trans.id, by=who)
    assert trans.id in {e.id for e in kg.edges()}
    co = next(p for p in proposed if p.evidence["rule"] == "cooccurrence")
    kg.reject(co.id, by=who)
    again = kg.infer(cooccurrence_min=3, pmi_min=0.1, similarity_min=None)
    assert co.id not in {p.id for p in again} and kg.rule_stats()["cooccurrence"] == (0, 1)


def test_communities_are_labelled_and_centrality_ranks_hubs(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories(STORY)
    comms = kg.communities()
    assert comms and all(c.label and c.summary and c.strategy == "top-terms" for c in comms)
    cent = kg.centrality()
    assert max(cent, key=cent.get) in {kg.find(x, "a/u").id for x in ("Caroline", "Jolene", "Melanie")}


def test_merge_candidates_find_near_duplicate_labels(tmp_path: Path) -> None:
    kg = make_graph(tmp_path)
    kg.add_memories([rec("r1", "Jonathan Smyth called."), rec("r2", "Jonathan Smith called.")])
    cands = kg.merge_candidates(string_min=0.9)
    assert cands and cands[0].reason == "label"
    merged = kg.resolve(string_min=0.9, principal=me(kg))
    assert len(merged) == 1 and kg.merges()[0]["reason"] == "label" and kg.check() == []


def test_sync_keeps_short_term_memories_and_drops_forgotten_ones(ws) -> None:
    kg, mem = ws.graph, ws.memory
    stm = mem.remember("Priya joined the Limnology Lab.", scope="a/u")
    ltm = mem.ingest(["Kofi repaired the North Buoy."], scope="a/u")
    mem.listeners.clear()  # changes the graph does not hear about
    mem.forget(ltm[0], scope="a/u", principal=ws.principal)
    mem.ingest(["Lea counted Daphnia at Halden Lake."], scope="a/u")
    report = kg.sync(mem)
    assert kg.find("Priya", "a/u") is not None and stm.id in kg.provenance(kg.find("Priya", "a/u").id)
    assert kg.find("North Buoy", "a/u") is None and kg.find("Halden Lake", "a/u") is not None
    assert report.memories == 2 and kg.check() == []
