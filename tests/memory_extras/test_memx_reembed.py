"""Changing the embedder of an existing store fails clearly; ``reembed`` migrates it."""

from __future__ import annotations

from pathlib import Path

import pytest

from emergent import Workstation
from emergent.errors import EmbedderMismatchError
from emergent.memory.reembed import reembed
from emergent.memory.sample import sample_corpus
from emergent.providers.embeddings import MINILM_ID


def test_changed_embedder_names_both_models_and_reembed_migrates(home: Path) -> None:
    big = "The deep basin report. " + "Oxygen profiles were measured at every metre. " * 600
    with Workstation.open(home, embedder="hashing") as ws:
        ids = ws.memory.ingest([*sample_corpus(limit=40), big])
        ws.memory.ltm.move_to_archive(ws.memory.ltm.records(f"id = '{ids[0]}'"), "test", ws.clock.now())
    with Workstation.open(home, embedder="minilm") as ws, pytest.raises(EmbedderMismatchError) as err:
        _ = ws.memory
    message = str(err.value)
    assert "hashing-384" in message and MINILM_ID in message and "emergent memory reembed" in message

    assert reembed(home, "minilm") == 41
    with Workstation.open(home, embedder="minilm") as ws:
        mem = ws.memory
        assert ws.lance.get_meta()["embedder"] == MINILM_ID
        assert (mem.ltm.count(), mem.ltm.archive.count_rows()) == (40, 1)
        hits = mem.recall("when does the lab go out on the lake alone?", k=3)
        assert any("alone" in h.text for h in hits)  # semantic vectors now, not word hashes
        stored = mem.ltm.records("text LIKE 'The deep basin report.%'")[0]
        assert stored.text == big  # decompressed, re-embedded and stored whole
        vec = ws.embedder.embed([big])[0]
        assert float(stored.vector @ vec) > 0.999
    # no temporary table left (the table-creation lock file, LanceStore._creating's, stays by design)
    assert not [p for p in (home / "lance").iterdir()
                if "reembed" in p.name or (p.name.startswith(".") and p.name != ".create.lock")]
    with Workstation.open(home, embedder="hashing") as ws, pytest.raises(EmbedderMismatchError):
        _ = ws.memory  # the old model is now the mismatch


def test_sample_corpus_is_original_and_shiftable() -> None:
    notes = sample_corpus()
    assert 150 <= len(notes) <= 300
    assert {n["kind"] for n in notes} == {"episodic", "semantic", "procedural"}
    assert all(0 <= n["importance"] <= 1 and n["meta"]["date"].startswith("2024-") for n in notes)
    shifted = sample_corpus(end=2_000_000_000.0)
    assert max(n["at"] for n in shifted) == 2_000_000_000.0
    assert [n["text"] for n in shifted] == [n["text"] for n in notes]
    assert not any("locomo" in n["text"].lower() for n in notes)
