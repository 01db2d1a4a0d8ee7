"""Checks made when a workspace's stores are opened.

:func:`open_sql` is how the workstation opens its SQL store: it first refuses a workspace whose
SQLite database **vanished or is empty while the rest of the workspace holds data** (SQLite would
silently create a new, empty database: the audit trail, jobs, approvals, policy and the backup
catalogue gone without a word), then opens it (the store checks the file's header and applies
migrations) and records in ``<workspace>/.emergent-workspace.json`` that this workspace has a
database, so a later loss is recognised even when nothing else is left.

What counts as "the rest of the workspace holds data": that record, archives in ``backups/``,
rows in ``lance/memories.lance``, or a write-ahead log ``emergent.db-wal`` without its database.

A deliberate fresh start is explicit: :func:`allow_new_database` (what ``emergent doctor --repair``
and ``emergent backup restore`` use: a restore replaces the database anyway).
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from emergent.errors import StoreCorruptError

MARKER = ".emergent-workspace.json"
DB_NAME = "emergent.db"

_allowed: set[str] = set()
_allowed_lock = threading.Lock()


def database_file(path: Path, url: str | None) -> Path | None:
    """The SQLite file of the workspace at ``path`` (None when the database is not a SQLite file)."""
    if url is None:
        return path / DB_NAME
    from emergent.stores.sql import sqlite_file

    return sqlite_file(url)


@contextlib.contextmanager
def allow_new_database(path: Path) -> Iterator[None]:
    """Within the block, a missing or empty database of ``path`` may be created anew."""
    key = str(Path(path).resolve())
    with _allowed_lock:
        _allowed.add(key)
    try:
        yield
    finally:
        with _allowed_lock:
            _allowed.discard(key)


def _is_allowed(path: Path) -> bool:
    with _allowed_lock:
        return str(Path(path).resolve()) in _allowed


def read_marker(path: Path) -> dict[str, Any]:
    try:
        data = json.loads((path / MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def evidence(path: Path, db: Path) -> list[str]:
    """Why the workspace at ``path`` is known to have had a database at ``db`` (empty: a new workspace)."""
    found: list[str] = []
    recorded = read_marker(path).get("database")
    if recorded and Path(recorded).name == db.name:
        found.append(f"{MARKER} records that it had one since {read_marker(path).get('created', '?')}")
    wal = db.with_name(db.name + "-wal")
    if wal.exists() and wal.stat().st_size > 0:
        found.append(f"its write-ahead log {wal.name} is still there ({wal.stat().st_size:,} bytes)")
    backups = sorted((path / "backups").glob("*.tar.zst")) if (path / "backups").is_dir() else []
    if backups:
        found.append(f"backups/ holds {len(backups)} backup{'s' if len(backups) > 1 else ''}")
    data = path / "lance" / "memories.lance" / "data"
    if data.is_dir() and any(data.iterdir()):
        found.append("lance/ holds long-term memories")
    return found


def check_database(path: Path, url: str | None) -> None:
    """Refuse to open a workspace whose database vanished or is empty while its other stores hold data."""
    db = database_file(path, url)
    if db is None or _is_allowed(path):
        return
    try:
        size = db.stat().st_size
    except FileNotFoundError:
        size = -1
    if size > 0:
        return
    why = evidence(path, db)
    if not why:
        return  # a new workspace
    state = "is missing" if size < 0 else "is empty (0 bytes)"
    raise StoreCorruptError(
        f"the workspace database {db} {state}, but the workspace is not new ({'; '.join(why)}): opening it "
        "would start an empty database, and the audit trail, jobs, approvals, policy and backup catalogue "
        "would be gone without a word",
        hint="restore a backup: `emergent backup list`, then `emergent backup restore ID` (it takes the "
             "database from the backup); or put the file back; or start a new database deliberately with "
             "`emergent doctor --repair` (the empty file is kept beside it)",
        path=str(db), evidence=why,
    )


def mark_database(path: Path, db: Path | None) -> None:
    """Record that the workspace has a database (once; atomically)."""
    if db is None or (path / MARKER).exists():
        return
    body = {"database": db.name, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "note": "written by emergent: this workspace has a SQL database; see `emergent doctor`"}
    tmp = path / f"{MARKER}.{os.getpid()}.tmp"
    with contextlib.suppress(OSError):  # a read-only or full disk: the other evidence still counts
        tmp.write_text(json.dumps(body, indent=1), "utf-8")
        os.replace(tmp, path / MARKER)
    with contextlib.suppress(OSError):
        tmp.unlink()


def open_sql(path: Path, url: str | None) -> Any:
    """The workspace's SQL store, opened only when its database is there or the workspace is new."""
    from emergent.stores.sql import SQLStore

    check_database(path, url)
    store = SQLStore.in_workspace(path, url)
    mark_database(path, database_file(path, url))
    return store


def start_new_database(path: Path, url: str | None) -> Path | None:
    """Move an empty database file aside (``emergent.db.empty-<time>``) so a new one can be created;
    returns where it went (None when there was no file). Used by ``emergent doctor --repair``."""
    db = database_file(path, url)
    if db is None or not db.exists():
        return None
    if db.stat().st_size > 0:
        raise StoreCorruptError(f"{db} is not empty: refusing to put it aside", path=str(db),
                                hint="restore a backup instead (`emergent backup restore ID`)")
    target = db.with_name(f"{db.name}.empty-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}")
    os.replace(db, target)
    return target


__all__ = ["MARKER", "allow_new_database", "check_database", "database_file", "evidence", "mark_database",
           "open_sql", "read_marker", "start_new_database"]
