"""An incremental BM25 index over the texts of one hot-index partition.

Written by hand because the libraries do not fit how memory is used: ``bm25s`` and ``rank_bm25``
index a fixed corpus (adding one memory means re-indexing all of them), and tantivy keeps its own
on-disk index, a second store of record to keep coherent with LanceDB. Here postings are
append-only arrays per term; a removed document is a tombstone (its postings are skipped through
the ``alive`` mask until the partition is compacted). Scoring is numpy over the postings of the
query's terms only.

Statistics (document frequency, average length) are taken *within the query's mask* — the scope
being searched — so a conversation's own vocabulary decides what is rare in it, not the words of
every other user's memories.

Tokens: lower-cased word characters, English stop words dropped, Snowball-stemmed (PyStemmer's C
stemmer, cached per word).
"""

from __future__ import annotations

import re
from array import array
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np
import Stemmer

_WORD = re.compile(r"\w+", re.UNICODE)
STOP = frozenset(
    [
        "a",
        "about",
        "above",
        "after",
        "again",
        "against",
        "all",
        "am",
        "an",
        "and",
        "any",
        "are",
        "as",
        "at",
        "be",
        "because",
        "been",
        "before",
        "being",
        "below",
        "between",
        "both",
        "but",
        "by",
        "can",
        "could",
        "did",
        "do",
        "does",
        "doing",
        "down",
        "during",
        "each",
        "few",
        "for",
        "from",
        "further",
        "had",
        "has",
        "have",
        "having",
        "he",
        "her",
        "here",
        "hers",
        "herself",
        "him",
        "himself",
        "his",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "itself",
        "just",
        "me",
        "more",
        "most",
        "my",
        "myself",
        "no",
        "nor",
        "not",
        "now",
        "of",
        "off",
        "on",
        "once",
        "only",
        "or",
        "other",
        "our",
        "ours",
        "ourselves",
        "out",
        "over",
        "own",
        "same",
        "she",
        "should",
        "so",
        "some",
        "such",
        "than",
        "that",
        "the",
        "their",
        "theirs",
        "them",
        "themselves",
        "then",
        "there",
        "these",
        "they",
        "this",
        "those",
        "through",
        "to",
        "too",
        "under",
        "until",
        "up",
        "very",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "while",
        "who",
        "whom",
        "why",
        "will",
        "with",
        "would",
        "you",
        "your",
        "yours",
        "yourself",
        "yourselves",
        "s",
        "t",
        "don",
    ]
)
_STEMMER = Stemmer.Stemmer("english")


@lru_cache(maxsize=200_000)
def _stem(word: str) -> str:
    return str(_STEMMER.stemWord(word))


def tokens(text: str) -> list[str]:
    """The index terms of ``text``, in order (duplicates kept)."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOP and len(w) < 40]


class BM25:
    """BM25 (Robertson/Sparck Jones idf, ``k1``, ``b``) over documents numbered 0, 1, 2, ...

    ``add(doc, text)`` must be called with increasing ``doc`` numbers (the partition's row
    positions); ``remove`` is the caller's ``alive`` mask, passed to :meth:`scores`.
    """

    def __init__(self, k1: float = 0.9, b: float = 0.4) -> None:
        self.k1 = k1
        self.b = b
        self._docs: dict[str, array] = {}
        self._tf: dict[str, array] = {}
        self.lengths = array("f")

    def __len__(self) -> int:
        return len(self.lengths)

    def add(self, doc: int, text: str) -> None:
        if doc != len(self.lengths):
            raise ValueError(f"BM25 documents are added in order: expected {len(self.lengths)}, got {doc}")
        terms = tokens(text)
        counts: dict[str, int] = {}
        for t in terms:
            counts[t] = counts.get(t, 0) + 1
        for t, n in counts.items():
            docs = self._docs.get(t)
            if docs is None:
                docs = self._docs[t] = array("i")
                self._tf[t] = array("f")
            docs.append(doc)
            self._tf[t].append(float(n))
        self.lengths.append(float(len(terms)))

    def to_arrays(self) -> dict[str, np.ndarray]:
        terms = list(self._docs)
        sizes = np.fromiter((len(self._docs[t]) for t in terms), np.int64, len(terms))
        return {
            "bm25_terms": np.frombuffer("\n".join(terms).encode(), np.uint8),
            "bm25_offsets": np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
            "bm25_docs": np.concatenate([np.frombuffer(self._docs[t], np.int32) for t in terms]) if terms
            else np.empty(0, np.int32),
            "bm25_tf": np.concatenate([np.frombuffer(self._tf[t], np.float32) for t in terms]) if terms
            else np.empty(0, np.float32),
            "bm25_lengths": np.frombuffer(self.lengths, np.float32).copy(),
            "bm25_params": np.array([self.k1, self.b], np.float64),
        }

    @classmethod
    def from_arrays(cls, data: Any) -> BM25:
        k1, b = (float(x) for x in data["bm25_params"])
        index = cls(k1, b)
        raw = bytes(data["bm25_terms"]).decode()
        terms = raw.split("\n") if raw else []
        offsets, docs, tf = data["bm25_offsets"], data["bm25_docs"], data["bm25_tf"]
        if len(offsets) != len(terms) + 1:
            raise ValueError("BM25 snapshot: terms and offsets disagree")
        for i, term in enumerate(terms):
            lo, hi = int(offsets[i]), int(offsets[i + 1])
            index._docs[term] = array("i", docs[lo:hi].astype(np.int32).tobytes())
            index._tf[term] = array("f", tf[lo:hi].astype(np.float32).tobytes())
        index.lengths = array("f", np.asarray(data["bm25_lengths"], np.float32).tobytes())
        return index

    def nbytes(self) -> int:
        return sum(a.itemsize * len(a) for a in self._docs.values()) * 2 + self.lengths.itemsize * len(
            self.lengths
        )

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        docs = self._docs.get(term)
        if docs is None:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        return np.frombuffer(docs, np.int32), np.frombuffer(self._tf[term], np.float32)

    def scores(
        self, query: Sequence[str] | dict[str, float], mask: np.ndarray, n_docs: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(documents, scores) of every document in ``mask`` that contains a query term.

        ``query`` is a list of terms (repeats count once) or a dict of term weights (query
        expansion). ``mask`` is a boolean array over documents; its true count is the collection
        size for idf, and the mean length under it is ``avgdl``.
        """
        weights = dict.fromkeys(query, 1.0) if not isinstance(query, dict) else query
        size = len(self.lengths)
        if not weights or size == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        mask = mask[:size]
        lengths = np.frombuffer(self.lengths, np.float32)
        n = int(n_docs if n_docs is not None else np.count_nonzero(mask))
        if n == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        avgdl = float(lengths[mask].mean()) or 1.0
        parts_d: list[np.ndarray] = []
        parts_s: list[np.ndarray] = []
        for term, w in weights.items():
            docs, tf = self.postings(term)
            if docs.size == 0 or w == 0:
                continue
            keep = mask[docs]
            docs, tf = docs[keep], tf[keep]
            df = docs.size
            if df == 0:
                continue
            idf = np.log1p((n - df + 0.5) / (df + 0.5))
            norm = self.k1 * (1.0 - self.b + self.b * lengths[docs] / avgdl)
            parts_d.append(docs)
            parts_s.append((w * idf) * tf * (self.k1 + 1.0) / (tf + norm))
        if not parts_d:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        docs = np.concatenate(parts_d)
        sc = np.concatenate(parts_s).astype(np.float32)
        if len(parts_d) == 1:
            return docs.astype(np.int64), sc
        uniq, inv = np.unique(docs, return_inverse=True)
        return uniq.astype(np.int64), np.bincount(inv, weights=sc).astype(np.float32)

    def top(
        self, query: Sequence[str] | dict[str, float], mask: np.ndarray, n: int
    ) -> tuple[np.ndarray, np.ndarray]:
        docs, sc = self.scores(query, mask)
        if docs.size > n:
            part = np.argpartition(-sc, n - 1)[:n]
            docs, sc = docs[part], sc[part]
        order = np.argsort(-sc, kind="stable")
        return docs[order], sc[order]
