"""The sample corpus shipped with the package: notes of a fictional lake-ecology research group.

``emergent/data/sample_corpus.jsonl`` holds 162 short original notes of the "Halden Lake Ecology
Lab" (facts, meetings, procedures; January to June 2024), one JSON object per line with ``text``,
``kind``, ``importance``, ``date`` (ISO day) and ``meta``. :func:`sample_corpus` returns them ready
for :meth:`emergent.memory.service.Memory.ingest`.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from importlib import resources
from typing import Any

FILE = "sample_corpus.jsonl"
CORPUS = "halden-sample"  # meta["corpus"] of every note, so a second ingest can be skipped


def _epoch(day: str) -> float:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC).timestamp()


def sample_corpus(*, end: float | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """The notes as ``ingest`` items (``text``, ``kind``, ``importance``, ``meta``, ``at``).

    ``at`` is each note's date at 09:00 UTC; with ``end`` (an epoch, e.g. ``clock.now()``) every
    date is shifted so the newest note lands at ``end`` and the corpus reads as recent history.
    The original date stays in ``meta["date"]``.
    """
    text = resources.files("emergent").joinpath("data", FILE).read_text("utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    if limit is not None:
        rows = rows[:limit]
    shift = 0.0
    if end is not None and rows:
        shift = end - max(_epoch(r["date"]) for r in rows)
    return [
        {"text": r["text"], "kind": r["kind"], "importance": r["importance"],
         "meta": {**r.get("meta", {}), "date": r["date"], "corpus": CORPUS}, "at": _epoch(r["date"]) + shift}
        for r in rows
    ]


def ingest_sample(memory: Any, *, scope: Any = None) -> int:
    """Ingest the corpus into ``memory`` (dates shifted to end now) unless it is already there
    (live or archived); returns how many notes were written."""
    mark = f"meta LIKE '%\"corpus\": \"{CORPUS}\"%'"
    if memory.ltm.count(mark) or memory.ltm.archive.count_rows(mark):
        return 0
    return len(memory.ingest(sample_corpus(end=memory.clock.now()), scope=scope))
