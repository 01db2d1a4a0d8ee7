"""Hybrid ranking: weighted reciprocal-rank fusion, then a Generative-Agents style weighted sum.

Pure functions over ids and numbers so they are easy to test and to tune by experiment.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def rrf(lists: Mapping[str, Sequence[str]], weights: Mapping[str, float], k: int = 60) -> dict[str, float]:
    """Weighted RRF, normalised so an item ranked first by every retriever scores 1.0."""
    total = sum(weights.get(name, 1.0) for name in lists) or 1.0
    scores: dict[str, float] = {}
    for name, ids in lists.items():
        w = weights.get(name, 1.0)
        if w == 0:
            continue
        for rank, id_ in enumerate(ids):
            scores[id_] = scores.get(id_, 0.0) + w * (k + 1) / (k + rank + 1)
    return {i: s / total for i, s in scores.items()}


@dataclass(frozen=True, slots=True)
class Weights:
    relevance: float = 1.0
    recency: float = 0.1
    importance: float = 0.1
    strength: float = 0.05


def blend(relevance: float, recency: float, importance: float, strength: float, w: Weights) -> float:
    return w.relevance * relevance + w.recency * recency + w.importance * importance + w.strength * strength
