"""Fixtures of the assistant's surfaces: a workstation whose assistant has notes to recall."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

NOTES = [
    "The ring buffer overflowed because its size was 4096 entries. We doubled it to 8192 and the overflow stopped.",
    "Ana prefers green tea in the afternoon.",
    "The calibration run on March 3 used the old thermocouple; its numbers are 2 degrees too high.",
]


@pytest.fixture
def notes() -> list[str]:
    return list(NOTES)


@pytest.fixture
def ows(home: Path) -> Iterator[object]:
    """An offline workstation (no model) whose assistant's scope holds NOTES."""
    from emergent import Workstation

    w = Workstation.open(home, embedder="hashing")
    w.memory.ingest(NOTES, scope="assistant")
    yield w
    w.close()
