"""Fusion and temporal-neighbour evidence (the retrieval-quality levers tuned on LoCoMo)."""

from __future__ import annotations

import math

from emergent.memory import ranking


def test_minmax_scales_to_unit_range_and_a_lone_candidate_scores_one() -> None:
    assert ranking.minmax({"a": 2.0, "b": 4.0, "c": 3.0}) == {"a": 0.0, "b": 1.0, "c": 0.5}
    assert ranking.minmax({"a": 7.5}) == {"a": 1.0}
    assert ranking.minmax({}) == {}


def test_score_fusion_keeps_margins_that_rank_fusion_throws_away() -> None:
    # the vector list barely separates x and y; the text list strongly prefers y
    lists = {"vector": {"x": 0.81, "y": 0.80, "z": 0.30}, "text": {"y": 12.0, "x": 1.0}}
    fused = ranking.fuse_scores(lists, {"vector": 1.0, "text": 1.0})
    assert max(fused, key=fused.__getitem__) == "y"
    assert math.isclose(fused["y"], (0.98 + 1.0) / 2, abs_tol=0.01)
    assert fused["z"] == 0.0  # worst on the only list that found it
    rrf = ranking.rrf({"vector": ["x", "y", "z"], "text": ["y", "x"]}, {}, 60)
    assert math.isclose(rrf["x"], rrf["y"])  # ranks alone cannot tell them apart


def test_a_zero_weight_list_is_ignored() -> None:
    fused = ranking.fuse_scores({"vector": {"a": 1.0, "b": 0.0}, "graph": {"b": 1.0}}, {"vector": 1.0, "graph": 0.0})
    assert fused == {"a": 1.0, "b": 0.0}


def test_rank_scores_turn_a_ranking_into_scores() -> None:
    s = ranking.rank_scores(["a", "b", "a"], k=1)
    assert s == {"a": 1.0, "b": 2 / 3}


def test_neighbours_in_time_reinforce_each_other_within_one_scope_only() -> None:
    scores = {"q": 0.9, "answer": 0.2, "far": 0.2, "other_scope": 0.2}
    when = {"q": ("s1", 1000.0), "answer": ("s1", 1060.0), "far": ("s1", 9000.0), "other_scope": ("s2", 1030.0)}
    out = ranking.temporal_neighbors(scores, when, window_s=300, weight=0.5)
    assert math.isclose(out["answer"], 0.2 + 0.5 * 0.9)
    assert out["far"] == 0.2 and out["other_scope"] == 0.2
    assert math.isclose(out["q"], 0.9 + 0.5 * 0.2)  # boosted from the original, not the boosted score
    assert ranking.temporal_neighbors(scores, when, window_s=300, weight=0.0) == scores


def test_recall_completes_light_hits_and_pulls_in_the_next_turn(tmp_path) -> None:
    from emergent.workstation import Workstation

    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        mem = ws.memory
        t0 = 1_700_000_000.0
        turns = ["Ann: which city did you move to last spring?", "Bo: Lisbon, near the river.",
                 "Ann: the garden needs water", "Bo: my cat sleeps all day"]
        mem.ingest([{"text": t, "at": t0 + 60 * i + (0 if i < 2 else 86400), "meta": {"turn": i}}
                    for i, t in enumerate(turns)], kind="episodic", scope="a/u")
        hits = mem.recall("which city did Ann move to last spring", k=2, scope="a/u", touch=False)
    assert [h.text for h in hits] == turns[:2]  # the answer comes with its question
    assert hits[1].record.meta == {"turn": 1} and "neighbor" in hits[1].sources
