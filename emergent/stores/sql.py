"""SQL: the state of record (SQLAlchemy 2 Core, Alembic migrations applied on open).

SQLite in WAL mode at ``<workspace>/emergent.db`` by default; PostgreSQL (or any SQLAlchemy URL)
through ``EMERGENT_DATABASE_URL``. Each capability owns an Alembic *branch* (``memory``, ``tools``,
``jobs``, ...): revisions are append-only and named, and ``upgrade heads`` applies every branch, so
capabilities add tables without touching each other's history.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from emergent.errors import ConfigError, StoreUnavailableError

MIGRATIONS = Path(__file__).with_name("migrations")
metadata = sa.MetaData()


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.close()


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
        self.engine = make_engine(url)
        if migrate:
            self.upgrade(lock_dir)

    @classmethod
    def in_workspace(cls, workspace: Path, url: str | None = None) -> SQLStore:
        workspace.mkdir(parents=True, exist_ok=True)
        return cls(url or f"sqlite:///{workspace / 'emergent.db'}", lock_dir=workspace)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self, lock_dir: Path | None = None) -> None:
        from alembic import command

        try:
            with _migration_lock(self.engine, lock_dir), self.engine.begin() as conn:
                command.upgrade(_alembic_config(conn), "heads")
        except sa.exc.OperationalError as exc:
            raise StoreUnavailableError(
                f"database {self.engine.url.render_as_string(hide_password=True)} is unavailable: "
                f"{exc.orig}",
                hint="check EMERGENT_DATABASE_URL and that the server is running",
            ) from exc

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
