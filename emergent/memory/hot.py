"""The hot recall index: long-term memory's rows held in the process, searched without LanceDB.

LanceDB stays the store of record (every write commits there first) and the fallback; recall
reads this index instead of running two LanceDB queries and a take per question, each of which
costs milliseconds of fixed overhead whatever the table size (``docs/decisions.md``: "Hot recall
index"). Per agent (every read is within one agent's scope) a :class:`Partition` holds:

- the vectors: float32 for exact search while the partition is at most ``exact_max`` rows; above
  that an HNSW graph over 8-bit scalar-quantised vectors (faiss ``IndexHNSWSQ``, ~0.4 KB a
  memory, so a million fit in ~0.6 GB) searched with the scope's mask as an id selector, and the
  float32 copy is dropped;
- an incremental BM25 index (:mod:`emergent.memory.lexical`);
- the ranking fields (kind, importance, stability, times, access count, user and session codes)
  as numpy columns, and the text, meta and sources needed to answer.

**Coherence.** A write of this process is applied to the index after LanceDB has committed it
and before the write returns: it is recallable here the moment it is reported stored. Writes of
other processes are found by the table's version: each search stats the table's ``_versions``
directory (a new manifest file changes it; a few microseconds), and when it changed — or changed
so recently that a second commit could share the filesystem's timestamp tick — the table is
checked out at its latest version and a partition whose version differs is brought up to date
by reading the agent's light columns (new ids are fetched, removed ids dropped, changed ranking
fields overwritten). The index never holds a row the store does not: it is filled only from
LanceDB reads and from writes LanceDB has committed, and a delete is applied when it commits; a
killed process loses only its memory, and the next process rebuilds from LanceDB on its first
search of an agent (``rebuild()`` is timed by ``emergent bench memory``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from emergent.memory.lexical import BM25, tokens
from emergent.memory.ltm import _scope  # the validated-once scope cache LTM reads rows with
from emergent.memory.types import Kind, MemoryRecord, Scope, Tier

if TYPE_CHECKING:
    from emergent.memory.ltm import LongTermMemory

log = logging.getLogger("emergent.memory")

KINDS = list(Kind)
_KIND_CODE = {k: i for i, k in enumerate(KINDS)}
_LIGHT = ["id", "kind", "importance", "stability", "created_at", "learned_at", "last_accessed", "access_count",
          "user_id", "session_id"]
_FULL = [*_LIGHT, "text", "payload", "vector", "meta", "sources"]
#: what a catch-up reads of every row it already holds: what writes other than an append change
#: (access counts and stability from recalls, provenance and meta from consolidation merges)
_SYNC = [*_LIGHT, "meta", "sources"]
#: a check of the table's version is repeated until one is made this long after the directory's
#: last change (seconds): filesystems stamp with a coarse clock (4 ms ticks, 1-2 s on some), so two
#: commits can share one mtime
FRESH_S = 2.0
#: more new rows than this since the partition's version: reload it whole instead of by id
RELOAD_ABOVE = 5000
SNAPSHOT_FORMAT = 2  # 2: learned_at


def _grown(a: np.ndarray, cap: int) -> np.ndarray:
    out = np.zeros((cap, *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    return out


@dataclass(frozen=True, slots=True)
class Hit:
    pos: int
    score: float


class Partition:
    """The hot rows of one agent: columns indexed by position (append-only; removal tombstones)."""

    COLS: dict[str, Any] = {"alive": np.bool_, "user": np.int32, "session": np.int32, "kind": np.int8,
                            "importance": np.float32, "stability": np.float32, "created_at": np.float64,
                            "learned_at": np.float64, "last_accessed": np.float64, "access_count": np.int32,
                            "compressed": np.bool_}

    def __init__(self, agent: str, dim: int, exact_max: int, ef_search: int) -> None:
        self.agent = agent
        self.dim = dim
        self.exact_max = exact_max
        self.ef_search = ef_search
        self.version: int | None = None
        self.ident: tuple[int, ...] | None = None  # (version, manifest size, mtime): see HotIndex.identity
        self.saved: int | None = None  # the version of its snapshot on disk
        #: bumped whenever positions change meaning (compaction, reload): a search that scored
        #: positions under an older generation must not read records at them
        self.generation = 0
        self.stale = True
        self.lock = threading.RLock()
        self.reset()

    def reset(self) -> None:
        self.generation = getattr(self, "generation", 0) + 1
        self.ids: list[str] = []
        self.pos: dict[str, int] = {}
        self.size = 0
        self.live = 0
        cap = 256
        self.cols = {name: np.zeros(cap, dtype=t) for name, t in self.COLS.items()}
        self.vec: np.ndarray | None = np.zeros((cap, self.dim), np.float32)
        self.ann: Any = None
        self.ann_n = 0
        self.text: list[str] = []
        self.meta: list[str] = []
        self.sources: list[str] = []
        self.bm25 = BM25()
        self.names: list[str | None] = [None]  # user / session codes; 0 is "not set"
        self.codes: dict[str | None, int] = {None: 0}

    # ------------------------------------------------------------------ writes
    def _code(self, name: str | None) -> int:
        code = self.codes.get(name)
        if code is None:
            code = self.codes[name] = len(self.names)
            self.names.append(name)
        return code

    def _reserve(self, n: int) -> None:
        need = self.size + n
        cap = len(self.cols["alive"])
        if need <= cap:
            return
        cap = max(need, cap * 2)
        self.cols = {name: _grown(a, cap) for name, a in self.cols.items()}
        if self.vec is not None:
            self.vec = _grown(self.vec, cap)

    def append(self, rows: Sequence[dict[str, Any]], vectors: np.ndarray | None = None) -> None:
        """Add rows (dicts of the LTM's columns, with ``vector`` unless ``vectors`` holds them in row
        order); an id already present is updated, or re-appended when its text, scope or vector
        changed (postings, codes and the graph only grow)."""
        moved = [r["id"] for r in rows if r["id"] in self.pos and self._moved(r)]
        if moved:
            self.remove(moved)
        self.update([r for r in rows if r["id"] in self.pos])
        fresh_at = [i for i, r in enumerate(rows) if r["id"] not in self.pos]
        fresh = [rows[i] for i in fresh_at]
        if not fresh:
            return
        self._reserve(len(fresh))
        start = self.size
        end = start + len(fresh)
        c = self.cols
        c["alive"][start:end] = True
        c["user"][start:end] = [self._code(r["user_id"]) for r in fresh]
        c["session"][start:end] = [self._code(r["session_id"]) for r in fresh]
        c["kind"][start:end] = [_KIND_CODE[Kind(r["kind"])] for r in fresh]
        for name in ("importance", "stability", "created_at", "last_accessed", "access_count"):
            c[name][start:end] = [r[name] for r in fresh]
        c["learned_at"][start:end] = [_learned(r) for r in fresh]
        c["compressed"][start:end] = [r.get("payload") is not None for r in fresh]
        vecs = (np.asarray(vectors, dtype=np.float32)[fresh_at] if vectors is not None
                else np.asarray([r["vector"] for r in fresh], dtype=np.float32)).reshape(len(fresh), self.dim)
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        vecs = (vecs / np.where(norms > 0, norms, 1.0)).astype(np.float32)
        if self.vec is not None:
            self.vec[start:end] = vecs
        for i, r in enumerate(fresh):
            self.pos[r["id"]] = start + i
            self.ids.append(r["id"])
            text = r.get("text") or ""
            self.text.append(text)
            self.meta.append(r.get("meta") or "{}")
            self.sources.append(r.get("sources") or "[]")
            self.bm25.add(start + i, text)
        self.size = end
        self.live += len(fresh)
        if self.ann is not None:
            self._ann_add(vecs, start)
        elif self.live > self.exact_max:
            self._build_ann()

    def _moved(self, row: dict[str, Any]) -> bool:
        p = self.pos[row["id"]]
        c = self.cols
        if "text" in row and (row.get("text") or "") != self.text[p]:
            return True
        if (self.names[int(c["user"][p])], self.names[int(c["session"][p])]) != (row["user_id"], row["session_id"]):
            return True
        if row.get("vector") is not None and self.vec is not None:  # (the reembed of a graph partition
            v = np.asarray(row["vector"], np.float32)                 #  changes the embedder: a new process)
            v = v / (np.linalg.norm(v) or 1.0)
            return not np.allclose(v, self.vec[p], atol=1e-6)
        return False

    def update(self, rows: Sequence[dict[str, Any]]) -> None:
        """Overwrite every field but text, scope and vector (see :meth:`append`) of rows already present."""
        if not rows:
            return
        at = np.fromiter((self.pos[r["id"]] for r in rows), np.int64, len(rows))
        c = self.cols
        for name in ("importance", "stability", "created_at", "last_accessed", "access_count"):
            c[name][at] = [r[name] for r in rows]
        c["learned_at"][at] = [_learned(r) for r in rows]
        c["kind"][at] = [_KIND_CODE[Kind(r["kind"])] for r in rows]
        for r in rows:
            p = self.pos[r["id"]]
            if "meta" in r:
                self.meta[p] = r["meta"] or "{}"
            if "sources" in r:
                self.sources[p] = r["sources"] or "[]"
            if "payload" in r:
                c["compressed"][p] = r["payload"] is not None

    def remove(self, ids: Sequence[str]) -> int:
        n = 0
        for i in ids:
            p = self.pos.pop(i, None)
            if p is not None and self.cols["alive"][p]:
                self.cols["alive"][p] = False
                self.text[p] = self.meta[p] = self.sources[p] = ""
                n += 1
        self.live -= n
        if self.size > 1024 and self.live < self.size // 2:
            self.compact()
        return n

    def compact(self) -> None:
        """Drop tombstones (positions change, so the ANN graph is rebuilt)."""
        keep = np.flatnonzero(self.cols["alive"][: self.size])
        vecs = self.vectors(keep)
        ids = [self.ids[p] for p in keep]
        text, meta, sources = ([x[p] for p in keep] for x in (self.text, self.meta, self.sources))
        cols = {name: a[keep].copy() for name, a in self.cols.items()}
        names = self.names
        self.reset()
        self._reserve(len(keep))
        n = len(keep)
        for name, a in cols.items():
            self.cols[name][:n] = a
        self.names = names
        self.codes = {name: i for i, name in enumerate(names)}
        self.ids, self.text, self.meta, self.sources = ids, text, meta, sources
        self.pos = {i: p for p, i in enumerate(ids)}
        self.size = self.live = n
        for p, t in enumerate(text):
            self.bm25.add(p, t)
        if n > self.exact_max:
            self.vec = None
            self._build_ann(vecs)
        elif self.vec is not None:
            self.vec[:n] = vecs

    # ------------------------------------------------------------------ ANN
    def vectors(self, positions: np.ndarray) -> np.ndarray:
        if self.vec is not None:
            return self.vec[positions]
        out = np.zeros((len(positions), self.dim), np.float32)
        if len(positions):
            self.ann.reconstruct_batch(positions.astype(np.int64), out)
        return out

    def _build_ann(self, vecs: np.ndarray | None = None) -> None:
        """Switch to the HNSW graph over 8-bit scalar-quantised vectors and drop the float32 copy."""
        import faiss

        base = self.vec[: self.size] if vecs is None and self.vec is not None else vecs
        if base is None:
            raise RuntimeError("no vectors to build the ANN index from")
        t0 = time.perf_counter()
        index = faiss.IndexHNSWSQ(self.dim, faiss.ScalarQuantizer.QT_8bit, 16,  # type: ignore[arg-type]
                                  faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 64
        sample = base[np.random.default_rng(0).choice(len(base), min(len(base), 20_000), replace=False)]
        index.train(np.ascontiguousarray(sample))
        index.add(np.ascontiguousarray(base))
        self.ann, self.ann_n = index, len(base)
        self.vec = None
        log.info("hot index of agent %r: HNSW over %d vectors built in %.1f s", self.agent, len(base),
                 time.perf_counter() - t0)

    def _ann_add(self, vecs: np.ndarray, start: int) -> None:
        if start != self.ann_n:
            raise RuntimeError("the ANN graph and the partition disagree on positions")
        self.ann.add(np.ascontiguousarray(vecs))
        self.ann_n += len(vecs)

    # ------------------------------------------------------------------ reads
    def mask(self, scope: Scope, kinds: Sequence[Kind] | None, lo: float | None, hi: float | None) -> np.ndarray:
        c = self.cols
        n = self.size
        m = c["alive"][:n].copy()
        if scope.user is not None:
            m &= c["user"][:n] == self.codes.get(scope.user, -1)
        if scope.session is not None:
            m &= c["session"][:n] == self.codes.get(scope.session, -1)
        if kinds:
            m &= np.isin(c["kind"][:n], [_KIND_CODE[k] for k in kinds])
        if lo is not None:
            m &= c["created_at"][:n] >= lo
        if hi is not None:
            m &= c["created_at"][:n] < hi
        return m

    def vector_top(self, q: np.ndarray, mask: np.ndarray, n: int) -> list[Hit]:
        count = int(np.count_nonzero(mask))
        if count == 0:
            return []
        if self.ann is not None and count > 2000:
            return self._ann_top(q, mask, n)
        if count == self.size and self.vec is not None:
            sims = self.vec[: self.size] @ q
            where = None
        else:
            where = np.flatnonzero(mask)
            sims = self.vectors(where) @ q
        k = min(n, len(sims))
        part = np.argpartition(-sims, k - 1)[:k] if len(sims) > k else np.arange(len(sims))
        part = part[np.argsort(-sims[part], kind="stable")]
        pos = part if where is None else where[part]
        return [Hit(int(p), float(s)) for p, s in zip(pos, sims[part], strict=True)]

    def _ann_top(self, q: np.ndarray, mask: np.ndarray, n: int) -> list[Hit]:
        import faiss

        bits = np.packbits(np.pad(mask, (0, max(0, self.ann_n - len(mask))))[: self.ann_n], bitorder="little")
        selector = faiss.IDSelectorBitmap(self.ann_n, faiss.swig_ptr(bits))
        params = faiss.SearchParametersHNSW(sel=selector, efSearch=max(self.ef_search, n))  # type: ignore[attr-defined]
        dist, idx = self.ann.search(np.ascontiguousarray(q[None, :], dtype=np.float32), n, params=params)
        return [Hit(int(p), float(s)) for p, s in zip(idx[0], dist[0], strict=True) if p >= 0]

    def text_top(self, terms: Sequence[str] | dict[str, float], mask: np.ndarray, n: int) -> list[Hit]:
        docs, sc = self.bm25.top(terms, mask, n)
        return [Hit(int(p), float(s)) for p, s in zip(docs, sc, strict=True)]

    def text_scores(self, terms: Sequence[str] | dict[str, float], mask: np.ndarray, k1: float | None = None,
                    b: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, BM25 scores) of every row in ``mask`` with a query term, with ``k1`` and ``b`` in
        place of the index's own (the caller holds ``lock``)."""
        saved = self.bm25.k1, self.bm25.b
        try:
            self.bm25.k1 = saved[0] if k1 is None else k1
            self.bm25.b = saved[1] if b is None else b
            return self.bm25.scores(terms, mask)
        finally:
            self.bm25.k1, self.bm25.b = saved

    def record(self, p: int, *, full: bool = True) -> MemoryRecord:
        """The memory at position ``p`` (its text is the stored preview when ``compressed``); without
        ``full``, meta and sources are left empty (ranking does not read them)."""
        c = self.cols
        return MemoryRecord(
            id=self.ids[p], text=self.text[p], kind=KINDS[int(c["kind"][p])], importance=float(c["importance"][p]),
            scope=_scope(self.agent, self.names[int(c["user"][p])], self.names[int(c["session"][p])]),
            created_at=float(c["created_at"][p]), last_accessed=float(c["last_accessed"][p]),
            learned_at=float(c["learned_at"][p]),
            stability=float(c["stability"][p]), access_count=int(c["access_count"][p]),
            meta=json.loads(self.meta[p] or "{}") if full else {},
            sources=json.loads(self.sources[p] or "[]") if full else [], tier=Tier.LTM)

    # ------------------------------------------------------------------ snapshots
    def to_arrays(self) -> dict[str, np.ndarray]:
        """Everything needed to answer, as arrays (``np.savez``; no pickles)."""
        n = self.size
        out = {f"col_{name}": a[:n] for name, a in self.cols.items()}
        if self.vec is not None:
            out["vec"] = self.vec[:n]
        else:
            import faiss

            out["ann"] = faiss.serialize_index(self.ann)
        strings = {"ids": self.ids, "text": self.text, "meta": self.meta, "sources": self.sources,
                   "names": self.names}
        out["strings"] = np.frombuffer(json.dumps(strings, ensure_ascii=False).encode(), np.uint8)
        out.update(self.bm25.to_arrays())
        return out

    def from_arrays(self, data: Any) -> None:
        self.reset()
        strings = json.loads(bytes(data["strings"]).decode())
        n = len(strings["ids"])
        self._reserve(n)
        for name in self.COLS:
            self.cols[name][:n] = data[f"col_{name}"]
        if "vec" in data:
            self.vec[:n] = data["vec"]  # type: ignore[index]
        else:
            import faiss

            self.vec = None
            self.ann = faiss.deserialize_index(np.asarray(data["ann"]))
            self.ann_n = int(self.ann.ntotal)
        self.ids, self.text, self.meta, self.sources = (strings[k] for k in ("ids", "text", "meta", "sources"))
        self.names = strings["names"]
        self.codes = {name: i for i, name in enumerate(self.names)}
        self.size = n
        self.live = int(np.count_nonzero(self.cols["alive"][:n]))
        self.bm25 = BM25.from_arrays(data)
        if len(self.bm25) != n or (self.ann is not None and self.ann_n != n) \
                or not len(self.text) == len(self.meta) == len(self.sources) == n:
            raise ValueError("the snapshot's parts disagree on the number of rows")
        c = self.cols
        if n and (int(c["user"][:n].max()) >= len(self.names) or int(c["session"][:n].max()) >= len(self.names)
                  or int(c["user"][:n].min()) < 0 or int(c["session"][:n].min()) < 0
                  or int(c["kind"][:n].min()) < 0 or int(c["kind"][:n].max()) >= len(KINDS)):
            raise ValueError("the snapshot names scopes or kinds it does not hold")
        self.pos = {self.ids[p]: p for p in np.flatnonzero(c["alive"][:n]).tolist()}
        alive_ids = list(self.pos)
        if len(alive_ids) != self.live or not all(isinstance(i, str) for i in self.ids) \
                or self.names[0] is not None:
            raise ValueError("the snapshot's ids or names are malformed")

    def nbytes(self) -> int:
        total = sum(a.nbytes for a in self.cols.values()) + self.bm25.nbytes()
        if self.vec is not None:
            total += self.vec.nbytes
        if self.ann is not None:
            total += self.ann_n * (self.dim + 2 * 16 * 4 + 16)  # SQ8 codes + level-0 links + levels
        total += sum(len(t) + len(m) + len(s) + 3 * 50 for t, m, s in zip(self.text, self.meta, self.sources,
                                                                          strict=True))
        return total + len(self.ids) * 100


def _clear_debris(path: str) -> None:
    """Remove temporary snapshot files left by a process killed while writing one (its pid is gone)."""
    folder, name = os.path.split(path)
    for entry in os.scandir(folder):
        parts = entry.name[len(name) + 1 :].split(".")
        if entry.name.startswith(name + ".") and len(parts) == 2 and parts[1] == "tmp" and parts[0].isdigit():
            try:
                os.kill(int(parts[0]), 0)
            except ProcessLookupError:
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
            except OSError:
                continue


def _append_table(part: Partition, table: Any, chunk: int = 20_000) -> None:
    """Append an Arrow table of full rows: vectors straight into numpy (a list of 384 Python floats
    per row would dominate a load), the other columns as dicts."""
    others = [name for name in table.column_names if name != "vector"]
    for start in range(0, table.num_rows, chunk):
        part_rows = table.slice(start, chunk)
        column = part_rows.column("vector").combine_chunks()
        vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(len(column), part.dim)
        part.append(part_rows.select(others).to_pylist(), vectors=vectors)


def _learned(row: dict[str, Any]) -> float:
    """A row's learned time; rows an older emergent appended after the migration have none: their last
    access is the best known (as ``LongTermMemory._from_row`` reads them)."""
    value = row.get("learned_at")
    return float(value if value is not None else row["last_accessed"])


class HotIndex:
    """Per-agent :class:`Partition` s of one :class:`~emergent.memory.ltm.LongTermMemory`, kept coherent
    with the LanceDB table (see the module docstring)."""

    def __init__(self, ltm: LongTermMemory, *, exact_max: int = 20_000, ef_search: int = 128,
                 snapshot_dir: str | os.PathLike[str] | None = None) -> None:
        self.ltm = ltm
        self.exact_max = exact_max
        self.ef_search = ef_search
        self.snapshot_dir = os.fspath(snapshot_dir) if snapshot_dir is not None else None
        self.parts: dict[str, Partition] = {}
        self._lock = threading.Lock()
        self._local = "://" not in ltm.path
        self._seen: tuple[int, float] | None = None
        self.syncs = 0
        self.rebuilds = 0
        self.loaded_snapshots = 0

    # ------------------------------------------------------------------ coherence
    @property
    def _versions_dir(self) -> str | None:
        return os.path.join(self.ltm.path, "_versions") if self._local else None

    def _stamp(self) -> int | None:
        if self._versions_dir is None:
            return None
        try:
            return os.stat(self._versions_dir).st_mtime_ns
        except OSError:
            return None

    def latest_version(self) -> int:
        """The table's newest committed version, read from its manifest file names when the table is a
        local directory (no LanceDB call: a new process answers from a snapshot without importing it)."""
        from emergent.stores.lance import local_latest_version

        found = local_latest_version(self.ltm.path) if self._local else None
        return found if found is not None else self.ltm.latest_version()

    def _check(self) -> None:
        """Mark partitions stale when another process committed (see the module docstring)."""
        stamp = self._stamp()
        now = time.time()
        seen = self._seen
        # Skip only when the directory is unchanged since a check made after its stamp's tick had
        # closed: a commit within that tick would share the stamp, a later one changes it.
        if stamp is not None and seen is not None and stamp == seen[0] and seen[1] - stamp / 1e9 > FRESH_S \
                and now - seen[1] < 3600:
            return
        if stamp is None and seen is not None and now - seen[1] < FRESH_S:
            return
        self._seen = (stamp or 0, now)
        ident = self.identity(self.latest_version())
        for part in self.parts.values():
            if part.ident != ident:
                part.stale = True

    def identity(self, version: int) -> tuple[int, ...]:
        """A table version and its manifest file's size and mtime: a restore brings back version numbers
        with other content (they restart from the backup's), and its files are written anew."""
        return (version, *(self._manifest(version) or ()))

    def partition(self, agent: str) -> Partition:
        """The up-to-date partition of ``agent`` (loaded on first use, caught up when stale)."""
        with self._lock:
            part = self.parts.get(agent)
            if part is None:
                part = self.parts[agent] = Partition(agent, self.ltm.dim, self.exact_max, self.ef_search)
        self._check()
        if part.stale:
            with part.lock:
                if part.stale:
                    self._sync(part)
        return part

    # ------------------------------------------------------------------ snapshots
    def _manifest(self, version: int) -> tuple[int, int] | None:
        """(size, mtime_ns) of the manifest of ``version``: a restored or rewritten table with the same
        version number has other manifest files, so a snapshot of the old one is not mistaken for it."""
        if self._versions_dir is None:
            return None
        for name in (f"{2**64 - 1 - version}.manifest", f"{version}.manifest"):
            try:
                st = os.stat(os.path.join(self._versions_dir, name))
            except OSError:
                continue
            return st.st_size, st.st_mtime_ns
        return None

    def _snapshot_path(self, agent: str) -> str | None:
        if self.snapshot_dir is None:
            return None
        return os.path.join(self.snapshot_dir, f"{agent}.npz")

    def save(self, agent: str | None = None) -> int:
        """Write current partitions to the snapshot directory (atomically: a temporary file renamed over
        the old one). A new process loads a snapshot whose table version still matches instead of
        reading LanceDB. Returns how many were written."""
        written = 0
        for name, part in list(self.parts.items()):
            path = self._snapshot_path(name)
            if path is None or (agent is not None and name != agent):
                continue
            with part.lock:
                if part.stale or part.version is None or part.saved == part.version:
                    continue
                manifest = self._manifest(part.version)
                if manifest is None:
                    continue
                arrays = part.to_arrays()
                arrays["header"] = np.frombuffer(json.dumps({
                    "format": SNAPSHOT_FORMAT, "version": part.version, "manifest": list(manifest),
                    "embedder": self.ltm.embedder_id, "dim": self.ltm.dim, "exact_max": self.exact_max,
                }).encode(), np.uint8)
                os.makedirs(self.snapshot_dir or ".", exist_ok=True)
                _clear_debris(path)
                tmp = f"{path}.{os.getpid()}.tmp"
                try:
                    with open(tmp, "wb") as fh:
                        np.savez(fh, **arrays)  # type: ignore[arg-type]
                    os.replace(tmp, path)
                except OSError as exc:  # a cache: a full disk costs the next process a reload, nothing else
                    log.warning("could not write the hot index snapshot %s: %s", path, exc)
                    with contextlib.suppress(OSError):
                        os.unlink(tmp)
                    continue
                part.saved = part.version
                written += 1
        return written

    def _from_snapshot(self, part: Partition) -> bool:
        """Load ``part`` from its snapshot when one exists for a version of this table; False otherwise."""
        path = self._snapshot_path(part.agent)
        if path is None or not os.path.exists(path):
            return False
        try:
            with np.load(path, allow_pickle=False) as data:
                header = json.loads(bytes(data["header"]).decode())
                if header.get("format") != SNAPSHOT_FORMAT or header.get("embedder") != self.ltm.embedder_id \
                        or header.get("dim") != self.ltm.dim or header.get("exact_max") != self.exact_max:
                    return False
                manifest = self._manifest(int(header["version"]))
                if manifest is None or list(manifest) != header["manifest"]:
                    return False  # that version is gone (cleaned up) or is another table's
                part.from_arrays(data)
        except Exception as exc:  # noqa: BLE001 - a damaged cache is rebuilt from the store of record
            log.warning("ignoring the hot index snapshot %s (%s: %s); reloading from LanceDB", path,
                        type(exc).__name__, exc)
            part.reset()
            return False
        part.version = part.saved = int(header["version"])
        part.ident = (part.version, *manifest)
        self.loaded_snapshots += 1
        return True

    def _sync(self, part: Partition) -> None:
        if part.version is None and part.size == 0 and self._from_snapshot(part) \
                and self.identity(self.latest_version()) == part.ident:
            part.stale = False
            return
        version = self.ltm.latest_version()
        where = f"agent = '{part.agent}'"
        if part.size == 0:
            self._load(part, where)
        else:
            light = self.ltm.scan(where, _SYNC).to_pylist()
            present = {r["id"] for r in light}
            gone = [i for i in part.pos if i not in present]
            new = [r["id"] for r in light if r["id"] not in part.pos]
            if len(new) > RELOAD_ABOVE:
                part.reset()
                self._load(part, where)
            else:
                part.remove(gone)
                part.update([r for r in light if r["id"] in part.pos])
                for start in range(0, len(new), 1000):
                    ids = ", ".join("'" + i.replace("'", "''") + "'" for i in new[start : start + 1000])
                    _append_table(part, self.ltm.scan(f"{where} AND id IN ({ids})", _FULL))
        part.version = version
        part.ident = self.identity(version)
        part.stale = False
        self.syncs += 1

    def _load(self, part: Partition, where: str) -> None:
        self.rebuilds += 1
        _append_table(part, self.ltm.scan(where, _FULL))

    def rebuild(self) -> float:
        """Drop every partition and load the ones that were loaded again from LanceDB; seconds taken."""
        t0 = time.perf_counter()
        with self._lock:
            agents = list(self.parts)
            self.parts = {}
        for agent in agents:
            self.partition(agent)
        return time.perf_counter() - t0

    def invalidate(self, agent: str | None = None) -> None:
        """Catch up from LanceDB at the next search (after a write whose outcome is not known row by row)."""
        for name, part in list(self.parts.items()):
            if agent is None or name == agent:
                part.stale = True

    def forget(self) -> None:
        """Drop everything (a restore replaced the table); partitions reload on their next search."""
        with self._lock:
            self.parts = {}

    # ------------------------------------------------------------------ writes of this process
    def _applied(self, touched: set[str], before: int | None) -> None:
        """After a commit of ours: a partition that was current stays current when nobody else committed."""
        version = self.ltm.table.version
        for agent in touched:
            part = self.parts.get(agent)
            if part is not None and not part.stale and before is not None and part.version == before \
                    and version == before + 1 and part.ident == self.identity(before):
                part.version = version
                part.ident = self.identity(version)
            elif part is not None:
                part.stale = True

    def added(self, rows: Sequence[dict[str, Any]], before: int | None) -> None:
        by_agent: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            by_agent.setdefault(r["agent"], []).append(r)
        for agent, part_rows in by_agent.items():
            part = self.parts.get(agent)
            if part is not None:
                with part.lock:
                    part.append(part_rows)
        self._applied(set(by_agent), before)

    def removed(self, ids_by_agent: dict[str, list[str]], before: int | None) -> None:
        for agent, ids in ids_by_agent.items():
            part = self.parts.get(agent)
            if part is not None:
                with part.lock:
                    part.remove(ids)
        self._applied(set(ids_by_agent), before)

    # ------------------------------------------------------------------ reads
    def search(self, scope: Scope, qvec: np.ndarray, query: str, kinds: Sequence[Kind] | None, lo: float | None,
               hi: float | None, n: int) -> tuple[Partition, list[Hit], list[Hit]]:
        """(partition, vector hits, BM25 hits) within ``scope`` and the filters, best first."""
        part = self.partition(scope.agent)
        with part.lock:
            mask = part.mask(scope, kinds, lo, hi)
            q = np.asarray(qvec, dtype=np.float32)
            q = q / (np.linalg.norm(q) or 1.0)
            vec = part.vector_top(q, mask, n)
            txt = part.text_top(tokens(query), mask, n)
        return part, vec, txt

    def memory_bytes(self) -> int:
        return sum(p.nbytes() for p in self.parts.values())

    def stats(self) -> dict[str, Any]:
        return {"partitions": {a: {"rows": p.live, "ann": p.ann is not None, "version": p.version}
                               for a, p in self.parts.items()},
                "bytes": self.memory_bytes(), "syncs": self.syncs, "rebuilds": self.rebuilds}
