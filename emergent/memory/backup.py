"""Backup and recovery of a workspace's memory: one verified archive per backup.

An archive is ``<workspace>/backups/<id>.tar.zst`` (a tar stream compressed with zstd) holding

* ``manifest.json`` (first member): sha256 of every other member, row counts, the embedder id and
  the version of every LanceDB table at backup time;
* ``lance/``: the LanceDB tables, copied file by file (Lance files are immutable per version; the
  ``_versions`` manifests are copied before the data they point to, so a write running during the
  copy can add files but never leave a manifest without its data);
* ``sql/emergent.db`` (SQLite, through the ``sqlite3`` online backup API) or ``sql/<table>.jsonl``
  (any other dialect, through SQLAlchemy reflection);
* ``stm.bin``: every agent's short-term items, length-prefixed records of
  :mod:`emergent.memory._codec`.

Each backup is catalogued in the ``backups`` SQL table with the archive's own sha256.
:func:`restore` checks the archive against the catalogue and every member against the manifest
*while extracting into a temporary directory beside the workspace*; only then does it close the
workstation's stores, move the current data aside, move the restored data in (moving the old data
back if a step fails), reopen the stores, re-insert the catalogue as it was before the restore and
refill short-term memory. :func:`restore_ltm_at` is point-in-time recovery of long-term memory
from LanceDB's own table versions, without an archive.
"""

from __future__ import annotations

import contextlib
import functools
import json
import secrets
import shutil
import sqlite3
import struct
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from emergent.clock import iso
from emergent.errors import BackupError, IntegrityError, NotFoundError, ValidationError
from emergent.memory import _codec, _sqldump, decay
from emergent.memory._archive import FORMAT, SUFFIX, read_manifest, scan, sha256_file, write_archive
from emergent.memory.tables import backups as backups_table

if TYPE_CHECKING:  # pragma: no cover
    from emergent.memory.service import Memory
    from emergent.workstation import Workstation

_LEN = struct.Struct("<I")
# Services rebuilt after a restore (they hold the stores that were swapped); the embedder and the
# Redis client survive, they hold nothing the restore replaced.
_KEEP_ON_REOPEN = {"embedder", "redis"}


@dataclass(frozen=True)
class BackupInfo:
    id: str
    created_at: float
    path: str
    size_bytes: int
    sha256: str
    memories: int
    note: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created": iso(self.created_at)}


@dataclass
class RestoreReport:
    id: str
    ltm_rows: int
    archive_rows: int
    stm_items: int
    sql: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ helpers
def _lance_dir(ws: Workstation) -> Path:
    uri = ws.lance.uri
    if "://" in uri and not uri.startswith("file://"):
        raise BackupError(
            f"backups copy the LanceDB directory, but this workspace's LanceDB is at {uri}",
            hint="back up object storage with its own versioning (point-in-time restore still works: "
            "restore_ltm_at), or use a local EMERGENT_LANCE_URI",
        )
    return Path(uri.removeprefix("file://"))


def _sqlite_path(ws: Workstation) -> Path | None:
    url = ws.sql.engine.url
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return Path(url.database)


def _copy_lance(src: Path, dst: Path) -> None:
    """Copy each table's version manifests first, then its data (see the module docstring)."""
    dst.mkdir(parents=True, exist_ok=True)
    if not src.exists():
        return
    for table in sorted(p for p in src.iterdir() if p.is_dir()):
        versions = table / "_versions"
        if versions.exists():
            shutil.copytree(versions, dst / table.name / "_versions")
        shutil.copytree(table, dst / table.name, dirs_exist_ok=True,
                        ignore=lambda d, names, top=table: ["_versions"] if Path(d) == top else [])


def _dump_stm(memory: Memory, target: Path) -> int:
    n = 0
    with target.open("wb") as fh:
        for agent in memory.stm.agents():
            for rec in memory.stm.scan(agent):
                blob = _codec.encode(rec)
                fh.write(_LEN.pack(len(blob)) + blob)
                n += 1
    return n


def _read_stm(path: Path) -> list[Any]:
    data = path.read_bytes()
    out, pos = [], 0
    while pos < len(data):
        (n,) = _LEN.unpack_from(data, pos)
        out.append(_codec.decode(data[pos + 4 : pos + 4 + n]))
        pos += 4 + n
    return out


def _lance_tables(ws: Workstation) -> dict[str, dict[str, int]]:
    out = {}
    for name in ws.lance.table_names():
        table = ws.lance.db.open_table(name)
        out[name] = {"version": int(table.version), "rows": int(table.count_rows())}
    return out


def _new_id(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(3)


# ------------------------------------------------------------------------------ create
def create(ws: Workstation, note: str | None = None) -> BackupInfo:
    """Write a new archive of the workspace's memory and catalogue it."""
    memory = ws.memory
    memory.flush()
    lance_src = _lance_dir(ws)
    created = time.time()
    bid = _new_id(created)
    target_dir = ws.path / "backups"
    target_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target_dir, prefix=".staging-") as tmp:
        stage = Path(tmp)
        tables = _lance_tables(ws)
        _copy_lance(lance_src, stage / "lance")
        sql = _backup_sql(ws, stage / "sql")
        stm_items = _dump_stm(memory, stage / "stm.bin")
        files = {p.relative_to(stage).as_posix(): sha256_file(p) for p in sorted(stage.rglob("*")) if p.is_file()}
        meta = ws.lance.get_meta()
        ltm_rows = tables.get("memories", {}).get("rows", 0)
        archive_rows = tables.get("memories_archive", {}).get("rows", 0)
        manifest = {
            "format": FORMAT, "id": bid, "created_at": created, "created": iso(created), "note": note,
            "embedder": meta.get("embedder"), "dim": meta.get("dim"), "workspace": str(ws.path),
            "lance": {"tables": tables}, "sql": sql,
            "counts": {"ltm": ltm_rows, "archive": archive_rows, "stm": stm_items},
            "files": files,
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True), "utf-8")
        archive = target_dir / f"{bid}{SUFFIX}"
        write_archive(stage, ["manifest.json", *files], archive)
    info = BackupInfo(bid, created, str(archive), archive.stat().st_size, sha256_file(archive),
                      ltm_rows + archive_rows + stm_items, note)
    with ws.sql.begin() as conn:
        conn.execute(backups_table.insert(), [asdict(info)])
    return info


def _backup_sql(ws: Workstation, target: Path) -> dict[str, Any]:
    target.mkdir(parents=True)
    path = _sqlite_path(ws)
    if path is not None:
        src = sqlite3.connect(path)
        dst = sqlite3.connect(target / "emergent.db")
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return {"dialect": "sqlite", "mode": "file"}
    return {"dialect": ws.sql.dialect, "mode": "jsonl", "tables": _sqldump.dump(ws.sql.engine, target)}


# ------------------------------------------------------------------------------ catalogue
def list_backups(ws: Workstation, *, uncatalogued: bool = True) -> list[BackupInfo]:
    """Catalogued backups, plus archives in ``<workspace>/backups`` the catalogue lacks; newest first."""
    with ws.sql.connect() as conn:
        rows = conn.execute(sa.select(backups_table)).mappings()
        found = [BackupInfo(**dict(r)) for r in rows]
    folder = ws.path / "backups"
    if uncatalogued and folder.is_dir():
        known = {Path(b.path).name for b in found}
        for path in sorted(folder.glob(f"*{SUFFIX}")):
            if path.name not in known:
                with contextlib.suppress(IntegrityError):
                    found.append(_info_from_file(path))
    return sorted(found, key=lambda b: -b.created_at)


def get(ws: Workstation, backup_id: str) -> BackupInfo:
    """The catalogued backup ``backup_id``; else an archive of that name under ``<workspace>/backups``
    or at that path (a lost database, an archive copied from elsewhere), read from its manifest."""
    if not isinstance(backup_id, str) or not backup_id:
        raise ValidationError(f"backup id must be a non-empty string, got {backup_id!r}", field="backup_id")
    with ws.sql.connect() as conn:
        row = conn.execute(sa.select(backups_table).where(backups_table.c.id == backup_id)).mappings().first()
    if row is not None:
        return BackupInfo(**dict(row))
    for candidate in (ws.path / "backups" / f"{backup_id}{SUFFIX}", Path(backup_id)):
        if candidate.name.endswith(SUFFIX) and candidate.is_file():
            return _info_from_file(candidate)
    known = [b.id for b in list_backups(ws, uncatalogued=False)[:5]]
    raise NotFoundError(f"no backup {backup_id!r} in the catalogue or the backups directory of {ws.path}",
                        hint="list them with `emergent backup list`" + (f" (newest: {', '.join(known)})" if known else ""))


# ------------------------------------------------------------------------------ verify
def verify(ws: Workstation, backup_id: str, *, _extract_to: Path | None = None) -> dict[str, Any]:
    """Recompute every checksum; returns the manifest, raises :class:`IntegrityError` on any mismatch."""
    info = get(ws, backup_id)
    path = Path(info.path)
    if not path.exists():
        raise IntegrityError(f"backup {backup_id}: archive {path} is missing",
                             hint="restore the file from wherever backups are copied, or take a new backup")
    manifest, problems, digest = scan(path, _extract_to)
    if digest != info.sha256:
        problems.insert(0, f"archive sha256 {digest[:12]}... differs from the catalogued {info.sha256[:12]}... "
                           "(the file was changed after it was written)")
    if manifest and manifest.get("id") != info.id:
        problems.append(f"the manifest names backup {manifest.get('id')!r}, not {info.id!r}")
    if problems:
        raise IntegrityError(
            f"backup {backup_id} failed verification: " + "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""),
            hint="do not restore from it; use another backup (`emergent backup list`)",
            problems=problems, backup_id=backup_id,
        )
    return manifest


# ------------------------------------------------------------------------------ restore
def reopen(ws: Workstation) -> None:
    """Close the workstation's stores and forget its services; the next access rebuilds them."""
    if "memory" in ws.__dict__:
        ws.memory.promote_on_close = False  # STM is restored from the dump, not promoted
    ws.close()
    for name in list(vars(ws)):
        if name not in _KEEP_ON_REOPEN and isinstance(getattr(type(ws), name, None), functools.cached_property):
            del ws.__dict__[name]


def _workdir(ws: Workstation) -> Path:
    """A temporary directory beside the workspace (same filesystem, so moves are renames)."""
    for parent in (ws.path.parent, ws.path):
        try:
            return Path(tempfile.mkdtemp(dir=parent, prefix=f".{ws.path.name}-restore-"))
        except PermissionError:
            continue
    raise BackupError(f"cannot create a temporary directory beside {ws.path}", hint="check permissions")


@contextlib.contextmanager
def _swapper(aside: Path) -> Iterator[list[tuple[Path, Path]]]:
    """Collects (live, aside) moves; puts everything back if the block fails."""
    moved: list[tuple[Path, Path]] = []
    try:
        yield moved
    except BaseException:
        for live, old in reversed(moved):
            if live.exists():
                shutil.rmtree(live) if live.is_dir() else live.unlink()
            if old.exists():
                shutil.move(old, live)
        raise


def _swap(live: Path, new: Path | None, aside: Path, moved: list[tuple[Path, Path]]) -> None:
    if live.exists():
        old = aside / live.name
        shutil.move(live, old)
        moved.append((live, old))
    else:
        moved.append((live, aside / (live.name + ".absent")))
    if new is not None:
        live.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(new, live)


def restore(ws: Workstation, backup_id: str) -> RestoreReport:
    """Replace the workspace's memory with backup ``backup_id`` (verified first, see module doc).

    ``ws`` stays usable: its services are rebuilt on next access, so re-read ``ws.memory`` (an
    object taken from it before the restore refers to closed stores).
    """
    t0 = time.perf_counter()
    info = get(ws, backup_id)
    catalogue = [asdict(b) for b in list_backups(ws)]
    lance_live = _lance_dir(ws)
    sqlite_live = _sqlite_path(ws)
    work = _workdir(ws)
    try:
        manifest = verify(ws, backup_id, _extract_to=work / "x")
        if info.id not in {row["id"] for row in catalogue}:  # an uncatalogued archive: catalogue it now
            catalogue.append(asdict(info))
        staged = work / "x"
        stm_items = _read_stm(staged / "stm.bin") if (staged / "stm.bin").exists() else []
        sql_mode = manifest["sql"]["mode"]
        _check_embedder(ws, manifest)
        if sql_mode == "file" and sqlite_live is None:
            raise BackupError(f"backup {backup_id} holds a SQLite database but this workspace uses {ws.sql.dialect}",
                              hint="restore it into a workspace on SQLite (unset EMERGENT_DATABASE_URL)")
        aside = work / "aside"
        aside.mkdir()
        current_stm = [r for agent in ws.memory.stm.agents() for r in ws.memory.stm.scan(agent)]
        if sql_mode == "jsonl":  # rows are replaced in place: keep the current ones to put back
            _sqldump.dump(ws.sql.engine, aside / "sql")
        reopen(ws)
        try:
            with _swapper(aside) as moved:
                _swap(lance_live, staged / "lance", aside, moved)
                if sql_mode == "file" and sqlite_live is not None:
                    for suffix in ("-wal", "-shm"):
                        _swap(sqlite_live.with_name(sqlite_live.name + suffix), None, aside, moved)
                    _swap(sqlite_live, staged / "sql" / "emergent.db", aside, moved)
                sql_counts = _finish_sql(ws, sql_mode, staged / "sql", catalogue)
                _refill_stm(ws, stm_items)
        except BaseException:
            _put_back(ws, sql_mode, aside / "sql", catalogue, current_stm)
            raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    memory = ws.memory
    return RestoreReport(info.id, memory.ltm.count(), memory.ltm.archive.count_rows(), len(stm_items),
                         {"mode": sql_mode, **sql_counts}, time.perf_counter() - t0)


def _put_back(ws: Workstation, sql_mode: str, sql_dump: Path, catalogue: list[dict[str, Any]],
              stm_items: list[Any]) -> None:
    """After a failed swap (files already moved back): rebuild services on the old data, put back
    SQL rows replaced in place and the short-term items as they were."""
    reopen(ws)
    if sql_mode == "jsonl" and sql_dump.exists():
        _finish_sql(ws, sql_mode, sql_dump, catalogue)
    with contextlib.suppress(Exception):  # best effort: the original error is what matters
        _refill_stm(ws, stm_items)


def embedder_spec(embedder_id: str) -> str:
    """The EMERGENT_EMBEDDER value that builds the embedder whose ``id`` is ``embedder_id``."""
    from emergent.providers.embeddings import MINILM_ID

    if embedder_id == MINILM_ID:
        return "minilm"
    return "hashing" if embedder_id.startswith("hashing-") else embedder_id


def _check_embedder(ws: Workstation, manifest: dict[str, Any]) -> None:
    stored, configured = manifest.get("embedder"), ws.embedder.id
    if stored and stored != configured:
        from emergent.errors import EmbedderMismatchError

        raise EmbedderMismatchError(
            f"backup {manifest['id']} was embedded with {stored!r} but the workstation uses {configured!r}; "
            "nothing was replaced",
            hint=f"open the workstation with EMERGENT_EMBEDDER={embedder_spec(stored)} to restore it, then run "
            "`emergent memory reembed` if you want to switch models",
            stored=stored, configured=configured,
        )


def _finish_sql(ws: Workstation, mode: str, staged: Path, catalogue: list[dict[str, Any]]) -> dict[str, Any]:
    """Reopen SQL (migrating a restored file forward), load JSONL rows, re-insert the catalogue."""
    counts: dict[str, Any] = {}
    if mode == "jsonl":
        counts["tables"] = _sqldump.load(ws.sql.engine, staged, keep={backups_table.name})
    ids = [row["id"] for row in catalogue]
    with ws.sql.begin() as conn:
        if ids:
            conn.execute(backups_table.delete().where(backups_table.c.id.in_(ids)))
            conn.execute(backups_table.insert(), catalogue)
    counts["catalogue"] = len(catalogue)
    return counts


def _refill_stm(ws: Workstation, items: list[Any]) -> None:
    memory = ws.memory
    stm, cfg, now = memory.stm, memory.config, memory.clock.now()
    for agent in stm.agents():
        stm.delete(agent, [r.id for r in stm.scan(agent)])
    for rec in items:
        ttl = decay.time_to_floor(rec.stability, cfg.archive_floor) - max(0.0, now - rec.last_accessed)
        stm.put(rec, max(1.0, min(cfg.stm_ttl_s, ttl)))


def _info_from_file(path: Path) -> BackupInfo:
    """Catalogue data of an uncatalogued archive, from its manifest."""
    manifest = read_manifest(path)
    counts = manifest.get("counts", {})
    return BackupInfo(manifest["id"], float(manifest.get("created_at", 0.0)), str(path), path.stat().st_size,
                      sha256_file(path), int(sum(counts.values())), manifest.get("note"))


# point-in-time recovery lives beside backups; re-exported for ``from emergent.memory import backup``
from emergent.memory.pitr import ltm_versions, restore_ltm_at  # noqa: E402

__all__ = ["BackupInfo", "RestoreReport", "create", "get", "list_backups", "ltm_versions", "reopen", "restore",
           "restore_ltm_at", "verify"]
