"""The LoCoMo bench scores a tuning split (conversations 0-2) and a validation split (3 and after)
apart, beside the same-run baselines, so tuning on one and judging on the other is the default."""

from __future__ import annotations

import math

from emergent.bench import locomo


def test_tuning_and_validation_splits_are_scored_apart_with_their_gap(locomo_file, tmp_path) -> None:
    from emergent.workstation import Workstation

    path, acct = locomo_file
    data = locomo.load(path)
    assert len(data) == 4
    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        locomo.ingest(ws.memory, data)
        r = locomo.evaluate(ws.memory, data, 10)
    tuning, validation = r["splits"]["tuning"], r["splits"]["validation"]
    assert tuning["questions"] + validation["questions"] == r["questions"] == acct.questions
    per_conv = [sum(1 for _ in locomo.questions(s, {m["meta"]["dia_id"] for m in locomo.memories(s)})) for s in data]
    assert tuning["questions"] == sum(per_conv[:3]) and validation["questions"] == per_conv[3]
    assert r["tuning_r@10"] == tuning["recall"]["overall"]["r@10"]
    assert r["validation_r@10"] == validation["recall"]["overall"]["r@10"]
    assert math.isclose(r["gap_r@10"], r["tuning_r@10"] - r["validation_r@10"])
    for name in ("bm25", "dense", "rrf"):
        assert r[f"{name}_validation_r@10"] == validation["baselines"][name]["overall"]["r@10"]
        assert r[f"{name}_gap_r@10"] is not None
    labels = [row[0] for row in locomo.table(r | {"recall_p50_ms": 1.0, "recall_p95_ms": 1.0})]
    assert f"validation: overall R@10 (n={validation['questions']})" in labels
    assert "gap R@10, tuning - validation" in labels


def test_a_file_of_three_conversations_or_fewer_has_no_validation_split(locomo_file, tmp_path) -> None:
    from emergent.workstation import Workstation

    data = locomo.load(locomo_file[0])[:2]
    with Workstation.open(tmp_path / "ws", embedder="hashing") as ws:
        locomo.ingest(ws.memory, data)
        r = locomo.evaluate(ws.memory, data, 10, baselines=False)
    assert set(r["splits"]) == {"tuning"}
    assert r["validation_r@10"] is None and r["gap_r@10"] is None and r["tuning_r@10"] is not None
    locomo.table(r)  # prints without a validation split
