"""Right to erasure inside long-term memory: rows deleted so that no file of the table holds them.

A LanceDB delete only marks rows deleted: the data file still holds them, older table versions
still point at it (``rewind``, time travel), and the indexes still hold their tokens and vectors.
:func:`erase_ltm` therefore, for the ``memories`` and ``memories_archive`` tables:

1. finds the rows and the fragments (data files) that hold them (a row address is the fragment id
   in its upper 32 bits), and every fragment still holding rows deleted earlier (a ``forget`` only
   marks them: ``_deletions`` names those fragments in a local table);
2. deletes them (the live table through :class:`~emergent.memory.ltm.LongTermMemory`, so this
   process's hot index drops them at once);
3. rewrites every other row of those fragments (a ``merge_insert`` update of the rows as stored:
   sealed rows stay sealed), which leaves the old fragments with every row deleted, so they leave
   the table;
4. rebuilds the table's indexes (dropped, then built again by the usual upkeep);
5. removes every older version (``optimize(cleanup_older_than=0)``): their manifests and the
   files only they used are deleted, so neither a rewind nor a checkout of an old version can
   reach the rows again. Files of a write another process has not committed yet are left alone
   (``delete_unverified=False``);
6. drops this process's hot index (reloaded from LanceDB at its next search, so no tombstone keeps
   the erased bytes; every other process catches up at its next search: the table's version
   changed, and a snapshot is never written with deleted rows in it) and deletes the hot index
   snapshots of the agents concerned (they hold the text).

The cost is the history: after an erasure, long-term memory cannot be rewound to before it.
A retention purge runs the same steps keeping the versions younger than its history window.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
import warnings
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from emergent.stores.lance import retry_commit, translated

CHUNK = 1000


def _quoted(ids: Sequence[str]) -> str:
    return ", ".join("'" + i.replace("'", "''") + "'" for i in ids)


def _chunks(ids: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def _located(table: Any, ids: Sequence[str]) -> tuple[dict[str, list[str]], set[int]]:
    """(ids found by agent, fragment ids holding them) in ``table`` at its latest version."""
    table.checkout_latest()
    by_agent: dict[str, list[str]] = {}
    fragments: set[int] = set()
    for part in _chunks(list(ids)):
        rows = (table.search().where(f"id IN ({_quoted(part)})").select(["id", "agent"]).with_row_id(True)
                .limit(len(part)).to_arrow().to_pylist())
        for r in rows:
            by_agent.setdefault(r["agent"], []).append(r["id"])
            fragments.add(int(r["_rowid"]) >> 32)
    return by_agent, fragments


def _rewrite_fragments(table: Any, fragments: set[int], path: str) -> int:
    """Rewrite every row still in ``fragments`` (as stored), so those fragments leave the table."""
    if not fragments:
        return 0
    table.checkout_latest()
    n = table.count_rows()
    if not n:
        return 0
    with translated(path, "finding the rows beside erased ones"):
        located = table.search().select(["id"]).with_row_id(True).limit(n).to_arrow()
    ids = [i for i, rid in zip(located.column("id").to_pylist(), located.column("_rowid").to_pylist(), strict=True)
           if int(rid) >> 32 in fragments]
    for part in _chunks(ids):
        with translated(path, "reading the rows beside erased ones"):
            data = table.search().where(f"id IN ({_quoted(part)})").limit(len(part)).to_arrow()
        if data.num_rows:
            data = data.select(table.schema.names)
            with translated(path, "rewriting the rows beside erased ones"):
                retry_commit(functools.partial(_update, table, data))
    return len(ids)


def _update(table: Any, data: Any) -> Any:
    return table.merge_insert("id").when_matched_update_all().execute(data)


def soft_deleted(table_path: str) -> set[int]:
    """Fragments of a local table with rows deleted but still in their data file (a deletion file
    ``_deletions/<fragment>-<version>-<n>.arrow|bin`` names them); an object-store table: none known."""
    folder = os.path.join(table_path, "_deletions")
    if "://" in table_path or not os.path.isdir(folder):
        return set()
    out = set()
    for name in os.listdir(folder):
        head = name.split("-", 1)[0]
        if head.isdigit():
            out.add(int(head))
    return out


def _drop_indexes(table: Any, path: str) -> list[str]:
    names = [i.name for i in table.list_indices()]
    with translated(path, "dropping indexes for a rebuild"):
        for name in names:
            retry_commit(functools.partial(table.drop_index, name))
    return names


def _cleanup(table: Any, path: str, keep: timedelta | None = None) -> None:
    with translated(path, "removing older versions"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "cleanup_older_than=0 removes every version": the point here
        retry_commit(lambda: table.optimize(cleanup_older_than=keep or timedelta(0), delete_unverified=False))
    table.checkout_latest()


def erase_ltm(ltm: Any, ids: Sequence[str], *, keep: timedelta | None = None) -> dict[str, Any]:
    """Erase ``ids`` from both tables of ``ltm`` (a LongTermMemory), their files, indexes and older
    versions (see the module docstring; ``keep``: versions younger than this stay, for a retention
    purge). Returns counts and the agents touched."""
    ids = list(dict.fromkeys(ids))
    table, archive = ltm.table, ltm.archive
    live, live_frags = _located(table, ids)
    archived, archive_frags = _located(archive, ids)
    ltm._delete_listed(live, "erasing memories")
    for part in _chunks([i for v in archived.values() for i in v]):
        with translated(ltm.archive_path, "erasing archived memories"):
            retry_commit(functools.partial(archive.delete, f"id IN ({_quoted(part)})"))
    if keep is None:  # an erasure also finishes earlier deletes (a forgotten memory of the same person)
        live_frags |= soft_deleted(ltm.path)
        archive_frags |= soft_deleted(ltm.archive_path)
    rewritten = _rewrite_fragments(table, live_frags, ltm.path)
    rewritten += _rewrite_fragments(archive, archive_frags, ltm.archive_path)
    indexes = _drop_indexes(table, ltm.path) if live else []
    indexes += _drop_indexes(archive, ltm.archive_path) if archived else []
    if live:
        ltm.maintain(force=True)  # the indexes, built again over what is left
    _cleanup(table, ltm.path, keep)
    _cleanup(archive, ltm.archive_path, keep)
    ltm._ann_cache = None
    agents = sorted(set(live) | set(archived))
    ltm.hot.forget()  # reloaded from LanceDB at the next search: no tombstone keeps the erased bytes
    discard_snapshots(ltm.hot, agents)
    return {"ltm": sum(map(len, live.values())), "archive": sum(map(len, archived.values())),
            "rewritten_rows": rewritten, "indexes_rebuilt": indexes, "agents": agents,
            "versions_kept": len(table.list_versions())}


def discard_snapshots(hot: Any, agents: Iterable[str]) -> int:
    """Delete the hot index snapshots of ``agents`` (files of erased text; rebuilt from LanceDB)."""
    n = 0
    for agent in agents:
        path = hot._snapshot_path(agent)
        if path and os.path.exists(path):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path)
                n += 1
    return n


def scrub_stm(stm: Any) -> bool:
    """Leave no bytes of deleted short-term items in a SQLite file (VACUUM rewrites the pages that
    held them, the WAL is truncated); other backends: nothing to do (Redis frees the keys; its
    persistence files are rewritten by Redis itself). True when a file was scrubbed."""
    if getattr(stm, "name", None) != "sqlite" or not getattr(stm, "path", None):
        return False
    conn = sqlite3.connect(str(stm.path), timeout=30.0, isolation_level=None)
    try:
        conn.execute("PRAGMA secure_delete=ON")
        conn.execute("VACUUM")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return True
