"""Long-term memory: a LanceDB table of memories (and an archive table beside it).

Large texts are stored zstd-compressed in ``payload`` with a preview in ``text`` (which is what
the full-text index sees); reads decompress transparently. Every write is one LanceDB commit, so a
killed process leaves the table at its last committed version.

A write reports exactly what it stored. :meth:`LongTermMemory.add` appends; when the append
raises (a commit conflict with another process, a full disk), it reads back which of its ids are
in the table: a retry appends only the missing ones (so it can never store a memory twice), and an
error that remains carries ``committed_ids``. Index upkeep (``maintain``) runs after the write has
committed and never fails it: a conflict or an error there is retried by a background thread.
Failures of the table itself are :class:`~emergent.errors.StoreCorruptError` /
:class:`~emergent.errors.DiskFullError` naming its directory.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import zstandard

from emergent.errors import (
    ConfigError,
    DiskFullError,
    EmbedderMismatchError,
    EmergentError,
    NotFoundError,
    PartialWriteError,
    StoreCorruptError,
    StoreUnavailableError,
    ValidationError,
)
from emergent.memory._codec import SEALED, Sealer
from emergent.memory.decay import retention
from emergent.memory.types import Kind, MemoryRecord, Scope, Tier
from emergent.stores.lance import (
    RECOVER_HINT,
    IndexPolicy,
    LanceStore,
    disk_full,
    is_commit_conflict,
    retry_commit,
    store_error,
    translated,
)

log = logging.getLogger("emergent.memory")
T = TypeVar("T")

#: 2: ``learned_at`` (when a memory was stored) beside ``created_at`` (when it happened); tables
#: of schema 1 are carried over by :func:`migrate_tables` when they are opened.
SCHEMA_VERSION = 2
SCHEMA_META_KEY = "memories_schema"  # in emergent_meta: the schema the tables were carried to
SCOPE_COLUMNS = ("agent", "user_id", "session_id")
PREVIEW_CHARS = 4000
_ZC = zstandard.ZstdCompressor(level=6)
_ZD = zstandard.ZstdDecompressor()


def memory_schema(dim: int, *, archive: bool = False) -> pa.Schema:
    fields = [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("payload", pa.binary()),
        pa.field("vector", pa.list_(pa.float32(), dim)),
        pa.field("kind", pa.string()),
        pa.field("importance", pa.float32()),
        pa.field("stability", pa.float32()),
        pa.field("strength", pa.float32()),
        pa.field("created_at", pa.float64()),
        pa.field("last_accessed", pa.float64()),
        pa.field("access_count", pa.int32()),
        pa.field("agent", pa.string()),
        pa.field("user_id", pa.string()),
        pa.field("session_id", pa.string()),
        pa.field("meta", pa.string()),
        pa.field("sources", pa.string()),
    ]
    if archive:
        fields += [pa.field("archived_at", pa.float64()), pa.field("archive_reason", pa.string())]
    # Added by schema 2, last: where LanceDB's add_columns puts it in a migrated table, so new and
    # migrated tables have the same column order.
    fields.append(pa.field("learned_at", pa.float64()))
    return pa.schema(fields)


def migrate_tables(store: LanceStore, *tables: Any) -> None:
    """Carry ``memories`` tables of schema 1 over to the current one; idempotent.

    Schema 1 had no ``learned_at``: the column is added, filled for the old rows from
    ``last_accessed``. When an old row was learned was never recorded; ``last_accessed`` is the best
    known bound (it was the write time, or the event time when that was later, and only moved
    forward with accesses), and it is what the row's decay already counted from, so no old memory
    decays faster or slower than before. The event time would be wrong: months-old notes would look
    unused for months and be archived. Two processes opening an old store at once both try to add
    the column; the loser's commit conflicts (or finds the column there) and it reads the winner's.
    """
    for table in tables:
        if "learned_at" in table.schema.names:
            continue
        try:
            table.add_columns({"learned_at": "last_accessed"})
        except Exception as exc:  # noqa: BLE001 - a concurrent migration is fine; anything else is raised
            table.checkout_latest()
            if "learned_at" not in table.schema.names:
                err = store_error(exc, store.table_path(table.name), "adding learned_at (schema 2)")
                if err is None:
                    raise
                raise err from exc
            log.info("another process migrated %s first (%s)", table.name, type(exc).__name__)
    recorded = store.get_meta().get(SCHEMA_META_KEY, "1")
    if not recorded.isdigit() or int(recorded) < SCHEMA_VERSION:
        store.set_meta({SCHEMA_META_KEY: str(SCHEMA_VERSION)})


_NO_VECTOR = [f.name for f in memory_schema(1) if f.name != "vector"]
# What ranking needs; text, meta and sources are read afterwards for the few memories returned.
_LIGHT = ["id", "kind", "importance", "stability", "created_at", "last_accessed", "learned_at", "access_count", "agent",
          "user_id", "session_id"]
_HEAVY = ["id", "text", "payload", "meta", "sources"]
_SEALED_COLUMNS = frozenset(("text", "payload", "meta", "sources"))  # what a sealed row keeps in payload


@dataclass(frozen=True, slots=True)
class Candidate:
    record: MemoryRecord
    score: float  # cosine similarity for vector search, BM25 for text search
    row_id: int | None = None  # set by light searches, for LongTermMemory.complete()


@lru_cache(maxsize=4096)
def _scope(agent: str, user: str | None, session: str | None) -> Scope:
    """Scopes are immutable: validate each distinct one once, not once per row read."""
    return Scope(agent, user, session)


def _light_fields(rec: MemoryRecord) -> dict[str, Any]:
    return {"kind": rec.kind.value, "importance": rec.importance, "stability": rec.stability,
            "created_at": rec.created_at, "last_accessed": rec.last_accessed, "learned_at": rec.learned_at,
            "access_count": rec.access_count, "agent": rec.scope.agent, "user_id": rec.scope.user,
            "session_id": rec.scope.session}


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def build_filter(scope: Scope, kinds: Sequence[Kind] | None = None, since: float | None = None, until: float | None = None) -> str:
    parts = [scope.where()]
    if kinds:
        parts.append("kind IN (" + ", ".join(_quote(k.value) for k in kinds) + ")")
    if since is not None:
        parts.append(f"created_at >= {float(since)!r}")
    if until is not None:
        parts.append(f"created_at < {float(until)!r}")
    return " AND ".join(parts)


def unseal_payload(cipher: Sealer, row_id: str, payload: bytes) -> tuple[str, str, str]:
    """(text, meta JSON, sources JSON) of a sealed ``payload`` (see ``LongTermMemory._stored``)."""
    body = cipher.open(payload, row_id.encode())
    body = _ZD.decompress(body[1:]) if body[:1] == b"z" else body[1:]
    text, meta, sources = json.loads(body)
    return text, meta, sources


class LongTermMemory:
    """The ``memories`` and ``memories_archive`` tables of one LanceDB database."""

    def __init__(self, store: LanceStore, embedder_id: str, dim: int, *, compress_above: int = 16 * 1024,
                 policy: IndexPolicy | None = None, hot_exact_max: int = 20_000, hot_ef_search: int = 128,
                 hot_snapshot_dir: Any = None, cipher: Sealer | None = None) -> None:
        self.store = store
        #: with a cipher, text, meta and sources are sealed (AES-GCM) in ``payload`` and the hot index's
        #: snapshot on disk is one sealed blob; vectors stay as they are (search)
        self.cipher = cipher
        self.dim = dim
        self.embedder_id = embedder_id
        self.compress_above = compress_above
        self.policy = policy or IndexPolicy()
        if not self.policy.scalar_columns:  # scope filters run on every read: index them with the ANN index
            self.policy = replace(self.policy, scalar_columns=SCOPE_COLUMNS)
        self._ann_cache: tuple[int, str] | None = None
        self._tables: tuple[Any, Any] | None = None
        self._open_lock = threading.Lock()
        self._check_embedder()  # at open, from the facts table's mirror: no LanceDB import when it is current
        self.path = store.table_path("memories")
        self.archive_path = store.table_path("memories_archive")
        self.upkeep = Upkeep(self._maintain_once)
        from emergent.memory.hot import HotIndex

        #: recall's in-process index of this table (emergent.memory.hot); LanceDB stays the record
        self.hot = HotIndex(self, exact_max=hot_exact_max, ef_search=hot_ef_search, snapshot_dir=hot_snapshot_dir,
                            cipher=cipher)

    # The tables are opened on first use: a new process whose first recall is answered from the hot
    # index's snapshot never imports LanceDB (~1.5 s of its cold start).
    def _open(self) -> tuple[Any, Any]:
        with self._open_lock:
            if self._tables is None:
                table = self.store.open_table("memories", memory_schema(self.dim), SCHEMA_VERSION)
                archive = self.store.open_table("memories_archive", memory_schema(self.dim, archive=True),
                                                SCHEMA_VERSION)
                # publish the tables last: another thread seeing _tables set reads _schema at once
                migrate_tables(self.store, table, archive)
                self._schema = table.schema
                self._tables = (table, archive)
            return self._tables

    def open(self) -> None:
        """Open (creating) both tables now."""
        self._tables or self._open()

    @property
    def table(self) -> Any:
        return (self._tables or self._open())[0]

    @property
    def archive(self) -> Any:
        return (self._tables or self._open())[1]

    @property
    def schema(self) -> pa.Schema:
        self._tables or self._open()
        return self._schema

    @property
    def opened(self) -> bool:
        return self._tables is not None

    def migrate(self) -> None:
        """Carry both tables to the current schema (on open, and after a rewind to a version before
        a migration: the restored table has the old schema again)."""
        migrate_tables(self.store, self.table, self.archive)
        self._schema = self.table.schema

    def _check_embedder(self) -> None:
        meta = self.store.get_meta()
        found = meta.get("embedder")
        if found is None:
            self.store.set_meta({"embedder": self.embedder_id, "dim": str(self.dim)})
        elif found != self.embedder_id:
            raise EmbedderMismatchError(
                f"long-term memory was embedded with {found!r} ({meta.get('dim')}-d) but the configured "
                f"embedder is {self.embedder_id!r} ({self.dim}-d)",
                hint="run `emergent memory reembed --embedder <id>` to migrate, or set EMERGENT_EMBEDDER "
                "back to the model that built it",
                stored=found,
                configured=self.embedder_id,
            )

    # ------------------------------------------------------------------ conversion
    def _to_row(self, rec: MemoryRecord, now: float) -> dict[str, Any]:
        text, payload = rec.text, None
        if len(rec.text) * 4 > self.compress_above:  # cheap pre-check before encoding
            raw = rec.text.encode()
            if len(raw) > self.compress_above:
                text, payload = rec.text[:PREVIEW_CHARS], _ZC.compress(raw)
        return {
            "id": rec.id, "text": text, "payload": payload,
            "vector": rec.vector, "kind": rec.kind.value, "importance": rec.importance,
            "stability": rec.stability,
            "strength": retention(now - rec.last_accessed, rec.stability),
            "created_at": rec.created_at, "last_accessed": rec.last_accessed, "learned_at": rec.learned_at,
            "access_count": rec.access_count, "agent": rec.scope.agent, "user_id": rec.scope.user,
            "session_id": rec.scope.session, "meta": json.dumps(rec.meta, ensure_ascii=False),
            "sources": json.dumps(rec.sources),
        }

    def _arrow(self, records: Iterable[MemoryRecord], now: float) -> pa.Table:
        return pa.Table.from_pylist(self._stored([self._to_row(r, now) for r in records]), schema=self.schema)

    # ------------------------------------------------------------------ sealing at rest
    def _stored(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The rows as the table stores them: as they are, or (with a cipher) with text, meta and
        sources sealed together in ``payload`` (bound to the row's id) and ``text`` empty, so neither
        the data files nor the full-text index hold them."""
        cipher = self.cipher
        if cipher is None:
            return rows
        out = []
        for row in rows:
            text = row["text"] if row["payload"] is None else _ZD.decompress(row["payload"]).decode()
            body = json.dumps([text, row["meta"], row["sources"]], ensure_ascii=False).encode()
            body = b"z" + _ZC.compress(body) if len(body) > self.compress_above else b"j" + body
            out.append({**row, "text": None, "meta": None, "sources": None,
                        "payload": cipher.seal(body, row["id"].encode())})
        return out

    def _unsealed(self, row: dict[str, Any]) -> dict[str, Any]:
        """``row`` with a sealed payload opened into text, meta and sources (payload then None)."""
        if self.cipher is None:
            raise ConfigError(f"long-term memory {row.get('id')!r} is sealed but encryption is off",
                              hint="set EMERGENT_SECURITY__ENCRYPT=true (and the KEK it was sealed with)")
        text, meta, sources = unseal_payload(self.cipher, str(row["id"]), row["payload"])
        return {**row, "text": text, "payload": None, "meta": meta, "sources": sources}

    def _from_row(self, row: dict[str, Any], *, with_vector: bool = True) -> MemoryRecord:
        payload = row.get("payload")
        if payload is not None and payload[:4] == SEALED:
            row = self._unsealed(row)
            payload = None
        text = row.get("text") or ""
        if payload is not None:
            text = _ZD.decompress(payload).decode()
        vec = row.get("vector") if with_vector else None
        return MemoryRecord(
            id=row["id"], text=text, kind=Kind(row["kind"]), importance=float(row["importance"]),
            scope=_scope(row["agent"], row["user_id"], row["session_id"]),
            created_at=row["created_at"], last_accessed=row["last_accessed"],
            # null only in rows an emergent of schema 1 appended after the migration: see migrate_tables()
            learned_at=row["last_accessed"] if row.get("learned_at") is None else row["learned_at"],
            stability=float(row["stability"]), access_count=int(row["access_count"]),
            meta=json.loads(row.get("meta") or "{}"), sources=json.loads(row.get("sources") or "[]"),
            tier=Tier.LTM, vector=None if vec is None else np.asarray(vec, dtype=np.float32),
        )

    # ------------------------------------------------------------------ writes
    def add(self, records: Sequence[MemoryRecord], now: float | None = None) -> int:
        """Append new memories; returns how many are stored (all of them, or an error saying which are).

        Idempotent by id: if the append raises, the ids already in the table are read back, a retry
        appends only the others, and a failure that remains raises with ``committed_ids``."""
        if not records:
            return 0
        for r in records:
            if r.vector is None or len(r.vector) != self.dim:
                raise ValidationError(f"memory {r.id} has no {self.dim}-d vector", field="vector")
        rows = [self._to_row(r, now or time.time()) for r in records]
        data = pa.Table.from_pylist(self._stored(rows), schema=self.schema)
        before = self.table.version
        try:
            self._append(data, [r.id for r in records])
        except BaseException:
            self.hot.invalidate()  # what committed is read back from LanceDB at the next search
            raise
        self.hot.added(rows, before)
        self._ann_cache = None
        self.upkeep.after_write()
        return len(records)

    def _append(self, data: pa.Table, ids: list[str], attempts: int = 6) -> None:
        pending = data
        for attempt in range(attempts):
            try:
                self.table.add(pending)
                return
            except Exception as exc:  # noqa: BLE001 - classified below; nothing is swallowed
                failure = exc
            try:
                present = self.present_ids(ids)
            except Exception as exc:  # the table cannot even be read: we cannot say what is stored
                err = self._write_error(failure, "appending memories", committed=None)
                raise err from exc
            missing = [i for i in ids if i not in present]
            if not missing:  # the append committed and then raised: everything is stored
                log.warning("LanceDB reported an error after the append to %s committed: %s", self.path, failure)
                return
            if is_commit_conflict(failure) and attempt < attempts - 1:
                time.sleep(0.02 * (2 ** attempt))
                wanted = set(missing)
                pending = pending.filter(pa.array([i in wanted for i in pending.column("id").to_pylist()]))
                continue
            stored = [i for i in ids if i in present]
            err = self._write_error(failure, "appending memories", committed=stored)
            err.__cause__ = failure
            if stored:
                raise PartialWriteError(
                    f"{len(stored)} of {len(ids)} memories were stored in {self.path} before the write failed: "
                    f"{err.message}",
                    hint=f"{err.hint}; `committed_ids` lists what is stored: retry only the rest",
                    committed_ids=stored, failed_ids=missing, path=self.path,
                ) from err
            raise err from failure

    def _write_error(self, exc: BaseException, op: str, *, committed: list[str] | None) -> EmergentError:
        """The emergent error for a failed write, carrying ``committed_ids`` (None: unknown)."""
        said = ("nothing was written by this call" if committed == [] else
                "what was stored is listed in `committed_ids`" if committed else
                "the table could not be read back, so what was stored is unknown: check with `emergent doctor`")
        err = store_error(exc, self.path, op)
        if isinstance(err, DiskFullError):
            return disk_full(self.path, op, committed=said, committed_ids=committed)
        if isinstance(err, StoreCorruptError):
            return StoreCorruptError(err.message, hint=f"{RECOVER_HINT}; {said}", path=self.path, op=op,
                                     committed_ids=committed)
        return StoreUnavailableError(f"writing to LanceDB table {self.path} failed ({type(exc).__name__}: "
                                     f"{str(exc)[:300]})", hint=f"retry, and run `emergent doctor` if it persists; {said}",
                                     path=self.path, op=op, committed_ids=committed)

    def present_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` are in the table now (read at its latest version)."""
        with translated(self.path, "reading back ids"):
            self.table.checkout_latest()
            found: set[str] = set()
            for start in range(0, len(ids), 1000):
                part = ids[start : start + 1000]
                where = f"id IN ({', '.join(_quote(i) for i in part)})"
                rows = self.table.search().where(where).select(["id"]).limit(len(part)).to_arrow()
                found.update(rows.column("id").to_pylist())
        return found

    def _retried(self, path: str, op: str, fn: Callable[[], Any]) -> Any:
        """An idempotent write, re-run on commit conflicts; failures as emergent errors."""
        try:
            return retry_commit(fn)
        except EmergentError:
            raise
        except Exception as exc:
            err = store_error(exc, path, op) or StoreUnavailableError(
                f"{op} in LanceDB table {path} failed ({type(exc).__name__}: {str(exc)[:300]})",
                hint="retry; if it persists run `emergent doctor`", path=path, op=op)
            raise err from exc

    def upsert(self, records: Sequence[MemoryRecord], now: float | None = None) -> None:
        if records:
            rows = [self._to_row(r, now or time.time()) for r in records]
            data = pa.Table.from_pylist(self._stored(rows), schema=self.schema)
            before = self.table.version
            try:
                self._retried(self.path, "updating memories", lambda: self.table.merge_insert("id")
                              .when_matched_update_all().when_not_matched_insert_all().execute(data))
            except BaseException:
                self.hot.invalidate()
                raise
            self.hot.added(rows, before)
            self._ann_cache = None
            self.upkeep.after_write(maintain=False)

    def delete_where(self, where: str) -> list[str]:
        """Delete the memories matching ``where`` now; returns their ids. Exactly the ids listed here
        are deleted (one commit), so the hot index drops exactly what the store dropped; a memory
        another process adds meanwhile is not deleted (its write came after this delete)."""
        doomed = self.scan(where, ["id", "agent"]).to_pylist()
        by_agent: dict[str, list[str]] = {}
        for r in doomed:
            by_agent.setdefault(r["agent"], []).append(r["id"])
        self._delete_listed(by_agent, "deleting memories")
        return [r["id"] for r in doomed]

    def _delete_listed(self, by_agent: dict[str, list[str]], op: str) -> None:
        """Delete these ids in one commit, then drop them from the hot index (on a failure the index
        re-reads the table at the next search: what committed is not known row by row)."""
        if not by_agent:
            return
        listed = f"id IN ({', '.join(_quote(i) for ids in by_agent.values() for i in ids)})"
        before = self.table.version
        try:
            self._retried(self.path, op, lambda: self.table.delete(listed))
        except BaseException:
            self.hot.invalidate()
            raise
        self.hot.removed(by_agent, before)

    def move_to_archive(self, records: Sequence[MemoryRecord], reason: str, now: float) -> int:
        """Archive first, then delete: a crash in between leaves a harmless duplicate."""
        if not records:
            return 0
        data = self._arrow(records, now)
        data = data.append_column("archived_at", pa.array([now] * len(records), pa.float64()))
        data = data.append_column("archive_reason", pa.array([reason] * len(records), pa.string()))
        self._retried(self.archive_path, "archiving memories", lambda: self.archive.merge_insert("id")
                      .when_matched_update_all().when_not_matched_insert_all().execute(data))
        by_agent: dict[str, list[str]] = {}
        for r in records:
            by_agent.setdefault(r.scope.agent, []).append(r.id)
        self._delete_listed(by_agent, "deleting archived memories")
        return len(records)

    def delete_archived(self, where: str) -> None:
        self._retried(self.archive_path, "deleting archived memories", lambda: self.archive.delete(where))

    # ------------------------------------------------------------------ reads
    def _read(self, op: str, fn: Callable[[], T]) -> T:
        """Run the read ``fn``; on a missing data file, check out the latest version and run it once more.

        Another process's erasure (or compaction with history removal) deletes the data files the
        version this handle has open names; the newest version does not name them. Only a file
        missing at the latest version too is a damaged table (:class:`StoreCorruptError`). The
        retry costs nothing on the normal path.
        """
        try:
            with translated(self.path, op):
                return fn()
        except StoreCorruptError as first:
            before = self.table.version
            with translated(self.path, op):
                self.table.checkout_latest()
            if self.table.version == before:
                raise
            log.info("LTM %s: data file gone at version %s, re-reading at %s (%s)", op, before,
                     self.table.version, first.message[:200])
            self._ann_cache = None
            with translated(self.path, op):
                return fn()

    def get(self, id: str, scope: Scope) -> MemoryRecord:
        rows = self._read("reading a memory", lambda: self.table.search()
                          .where(f"id = {_quote(id)} AND {scope.where()}").limit(1).to_arrow().to_pylist())
        if not rows:
            raise NotFoundError(f"no memory {id!r} in scope {scope.key!r}", hint="check the id and the scope")
        return self._from_row(rows[0])

    def get_many(self, ids: Sequence[str], scope: Scope) -> list[MemoryRecord]:
        if not ids:
            return []
        where = f"id IN ({', '.join(_quote(i) for i in ids)}) AND {scope.where()}"
        rows = self._read("reading memories",
                          lambda: self.table.search().where(where).limit(len(ids)).to_arrow().to_pylist())
        return [self._from_row(r) for r in rows]

    def vector_search(self, vector: np.ndarray, where: str, k: int, *, nprobes: int = 32, refine: int = 8,
                      ef: int | None = None, with_vector: bool = True, light: bool = False) -> list[Candidate]:
        """Top ``k`` by cosine similarity within ``where``.

        On an HNSW index ``ef`` (default ``max(2k, 100)``) sets the search breadth; on IVF_PQ,
        ``nprobes`` partitions are searched and ``refine`` x ``k`` rows re-ranked exactly.
        ``with_vector=False`` skips reading the vectors (recall does not need them); ``light=True``
        reads only what ranking needs (no text, meta or sources: see :meth:`complete`).
        """
        def run() -> list[dict[str, Any]]:
            q = self.table.search(vector).distance_type("cosine").where(where, prefilter=True).limit(k)
            ann = self._ann_type()
            if "HNSW" in ann.upper():
                q = q.ef(ef or max(2 * k, 100))
            elif ann:
                q = q.nprobes(nprobes).refine_factor(refine)
            if light:
                q = q.select([*_LIGHT, "_distance"]).with_row_id(True)
            elif not with_vector:
                q = q.select([*_NO_VECTOR, "_distance"])
            return q.to_arrow().to_pylist()
        rows = self._read("vector search", run)
        return [Candidate(self._from_row(r, with_vector=with_vector and not light), 1.0 - float(r["_distance"]),
                          r.get("_rowid")) for r in rows]

    def text_search(self, text: str, where: str, k: int, *, with_vector: bool = True,
                    light: bool = False) -> list[Candidate]:
        def run() -> list[dict[str, Any]]:
            try:
                q = self.table.search(text, query_type="fts").where(where, prefilter=True).limit(k)
                if light:
                    q = q.select([*_LIGHT, "_score"]).with_row_id(True)
                elif not with_vector:
                    q = q.select([*_NO_VECTOR, "_score"])
                return q.to_arrow().to_pylist()
            except (ValueError, RuntimeError, OSError) as exc:  # no FTS index yet, or a query of only stop words
                damage = store_error(exc, self.path, "full-text search")
                if damage is not None:
                    raise damage from exc
                if "index" in str(exc).lower() or "token" in str(exc).lower():
                    return []
                raise
        rows = self._read("full-text search", run)
        return [Candidate(self._from_row(r, with_vector=with_vector and not light), float(r["_score"]),
                          r.get("_rowid")) for r in rows]

    def complete(self, candidates: Sequence[Candidate], scope: Scope) -> dict[str, MemoryRecord]:
        """Full records (text, meta, sources; no vector) for candidates of a light search, by id."""
        if not candidates:
            return {}
        rows: list[dict[str, Any]] = []
        row_ids = [c.row_id for c in candidates]
        if all(r is not None for r in row_ids):
            try:  # a direct take by row address; ids are re-checked below
                rows = self.table.take_row_ids(row_ids).select(_HEAVY).to_arrow().to_pylist()
            except Exception:  # noqa: BLE001 - row ids moved (compaction by another process): by id
                rows = []
        by_id = {r["id"]: r for r in rows}
        missing = [c.record.id for c in candidates if c.record.id not in by_id]
        if missing:
            where = f"id IN ({', '.join(_quote(i) for i in missing)}) AND {scope.where()}"
            found = self._read("reading memories", lambda: self.table.search().where(where).select(_HEAVY)
                               .limit(len(missing)).to_arrow().to_pylist())
            for r in found:
                by_id[r["id"]] = r
        out = {}
        for c in candidates:
            row = by_id.get(c.record.id)
            if row is not None:
                out[c.record.id] = self._from_row({**row, **_light_fields(c.record)}, with_vector=False)
        return out

    def scan(self, where: str | None = None, columns: list[str] | None = None) -> pa.Table:
        """The rows matching ``where`` (all columns, or ``columns``), sealed ones opened."""
        wanted = columns
        sealed = self.cipher is not None and (columns is None or not _SEALED_COLUMNS.isdisjoint(columns))
        if sealed and columns:
            columns = [*columns, *(c for c in ("id", "payload") if c not in columns)]
        def run() -> pa.Table:
            q = self.table.search()
            if where:
                q = q.where(where)
            if columns:
                q = q.select(columns)
            return q.limit(self.table.count_rows() or 1).to_arrow()
        data = self._read("reading memories", run)
        if not sealed or not data.num_rows:
            return data
        rows = [self._unsealed(r) if r["payload"] is not None and r["payload"][:4] == SEALED else r
                for r in data.to_pylist()]
        data = pa.Table.from_pylist(rows, schema=data.schema)
        return data.select(wanted) if wanted else data

    def records(self, where: str | None = None) -> list[MemoryRecord]:
        return [self._from_row(r) for r in self.scan(where).to_pylist()]

    def latest_version(self) -> int:
        """The table's newest committed version (another process may have written since we looked)."""
        with translated(self.path, "checking the table version"):
            self.table.checkout_latest()
            return int(self.table.version)

    def count(self, where: str | None = None) -> int:
        return int(self._read("counting memories",
                              lambda: self.table.count_rows(where) if where else self.table.count_rows()))

    def _has_ann(self) -> bool:
        return bool(self._ann_type())

    def _ann_type(self) -> str:
        """The vector index's type (``IvfHnswSq``, ``IvfPq``...), ``""`` without one; cached per table version."""
        cache = self._ann_cache
        version = self.table.version
        if cache is None or cache[0] != version:
            kinds = [str(i.index_type) for i in self.table.list_indices()
                     if self.policy.vector_column in i.columns and i.index_type != "FTS"]
            cache = self._ann_cache = (version, kinds[0] if kinds else "")
        return cache[1]

    # ------------------------------------------------------------------ sealing what was stored before
    def reseal(self, *, drop_history: bool = False) -> dict[str, int]:
        """Seal the rows stored in the clear before encryption was turned on (both tables; content,
        ids and ranking fields unchanged). Older table versions keep the plaintext until they are
        removed: ``drop_history`` removes them now (and with them every rewind point before this).
        Returns the rows sealed per table."""
        if self.cipher is None:
            raise ConfigError("resealing needs encryption on", hint="set EMERGENT_SECURITY__ENCRYPT=true")
        done = {}
        for name, table, path in (("memories", self.table, self.path),
                                  ("memories_archive", self.archive, self.archive_path)):
            with translated(path, "reading rows stored in the clear"):
                table.checkout_latest()
                plain = table.search().where("text IS NOT NULL").limit(max(table.count_rows(), 1)).to_arrow()
            done[name] = plain.num_rows
            if plain.num_rows:
                sealed = pa.Table.from_pylist(self._stored(plain.to_pylist()), schema=plain.schema)
                merge = table.merge_insert("id").when_matched_update_all().when_not_matched_insert_all()
                self._retried(path, "sealing memories", functools.partial(merge.execute, sealed))
            if drop_history:
                import warnings
                from datetime import timedelta

                with translated(path, "removing older versions"), warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    retry_commit(functools.partial(table.optimize, cleanup_older_than=timedelta(0),
                                                   delete_unverified=False))
                table.checkout_latest()
        self._ann_cache = None
        self.hot.forget()  # rebuilt from the sealed table at the next search (and its snapshot sealed)
        snapshots = self.hot.snapshot_dir
        if snapshots and os.path.isdir(snapshots):  # snapshots written in the clear: gone, written sealed later
            for name in os.listdir(snapshots):
                if name.endswith(".npz"):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(os.path.join(snapshots, name))
        if any(done.values()) or drop_history:
            self.maintain(force=True)  # the full-text index drops the texts it held
        return done

    # ------------------------------------------------------------------ maintenance
    def maintain(self, force: bool = False) -> dict[str, Any]:
        """Index upkeep now (consolidation and the maintenance job call it; writes go through
        :attr:`upkeep`, which never fails them). Commit conflicts with another process are retried."""
        with translated(self.path, "index upkeep"):
            done = retry_commit(lambda: self.store.maintain(self.table, self.policy, force=force), attempts=5,
                                base_s=0.05)
        self._ann_cache = None
        return done

    def _maintain_once(self) -> dict[str, Any]:
        with translated(self.path, "index upkeep"):
            done = self.store.maintain(self.table, self.policy)
        self._ann_cache = None
        return done

    def close(self) -> None:
        self.upkeep.close()
        self.hot.save()  # a cache for the next process; never fails the close

    def versions(self) -> list[dict[str, Any]]:
        return [{"version": v["version"], "timestamp": v["timestamp"]} for v in self.table.list_versions()]

    def restore_version(self, version: int) -> None:
        known = [v["version"] for v in self.table.list_versions()]
        if version not in known:
            raise NotFoundError(f"LTM has no version {version}", hint=f"known versions: {known[:3]}...{known[-3:]}")
        with translated(self.path, "restoring a version"):
            self.table.checkout(version)
            self.table.restore()
        self._ann_cache = None
        self.hot.forget()


class Upkeep:
    """Index upkeep after writes, which never fails a write.

    ``after_write()`` runs ``maintain`` in the writing thread (so an index a write makes due, such
    as the first full-text index, is there when the write returns), catching everything: a commit
    conflict with another process's upkeep, a full disk, a damaged index. A failed run is handed to
    one background thread that retries it with backoff (0.2 s doubling, 6 tries) and then waits for
    the next write; ``last_error`` keeps the newest failure for ``emergent doctor``. ``close()``
    stops the thread (waiting at most ``close_wait_s`` for a run in progress: LanceDB commits
    atomically, so one cut short by the process exiting leaves the table as it was).
    """

    def __init__(self, maintain: Callable[[], Any], *, retries: int = 6, base_s: float = 0.2,
                 close_wait_s: float = 5.0) -> None:
        self._maintain = maintain
        self.retries = retries
        self.base_s = base_s
        self.close_wait_s = close_wait_s
        self.last_error: str | None = None
        self.failures = 0
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def after_write(self, *, maintain: bool = True) -> None:
        if not maintain or self._stop.is_set():
            return
        if self._thread is not None and self._wake.is_set():
            return  # a retry is already due: it will see this write's rows too
        try:
            self._maintain()
        except Exception as exc:  # noqa: BLE001 - never fails the write that already committed
            self._failed(exc)
            self._defer()
        else:
            self.last_error = None

    def _failed(self, exc: BaseException) -> None:
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {str(exc)[:300]}"

    def _defer(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="emergent-ltm-upkeep", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait()
            if self._stop.is_set():
                return
            for attempt in range(self.retries):
                if self._stop.wait(self.base_s * (2 ** attempt)):
                    return
                try:
                    self._maintain()
                except Exception as exc:  # noqa: BLE001 - recorded, retried, reported by doctor
                    self._failed(exc)
                    continue
                self.last_error = None
                break
            else:
                log.warning("index upkeep kept failing (%s); queries stay correct (new rows are searched "
                            "exactly) and it is retried after the next write or `emergent memory consolidate`",
                            self.last_error)
            self._wake.clear()

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(self.close_wait_s)
