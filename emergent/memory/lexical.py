"""An incremental BM25 index over the texts of one hot-index partition.

Written by hand because the libraries do not fit how memory is used: ``bm25s`` and ``rank_bm25``
index a fixed corpus (adding one memory means re-indexing all of them), and tantivy keeps its own
on-disk index, a second store of record to keep coherent with LanceDB. A removed document is a
tombstone (its postings are skipped through the ``alive`` mask until the partition is compacted).
Scoring is numpy over the postings of the query's terms only.

Layout (a million memories' postings in 5 bytes each, no Python object per posting or per term
but the vocabulary's): terms are numbered in a dict; postings live in one CSR block (int64 offsets
per term, int32 documents, uint8 term frequencies) plus a small tail of the postings added since
the block was last rebuilt (per-term ``array`` s, merged into the block once they exceed a
sixteenth of it: an add costs amortised O(1) copies and the tail stays small). A term frequency
of 255 or more is stored as 255 with its exact value in a side dict: every score is the one
float32 frequencies gave (the frequencies read back are the exact integers). Keeping only the
frequencies other than 1 (~3-7% of postings) saved 0.65 byte a posting but cost 5-15% of a
query's time on frequent terms.

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


#: words seen -> their stems (a plain dict: an LRU's links would double what a word costs; a word
#: that is its own stem is stored once); emptied when it reaches ``STEM_CACHE`` words
_STEMS: dict[str, str] = {}
STEM_CACHE = 200_000


def _stem(word: str) -> str:
    stem = _STEMS.get(word)
    if stem is None:
        if len(_STEMS) >= STEM_CACHE:
            _STEMS.clear()
        stem = str(_STEMMER.stemWord(word))
        stem = _STEMS[word] = word if stem == word else stem
    return stem


def tokens(text: str) -> list[str]:
    """The index terms of ``text``, in order (duplicates kept)."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOP and len(w) < 40]


class BM25:
    """BM25 (Robertson/Sparck Jones idf, ``k1``, ``b``) over documents numbered 0, 1, 2, ...

    ``add(doc, text)`` must be called with increasing ``doc`` numbers (the partition's row
    positions); ``remove`` is the caller's ``alive`` mask, passed to :meth:`scores`.
    """

    #: the tail is merged into the block when it holds more postings than this and a sixteenth of the block
    MERGE_MIN = 1 << 16
    #: a term frequency at or above this is kept exactly in ``_big``
    TF_CAP = 255

    def __init__(self, k1: float = 0.9, b: float = 0.4) -> None:
        self.k1 = k1
        self.b = b
        self.vocab: dict[str, int] = {}  # term -> term number (insertion order is number order)
        self._off = np.zeros(1, np.int64)  # the block: postings of term t at _off[t]:_off[t + 1]
        self._docs = np.empty(0, np.int32)
        self._tf = np.empty(0, np.uint8)
        self._tail: dict[int, tuple[array, array]] = {}  # term number -> (documents, frequencies)
        self._tail_n = 0
        self._big: dict[tuple[int, int], int] = {}  # (term number, document) -> frequency >= TF_CAP
        self._len = np.zeros(256, np.float32)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def lengths(self) -> np.ndarray:
        """Each document's number of terms."""
        return self._len[: self._n]

    def add(self, doc: int, text: str) -> None:
        if doc != self._n:
            raise ValueError(f"BM25 documents are added in order: expected {self._n}, got {doc}")
        terms = tokens(text)
        counts: dict[str, int] = {}
        for t in terms:
            counts[t] = counts.get(t, 0) + 1
        vocab, tail = self.vocab, self._tail
        for t, n in counts.items():
            tid = vocab.get(t)
            if tid is None:
                tid = vocab[t] = len(vocab)
            post = tail.get(tid)
            if post is None:
                post = tail[tid] = (array("i"), array("B"))
            post[0].append(doc)
            if n >= self.TF_CAP:
                self._big[(tid, doc)] = n
                n = self.TF_CAP
            post[1].append(n)
        self._tail_n += len(counts)
        if self._n == len(self._len):
            grown = np.zeros(2 * self._n, np.float32)
            grown[: self._n] = self._len
            self._len = grown
        self._len[self._n] = len(terms)
        self._n += 1
        if self._tail_n > max(self.MERGE_MIN, len(self._docs) // 16):
            self._merge()

    def _merge(self) -> None:
        """Rebuild the block with the tail's postings (each term's documents stay in order)."""
        if not self._tail:
            return
        old_off, old_docs, old_tf = self._off, self._docs, self._tf
        old_terms = len(old_off) - 1
        old_counts = np.diff(old_off)
        tail_ids = sorted(self._tail)
        counts = np.zeros(len(self.vocab), np.int64)
        counts[:old_terms] = old_counts
        counts[tail_ids] += [len(self._tail[t][0]) for t in tail_ids]
        off = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=off[1:])
        docs = np.empty(int(off[-1]), np.int32)
        tf = np.empty(int(off[-1]), np.uint8)
        # the block's postings move in runs: a term's shift grows only past a term with tail postings
        bounds = [0, *(t + 1 for t in tail_ids if t < old_terms), old_terms]
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if b > a:
                lo, hi, at = int(old_off[a]), int(old_off[b]), int(off[a])
                docs[at : at + hi - lo] = old_docs[lo:hi]
                tf[at : at + hi - lo] = old_tf[lo:hi]
        for t in tail_ids:
            d, f = self._tail[t]
            at = int(off[t]) + (int(old_counts[t]) if t < old_terms else 0)
            docs[at : at + len(d)] = np.frombuffer(d, np.int32)
            tf[at : at + len(f)] = np.frombuffer(f, np.uint8)
        self._off, self._docs, self._tf = off, docs, tf
        self._tail = {}
        self._tail_n = 0

    def take(self, keep: np.ndarray) -> BM25:
        """The index of documents ``keep`` (increasing) renumbered 0, 1, ... (a partition's compaction:
        the postings are filtered and renumbered, no text is tokenised again)."""
        self._merge()
        keep = np.asarray(keep, np.int64)
        remap = np.full(self._n, -1, np.int64)
        remap[keep] = np.arange(len(keep))
        term = np.repeat(np.arange(len(self._off) - 1, dtype=np.int32), np.diff(self._off))
        docs = remap[self._docs]
        held = docs >= 0
        counts = np.bincount(term[held], minlength=len(self._off) - 1)
        used = np.flatnonzero(counts)  # terms left without a posting are dropped from the vocabulary
        number = np.full(len(counts), -1, np.int64)
        number[used] = np.arange(len(used))
        out = BM25(self.k1, self.b)
        names = list(self.vocab)
        out.vocab = {names[t]: i for i, t in enumerate(used.tolist())}
        off = np.zeros(len(used) + 1, np.int64)
        np.cumsum(counts[used], out=off[1:])
        out._off, out._docs, out._tf = off, docs[held].astype(np.int32), self._tf[held]
        out._big = {(int(number[t]), int(remap[d])): n for (t, d), n in self._big.items() if remap[d] >= 0}
        out._len = self._len[keep].copy() if len(keep) else np.zeros(256, np.float32)
        out._n = len(keep)
        return out

    def to_arrays(self) -> dict[str, np.ndarray]:
        self._merge()
        big = np.array([[t, d, n] for (t, d), n in self._big.items()], np.int64).reshape(-1, 3)
        return {
            "bm25_terms": np.frombuffer("\n".join(self.vocab).encode(), np.uint8),
            "bm25_offsets": self._off.copy(),
            "bm25_docs": self._docs.copy(),
            "bm25_tf": self._tf.copy(),
            "bm25_big": big,
            "bm25_lengths": self.lengths.copy(),
            "bm25_params": np.array([self.k1, self.b], np.float64),
        }

    @classmethod
    def from_arrays(cls, data: Any) -> BM25:
        """The index ``to_arrays`` wrote; ``ValueError`` when its parts disagree."""
        k1, b = (float(x) for x in data["bm25_params"])
        index = cls(k1, b)
        raw = bytes(data["bm25_terms"]).decode()
        terms = raw.split("\n") if raw else []
        off = np.asarray(data["bm25_offsets"], np.int64)
        docs = np.asarray(data["bm25_docs"], np.int32)
        tf = np.asarray(data["bm25_tf"], np.uint8)
        lengths = np.asarray(data["bm25_lengths"], np.float32)
        big = np.asarray(data["bm25_big"], np.int64).reshape(-1, 3)
        if len(off) != len(terms) + 1 or off[0] != 0 or np.any(np.diff(off) < 0) or off[-1] != len(docs) \
                or len(tf) != len(docs) or len(set(terms)) != len(terms):
            raise ValueError("BM25 snapshot: terms, offsets and postings disagree")
        if len(docs) and (int(docs.min()) < 0 or int(docs.max()) >= len(lengths)):
            raise ValueError("BM25 snapshot: a posting names a document it does not hold")
        index.vocab = {t: i for i, t in enumerate(terms)}
        index._off, index._docs, index._tf = off, docs, tf
        index._big = {(int(t), int(d)): int(n) for t, d, n in big.tolist()}
        index._len = lengths.copy() if len(lengths) else np.zeros(256, np.float32)
        index._n = len(lengths)
        return index

    def footprint(self) -> dict[str, int]:
        """Bytes held, by part: postings (block, tail, exact frequencies), vocabulary, lengths."""
        import sys

        tail = sum(d.itemsize * len(d) + f.itemsize * len(f) + 2 * 64 for d, f in self._tail.values())
        vocab = sys.getsizeof(self.vocab) + sum(sys.getsizeof(t) for t in self.vocab) \
            + 28 * max(0, len(self.vocab) - 256)
        return {"bm25_postings": self._off.nbytes + self._docs.nbytes + self._tf.nbytes + tail
                + sys.getsizeof(self._tail) + 100 * len(self._big),
                "bm25_vocab": vocab, "bm25_lengths": self._n * self._len.itemsize}

    def nbytes(self) -> int:
        return sum(self.footprint().values())

    def _segments(self, tid: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Term number ``tid``'s postings in the block and in the tail, each as (documents in increasing
        order, their stored frequencies, uint8)."""
        out = []
        if tid < len(self._off) - 1:
            lo, hi = int(self._off[tid]), int(self._off[tid + 1])
            out.append((self._docs[lo:hi], self._tf[lo:hi]))
        tail = self._tail.get(tid)
        if tail is not None:  # (copies: a view would pin the arrays the next add appends to)
            out.append((np.frombuffer(tail[0], np.int32).copy(), np.frombuffer(tail[1], np.uint8).copy()))
        return out

    def _frequencies(self, tid: int, docs: np.ndarray, stored: np.ndarray) -> np.ndarray:
        """Stored frequencies as float32, a capped 255 replaced by its exact value."""
        tf = stored.astype(np.float32)
        if self._big:
            for i in np.flatnonzero(stored == self.TF_CAP).tolist():
                tf[i] = self._big[(tid, int(docs[i]))]
        return tf

    def docs(self, term: str) -> np.ndarray:
        """The documents holding ``term``, in increasing order."""
        tid = self.vocab.get(term)
        if tid is None:
            return np.empty(0, np.int32)
        docs: np.ndarray = np.empty(0, np.int32)
        if tid < len(self._off) - 1:
            docs = self._docs[int(self._off[tid]) : int(self._off[tid + 1])]
        tail = self._tail.get(tid)
        if tail is not None:
            docs = np.concatenate([docs, np.frombuffer(tail[0], np.int32)])
        return docs

    def postings(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        """(documents, term frequencies as float32) of ``term``, documents in increasing order."""
        tid = self.vocab.get(term)
        parts = self._segments(tid) if tid is not None else []
        if tid is None or not parts:
            return np.empty(0, np.int32), np.empty(0, np.float32)
        docs = parts[0][0] if len(parts) == 1 else np.concatenate([d for d, _ in parts])
        stored = parts[0][1] if len(parts) == 1 else np.concatenate([f for _, f in parts])
        return docs, self._frequencies(tid, docs, stored)

    def scores(
        self, query: Sequence[str] | dict[str, float], mask: np.ndarray, n_docs: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """(documents, scores) of every document in ``mask`` that contains a query term.

        ``query`` is a list of terms (repeats count once) or a dict of term weights (query
        expansion). ``mask`` is a boolean array over documents; its true count is the collection
        size for idf, and the mean length under it is ``avgdl``.
        """
        weights = dict.fromkeys(query, 1.0) if not isinstance(query, dict) else query
        size = self._n
        if not weights or size == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        mask = mask[:size]
        lengths = self.lengths
        n = int(n_docs if n_docs is not None else np.count_nonzero(mask))
        if n == 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        avgdl = float(lengths[mask].mean()) or 1.0
        parts_d: list[np.ndarray] = []
        parts_s: list[np.ndarray] = []
        used = 0
        off, block_docs, block_tf, n_block = self._off, self._docs, self._tf, len(self._off) - 1
        for term, w in weights.items():
            tid = self.vocab.get(term)
            if tid is None or w == 0:
                continue
            # (documents, stored frequencies) within the mask, block and tail apart (no concatenation;
            # the views of the tail's arrays do not outlive this call)
            held = []
            if tid < n_block:
                lo, hi = off[tid], off[tid + 1]
                docs = block_docs[lo:hi]
                keep = mask[docs]
                held.append((docs[keep], block_tf[lo:hi][keep]))
            tail = self._tail.get(tid)
            if tail is not None:
                docs = np.frombuffer(tail[0], np.int32)
                keep = mask[docs]
                held.append((docs[keep], np.frombuffer(tail[1], np.uint8)[keep]))
            df = sum(d.size for d, _ in held)
            if df == 0:
                continue
            idf = np.log1p((n - df + 0.5) / (df + 0.5))
            used += 1
            for docs, stored in held:
                if not docs.size:
                    continue
                tf = self._frequencies(tid, docs, stored)
                norm = self.k1 * (1.0 - self.b + self.b * lengths[docs] / avgdl)
                parts_d.append(docs)
                parts_s.append((w * idf) * tf * (self.k1 + 1.0) / (tf + norm))
        if not parts_d:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        docs = np.concatenate(parts_d)
        sc = np.concatenate(parts_s).astype(np.float32)
        if used == 1:  # one term: its documents are increasing and distinct already
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
