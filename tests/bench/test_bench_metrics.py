"""The benchmark framework and the LoCoMo metric code (evidence normalisation, recall@k)."""

from __future__ import annotations

import json
import math

import pytest

from emergent import bench
from emergent.bench import locomo
from emergent.errors import ConfigError, UnknownChoiceError


def test_evidence_strings_are_split_and_normalised() -> None:
    raw = ["D8:6; D9:17", "D:11:26", "D30:05", "D", "D1:3,D1:4 D1:5", "D1:3"]
    assert locomo.normalise_evidence(raw) == ["D8:6", "D9:17", "D11:26", "D30:5", "D1:3", "D1:4", "D1:5"]


def test_recall_at_k_counts_gold_turns_in_the_top_k() -> None:
    retrieved = ["D1:1", "D1:2", "D1:3", "D2:1"]
    assert locomo.recall_at(["D1:2", "D2:1"], retrieved, 2) == 0.5
    assert locomo.recall_at(["D1:2", "D2:1"], retrieved, 4) == 1.0
    assert locomo.recall_at(["D9:9"], retrieved, 4) == 0.0
    with pytest.raises(ValueError):
        locomo.recall_at([], retrieved, 4)


def test_summary_averages_per_category_and_overall() -> None:
    rows = [{"category": 1, "gold": ["a"], "retrieved": ["a"]},
            {"category": 4, "gold": ["a", "b"], "retrieved": ["x", "b"]},
            {"category": 4, "gold": ["c"], "retrieved": ["x"] * 30}]
    s = locomo.summarise(rows, (1, 2))
    assert s["multi-hop"] == {"n": 1, "r@1": 1.0, "r@2": 1.0}
    assert s["single-hop"] == {"n": 2, "r@1": 0.0, "r@2": 0.25}
    assert s["overall"]["n"] == 3 and math.isclose(s["overall"]["r@2"], 0.5)


def test_turns_become_memories_with_speaker_date_and_caption() -> None:
    sample = {"sample_id": "c1", "qa": [], "conversation": {
        "speaker_a": "Ann", "speaker_b": "Bo",
        "session_2_date_time": "1:56 pm on 8 May, 2023",
        "session_2": [{"speaker": "Ann", "dia_id": "D2:1", "text": "Look!", "blip_caption": "a photo of a dog"},
                      {"speaker": "Bo", "dia_id": "D2:2", "text": "Cute."}],
        "session_3_date_time": "2:00 pm on 9 May, 2023"}}  # a date with no session list
    items = list(locomo.memories(sample))
    assert [m["meta"]["dia_id"] for m in items] == ["D2:1", "D2:2"]
    assert items[0]["text"] == "Ann: Look! [shares an image: a photo of a dog]"
    assert items[0]["meta"]["speaker"] == "Ann" and items[1]["at"] - items[0]["at"] == 60.0
    assert items[0]["at"] == locomo.session_time("1:56 pm on 8 May, 2023")


def test_questions_keep_categories_one_to_four_with_resolvable_evidence() -> None:
    sample = {"qa": [{"question": "q0", "evidence": ["D1:1"], "category": 5},
                     {"question": "q1", "evidence": ["D1:01; D7:7"], "category": 2},
                     {"question": "q2", "evidence": ["D9:9"], "category": 1}]}
    got = list(locomo.questions(sample, {"D1:1"}))
    assert [(i, gold) for i, _, gold in got] == [(1, ["D1:1"])]


def test_registry_names_every_area_and_explains_a_missing_module() -> None:
    for name in ("memory", "locomo", "tools", "jobs", "graph", "experiments"):
        assert name in bench.BENCHES
    bench.BENCHES.register("ghost", "emergent.bench.ghost_area_never_written")
    try:
        with pytest.raises(ConfigError, match="does not exist yet"):
            bench.load("ghost")
    finally:
        bench.BENCHES._items.pop("ghost")
    with pytest.raises(UnknownChoiceError, match="did you mean 'memory'"):
        bench.load("memroy")


def test_json_output_is_strict_json() -> None:
    text = bench.to_json({"a": float("nan"), "b": [1.5, float("inf")], "c": {"d": 2}})
    assert json.loads(text) == {"a": None, "b": [1.5, None], "c": {"d": 2}}
    assert bench.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.5 and math.isnan(bench.percentile([], 99))
