"""SQL: the state of record (SQLAlchemy 2 Core, Alembic migrations applied on open).

SQLite in WAL mode at ``<workspace>/emergent.db`` by default; PostgreSQL (or any SQLAlchemy URL)
through ``EMERGENT_DATABASE_URL``. Each capability owns an Alembic *branch* (``memory``, ``tools``,
``jobs``, ...): revisions are append-only and named, and ``upgrade heads`` applies every branch, so
capabilities add tables without touching each other's history.

Failures a user can act on are raised as :mod:`emergent.errors` naming the database, on every
connection of the engine (an SQLAlchemy ``handle_error`` hook): a full disk is a
:class:`~emergent.errors.DiskFullError`, a damaged SQLite file (``database disk image is
malformed``, ``file is not a database``) a :class:`~emergent.errors.StoreCorruptError` saying how to
recover. Before a SQLite file is opened its header is checked (:func:`check_sqlite_file`): a file
overwritten with something else, or cut shorter than the size its header records, is refused
before anything reads or writes it.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import re
import sqlite3
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from emergent.errors import (
    ConfigError,
    DiskFullError,
    EmergentError,
    StoreCorruptError,
    StoreUnavailableError,
)

MIGRATIONS = Path(__file__).with_name("migrations")
_ASSIGN = re.compile(r"^(revision|down_revision)\s*(?::[^=]*)?=\s*(.+)$", re.M)


@functools.lru_cache(maxsize=1)
def declared_heads() -> frozenset[str]:
    """The heads of the migration scripts (revisions no other script names as its parent), read from
    their ``revision`` / ``down_revision`` lines without importing Alembic; empty when a script
    declares them in a way this does not read (the caller then asks Alembic)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in sorted((MIGRATIONS / "versions").glob("*.py")):
        found = dict(_ASSIGN.findall(path.read_text("utf-8")))
        try:
            rev = ast.literal_eval(found["revision"].split("#")[0].strip())
            down = ast.literal_eval(found.get("down_revision", "None").split("#")[0].strip())
        except (KeyError, ValueError, SyntaxError):
            return frozenset()
        if not isinstance(rev, str):
            return frozenset()
        revisions.add(rev)
        parents.update([down] if isinstance(down, str) else list(down or ()))
    return frozenset(revisions - parents)
metadata = sa.MetaData()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


#: how to recover a damaged database (said by every StoreCorruptError about it)
RECOVER_HINT = ("restore the newest good backup (`emergent backup list`, then `emergent backup restore ID`); "
                "`emergent doctor` shows what else is affected")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_DISK_FULL = ("database or disk is full", "no space left on device", "could not extend file", "disk quota exceeded")
_CORRUPT = ("database disk image is malformed", "file is not a database", "malformed database schema")


def sqlite_file(url: str | sa.URL) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    u = sa.make_url(url) if isinstance(url, str) else url
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:" or u.database.startswith("file:"):
        return None
    return Path(u.database)


#: SQLite files this process has open through a SQLStore, and how many stores hold each.
_OPEN: dict[str, int] = {}
_OPEN_LOCK = threading.Lock()


def _held(path: Path, delta: int) -> int:
    key = str(path.resolve())
    with _OPEN_LOCK:
        n = _OPEN.get(key, 0) + delta
        if n > 0:
            _OPEN[key] = n
        else:
            _OPEN.pop(key, None)
        return n


def _file_identity(path: Path | None) -> tuple[int, int] | None:
    try:
        st = path.stat() if path is not None else None
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if st is not None and st.st_size > 0 else None


def check_sqlite_file(path: Path) -> None:
    """Refuse a SQLite file that is not one (overwritten) or is shorter than its header says (truncated).

    A missing or empty file passes (SQLite creates it); whether an *empty* database is acceptable in
    a workspace that already holds data is :func:`emergent.workspace.integrity.check_database`'s call.

    The raw header is read only while no store of this process has the file open: closing *any*
    descriptor of a file drops every POSIX lock the process holds on it, SQLite's included, and a
    writer in another process could then corrupt the database (SQLite's "how to corrupt" list,
    2.2). A second store on a file already open here relies on the first one's check and on SQLite's
    own errors, which :func:`translate_error` turns into :class:`StoreCorruptError`.
    """
    if _held(path, 0) > 0:
        return
    try:
        size = path.stat().st_size
        if size == 0:
            return
        with path.open("rb") as fh:
            header = fh.read(100)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreUnavailableError(f"cannot read the database {path}: {exc.strerror}",
                                    hint="check the workspace's permissions and disk", path=str(path)) from exc
    if not header.startswith(_SQLITE_MAGIC):
        raise StoreCorruptError(f"the database {path} is not a SQLite database (it was overwritten or damaged)",
                                hint=RECOVER_HINT, path=str(path))
    if len(header) < 100:
        raise StoreCorruptError(f"the database {path} is truncated ({size} bytes, shorter than its header)",
                                hint=RECOVER_HINT, path=str(path))
    (page_size,) = struct.unpack(">H", header[16:18])
    page_size = 65536 if page_size == 1 else page_size
    change, pages, valid_for = struct.unpack(">I", header[24:28])[0], struct.unpack(">I", header[28:32])[0], \
        struct.unpack(">I", header[92:96])[0]
    if pages and change == valid_for and size < pages * page_size and not _wal_holds_pages(path):
        raise StoreCorruptError(
            f"the database {path} is truncated: {size:,} bytes, but its header records {pages:,} pages of "
            f"{page_size} bytes ({pages * page_size:,} bytes)", hint=RECOVER_HINT, path=str(path))


def _wal_holds_pages(path: Path) -> bool:
    """A non-empty write-ahead log beside the file: a checkpoint that a full disk interrupted leaves
    the header's page count written and the pages still in the log, where SQLite reads them (and the
    next checkpoint writes them). Not a truncated file, so SQLite's own checks decide."""
    try:
        return Path(f"{path}-wal").stat().st_size > 0
    except OSError:
        return False


def translate_error(exc: BaseException, where: str) -> EmergentError | None:
    """The emergent error a database failure means (a full disk, a damaged file), or None."""
    if isinstance(exc, EmergentError):
        return exc
    text = str(exc).lower()
    if any(m in text for m in _DISK_FULL):
        from emergent.stores.lance import free_bytes

        free = free_bytes(where) if "://" not in where else None
        room = f" ({free:,} bytes free)" if free is not None else ""
        return DiskFullError(f"the disk holding the database {where} is full{room}: {str(exc).splitlines()[0][:200]}",
                             hint="free space on that filesystem (or move the workspace to a larger one), then "
                                  "retry; the transaction that failed was rolled back", path=where, free_bytes=free)
    if any(m in text for m in _CORRUPT):
        return StoreCorruptError(f"the database {where} is damaged ({str(exc).splitlines()[0][:200]})",
                                 hint=RECOVER_HINT, path=where)
    return None


def _where(url: sa.URL) -> str:
    path = sqlite_file(url)
    return str(path) if path is not None else url.render_as_string(hide_password=True)


def owner_only(path: Path) -> None:
    """The database file (and its -wal and -shm, which SQLite creates with the file's mode) readable
    by its owner only: memories, approvals and the audit trail are not for other users of the machine,
    among them the user a sandboxed run is dropped to."""
    for p in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            if p.stat().st_mode & 0o077:
                p.chmod(0o600)
        except OSError:  # not there yet, or not ours: nothing to do here
            pass


def make_engine(url: str) -> Engine:
    try:
        engine = sa.create_engine(url, future=True, pool_pre_ping=not url.startswith("sqlite"))
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError(
            f"cannot use database URL {url!r}: {exc}",
            hint="use sqlite:///path.db or postgresql+psycopg://user@host/db "
            "(pip install 'emergent[postgres]')",
        ) from exc
    if engine.dialect.name == "sqlite":
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        path = sqlite_file(engine.url)
        if path is not None:
            sa.event.listen(engine, "connect", lambda *_: owner_only(path))
    where = _where(engine.url)

    def handle_error(context: Any) -> None:
        err = translate_error(context.original_exception, where)
        if err is not None:
            raise err from context.original_exception

    sa.event.listen(engine, "handle_error", handle_error)
    return engine


def _alembic_config(connection: Connection) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["connection"] = connection
    return cfg


@contextlib.contextmanager
def _migration_lock(engine: Engine, lock_dir: Path | None) -> Iterator[None]:
    """Only one process migrates at a time (file lock for SQLite, advisory lock for PostgreSQL)."""
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(774411)"))
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(774411)"))
        return
    if lock_dir is None:
        yield
        return
    from filelock import FileLock

    with FileLock(str(lock_dir / ".migrate.lock"), timeout=60):
        yield


class SQLStore:
    """An engine with every migration applied."""

    def __init__(self, url: str, *, lock_dir: Path | None = None, migrate: bool = True) -> None:
        self.url = url
        self.path = sqlite_file(url)
        self._held = False
        if self.path is not None:
            check_sqlite_file(self.path)
            _held(self.path, +1)
            self._held = True
        try:
            self.engine = make_engine(url)
            if migrate:
                self.upgrade(lock_dir)
        except BaseException:
            if self._held and self.path is not None:
                self._held = False
                _held(self.path, -1)
            raise
        self._identity = _file_identity(self.path)

    def file_problem(self) -> str | None:
        """Why the SQLite file this store opened no longer holds its data (deleted, replaced or emptied
        while the connections stay open: SQLite would go on writing into the unlinked or truncated
        file and report success), or None. A stat: cheap enough before every durable audit entry."""
        if self.path is None:
            return None
        if self._identity is None:  # created after open (the first write)
            self._identity = _file_identity(self.path)
            return None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return f"the database {self.path} was deleted while open"
        except OSError as exc:
            return f"the database {self.path} cannot be read ({exc.strerror})"
        if (st.st_dev, st.st_ino) != self._identity:
            return f"the database {self.path} was replaced while open"
        if st.st_size == 0:
            return f"the database {self.path} was emptied while open"
        return None

    @classmethod
    def in_workspace(cls, workspace: Path, url: str | None = None) -> SQLStore:
        workspace.mkdir(parents=True, exist_ok=True)
        return cls(url or f"sqlite:///{workspace / 'emergent.db'}", lock_dir=workspace)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self, lock_dir: Path | None = None) -> None:
        if self._current():
            return
        from alembic import command
        from alembic.util.exc import CommandError

        where = _where(self.engine.url)
        try:
            # SQLite: the lock sits beside the database file (the workspace's directory by default), so two
            # workspaces sharing one database file take the same lock
            lock = self.path.parent if self.path is not None else lock_dir
            with _migration_lock(self.engine, lock), self.engine.begin() as conn:
                command.upgrade(_alembic_config(conn), "heads")
        except CommandError as exc:
            if "can't locate revision" not in str(exc).lower():
                raise
            raise ConfigError(f"the database {where} was migrated by a newer emergent ({exc})",
                              hint="upgrade emergent in this environment (every process of a workspace must run "
                                   "the same version), or restore a backup taken with this version",
                              path=where) from exc
        except (sa.exc.DatabaseError, sqlite3.DatabaseError) as exc:  # raised while connecting, before the hook
            err = translate_error(getattr(exc, "orig", None) or exc, where)
            if err is not None:
                raise err from exc
            if not isinstance(exc, sa.exc.OperationalError | sqlite3.OperationalError):
                raise StoreCorruptError(f"the database {where} cannot be read ({exc})", hint=RECOVER_HINT,
                                        path=where) from exc
            raise StoreUnavailableError(
                f"database {self.engine.url.render_as_string(hide_password=True)} is unavailable: "
                f"{getattr(exc, 'orig', exc)}",
                hint="check EMERGENT_DATABASE_URL and that the server is running",
            ) from exc

    def _current(self) -> bool:
        """True when the database has applied exactly this emergent's migration heads: opening a
        workspace then needs no Alembic (importing it is ~0.15 s of every process's start). Any
        doubt (no version table, an unreadable database) takes the full path, which reports it."""
        heads = declared_heads()
        if not heads:
            return False
        try:
            with self.engine.connect() as conn:
                found = set(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars())
        except (sa.exc.SQLAlchemyError, sqlite3.Error):
            return False
        return found == heads

    def missing_heads(self) -> list[str]:
        """Migration heads of this emergent that the database has not applied (``emergent doctor``)."""
        from alembic.config import Config
        from alembic.script import ScriptDirectory

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return sorted(set(ScriptDirectory.from_config(cfg).get_heads()) - set(self.heads()))

    def heads(self) -> list[str]:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return sorted(MigrationContext.configure(conn).get_current_heads())

    def begin(self) -> contextlib.AbstractContextManager[Connection]:
        return self.engine.begin()

    def connect(self) -> contextlib.AbstractContextManager[Connection]:
        return self.engine.connect()

    def dispose(self) -> None:
        self.engine.dispose()
        if self._held and self.path is not None:
            self._held = False
            _held(self.path, -1)
