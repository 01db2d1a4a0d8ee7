"""LanceDB: connection, versioned table schemas, index maintenance and what its errors mean.

A table's arrow schema carries ``emergent.schema_version`` (and whatever else the owner records,
such as the embedding model); :meth:`LanceStore.open_table` creates a missing table and checks the
version of an existing one. :meth:`LanceStore.maintain` keeps indexes current: an ANN index is
built once a table passes ``ann_threshold`` rows and ``optimize()`` folds new rows into the
vector and full-text indexes when enough have accumulated.

LanceDB raises plain ``RuntimeError``/``OSError`` for everything. :func:`store_error` turns the
ones a user can act on into :mod:`emergent.errors` naming the table's directory: a full disk
(:class:`DiskFullError`), a missing data file or a damaged manifest (:class:`StoreCorruptError`,
with how to recover). :func:`is_commit_conflict` recognises the *retryable* conflicts between
concurrent writers (two processes on one workspace: an index update preempted by another's
compaction); :func:`retry_commit` re-runs an idempotent operation on them.

Each table handle re-reads the latest version at most once per ``consistency_s`` (1 s): a
long-lived handle would otherwise never see what another process of the workspace wrote.

**Object storage.** ``uri`` may be ``s3://bucket/prefix`` (or ``gs://``, ``az://``) with
``storage_options`` for the object store (``endpoint``, ``region``, ``aws_access_key_id``,
``aws_secret_access_key``, ``allow_http``, ...; credentials may instead come from the usual
``AWS_*`` environment variables or an instance role). Several hosts can write one such database:
Lance commits a version with a conditional put (a manifest is created only if absent), so two
writers never overwrite each other's commit and the loser retries (:func:`retry_commit`); an S3
that ignores conditional puts (old MinIO, some gateways) is not safe for two writers. What does not
work on object storage: the backup's file copy (``emergent backup`` refuses; use the bucket's
versioning) and the hot index's directory stamp (it re-reads the table's version every
``emergent.memory.hot.FRESH_S`` instead; see ``docs/deploy.md``).
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pyarrow as pa

from emergent.errors import (
    ConfigError,
    DiskFullError,
    EmergentError,
    StoreCorruptError,
    StoreUnavailableError,
)

os.environ.setdefault("LANCEDB_LOG", "error")

T = TypeVar("T")

#: how a user recovers a damaged store (every StoreCorruptError says it)
RECOVER_HINT = ("restore the newest good backup (`emergent backup list`, then `emergent backup restore ID`), "
                "or run `emergent doctor` to see what else is affected")

_CONFLICT = ("retryable commit conflict", "preempted by concurrent transaction", "commit conflict")
_DISK_FULL = ("no space left on device", "os error 28", "disk is full", "disk quota exceeded", "os error 122")
_CORRUPT = ("lanceerror(io)", "not found:", "file size is too small", "failed to fill whole buffer",
            "no such file or directory", "os error 2)", "corrupt", "invalid manifest", "failed to decode",
            "unexpected eof")


#: an object store's answers that mean "not reachable / not allowed", never a damaged table
_REMOTE = (
    ("nosuchbucket", "the bucket does not exist", "create the bucket (e.g. `aws s3 mb s3://BUCKET`) or fix "
     "EMERGENT_LANCE_URI; nothing was written"),
    ("connectionrefused", "the object store's endpoint refused the connection", "start the object store or fix "
     "the \"endpoint\" in EMERGENT_LANCE_STORAGE_OPTIONS; nothing was written"),
    ("kind: connect", "the object store's endpoint did not answer", "check the \"endpoint\" in "
     "EMERGENT_LANCE_STORAGE_OPTIONS and the network; nothing was written"),
    ("kind: timeout", "the object store timed out", "check the object store and the network, then retry"),
    ("invalidaccesskeyid", "the object store refused the access key", "check aws_access_key_id in "
     "EMERGENT_LANCE_STORAGE_OPTIONS (or AWS_ACCESS_KEY_ID)"),
    ("signaturedoesnotmatch", "the object store refused the secret key", "check aws_secret_access_key in "
     "EMERGENT_LANCE_STORAGE_OPTIONS (or AWS_SECRET_ACCESS_KEY)"),
    ("accessdenied", "the object store denied access", "grant the credentials s3:GetObject, PutObject, "
     "DeleteObject and ListBucket on the bucket and prefix"),
    ("status: 403", "the object store denied access", "check the credentials and the bucket policy"),
)


def remote_error(exc: BaseException, uri: str, op: str) -> StoreUnavailableError | None:
    """What an object store's failure during ``op`` on ``uri`` means (unreachable, no bucket, refused
    credentials), or None when it is none of those."""
    text = str(exc).lower()
    for marker, what, hint in _REMOTE:
        if marker in text:
            return StoreUnavailableError(f"LanceDB at {uri}: {what} ({op} failed)", hint=hint, uri=uri, op=op)
    return None


def is_commit_conflict(exc: BaseException) -> bool:
    """A conflict with a concurrent writer that LanceDB asks us to retry."""
    text = str(exc).lower()
    return any(m in text for m in _CONFLICT)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    # drop the Rust source location LanceDB appends ("..., /root/.cargo/registry/.../commit.rs:1663:50")
    cuts = [i for i in (text.find(", /root/.cargo"), text.find(", /rustc/"), text.find(", /home/")) if i > 0]
    cut = min(cuts, default=-1)
    return (text[:cut] if cut > 0 else text).removeprefix("lance error: ")[:300]


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the filesystem holding ``path`` (its nearest existing parent); None if unknown."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return None


def disk_full(path: str | Path, what: str, *, committed: str = "nothing was written by this call",
              **fields: Any) -> DiskFullError:
    free = free_bytes(path)
    room = f" ({free:,} bytes free)" if free is not None else ""
    return DiskFullError(
        f"the disk holding {path} is full{room}: {what} failed",
        hint=f"free space on that filesystem (or move the workspace to a larger one), then retry; {committed}",
        path=str(path), free_bytes=free, **fields,
    )


def store_error(exc: BaseException, path: str | Path, op: str, **fields: Any) -> EmergentError | None:
    """The emergent error a LanceDB failure at ``path`` during ``op`` means, or None (not a store fault)."""
    if isinstance(exc, EmergentError):
        return exc
    if "://" in str(path) and not str(path).startswith("file://"):
        remote = remote_error(exc, str(path), op)
        if remote is not None:
            return remote
    text = str(exc).lower()
    if isinstance(exc, OSError) and getattr(exc, "errno", None) in (28, 122) or any(m in text for m in _DISK_FULL):
        return disk_full(path, op, **fields)
    if is_commit_conflict(exc):
        return None
    if any(m in text for m in _CORRUPT):
        return StoreCorruptError(
            f"LanceDB table {path} is damaged ({op} failed: {_first_line(exc)})",
            hint=RECOVER_HINT, path=str(path), op=op, **fields,
        )
    return None


@contextmanager
def translated(path: str | Path, op: str, **fields: Any) -> Iterator[None]:
    """Re-raise LanceDB failures that mean a full disk or a damaged table as emergent errors."""
    try:
        yield
    except EmergentError:
        raise
    except Exception as exc:
        err = store_error(exc, path, op, **fields)
        if err is None:
            raise
        raise err from exc


def retry_commit(fn: Callable[[], T], *, attempts: int = 8, base_s: float = 0.02,
                 before_retry: Callable[[], None] | None = None, incompatible: bool = False) -> T:
    """Run ``fn`` (idempotent), re-running it on a retryable commit conflict with jittered backoff.
    ``incompatible``: also on a transaction LanceDB calls incompatible with a concurrent one (an
    update racing another process's overwrite), for callers whose ``before_retry`` reopens the table."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as exc:
            retryable = is_commit_conflict(exc) or (incompatible and "incompatible transaction" in str(exc).lower())
            if not retryable or attempt == attempts - 1:
                raise
        time.sleep(base_s * (2 ** attempt) * (0.5 + random.random()))
        if before_retry is not None:
            before_retry()
    raise AssertionError("unreachable")  # pragma: no cover


SCHEMA_VERSION_KEY = b"emergent.schema_version"


@dataclass
class IndexPolicy:
    """What to index and when.

    ``ivf_hnsw_sq`` is the default ANN index: on 100k clustered 384-d vectors it answers a
    100-candidate query in ~4 ms with top-10 overlap ~0.97 against exact search and no refine
    step, where IVF_PQ (24 sub-vectors) needs ``refine_factor`` 8 (~3x slower) to reach 0.95 and
    builds no faster. ``scalar_columns`` get a bitmap index along with the ANN index, so filtered
    (prefiltered) searches do not scan those columns.
    """

    ann_threshold: int = 50_000
    vector_column: str = "vector"
    text_column: str | None = "text"
    optimize_after: int = 2_000  # unindexed rows that trigger optimize()...
    optimize_growth: float = 0.1  # ...once they are also this share of the table
    max_ann_segments: int = 3  # delta segments of the ANN index before it is rebuilt
    index_type: str = "ivf_hnsw_sq"
    scalar_columns: tuple[str, ...] = ()


def local_latest_version(table_dir: str | Path) -> int | None:
    """The newest committed version of a local Lance table, from its manifest file names (Lance's v2
    naming counts down from 2**64 - 1); None when it is not a readable local table."""
    best = -1
    try:
        with os.scandir(os.path.join(table_dir, "_versions")) as entries:
            for entry in entries:
                if entry.name.endswith(".manifest"):
                    n = int(entry.name[: -len(".manifest")])
                    best = max(best, 2**64 - 1 - n if n >= 2**63 else n)
    except (OSError, ValueError):
        return None
    return best if best >= 0 else None


#: URI schemes of object stores LanceDB writes directly (``file://`` is a local directory)
OBJECT_STORE_SCHEMES = ("s3", "s3+ddb", "gs", "az", "abfs")


def _check_uri(uri: str, storage_options: dict[str, str]) -> None:
    """Refuse, with a hint, a LanceDB URI or storage options that cannot work (at the boundary, before
    the first write fails somewhere deep)."""
    if "://" not in uri:
        if storage_options:
            raise ConfigError(f"lance_storage_options are set but lance_uri {uri!r} is a local directory",
                              hint="set EMERGENT_LANCE_URI to s3://bucket/prefix, or unset "
                                   "EMERGENT_LANCE_STORAGE_OPTIONS")
        return
    scheme = uri.split("://", 1)[0].lower()
    if scheme == "file":
        return
    if scheme not in OBJECT_STORE_SCHEMES:
        raise ConfigError(f"LanceDB URI {uri!r} has an unknown scheme {scheme!r}",
                          hint=f"use a local directory or one of {', '.join(s + '://' for s in OBJECT_STORE_SCHEMES)}")
    bucket = uri.split("://", 1)[1].split("/", 1)[0]
    if not bucket:
        raise ConfigError(f"LanceDB URI {uri!r} names no bucket", hint="write it as s3://BUCKET/PREFIX")
    bad = {k: v for k, v in storage_options.items() if not isinstance(v, str)}
    if bad:
        raise ConfigError(f"lance_storage_options values must be strings, got {sorted(bad)}",
                          hint='quote them: {"allow_http": "true"}')


class LanceStore:
    """A LanceDB database under ``<workspace>/lance`` (or any URI LanceDB accepts, with the object
    store's ``storage_options``)."""

    def __init__(self, uri: str | Path, *, consistency_s: float | None = 1.0,
                 storage_options: dict[str, str] | None = None) -> None:
        self.uri = str(uri)
        self._consistency_s = consistency_s
        self.storage_options = dict(storage_options or {})
        _check_uri(self.uri, self.storage_options)
        if "://" not in self.uri:
            try:
                Path(self.uri).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                if exc.errno in (28, 122):
                    raise disk_full(self.uri, "creating the LanceDB directory") from exc
                raise StoreUnavailableError(f"cannot create the LanceDB directory {self.uri}: {exc.strerror}",
                                            hint="check the workspace's permissions and disk", path=self.uri) from exc
        else:
            self.db  # noqa: B018 - a remote URI's credentials are checked at open

    @functools.cached_property
    def db(self) -> Any:
        """The LanceDB connection, made on first use: importing LanceDB takes ~1.5 s, and a new process
        whose recall is answered from the hot index's snapshot (emergent.memory.hot) never needs it."""
        import lancedb

        interval = None if self._consistency_s is None else timedelta(seconds=self._consistency_s)
        try:
            return lancedb.connect(self.uri, read_consistency_interval=interval,
                                   storage_options=self.storage_options or None)
        except Exception as exc:  # lancedb raises plain exceptions for bad URIs/credentials
            remote = remote_error(exc, self.uri, "connecting")
            if remote is not None:
                raise remote from exc
            raise StoreUnavailableError(
                f"cannot open LanceDB at {self.uri}: {_first_line(exc)}",
                hint="check EMERGENT_LANCE_URI, EMERGENT_LANCE_STORAGE_OPTIONS and the credentials",
            ) from exc

    def table_path(self, name: str) -> str:
        """Where table ``name`` lives (named in every error about it)."""
        return f"{self.uri.rstrip('/')}/{name}.lance"

    @contextmanager
    def _creating(self, local: bool) -> Iterator[None]:
        """Held while a table is created in a local directory: a table directory without a version
        is a creation cut short only if nobody is creating it now (object storage has no such lock;
        its creations are single writes of the first manifest)."""
        if not local:
            yield
            return
        from filelock import FileLock

        os.makedirs(self.uri, exist_ok=True)
        with translated(self.uri, "creating a table"), FileLock(os.path.join(self.uri, ".create.lock"), timeout=60):
            yield

    # A table another process is creating is listed (its first objects are written) before its first
    # manifest is, and opening it in between says "not found". On local disks _creating serialises
    # creations; object storage has no lock, so an open waits this long for the creator's manifest.
    CREATING_WAIT_S = 15.0

    def _open_listed(self, name: str) -> Any:
        """``db.open_table(name)`` for a listed table, waiting out another process's creation (object
        storage only: a local one is never listed half-created to a process that took the lock)."""
        deadline = time.monotonic() + (self.CREATING_WAIT_S if "://" in self.uri else 0.0)
        delay = 0.02
        while True:
            try:
                return self.db.open_table(name)
            except ValueError as exc:
                if "not found" not in str(exc) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def _create_listed(self, name: str, schema: pa.Schema, version: int) -> Any:
        """Create ``name`` where only debris of a cut-short creation lies; a creator that commits
        first wins ('already exists') and its table is opened."""
        md = dict(schema.metadata or {})
        md[SCHEMA_VERSION_KEY] = str(version).encode()
        try:
            return self.db.create_table(name, schema=schema.with_metadata(md), mode="create")
        except ValueError as exc:
            if "already exists" not in str(exc):
                raise
            return self.db.open_table(name)

    def table_names(self) -> list[str]:
        with translated(self.uri, "listing tables"):
            resp = self.db.list_tables()
        return list(getattr(resp, "tables", resp))

    def open_table(self, name: str, schema: pa.Schema, version: int) -> Any:
        """Open ``name`` (creating it with ``schema``), refusing an unknown schema version."""
        where = self.table_path(name)
        local = "://" not in self.uri

        def debris() -> bool:
            # A creation cut short (a full disk, a kill) leaves a table directory without any committed
            # version: it holds nothing, and LanceDB would list it but never open it. Created over.
            return local and os.path.isdir(where) and local_latest_version(where) is None

        if debris() or name not in self.table_names():
            with self._creating(local):  # processes take turns: never "over" another's creation
                cut_short = debris()
                if cut_short or name not in self.table_names():
                    md = dict(schema.metadata or {})
                    md[SCHEMA_VERSION_KEY] = str(version).encode()
                    try:
                        with translated(where, "creating the table"):
                            return self.db.create_table(name, schema=schema.with_metadata(md),
                                                        mode="overwrite" if cut_short else "create")
                    except ValueError:
                        if name not in self.table_names():  # a real error, not a creation race
                            raise
        try:
            with translated(where, "opening the table"):
                try:
                    table = self._open_listed(name)
                except ValueError as exc:  # listed, no manifest however long we waited: a creation cut
                    if local or "not found" not in str(exc):  # short on object storage (local: see debris)
                        raise
                    table = self._create_listed(name, schema, version)
                meta = table.schema.metadata or {}
        except StoreCorruptError:
            raise
        except (RuntimeError, OSError) as exc:  # an unreadable manifest LanceDB did not describe as such
            raise StoreCorruptError(f"LanceDB table {where} cannot be opened ({_first_line(exc)})",
                                    hint=RECOVER_HINT, path=where, op="opening the table") from exc
        found = int(meta.get(SCHEMA_VERSION_KEY, b"0"))
        if found > version:
            raise ConfigError(
                f"LanceDB table {name!r} has schema version {found}, newer than this emergent ({version})",
                hint="upgrade emergent (pip install -U emergent)",
            )
        return table

    # Facts about the database (embedding model, layout versions) live in a two-column table:
    # the Python LanceDB client cannot rewrite a table's schema metadata without pylance.
    _META = pa.schema([pa.field("key", pa.string()), pa.field("value", pa.string())])

    def get_meta(self) -> dict[str, str]:
        """The facts table, from its JSON mirror when the mirror names the table's current version (no
        LanceDB import for a process that only reads: see ``LanceStore.db``)."""
        where = self.table_path("emergent_meta")
        local = "://" not in self.uri
        version = local_latest_version(where) if local else None
        mirror = Path(where + ".json")
        if version is not None:
            try:
                found = json.loads(mirror.read_text("utf-8"))
                if found.get("version") == version and isinstance(found.get("meta"), dict):
                    return {str(k): str(v) for k, v in found["meta"].items()}
            except (OSError, ValueError):
                pass
        if (local and version is None and os.path.isdir(where)) or "emergent_meta" not in self.table_names():
            return {}  # not created yet, or a creation cut short (see open_table)
        with translated(where, "reading"):
            try:
                table = self._open_listed("emergent_meta")
            except ValueError as exc:  # object storage: a creation cut short holds no facts
                if "not found" not in str(exc):
                    raise
                return {}
            rows = table.to_arrow().to_pylist()
        meta = {r["key"]: r["value"] for r in rows}
        if version is not None and int(table.version) == version:  # refresh the mirror (a cache: best effort)
            tmp = mirror.with_name(f"{mirror.name}.{os.getpid()}.tmp")
            try:
                tmp.write_text(json.dumps({"version": version, "meta": meta}), "utf-8")
                os.replace(tmp, mirror)
            except OSError:
                tmp.unlink(missing_ok=True)
        return meta

    def set_meta(self, values: dict[str, str]) -> None:
        table = [self.open_table("emergent_meta", self._META, 1)]
        data = pa.Table.from_pylist([{"key": k, "value": v} for k, v in values.items()], schema=self._META)

        def reopen() -> None:  # two processes opening a new workspace: the other's create can land as an
            table[0] = self._open_listed("emergent_meta")  # overwrite after ours; merge into what is there now

        with translated(self.table_path("emergent_meta"), "writing"):
            retry_commit(lambda: table[0].merge_insert("key").when_matched_update_all()
                         .when_not_matched_insert_all().execute(data), before_retry=reopen, incompatible=True)
        self.get_meta()  # refreshes the mirror, so the next process reads it without LanceDB

    def versions(self) -> dict[str, int]:
        """Each table's schema version (``emergent.schema_version``), for ``emergent doctor``."""
        out = {}
        for name in self.table_names():
            with translated(self.table_path(name), "opening the table"):
                meta = self.db.open_table(name).schema.metadata or {}
            out[name] = int(meta.get(SCHEMA_VERSION_KEY, b"0"))
        return out

    # ------------------------------------------------------------------ index maintenance
    @staticmethod
    def _index(table: Any, column: str) -> Any | None:
        for idx in table.list_indices():
            if column in idx.columns:
                return idx
        return None

    @staticmethod
    def _ann_config(policy: IndexPolicy, rows: int) -> Any:
        from lancedb.index import IvfHnswSq, IvfPq

        if policy.index_type == "ivf_hnsw_sq":
            return IvfHnswSq(distance_type="cosine")
        return IvfPq(distance_type="cosine", num_partitions=max(1, int(rows**0.5)))

    def maintain(self, table: Any, policy: IndexPolicy, *, force: bool = False) -> dict[str, Any]:
        """Build missing indexes and fold in new rows; returns what it did.

        New rows are folded in (``optimize()``) once they are ``optimize_after`` rows and
        ``optimize_growth`` of the table (queries scan unindexed rows exactly meanwhile); the ANN
        index is rebuilt when it has more than ``max_ann_segments`` delta segments, so its cost
        stays amortised (geometric) and queries search few segments.
        """
        from lancedb.index import FTS, Bitmap

        done: dict[str, Any] = {}
        rows = table.count_rows()
        if policy.text_column and self._index(table, policy.text_column) is None and rows:
            table.create_index(policy.text_column, config=FTS(), replace=True)
            done["fts"] = "created"
        vec = self._index(table, policy.vector_column)
        if vec is None and rows >= policy.ann_threshold:
            table.create_index(policy.vector_column, config=self._ann_config(policy, rows), replace=True)
            done["ann"] = "created"
        elif vec is not None and table.index_stats(vec.name).num_indices > policy.max_ann_segments:
            # every optimize() appends a delta segment that each query searches: rebuild in one piece
            table.create_index(policy.vector_column, config=self._ann_config(policy, rows), replace=True)
            done["ann"] = "rebuilt"
        if rows >= policy.ann_threshold:
            for column in policy.scalar_columns:
                if self._index(table, column) is None:
                    table.create_index(column, config=Bitmap(), replace=True)
                    done.setdefault("bitmap", []).append(column)
        unindexed = max(
            (table.index_stats(i.name).num_unindexed_rows for i in table.list_indices()), default=0
        )
        if unindexed and (force or unindexed >= max(policy.optimize_after, policy.optimize_growth * rows)):
            table.optimize()
            done["optimized_rows"] = unindexed
        return done

