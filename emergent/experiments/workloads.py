"""Recorded workloads for offline replay: recall queries with known relevant memories.

:class:`RecallWorkload` loads conversations into a real :class:`~emergent.memory.service.Memory`
(LanceDB in a directory, one scope per conversation) once, then scores any ``MemoryConfig`` by
recall@k per question: the metric LoCoMo itself uses. Turns are stored as ``emergent bench locomo``
stores them (episodic memories ``"Speaker: text"`` at their session's time, turns a minute apart),
so a config's score here is the one that bench reports. Questions are split three ways: *train*
(the experiments optimise on it), *held-out* (the cycle checks its winner once on it, before
adoption) and, when ``test_fraction`` > 0, *test*: units the cycle never sees, for judging what it
adopted afterwards.

:class:`PlantedWorkload` is a synthetic workload whose truth is known: the score of every unit
depends on one config field by a planted amount, plus noise; it checks that the cycle finds an
effect it was not told about.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

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
    at: float | None = None


def normalise_evidence(raw: Sequence[str]) -> set[str]:
    out = set()
    for item in raw:
        for part in re.split(r"[;,\s]+", item):
            m = _DIA.fullmatch(part.strip())
            if m:
                out.add(f"D{int(m.group(1))}:{int(m.group(2))}")
    return out


def load_locomo(path: str | Path, *, conversations: int | None = None) -> tuple[list[Turn], list[Question]]:
    """Turns and scored questions (categories 1-4 with evidence naming a turn) of a LoCoMo file,
    read exactly as ``emergent bench locomo`` reads them (:mod:`emergent.bench.locomo`)."""
    from emergent.bench import locomo

    p = Path(path)
    if not p.exists():
        raise NotFoundError(f"LoCoMo file {str(p)!r} does not exist", hint="pass the path of locomo-dev.json")
    try:
        samples = json.loads(p.read_text("utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValidationError(f"{p} is not JSON: {exc}") from exc
    if not isinstance(samples, list) or not all(isinstance(s, dict) and {"sample_id", "conversation", "qa"} <= set(s)
                                                for s in samples):
        raise ValidationError(f"{p} is not in LoCoMo format", hint="expected a list of {sample_id, conversation, qa}")
    turns: list[Turn] = []
    questions: list[Question] = []
    for sample in samples[:conversations]:
        sid = str(sample["sample_id"])
        ids = set()
        for m in locomo.memories(sample):
            turns.append(Turn(sid, m["meta"]["dia_id"], m["text"], m["at"]))
            ids.add(m["meta"]["dia_id"])
        for _index, qa, gold in locomo.questions(sample, ids):
            questions.append(Question(sid, str(qa["question"]), frozenset(gold), int(qa["category"])))
    return turns, questions


class _QueryCache:
    """The workload's embedder with single texts (queries) remembered: every config replays the
    same questions, and the query embedding does not depend on the config."""

    def __init__(self, embedder: Any) -> None:
        self.embedder = embedder
        self.id, self.dim = embedder.id, embedder.dim
        self._seen: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) != 1:
            return np.asarray(self.embedder.embed(texts))
        if texts[0] not in self._seen:
            self._seen[texts[0]] = np.asarray(self.embedder.embed(texts))
        return self._seen[texts[0]]


class RecallWorkload:
    """Score memory retrieval configs by recall@k on recorded questions (one value per question).

    Questions are shuffled with ``seed`` and cut into ``train``, ``heldout`` (``heldout_fraction``)
    and ``test`` (``test_fraction``; empty by default). The cycle uses train and held-out only."""

    def __init__(self, turns: Sequence[Turn], questions: Sequence[Question], *, embedder: Any, directory: Path,
                 k: int = 10, heldout_fraction: float = 0.3, test_fraction: float = 0.0, seed: int = 7) -> None:
        from emergent.memory.ltm import LongTermMemory
        from emergent.memory.service import Memory
        from emergent.memory.stm import LocalSTM
        from emergent.stores.lance import LanceStore

        if not (0 <= heldout_fraction < 1 and 0 <= test_fraction < 1 and heldout_fraction + test_fraction < 1):
            raise ValidationError(f"heldout_fraction {heldout_fraction} and test_fraction {test_fraction} must be "
                                  "in [0, 1) and leave some train questions")
        self.k = k
        self.ltm = LongTermMemory(LanceStore(directory), embedder.id, embedder.dim)
        self.memory = Memory(LocalSTM(), self.ltm, _QueryCache(embedder), MemoryConfig())
        by_conv: dict[str, list[Turn]] = {}
        for t in turns:
            by_conv.setdefault(t.conversation, []).append(t)
        for conv, ts in by_conv.items():
            self.memory.ingest([{"text": t.text, "at": t.at, "meta": {"dia": t.dia_id}} for t in ts],
                               kind="episodic", scope=_scope(conv))
        qs = list(questions)
        random.Random(seed).shuffle(qs)
        n_test = int(round(len(qs) * test_fraction))
        n_held = int(round(len(qs) * heldout_fraction))
        self.test: list[Question] = qs[len(qs) - n_test:] if n_test else []
        self.heldout: list[Question] = qs[len(qs) - n_test - n_held:len(qs) - n_test]
        self.train: list[Question] = qs[:len(qs) - n_test - n_held]

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


class PlantedWorkload:
    """A synthetic workload with an effect planted where only its maker knows.

    Units are ``0..n_train + n_heldout + n_test - 1``. The score of unit ``i`` under ``config`` is
    ``base[i] + effect * g(config) + noise(i, config)``: ``base`` is the unit's own level (it cancels
    in paired comparisons), ``noise`` is normal with sd ``noise``, fixed per (unit, config) so that
    re-evaluating gives the same values and two configs differ by fresh noise, and ``g`` is how far
    ``config[field]`` has moved from ``reference[field]`` towards ``target``: 1 at the target, 0 at
    the reference, -1 as far the other way (linear in between, clipped to [-1, 1]). Every other
    field has no effect at all, so any other change it wins with is a false discovery."""

    def __init__(self, field: str, target: Any, reference: BaseModel | dict[str, Any], *, effect: float,
                 noise: float = 0.1, n_train: int = 400, n_heldout: int = 200, n_test: int = 0, seed: int = 0) -> None:
        ref = reference.model_dump() if isinstance(reference, BaseModel) else dict(reference)
        if field not in ref:
            raise ValidationError(f"the reference config has no field {field!r}")
        if target == ref[field]:
            raise ValidationError(f"target {field}={target!r} is the reference value: no effect can be planted")
        self.field, self.target, self.reference_value = field, target, ref[field]
        self.effect, self.noise, self.seed = float(effect), float(noise), seed
        n = n_train + n_heldout + n_test
        self.base = np.random.default_rng([seed, 0]).uniform(0.2, 0.8, n)
        self.train = list(range(n_train))
        self.heldout = list(range(n_train, n_train + n_heldout))
        self.test = list(range(n_train + n_heldout, n))

    def shift(self, config: BaseModel | dict[str, Any]) -> float:
        """``g(config)``: -1..1, how far the config moved towards the planted target."""
        value = (config.model_dump() if isinstance(config, BaseModel) else config)[self.field]
        span = float(self.target) - float(self.reference_value)
        return float(np.clip((float(value) - float(self.reference_value)) / span, -1.0, 1.0))

    def evaluate(self, config: BaseModel | dict[str, Any], units: Sequence[int]) -> np.ndarray:
        values = config.model_dump(mode="json") if isinstance(config, BaseModel) else config
        digest = hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).digest()
        rng = np.random.default_rng([self.seed, 1, int.from_bytes(digest[:8], "big")])
        noise = rng.normal(0.0, self.noise, len(self.base))
        idx = np.asarray(units, dtype=int)
        return self.base[idx] + self.effect * self.shift(values) + noise[idx]


def _scope(conversation: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.:@+\-]", "_", conversation)
