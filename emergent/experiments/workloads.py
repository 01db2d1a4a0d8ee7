"""Recorded workloads for offline replay: recall queries with known relevant memories.

:class:`RecallWorkload` loads conversations into a real :class:`~emergent.memory.service.Memory`
(LanceDB in a directory, one scope per conversation) once, then scores any ``MemoryConfig`` by
recall@k per question: the metric LoCoMo itself uses. Questions are split into a train part (the
experiments optimise on it) and a held-out part (checked once, before adoption).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emergent.config import MemoryConfig
from emergent.errors import NotFoundError, ValidationError

_DIA = re.compile(r"D:?(\d+):0*(\d+)")


@dataclass(frozen=True, slots=True)
class Question:
    conversation: str
    text: str
    evidence: frozenset[str]
    category: int


@dataclass(frozen=True, slots=True)
class Turn:
    conversation: str
    dia_id: str
    text: str


def normalise_evidence(raw: Sequence[str]) -> set[str]:
    out = set()
    for item in raw:
        for part in re.split(r"[;,\s]+", item):
            m = _DIA.fullmatch(part.strip())
            if m:
                out.add(f"D{int(m.group(1))}:{int(m.group(2))}")
    return out


def load_locomo(path: str | Path, *, conversations: int | None = None) -> tuple[list[Turn], list[Question]]:
    """Turns and scored questions (categories 1-4 with evidence) of a LoCoMo file."""
    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"LoCoMo file {str(p)!r} does not exist", hint="pass the path of locomo-dev.json")
    try:
        samples = json.loads(p.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise ValidationError(f"{p} is not JSON: {exc}") from exc
    turns: list[Turn] = []
    questions: list[Question] = []
    for sample in samples[:conversations]:
        sid = sample["sample_id"]
        conv = sample["conversation"]
        ids = set()
        for key, session in conv.items():
            if not key.startswith("session_") or not isinstance(session, list):
                continue
            date = conv.get(f"{key}_date_time", "")
            for t in session:
                text = f"{t['speaker']}: {t['text']}"
                if t.get("blip_caption"):
                    text += f" [shares {t['blip_caption']}]"
                turns.append(Turn(sid, t["dia_id"], f"({date}) {text}" if date else text))
                ids.add(t["dia_id"])
        for qa in sample["qa"]:
            ev = normalise_evidence(qa.get("evidence", [])) & ids
            if qa.get("category") in (1, 2, 3, 4) and ev:
                questions.append(Question(sid, qa["question"], frozenset(ev), int(qa["category"])))
    return turns, questions


class RecallWorkload:
    """Score memory retrieval configs by recall@k on recorded questions (one value per question)."""

    def __init__(self, turns: Sequence[Turn], questions: Sequence[Question], *, embedder: Any, directory: Path,
                 k: int = 10, heldout_fraction: float = 0.3, seed: int = 7) -> None:
        from emergent.memory.ltm import LongTermMemory
        from emergent.memory.service import Memory
        from emergent.memory.stm import LocalSTM
        from emergent.stores.lance import LanceStore

        self.k = k
        self.ltm = LongTermMemory(LanceStore(directory), embedder.id, embedder.dim)
        self.memory = Memory(LocalSTM(), self.ltm, embedder, MemoryConfig())
        by_conv: dict[str, list[Turn]] = {}
        for t in turns:
            by_conv.setdefault(t.conversation, []).append(t)
        for conv, ts in by_conv.items():
            self.memory.ingest([{"text": t.text, "meta": {"dia": t.dia_id}} for t in ts], scope=_scope(conv))
        qs = list(questions)
        random.Random(seed).shuffle(qs)
        cut = int(round(len(qs) * (1 - heldout_fraction)))
        self.train, self.heldout = qs[:cut], qs[cut:]

    @classmethod
    def locomo(cls, path: str | Path, *, embedder: Any, directory: Path, conversations: int | None = None,
               questions_per_conversation: int | None = None, **kw: Any) -> RecallWorkload:
        turns, qs = load_locomo(path, conversations=conversations)
        if questions_per_conversation is not None:
            seen: dict[str, int] = {}
            kept = []
            for q in qs:
                if seen.get(q.conversation, 0) < questions_per_conversation:
                    kept.append(q)
                    seen[q.conversation] = seen.get(q.conversation, 0) + 1
            qs = kept
        return cls(turns, qs, embedder=embedder, directory=directory, **kw)

    def evaluate(self, config: MemoryConfig, units: Sequence[Question]) -> np.ndarray:
        """recall@k of each question under ``config`` (the memory is read-only here)."""
        saved = self.memory.config
        self.memory.config = config
        try:
            out = []
            for q in units:
                hits = self.memory.recall(q.text, k=self.k, scope=_scope(q.conversation), touch=False)
                got = {h.record.meta.get("dia") for h in hits}
                out.append(len(got & q.evidence) / len(q.evidence))
            return np.asarray(out, dtype=float)
        finally:
            self.memory.config = saved


def _scope(conversation: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:@+\-]", "_", conversation)
