"""Short-term items as arrays, kept current between recalls: what a recall compares the query with.

A recall compares the query with every live short-term item of the agent (up to ``stm_max_items``,
2,000 by default): by cosine similarity and by the share of the query's words each item holds. Done
item by item in Python that is ~14 ms a recall with a full short-term memory; with the items kept
here as arrays (one vector matrix, event times, kinds, scopes) and an inverted index of their words,
a recall is a few numpy operations over the matrix plus a lookup per query word.

The view is kept by **record identity**: the stores hand back the same record object while an item
is unchanged (the SQLite store decodes only what changed, see ``SQLiteSTM.scan``), so ``sync`` adds
the records it has not seen and frees the slots of those no longer listed; a replaced item (a
reinforcement, another process's put) is a new object, so it gets a new slot. Nothing is keyed by
the item's id alone, so a view can never answer with a value the store no longer holds: what a
recall ranks is exactly the list the store returned for it.

Hand-written because no library keeps numpy arrays in step with an external list of Python
objects; the parts are numpy and a dict of postings.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np

from emergent.memory.lexical import tokens
from emergent.memory.types import Kind, MemoryRecord, Scope

#: what counts as a word of a short-term item (and of a query, in the service)
WORD = re.compile(r"\w+")
_KINDS = {k: i for i, k in enumerate(Kind)}


class STMView:
    """Arrays over the short-term items of one agent; ``sync(items)`` then the queries. Thread-safe:
    recalls run in threads, and each query holds the lock while it reads the arrays."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slot: dict[int, int] = {}  # id(record) -> slot
        self._rec: list[MemoryRecord | None] = []  # slot -> record (kept alive: its id() stays unique)
        self._free: list[int] = []
        self._dim = 0
        self._vec = np.zeros((0, 0), np.float32)
        self._created = np.zeros(0)
        self._kind = np.zeros(0, np.int8)
        self._scope = np.zeros(0, np.int32)  # slot -> index in self._scopes
        self._scopes: list[Scope] = []
        self._scope_ids: dict[Scope, int] = {}
        self._words: list[frozenset[str]] = []
        self._postings: dict[str, set[int]] = {}
        self._stems: dict[int, frozenset[str]] = {}  # slot -> lexical tokens, computed when first asked
        self._keys: list[int] = []  # id() of the records of the last sync, in order, and their slots
        self._slots = np.zeros(0, np.int64)

    # ------------------------------------------------------------------ upkeep
    def _grow(self, need: int) -> None:
        cap = max(need, 2 * len(self._rec), 64)
        extra = cap - len(self._rec)
        self._vec = np.vstack([self._vec, np.zeros((extra, self._dim), np.float32)])
        self._created = np.concatenate([self._created, np.zeros(extra)])
        self._kind = np.concatenate([self._kind, np.zeros(extra, np.int8)])
        self._scope = np.concatenate([self._scope, np.zeros(extra, np.int32)])
        self._free.extend(range(cap - 1, len(self._rec) - 1, -1))
        self._rec.extend([None] * extra)
        self._words.extend([frozenset()] * extra)

    def _reset(self, dim: int) -> None:
        self._slot.clear()
        self._keys, self._slots = [], np.zeros(0, np.int64)
        self._rec, self._free, self._words = [], [], []
        self._postings.clear()
        self._stems.clear()
        self._dim = dim
        self._vec = np.zeros((0, dim), np.float32)
        self._created, self._kind, self._scope = np.zeros(0), np.zeros(0, np.int8), np.zeros(0, np.int32)

    def _add(self, rec: MemoryRecord) -> int:
        if not self._free:
            self._grow(len(self._rec) + 1)
        s = self._free.pop()
        self._slot[id(rec)] = s
        self._rec[s] = rec
        self._vec[s] = np.asarray(rec.vector, np.float32)
        self._created[s] = float(rec.created_at)
        self._kind[s] = _KINDS.get(rec.kind, -1)
        sid = self._scope_ids.get(rec.scope)
        if sid is None:
            sid = self._scope_ids[rec.scope] = len(self._scopes)
            self._scopes.append(rec.scope)
        self._scope[s] = sid
        words = frozenset(WORD.findall(rec.text.lower()))
        self._words[s] = words
        for w in words:
            self._postings.setdefault(w, set()).add(s)
        return s

    def _drop(self, key: int) -> None:
        s = self._slot.pop(key)
        for w in self._words[s]:
            held = self._postings.get(w)
            if held is not None:
                held.discard(s)
                if not held:
                    del self._postings[w]
        self._rec[s] = None
        self._words[s] = frozenset()
        self._stems.pop(s, None)
        self._free.append(s)

    def sync(self, items: Sequence[MemoryRecord]) -> np.ndarray:
        """The slots of ``items`` (those with a vector), in their order, after adding what is new
        and freeing what is no longer listed. Call under :meth:`locked`."""
        with_vec = [r for r in items if r.vector is not None]
        if with_vec:
            dim = len(with_vec[0].vector)  # type: ignore[arg-type]
            if dim != self._dim:  # another embedder: start again
                self._reset(dim)
        keys = list(map(id, with_vec))
        if keys == self._keys:  # the same records in the same order: the slots of last time
            return self._slots
        listed = set(keys)
        for key in self._slot.keys() - listed:
            self._drop(key)
        if listed - self._slot.keys():
            for r, key in zip(with_vec, keys, strict=True):
                if key not in self._slot:
                    self._add(r)
        slots = np.fromiter(map(self._slot.__getitem__, keys), np.int64, len(keys))
        self._keys, self._slots = keys, slots
        if len(self._scopes) > 4 * (len(self._slot) + 16):  # scopes no longer held: renumber
            self._scope_ids.clear()
            self._scopes.clear()
            for s in self._slot.values():
                rec = self._rec[s]
                assert rec is not None
                sid = self._scope_ids.setdefault(rec.scope, len(self._scopes))
                if sid == len(self._scopes):
                    self._scopes.append(rec.scope)
                self._scope[s] = sid
        return slots

    @property
    def locked(self) -> threading.Lock:
        return self._lock

    # ------------------------------------------------------------------ queries (under the lock)
    def record(self, slot: int) -> MemoryRecord:
        rec = self._rec[slot]
        assert rec is not None
        return rec

    def mask(self, slots: np.ndarray, scope: Scope, kinds: Sequence[Kind] | None, lo: float | None,
             hi: float | None) -> np.ndarray:
        """Which of ``slots`` are visible through ``scope``, of ``kinds``, with event time in [lo, hi)."""
        visible = np.fromiter((scope.contains(s) for s in self._scopes), bool, len(self._scopes))
        keep = visible[self._scope[slots]] if len(self._scopes) else np.zeros(len(slots), bool)
        if kinds:
            keep &= np.isin(self._kind[slots], [_KINDS[Kind(k)] for k in kinds])
        created = self._created[slots]
        if lo is not None:
            keep &= created >= lo
        if hi is not None:
            keep &= created < hi
        return keep

    def tokens(self, rec: MemoryRecord) -> frozenset[str]:
        """The index tokens of ``rec`` (``lexical.tokens``: stemmed, as BM25 sees them), kept while
        it is listed; computed for a record the view does not hold."""
        with self._lock:  # a sync in another thread may free the slot and give it to another record
            s = self._slot.get(id(rec))
            if s is None or self._rec[s] is not rec:
                return frozenset(tokens(rec.text))
            held = self._stems.get(s)
            if held is None:
                held = self._stems[s] = frozenset(tokens(rec.text))
            return held

    def similarity(self, slots: np.ndarray, qvec: np.ndarray) -> np.ndarray:
        # every held row times the query, then the slots': no copy of the rows (2,000 x 384 floats
        # copied on every recall cost more than the product itself)
        return (self._vec @ np.asarray(qvec, np.float32))[slots]

    def overlap(self, slots: np.ndarray, terms: set[str]) -> np.ndarray:
        """The share of ``terms`` each of ``slots`` holds among its words (0-1)."""
        counts = np.zeros(len(self._rec))
        for t in terms:
            held = self._postings.get(t)
            if held:
                counts[np.fromiter(held, np.int64, len(held))] += 1
        return counts[slots] / max(1, len(terms))
