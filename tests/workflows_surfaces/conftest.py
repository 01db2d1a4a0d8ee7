"""Fixtures of the workflows' surfaces: an offline workstation (hashing embedder, no model) whose
assistant remembers a few field notes, and a folder of papers for the literature digest."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

NOTES = [
    "Runbook: when the North Buoy oxygen sensor reads zero, power-cycle the sonde, then check the membrane.",
    "Ana calibrates the oxygen sensors every month; the last calibration drifted by 2 percent.",
]
PAPERS = {
    "papers/drift.md": "Sensor calibration drift: optical oxygen sensors drift 2 percent per month in warm water; "
                       "monthly recalibration keeps the error under 1 percent.",
    "papers/fouling.md": "Biofouling on buoy sensors: copper guards halve the fouling rate over a season.",
}


@pytest.fixture
def papers() -> dict[str, str]:
    return dict(PAPERS)


@pytest.fixture
def wws(home: Path) -> Iterator[object]:
    """An offline workstation whose assistant's scope holds NOTES and whose files hold PAPERS."""
    from emergent import Workstation

    w = Workstation.open(home, embedder="hashing")
    w.memory.ingest(NOTES, scope="assistant")
    for rel, text in PAPERS.items():
        (w.path / "files" / rel).parent.mkdir(parents=True, exist_ok=True)
        (w.path / "files" / rel).write_text(text, encoding="utf-8")
    yield w
    w.close()
