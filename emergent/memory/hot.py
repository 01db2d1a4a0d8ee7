"""The hot recall index: long-term memory's rows held in the process, searched without LanceDB.

LanceDB stays the store of record (every write commits there first) and the fallback; recall
reads this index instead of running two LanceDB queries and a take per question, each of which
costs milliseconds of fixed overhead whatever the table size (``docs/decisions.md``: "Hot recall
index"). Per agent (every read is within one agent's scope) a :class:`Partition` holds:

- the vectors: float32 for exact search while the partition is at most ``exact_max`` rows; above
  that an HNSW graph over 8-bit scalar-quantised vectors (faiss ``IndexHNSWSQ``: 384 bytes of
  codes and ~144 of graph a memory) searched with the scope's mask as an id selector, and the
  float32 copy is dropped;
- an incremental BM25 index (:mod:`emergent.memory.lexical`);
- the ranking fields (kind, importance, stability, times, access count, user and session codes)
  and the ids (12 bytes each) as numpy columns, and the text, meta and sources needed to answer
  in :class:`Blobs` (one buffer each, zstd-compressed with a trained dictionary once the
  partition uses the graph).

No Python object is held per memory: a million memories of one agent measured 769 MiB resident
when built row by row, 725 MiB when loaded from the snapshot (``emergent bench memory``,
:func:`emergent.bench.memory.bench_hot_footprint`), two thirds of it the codes and the graph.

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
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
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
SNAPSHOT_FORMAT = 3  # 2: learned_at; 3: ids as bytes, strings in buffers, BM25 postings in one block


def _grown(a: np.ndarray, cap: int) -> np.ndarray:
    out = np.zeros((cap, *a.shape[1:]), dtype=a.dtype)
    out[: len(a)] = a
    return out


def _key(id_: str) -> bytes | None:
    """The 12 bytes of a 24-hex-digit lower-case id (``new_id``'s form); None for any other id."""
    if len(id_) != 24:
        return None
    try:
        raw = bytes.fromhex(id_)
    except ValueError:
        return None
    return raw if len(raw) == 12 and raw.hex() == id_ else None


def _keys(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(12-byte keys, which ids have one) of ``ids``; an id of another form gets zero bytes."""
    if all(len(i) == 24 for i in ids):
        joined = "".join(ids)
        try:
            raw = bytes.fromhex(joined)
        except ValueError:
            raw = b""
        if len(raw) == 12 * len(ids) and raw.hex() == joined:
            return np.frombuffer(raw, "S12"), np.ones(len(ids), bool)
    found = [_key(i) for i in ids]
    keys = np.frombuffer(b"".join(k or bytes(12) for k in found), "S12") if ids else np.empty(0, "S12")
    return keys, np.fromiter((k is not None for k in found), bool, len(ids))


def _start_type(size: int) -> type:
    """Row starts in a buffer of ``size`` bytes: 4 bytes each below 4 GiB."""
    return np.uint32 if size < 2**32 else np.int64


class Blobs:
    """One string per row as UTF-8 bytes in one buffer (a start and a size per row; no Python object
    per row). A row holding ``default`` (or an empty string) takes no bytes, and while every row
    does, no per-row array is held at all (sources are ``[]`` almost everywhere). A changed row is
    written anew at the buffer's end (its old bytes are repacked away once they are half of it).

    :meth:`compress` trains a zstd dictionary on the rows held and, when it saves a fifth or more,
    keeps every row compressed with it (short texts compress ~2x with a dictionary, not alone); a
    read decompresses that one row (~1 µs)."""

    def __init__(self, default: str) -> None:
        self.default = default
        self.n = 0
        self.buf = np.zeros(0, np.uint8)
        self.used = 0
        self.start: np.ndarray | None = None  # None while every row holds the default
        self.size: np.ndarray | None = None
        self.waste = 0
        self.zdict: bytes | None = None
        self._comp: Any = None
        self._dict: Any = None
        self._local = threading.local()

    def __len__(self) -> int:
        return self.n

    @property
    def buf(self) -> np.ndarray:
        return self._buf

    @buf.setter
    def buf(self, value: np.ndarray) -> None:
        self._buf = value
        self._view = memoryview(value)  # type: ignore[arg-type]  # rows are read through it (no numpy call)

    # -- compression
    def _use(self, zdict: bytes) -> None:
        import zstandard as zstd

        params = zstd.ZstdCompressionParameters.from_level(3, format=zstd.FORMAT_ZSTD1_MAGICLESS, write_checksum=0,
                                                           write_content_size=1, write_dict_id=0)
        self._dict = zstd.ZstdCompressionDict(zdict)
        self._dict.precompute_compress(compression_params=params)
        self._comp = zstd.ZstdCompressor(dict_data=self._dict, compression_params=params)
        self._local = threading.local()
        self.zdict = zdict

    def _decompressor(self) -> Any:
        dec = getattr(self._local, "dec", None)
        if dec is None:
            import zstandard as zstd

            dec = self._local.dec = zstd.ZstdDecompressor(dict_data=self._dict, format=zstd.FORMAT_ZSTD1_MAGICLESS)
        return dec

    def compress(self, sample: int = 20_000, dict_size: int = 64 * 1024) -> bool:
        """Compress every row with a zstd dictionary trained on up to ``sample`` of them, when that
        saves at least a fifth of their bytes; False when the rows stay as they are."""
        if self.zdict is not None or self.size is None:
            return False
        import zstandard as zstd

        rows = np.flatnonzero(self.size[: self.n])
        if len(rows) < 1000:
            return False
        pick = np.sort(np.random.default_rng(0).choice(rows, min(len(rows), sample), replace=False))
        samples: list[bytes | bytearray | memoryview] = [self._raw(int(p)) for p in pick]
        try:
            zdict = zstd.train_dictionary(min(dict_size, sum(map(len, samples)) // 10), samples).as_bytes()
        except zstd.ZstdError:
            return False
        plain = self.used - self.waste
        saved = self.zdict, self._comp, self._dict
        self._use(zdict)
        packed = [self._comp.compress(self._raw(int(p))) for p in rows]
        if sum(map(len, packed)) > 0.8 * plain:
            self.zdict, self._comp, self._dict = saved
            return False
        self._write_rows(rows, packed)
        return True

    # -- storage
    def _raw(self, p: int) -> bytes:
        """Row ``p``'s stored bytes."""
        assert self.start is not None and self.size is not None
        s, z = int(self.start[p]), int(self.size[p])
        return self.buf[s : s + z].tobytes()

    def _pack(self, value: str) -> bytes:
        if not value or value == self.default:
            return b""
        data = value.encode("utf-8", "surrogatepass")
        return self._comp.compress(data) if self._comp is not None else data

    def _rows_room(self, n: int) -> None:
        if self.start is None or self.size is None:
            cap = max(256, n)
            self.start, self.size = np.zeros(cap, _start_type(len(self.buf))), np.zeros(cap, np.uint32)
        elif n > len(self.start):
            cap = max(n, 2 * len(self.start))
            self.start, self.size = _grown(self.start, cap), _grown(self.size, cap)

    def _bytes_room(self, n: int) -> None:
        if n > len(self.buf) or not self.buf.flags.writeable:
            self.buf = _grown(self.buf[: self.used], max(n, 2 * len(self.buf), 4096))
            if self.start is not None and self.start.dtype != _start_type(len(self.buf)):
                self.start = self.start.astype(np.int64)

    def _append_bytes(self, data: bytes) -> int:
        at = self.used
        self._bytes_room(at + len(data))
        self.buf[at : at + len(data)] = np.frombuffer(data, np.uint8)
        self.used += len(data)
        return at

    def _write_rows(self, rows: np.ndarray, packed: list[bytes]) -> None:
        """Rewrite the buffer with ``packed`` as the bytes of ``rows`` (every row with bytes)."""
        assert self.start is not None and self.size is not None
        sizes = np.fromiter(map(len, packed), np.int64, len(packed))
        self.buf = np.frombuffer(b"".join(packed), np.uint8)
        self.used, self.waste = len(self.buf), 0
        if self.start.dtype != _start_type(len(self.buf)):
            self.start = self.start.astype(np.int64)
        self.start[: self.n] = 0
        self.size[: self.n] = 0
        self.size[rows] = sizes
        self.start[rows] = np.cumsum(sizes) - sizes

    def extend(self, values: Sequence[str]) -> None:
        packed = [self._pack(v) for v in values]
        sizes = np.fromiter(map(len, packed), np.int64, len(packed))
        total = int(sizes.sum())
        end = self.n + len(values)
        if total or self.start is not None:
            self._rows_room(end)
            self._bytes_room(self.used + total)  # (first: past 4 GiB the starts become int64)
            assert self.start is not None and self.size is not None
            self.start[self.n : end] = self.used + np.cumsum(sizes) - sizes
            self.size[self.n : end] = sizes
            if total:
                self._append_bytes(b"".join(packed))
        self.n = end

    def __getitem__(self, p: int) -> str:
        if p < 0:
            p += self.n
        if not 0 <= p < self.n:
            raise IndexError("row out of range")
        size = self.size
        if size is None:
            return self.default
        z = int(size[p])
        if not z:
            return self.default
        s = int(self.start[p])  # type: ignore[index]
        if self.zdict is not None:
            return str(self._decompressor().decompress(self._view[s : s + z]), "utf-8", "surrogatepass")
        return str(self._view[s : s + z], "utf-8", "surrogatepass")

    def set(self, p: int, value: str) -> None:
        """Row ``p`` holds ``value`` (nothing is written when it already does: a catch-up sets every
        row's meta and sources, and few of them changed)."""
        size = self.size
        z = 0 if size is None else int(size[p])
        if not value or value == self.default:
            if not z:
                return
        elif z:
            s = int(self.start[p])  # type: ignore[index]
            held = self._view[s : s + z]
            if self.zdict is not None:
                held = self._decompressor().decompress(held)
            if held == value.encode("utf-8", "surrogatepass"):
                return
        self._write(p, value)

    def set_many(self, positions: Sequence[int], values: Sequence[str]) -> None:
        """:meth:`set` of many rows (one pass; only the rows whose value changed are written)."""
        default = self.default
        if self.size is None or self.start is None:
            changed = [(p, v) for p, v in zip(positions, values, strict=True) if v and v != default]
        else:
            at = np.asarray(positions, np.int64)
            sizes, starts = self.size[at].tolist(), self.start[at].tolist()
            view = self._view
            dec = self._decompressor() if self.zdict is not None else None
            changed = []
            for p, v, z, s in zip(positions, values, sizes, starts, strict=True):
                if not v or v == default:
                    if z:
                        changed.append((p, v))
                elif not z:
                    changed.append((p, v))
                else:
                    held = view[s : s + z] if dec is None else dec.decompress(view[s : s + z])
                    if held != v.encode("utf-8", "surrogatepass"):
                        changed.append((p, v))
        for p, v in changed:
            self._write(p, v)

    def _write(self, p: int, value: str) -> None:
        data = self._pack(value)
        self._rows_room(self.n)
        assert self.start is not None and self.size is not None
        self.waste += int(self.size[p])
        self.size[p] = len(data)
        if data:
            self.start[p] = self._append_bytes(data)
        if self.waste > max(1 << 20, self.used // 2):
            keep = np.flatnonzero(self.size[: self.n])
            self._write_rows(keep, [self._raw(int(q)) for q in keep])

    def take(self, keep: np.ndarray) -> Blobs:
        """Rows ``keep``, renumbered 0, 1, ... (compaction); the dictionary is kept."""
        out = Blobs(self.default)
        if self.zdict is not None:
            out._use(self.zdict)
        out.n = len(keep)
        if self.start is None or self.size is None or not len(keep):
            return out
        sizes = self.size[keep].astype(np.int64)
        starts = self.start[keep]
        view = memoryview(self.buf)  # type: ignore[arg-type]
        out.buf = np.frombuffer(b"".join([view[s : s + z] for s, z in zip(starts.tolist(), sizes.tolist(),
                                                                         strict=True) if z]), np.uint8)
        out.used = len(out.buf)
        out.start, out.size = (np.cumsum(sizes) - sizes).astype(_start_type(out.used)), sizes.astype(np.uint32)
        return out

    def nbytes(self) -> int:
        rows = 0 if self.start is None or self.size is None else self.n * (self.start.itemsize + self.size.itemsize)
        return self.used + rows + len(self.zdict or b"")

    # -- snapshots
    def to_arrays(self, name: str) -> dict[str, np.ndarray]:
        empty = self.start is None or self.size is None
        return {f"{name}_buf": self.buf[: self.used], f"{name}_dict": np.frombuffer(self.zdict or b"", np.uint8),
                f"{name}_start": np.empty(0, np.int64) if empty else self.start[: self.n],  # type: ignore[index]
                f"{name}_size": np.empty(0, np.uint32) if empty else self.size[: self.n]}  # type: ignore[index]

    @classmethod
    def from_arrays(cls, data: Any, name: str, n: int, default: str) -> Blobs:
        """The rows ``to_arrays`` wrote; ``ValueError`` when they are not ``n`` rows within the buffer."""
        out = cls(default)
        buf = np.asarray(data[f"{name}_buf"], np.uint8)
        start = np.asarray(data[f"{name}_start"], np.int64)
        size = np.asarray(data[f"{name}_size"], np.uint32)
        zdict = bytes(np.asarray(data[f"{name}_dict"], np.uint8))
        held = size > 0 if len(size) == len(start) else np.zeros(0, bool)
        if len(start) != len(size) or len(start) not in (0, n) or (not len(start) and len(buf)) \
                or (held.any() and (int(start[held].min()) < 0 or int((start + size)[held].max()) > len(buf))):
            raise ValueError(f"the snapshot's {name} rows fall outside their buffer")
        if zdict:
            out._use(zdict)
        out.n = n
        out.buf, out.used = buf.copy(), len(buf)
        if len(start):
            out.start, out.size = start.astype(_start_type(len(buf))), size.copy()
        return out


class _Ids:
    """``partition.ids[p]``: the id at position ``p``."""

    __slots__ = ("_part",)

    def __init__(self, part: Partition) -> None:
        self._part = part

    def __len__(self) -> int:
        return self._part.size

    def __getitem__(self, p: int) -> str:
        part = self._part
        if part._odd and p in part._odd:
            return part._odd[p]
        if not 0 <= p < part.size:
            raise IndexError("position out of range")
        return part._kv[12 * p : 12 * p + 12].hex()


class _Positions:
    """``partition.pos``: live id -> position, as a read-only mapping (``get``, ``in``, ``[]``)."""

    __slots__ = ("_part",)

    def __init__(self, part: Partition) -> None:
        self._part = part

    def get(self, id_: str, default: int | None = None) -> int | None:
        p = self._part.find(id_)
        return default if p is None else p

    def __contains__(self, id_: object) -> bool:
        return isinstance(id_, str) and self._part.find(id_) is not None

    def __getitem__(self, id_: str) -> int:
        p = self._part.find(id_)
        if p is None:
            raise KeyError(id_)
        return p

    def __len__(self) -> int:
        return self._part.live

    def __iter__(self) -> Iterator[str]:
        part = self._part
        return iter([part.id_at(p) for p in np.flatnonzero(part.cols["alive"][: part.size]).tolist()])


@dataclass(frozen=True, slots=True)
class Hit:
    pos: int
    score: float


class Partition:
    """The hot rows of one agent: columns indexed by position (append-only; removal tombstones).

    Ids are 12-byte keys in the ``key`` column (an id not of ``new_id``'s form is kept in a dict);
    a position is found by binary search over the keys, which are already in order when rows come
    in id order (ids start with their creation time), else through an argsort kept beside them;
    ids appended out of order wait in a small dict until they are merged in. Text, meta and sources
    are :class:`Blobs`.
    """

    COLS: dict[str, Any] = {"key": "S12", "alive": np.bool_, "user": np.int32, "session": np.int32,
                            "kind": np.int8, "importance": np.float32, "stability": np.float32,
                            "created_at": np.float64, "learned_at": np.float64, "last_accessed": np.float64,
                            "access_count": np.int32, "compressed": np.bool_}

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
        self.ids = _Ids(self)  # ids[p]: the id at position p
        self.pos = _Positions(self)  # pos.get(id): the live position of an id
        self.reset()

    def reset(self) -> None:
        self.generation = getattr(self, "generation", 0) + 1
        self.size = 0
        self.live = 0
        cap = 256
        self._set_cols({name: np.zeros(cap, dtype=t) for name, t in self.COLS.items()})
        self.vec: np.ndarray | None = np.zeros((cap, self.dim), np.float32)
        self.ann: Any = None
        self.ann_n = 0
        self.text = Blobs("")
        self.meta = Blobs("{}")
        self.sources = Blobs("[]")
        self.bm25 = BM25()
        self.names: list[str | None] = [None]  # user / session codes; 0 is "not set"
        self.codes: dict[str | None, int] = {None: 0}
        # the id index: keys[:_sorted_n] in order (``_order`` None) or through ``_order``; later
        # positions of ids that came out of order in ``_recent``; ids of another form in ``_odd``
        self._sorted_n = 0
        self._order: np.ndarray | None = None
        self._recent: dict[bytes, int] = {}
        self._odd: dict[int, str] = {}  # position -> id (live or not)
        self._odd_pos: dict[str, int] = {}  # id -> live position

    # ------------------------------------------------------------------ ids
    def _set_cols(self, cols: dict[str, np.ndarray]) -> None:
        self.cols = cols
        self._kv = memoryview(cols["key"]).cast("B")  # type: ignore[arg-type]  # ids[p] reads 12 bytes of it

    def id_at(self, p: int) -> str:
        return self.ids[p]

    def ids_at(self, positions: np.ndarray | Sequence[int]) -> list[str]:
        """The ids at ``positions`` (one numpy gather and one hex conversion for all of them)."""
        at = np.asarray(positions, np.int64)
        if len(at) and (int(at.min()) < 0 or int(at.max()) >= self.size):
            raise IndexError("position out of range")
        text = self.cols["key"][at].tobytes().hex()
        out = [text[i : i + 24] for i in range(0, len(text), 24)]
        if self._odd:
            for j, p in enumerate(at.tolist()):
                if p in self._odd:
                    out[j] = self._odd[p]
        return out

    def find(self, id_: str) -> int | None:
        """The position of the live row ``id_`` (None when the partition holds none)."""
        key = _key(id_)
        if key is None:
            return self._odd_pos.get(id_)
        alive = self.cols["alive"]
        p = self._recent.get(key)
        if p is not None:  # an id is appended again only once its older rows are dead
            return p if alive[p] else None
        return self._find_sorted(key)

    def _find_sorted(self, key: bytes) -> int | None:
        n = self._sorted_n
        keys, alive, order = self.cols["key"], self.cols["alive"], self._order
        stripped = key.rstrip(b"\0")  # (numpy reads fixed-width bytes without trailing zeros)
        i = int(np.searchsorted(keys[:n], key, sorter=order))
        while i < n:  # the run of this key: rows of an id removed and appended again, one live at most
            p = i if order is None else int(order[i])
            if keys[p] != stripped:
                return None
            if alive[p] and p not in self._odd:
                return p
            i += 1
        return None

    def find_many(self, ids: Sequence[str]) -> np.ndarray:
        """Positions of the live rows ``ids`` (-1 where the partition holds none)."""
        out = np.full(len(ids), -1, np.int64)
        if not ids or not self.size:
            return out
        keys, hexed = _keys(ids)
        alive = self.cols["alive"]
        n = self._sorted_n
        if n:
            view = self.cols["key"][:n]
            i = np.minimum(np.searchsorted(view, keys, sorter=self._order), n - 1)
            p = i if self._order is None else self._order[i]
            same = hexed & (view[p] == keys)
            hit = same & alive[p]
            if self._odd:
                hit &= ~np.isin(p, np.fromiter(self._odd, np.int64, len(self._odd)))
            out[hit] = p[hit]
            for j in np.flatnonzero(same & ~hit).tolist():  # further into a run (an id appended again)
                q = self._find_sorted(bytes(keys[j]).ljust(12, b"\0"))
                out[j] = -1 if q is None else q
        if self._recent:
            raw = keys.tobytes()
            for j in np.flatnonzero(hexed).tolist():
                q = self._recent.get(raw[12 * j : 12 * j + 12])
                if q is not None:
                    out[j] = q if alive[q] else -1
        if not hexed.all():
            for j in np.flatnonzero(~hexed).tolist():
                out[j] = self._odd_pos.get(ids[j], -1)
        return out

    def _index(self, start: int, end: int) -> None:
        """Make positions ``start:end`` (just appended) findable."""
        keys = self.cols["key"]
        new = keys[start:end]
        if self._order is None and self._sorted_n == start and (start == 0 or keys[start - 1] <= new[0]) \
                and bool(np.all(new[:-1] <= new[1:])):
            self._sorted_n = end  # the common case: ids come in time order
            return
        raw = new.tobytes()
        for j in range(end - start):
            if start + j not in self._odd:
                self._recent[raw[12 * j : 12 * j + 12]] = start + j
        if len(self._recent) > max(256, self._sorted_n // 32):
            self._reindex()

    def _reindex(self) -> None:
        """Fold the out-of-order dict into the sorted index (an O(n) merge once it holds n/32 ids)."""
        n = self.size
        keys = self.cols["key"][:n]
        if self._order is None and bool(np.all(keys[:-1] <= keys[1:])):
            pass
        elif self._order is not None and self._sorted_n:
            new = np.arange(self._sorted_n, n)
            new = new[np.argsort(keys[new], kind="stable")]
            at = np.searchsorted(keys[: self._sorted_n], keys[new], side="right", sorter=self._order)
            self._order = np.insert(self._order, at, new)
        else:
            self._order = np.argsort(keys, kind="stable")
        self._sorted_n = n
        self._recent = {}

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
        self._set_cols({name: _grown(a, cap) for name, a in self.cols.items()})
        if self.vec is not None:
            self.vec = _grown(self.vec, cap)

    def append(self, rows: Sequence[dict[str, Any]], vectors: np.ndarray | None = None) -> None:
        """Add rows (dicts of the LTM's columns, with ``vector`` unless ``vectors`` holds them in row
        order); an id already present is updated, or re-appended when its text, scope or vector
        changed (postings, codes and the graph only grow)."""
        at = self.find_many([r["id"] for r in rows])
        moved = [j for j in np.flatnonzero(at >= 0).tolist() if self._moved(rows[j], int(at[j]))]
        if moved:
            self._remove_at(at[moved])
            at[moved] = -1
        held = np.flatnonzero(at >= 0)
        self.update([rows[j] for j in held.tolist()], at[held])
        fresh_at = np.flatnonzero(at < 0).tolist()
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
        ids = [r["id"] for r in fresh]
        keys, hexed = _keys(ids)
        c["key"][start:end] = keys
        for j in np.flatnonzero(~hexed).tolist():
            self._odd[start + j] = ids[j]
            self._odd_pos[ids[j]] = start + j
        texts = [r.get("text") or "" for r in fresh]
        self.text.extend(texts)
        self.meta.extend([r.get("meta") or "{}" for r in fresh])
        self.sources.extend([r.get("sources") or "[]" for r in fresh])
        for i, text in enumerate(texts):
            self.bm25.add(start + i, text)
        self.size = end
        self.live += len(fresh)
        self._index(start, end)
        if self.ann is not None:
            self._ann_add(vecs, start)
        elif self.live > self.exact_max:
            self._build_ann()

    def _moved(self, row: dict[str, Any], p: int) -> bool:
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

    def update(self, rows: Sequence[dict[str, Any]], at: np.ndarray | None = None) -> None:
        """Overwrite every field but text, scope and vector (see :meth:`append`) of rows already present
        (at positions ``at`` when the caller found them)."""
        if not rows:
            return
        if at is None:
            at = self.find_many([r["id"] for r in rows])
            if (at < 0).any():
                raise KeyError(rows[int(np.flatnonzero(at < 0)[0])]["id"])
        c = self.cols
        for name in ("importance", "stability", "created_at", "last_accessed", "access_count"):
            c[name][at] = [r[name] for r in rows]
        c["learned_at"][at] = [_learned(r) for r in rows]
        c["kind"][at] = [_KIND_CODE[Kind(r["kind"])] for r in rows]
        positions = at.tolist()
        for name, blobs in (("meta", self.meta), ("sources", self.sources)):
            given = [(p, r[name] or blobs.default) for r, p in zip(rows, positions, strict=True) if name in r]
            if given:
                blobs.set_many([p for p, _ in given], [v for _, v in given])
        for r, p in zip(rows, positions, strict=True):
            if "payload" in r:
                c["compressed"][p] = r["payload"] is not None

    def remove(self, ids: Sequence[str]) -> int:
        return self._remove_at(self.find_many(ids))

    def _remove_at(self, at: np.ndarray) -> int:
        alive = self.cols["alive"]
        at = np.unique(np.asarray(at, np.int64))
        at = at[(at >= 0) & (at < self.size)]
        at = at[alive[at]]
        alive[at] = False
        if self._odd:
            for p in at.tolist():
                if p in self._odd:
                    self._odd_pos.pop(self._odd[p], None)
        n = len(at)
        self.live -= n
        if self.size > 1024 and self.live < self.size // 2:
            self.compact()
        return n

    def compact(self) -> None:
        """Drop tombstones (positions change, so the ANN graph is rebuilt)."""
        keep = np.flatnonzero(self.cols["alive"][: self.size])
        vecs = self.vectors(keep)
        cols = {name: a[keep].copy() for name, a in self.cols.items()}
        text, meta, sources = (b.take(keep) for b in (self.text, self.meta, self.sources))
        bm25 = self.bm25.take(keep)
        odd = {}
        if self._odd:
            where = {int(p): i for i, p in enumerate(keep.tolist())}
            odd = {where[p]: id_ for p, id_ in self._odd.items() if p in where}
        names = self.names
        self.reset()
        self._reserve(len(keep))
        n = len(keep)
        for name, a in cols.items():
            self.cols[name][:n] = a
        self.names = names
        self.codes = {name: i for i, name in enumerate(names)}
        self.text, self.meta, self.sources, self.bm25 = text, meta, sources, bm25
        self._odd, self._odd_pos = odd, {id_: p for p, id_ in odd.items()}
        self.size = self.live = n
        self._reindex()
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
        """Switch to the HNSW graph over 8-bit scalar-quantised vectors and drop the float32 copy; a
        partition this large keeps its texts and meta compressed (:meth:`Blobs.compress`)."""
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
        for blobs in (self.text, self.meta, self.sources):
            blobs.compress()
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
            meta=json.loads(self.meta[p]) if full else {},
            sources=json.loads(self.sources[p]) if full else [], tier=Tier.LTM)

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
        strings = {"names": self.names, "odd": sorted(self._odd.items())}
        out["strings"] = np.frombuffer(json.dumps(strings, ensure_ascii=False).encode(), np.uint8)
        for name in ("text", "meta", "sources"):
            out.update(getattr(self, name).to_arrays(name))
        out.update(self.bm25.to_arrays())
        return out

    def from_arrays(self, data: Any) -> None:
        """Load what :meth:`to_arrays` wrote; ``ValueError`` (or ``KeyError``) when its parts disagree."""
        self.reset()
        n = len(data["col_alive"])
        cols = {name: np.asarray(data[f"col_{name}"]) for name in self.COLS}
        for name, t in self.COLS.items():
            if cols[name].shape != (n,) or cols[name].dtype != np.dtype(t):
                raise ValueError(f"the snapshot's column {name} is not {n} values of {np.dtype(t)}")
        self._reserve(n)
        for name in self.COLS:
            self.cols[name][:n] = cols[name]
        if "vec" in data:
            vec = np.asarray(data["vec"])
            if vec.shape != (n, self.dim):
                raise ValueError("the snapshot's vectors are not one per row of this dimension")
            self.vec[:n] = vec  # type: ignore[index]
        else:
            import faiss

            self.vec = None
            self.ann = faiss.deserialize_index(np.asarray(data["ann"]))
            self.ann_n = int(self.ann.ntotal)
        strings = json.loads(bytes(data["strings"]).decode())
        self.names = strings["names"]
        self.codes = {name: i for i, name in enumerate(self.names)}
        self._odd = {int(p): str(i) for p, i in strings["odd"]}
        self.text = Blobs.from_arrays(data, "text", n, "")
        self.meta = Blobs.from_arrays(data, "meta", n, "{}")
        self.sources = Blobs.from_arrays(data, "sources", n, "[]")
        self.size = n
        self.live = int(np.count_nonzero(self.cols["alive"][:n]))
        self.bm25 = BM25.from_arrays(data)
        if len(self.bm25) != n or (self.ann is not None and self.ann_n != n):
            raise ValueError("the snapshot's parts disagree on the number of rows")
        c = self.cols
        if n and (int(c["user"][:n].max()) >= len(self.names) or int(c["session"][:n].max()) >= len(self.names)
                  or int(c["user"][:n].min()) < 0 or int(c["session"][:n].min()) < 0
                  or int(c["kind"][:n].min()) < 0 or int(c["kind"][:n].max()) >= len(KINDS)):
            raise ValueError("the snapshot names scopes or kinds it does not hold")
        alive = c["alive"][:n]
        if self.names[0] is not None or any(not 0 <= p < n or _key(i) is not None for p, i in self._odd.items()):
            raise ValueError("the snapshot's ids or names are malformed")
        self._odd_pos = {i: p for p, i in self._odd.items() if alive[p]}
        self._reindex()
        held = alive.copy()  # live rows with a 12-byte id, in key order: no two may share one
        held[list(self._odd)] = False
        order = np.arange(n) if self._order is None else self._order
        live_keys = c["key"][order[held[order]]]
        if len(self._odd_pos) != int(np.count_nonzero(alive)) - len(live_keys) \
                or bool(np.any(live_keys[1:] == live_keys[:-1])):
            raise ValueError("the snapshot holds an id twice")

    def footprint(self) -> dict[str, int]:
        """Bytes held, by part (what ``emergent bench memory`` reports beside the measured RSS)."""
        import sys

        n = self.size
        out: dict[str, int] = {}
        if self.ann is not None:
            hnsw = self.ann.hnsw
            out["vectors_sq8"] = int(self.ann.storage.sa_code_size()) * self.ann_n
            out["hnsw_graph"] = hnsw.neighbors.size() * 4 + hnsw.offsets.size() * 8 + hnsw.levels.size() * 4
        if self.vec is not None:
            out["vectors_f32"] = n * self.dim * 4
        out["columns"] = sum(a.itemsize * n for name, a in self.cols.items() if name != "key")
        out["ids"] = n * 12 + (0 if self._order is None else self._order.nbytes) + 150 * len(self._recent) \
            + 200 * len(self._odd)
        for name in ("text", "meta", "sources"):
            out[name] = getattr(self, name).nbytes()
        out.update(self.bm25.footprint())
        out["names"] = sys.getsizeof(self.names) + sum(sys.getsizeof(x) for x in self.names) * 2
        return out

    def nbytes(self) -> int:
        return sum(self.footprint().values())


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


#: rows per append when a partition is loaded from LanceDB: each chunk's rows are Python dicts for a
#: moment, and long-lived objects (the vocabulary) made between them pin their memory (20,000-row
#: chunks left ~20 MiB more resident per 200k rows than 4,096-row ones, for the same load time)
LOAD_CHUNK = 4096


def _append_table(part: Partition, table: Any, chunk: int = LOAD_CHUNK) -> None:
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


def _snapshot_aad(agent: str) -> bytes:
    return b"hot-snapshot/" + agent.encode()


class HotIndex:
    """Per-agent :class:`Partition` s of one :class:`~emergent.memory.ltm.LongTermMemory`, kept coherent
    with the LanceDB table (see the module docstring)."""

    def __init__(self, ltm: LongTermMemory, *, exact_max: int = 20_000, ef_search: int = 128,
                 snapshot_dir: str | os.PathLike[str] | None = None, cipher: Any = None) -> None:
        self.ltm = ltm
        #: with a cipher (an emergent.memory._codec.Sealer) a snapshot file is one sealed blob: it holds
        #: the texts and the BM25 vocabulary, which must not reach the disk in the clear
        self.cipher = cipher
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
                if part.live < part.size:  # a snapshot never holds deleted rows (an erasure's text)
                    if part.size > self.exact_max:
                        continue  # compacting would rebuild the graph at close: the next process reloads
                    part.compact()
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
                        if self.cipher is None:
                            np.savez(fh, **arrays)  # type: ignore[arg-type]
                        else:
                            buf = io.BytesIO()
                            np.savez(buf, **arrays)  # type: ignore[arg-type]
                            fh.write(self.cipher.seal(buf.getvalue(), _snapshot_aad(name)))
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
            source: Any = path
            if self.cipher is not None:  # a plaintext snapshot fails to open here and is rebuilt
                with open(path, "rb") as fh:
                    source = io.BytesIO(self.cipher.open(fh.read(), _snapshot_aad(part.agent)))
            with np.load(source, allow_pickle=False) as data:
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
            at = part.find_many([r["id"] for r in light])
            held = np.flatnonzero(at >= 0)
            seen = np.zeros(part.size, bool)
            seen[at[held]] = True
            gone = np.flatnonzero(part.cols["alive"][: part.size] & ~seen)
            new = [light[j]["id"] for j in np.flatnonzero(at < 0).tolist()]
            if len(new) > RELOAD_ABOVE:
                part.reset()
                self._load(part, where)
            else:
                generation = part.generation
                part._remove_at(gone)
                if part.generation != generation:  # compacted: positions moved
                    part.update([r for r in light if r["id"] in part.pos])
                else:
                    part.update([light[j] for j in held.tolist()], at[held])
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
