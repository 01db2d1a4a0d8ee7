"""Backup and recovery of a workspace: one verified archive per backup.

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

When the workspace encrypts (``WorkspaceStores.cipher``: the ``backup`` purpose's data key), every
member that holds values as the services read them (``stm.bin`` and everything under ``sql/``) is
stored sealed instead, as ``<name>.sealed`` (:func:`_seal_file`: zstd-compressed chunks of 4 MiB,
each AES-GCM sealed and bound to the backup id, the member name, its index and whether it is the
last, so a member moved, reordered or truncated does not open); the manifest lists them under
``sealed``. LanceDB files are copied as they are (their text, meta and sources are sealed already).
A restore opens them with the key ring in force (its ``crypto_keys`` always kept) before anything is
replaced.

Each backup is catalogued in the ``backups`` SQL table with the archive's own sha256.

The functions take what they work on explicitly (:class:`WorkspaceStores`: the workspace's
directory, SQL and LanceDB stores, memory service, auditor, principal directory and clock), never
the Workstation; :meth:`emergent.workstation.Workstation.backup` / ``restore`` pass them.

:func:`restore` checks the archive against the catalogue and every member against the manifest
*while extracting into a temporary directory beside the workspace*; only then does it ask the
caller to release the stores (``release``), move the current data aside, move the restored data
in (moving the old data back if a step fails), get the reopened stores (``reopen``), re-insert the
catalogue as it was before the restore and refill short-term memory.

**A restore never rolls back governance.** The audit chain (``audit_log``) is always the current
one, and the restore is appended to it (``workspace.restore`` before, ``workspace.restored`` after,
by the human who restored, with the backup's id and sha256). The governance state is kept as it is
now too: ``autonomy_state`` (pause, suspensions, thresholds, defaults, isolation),
``autonomy_overrides``, ``policy_rules``, ``principals`` and ``approvals``, so a pause or a
suspension stays in force, and an approval used after the backup was taken stays used. Only
``governance=True`` restores those tables from the backup as well (the audit chain still only grows,
and approvals that were used since stay used). Point-in-time recovery of long-term memory alone is
:meth:`emergent.memory.service.Memory.rewind`.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import shutil
import sqlite3
import struct
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import zstandard

from emergent.autonomy import tables as gov
from emergent.clock import Clock, iso
from emergent.errors import BackupError, IntegrityError, NotFoundError, ValidationError
from emergent.mcp import tables as mcp_tables  # the table module alone: no MCP SDK needed
from emergent.memory import _codec, decay
from emergent.memory.tables import backups as backups_table
from emergent.security import crypto_tables, retention_tables  # the table modules alone
from emergent.security import tables as security_tables
from emergent.workspace import _sqldump, journal
from emergent.workspace._archive import FORMAT, SUFFIX, read_manifest, scan, sha256_file, write_archive
from emergent.workspace.audited import human, note, recorded, verified

_LEN = struct.Struct("<I")
#: what a restore keeps as it is now unless asked to restore governance (the audit chain: always)
# MCP tokens are credentials: a restore must not bring back one revoked after the backup.
GOVERNANCE = (gov.state.name, gov.overrides.name, gov.policy_rules.name, gov.principals.name, gov.approvals.name,
              mcp_tables.mcp_tokens.name, security_tables.api_tokens.name)
#: kept by every restore: the data keys, wrapped by the key-encryption key in force now (a backup's rows
#: may be wrapped by a key rotated away since; keys are never deleted, so the current table holds all)
ALWAYS_KEPT = (crypto_tables.crypto_keys.name,)
AUDIT = gov.audit_log.name
#: the erasure ledger and retention policies are kept as they are now by every restore: an older
#: backup must not bring back the policies of its day, nor forget what was erased since
RETENTION = retention_tables.TABLES


@dataclass
class WorkspaceStores:
    """What a backup reads and a restore replaces, with who records what happened."""

    path: Path  # the workspace directory (archives go to <path>/backups)
    sql: Any  # emergent.stores.sql.SQLStore
    lance: Any  # emergent.stores.lance.LanceStore
    memory: Any  # emergent.memory.service.Memory (STM dump and refill)
    embedder_id: str
    audit: Any  # emergent.audit.Auditor
    principals: Any  # emergent.principals.Principals (checks ``by``)
    clock: Clock
    #: the ``backup`` purpose's emergent.security.crypto.Cipher when the workspace encrypts, else None
    cipher: Any = None


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
    governance: str = "kept"  # kept (as it was before the restore) | restored (from the backup)
    #: memories erased since the backup was taken, removed from it before it went live (restore(repurge=True))
    repurged: dict[str, Any] = field(default_factory=dict)
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# ------------------------------------------------------------------------------ helpers
def _lance_dir(lance: Any) -> Path:
    uri = lance.uri
    if "://" in uri and not uri.startswith("file://"):
        raise BackupError(
            f"backups copy the LanceDB directory, but this workspace's LanceDB is at {uri}",
            hint="back up object storage with its own versioning (point-in-time restore still works: "
            "ws.memory.rewind), or use a local EMERGENT_LANCE_URI",
        )
    return Path(uri.removeprefix("file://"))


def _sqlite_path(sql: Any) -> Path | None:
    url = sql.engine.url
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


def _dump_stm(memory: Any, target: Path) -> int:
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


def _lance_tables(lance: Any) -> dict[str, dict[str, int]]:
    out = {}
    for name in lance.table_names():
        table = lance.db.open_table(name)
        out[name] = {"version": int(table.version), "rows": int(table.count_rows())}
    return out


_DISK_FULL = ("no space left on device", "errno 28", "os error 28", "disk is full", "disk quota exceeded",
              "errno 122", "os error 122")


def _is_disk_full(exc: BaseException) -> bool:
    return getattr(exc, "errno", None) in (28, 122) or any(m in str(exc).lower() for m in _DISK_FULL)


def _manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """What is wrong with the shape of a manifest (a backup's own are always right: these are archives
    made or altered elsewhere); empty when a restore can rely on every field it reads."""
    out = []
    bid, created = manifest.get("id"), manifest.get("created_at", 0.0)
    if not isinstance(bid, str) or not bid:
        out.append(f"manifest.json: id {bid!r} is not a backup id")
    if isinstance(created, bool) or not isinstance(created, int | float) or created != created \
            or created in (float("inf"), float("-inf")):
        out.append(f"manifest.json: created_at {created!r} is not a time")
    counts = manifest.get("counts", {})
    if not isinstance(counts, dict) or any(isinstance(v, bool) or not isinstance(v, int) for v in counts.values()):
        out.append("manifest.json: counts is not a mapping of numbers")
    if not isinstance(manifest.get("note"), str | None):
        out.append("manifest.json: note is not text")
    files = manifest.get("files", {})
    if not isinstance(files, dict) or any(not isinstance(k, str) or not isinstance(v, str) for k, v in files.items()):
        out.append("manifest.json: files is not a mapping of member names to sha256 digests")
        files = {}
    sql = manifest.get("sql")
    if not isinstance(sql, dict) or sql.get("mode") not in ("file", "jsonl"):
        out.append(f"manifest.json: sql {sql!r} does not say how the database was saved")
    sealed = manifest.get("sealed")
    if sealed is not None:
        names = sealed.get("files") if isinstance(sealed, dict) else None
        if not isinstance(names, list) or any(not isinstance(n, str) or n + SEALED_SUFFIX not in files for n in names):
            out.append("manifest.json: sealed names members the archive does not hold")
    return out


def _new_id(now: float) -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)) + "-" + secrets.token_hex(3)


# ------------------------------------------------------------------------------ create
def create(stores: WorkspaceStores, *, by: Any, note: str | None = None) -> BackupInfo:
    """Write a new archive of the workspace and catalogue it; ``by`` (any principal of the
    workspace: the scheduler's daily job too) is recorded in the audit trail."""
    who = verified(stores.principals, by)
    with recorded(stores.audit, "workspace.backup", who, {"note": note}) as outcome:
        try:
            info = _create(stores, note)
        except (OSError, sqlite3.Error) as exc:  # shutil.Error (a copytree's) is an OSError too
            if not _is_disk_full(exc):
                raise
            from emergent.stores.lance import disk_full

            raise disk_full(stores.path / "backups", "writing a backup",
                            committed="no backup was written (nothing partial is listed)") from exc
        outcome.update(backup=info.id, sha256=info.sha256, memories=info.memories, size_bytes=info.size_bytes)
    return info


def _create(stores: WorkspaceStores, note: str | None) -> BackupInfo:
    memory = stores.memory
    memory.flush()
    memory.ltm.open()  # the tables are created on first use: a backup always holds them
    lance_src = _lance_dir(stores.lance)
    created = stores.clock.now()
    bid = _new_id(created)
    target_dir = stores.path / "backups"
    target_dir.mkdir(parents=True, exist_ok=True)
    # Writers hold backups/.lock shared: a staging folder or .part found while nobody holds it is
    # debris of a killed backup (removed on the next open, see emergent.workspace.journal).
    with journal.os_lock(target_dir / journal.BACKUPS_LOCK, shared=True, wait_s=60), \
            tempfile.TemporaryDirectory(dir=target_dir, prefix=journal.STAGING_PREFIX) as tmp:
        stage = Path(tmp)
        tables = _lance_tables(stores.lance)
        _copy_lance(lance_src, stage / "lance")
        sql = _backup_sql(stores.sql, stage / "sql")
        stm_items = _dump_stm(memory, stage / "stm.bin")
        sealed = _seal_stage(stores.cipher, stage, bid) if stores.cipher is not None else []
        files = {p.relative_to(stage).as_posix(): sha256_file(p) for p in sorted(stage.rglob("*")) if p.is_file()}
        meta = stores.lance.get_meta()
        ltm_rows = tables.get("memories", {}).get("rows", 0)
        archive_rows = tables.get("memories_archive", {}).get("rows", 0)
        manifest = {
            "format": FORMAT, "id": bid, "created_at": created, "created": iso(created), "note": note,
            "embedder": meta.get("embedder"), "dim": meta.get("dim"), "workspace": str(stores.path),
            "lance": {"tables": tables}, "sql": sql,
            "counts": {"ltm": ltm_rows, "archive": archive_rows, "stm": stm_items},
            "files": files,
            **({"sealed": {"purpose": stores.cipher.purpose, "format": 1, "files": sealed}} if sealed else {}),
            # the data keys, wrapped by the KEK: the archive and the KEK alone restore a lost database
            **({"keys": stores.cipher.ring.export_keys()} if stores.cipher is not None else {}),
        }
        (stage / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True), "utf-8")
        journal.fault_point("backup:staged")
        archive = target_dir / f"{bid}{SUFFIX}"
        write_archive(stage, ["manifest.json", *files], archive, part_dir=stage,
                      on_part=lambda: journal.fault_point("backup:part"))
        journal.fault_point("backup:archived")
    info = BackupInfo(bid, created, str(archive), archive.stat().st_size, sha256_file(archive),
                      ltm_rows + archive_rows + stm_items, note)
    with stores.sql.begin() as conn:
        conn.execute(backups_table.insert(), [asdict(info)])
    return info


def _backup_sql(sql: Any, target: Path) -> dict[str, Any]:
    target.mkdir(parents=True)
    path = _sqlite_path(sql)
    if path is not None:
        src = sqlite3.connect(path)
        dst = sqlite3.connect(target / "emergent.db")
        try:
            src.backup(dst)
        finally:
            dst.close()
            src.close()
        return {"dialect": "sqlite", "mode": "file"}
    return {"dialect": sql.dialect, "mode": "jsonl", "tables": _sqldump.dump(sql.engine, target)}


# ------------------------------------------------------------------------------ sealed members
SEALED_SUFFIX = ".sealed"
_SEALED_MAGIC = b"EGB\x01"  # emergent backup member, sealed format 1
_SEAL_CHUNK = 4 << 20


def _member_aad(bid: str, name: str, index: int, last: bool) -> bytes:
    return f"backup\0{bid}\0{name}\0{index}\0{int(last)}".encode()


def _seal_file(cipher: Any, src: Path, dst: Path, bid: str, name: str) -> None:
    """``src`` as zstd-compressed, AES-GCM sealed chunks (length-prefixed) in ``dst``."""
    zc = zstandard.ZstdCompressor(level=3)
    with src.open("rb") as fi, dst.open("wb") as fo:
        fo.write(_SEALED_MAGIC)
        index, chunk = 0, fi.read(_SEAL_CHUNK)
        while True:
            following = fi.read(_SEAL_CHUNK) if chunk else b""
            blob = cipher.seal(zc.compress(chunk), _member_aad(bid, name, index, not following))
            fo.write(_LEN.pack(len(blob)) + blob)
            if not following:
                return
            index, chunk = index + 1, following


def _open_file(cipher: Any, src: Path, dst: Path, bid: str, name: str) -> None:
    """The inverse of :func:`_seal_file`; an altered, moved, reordered or truncated member raises
    :class:`IntegrityError` (nothing is written under ``dst`` then)."""
    zd = zstandard.ZstdDecompressor()
    part = dst.with_name(dst.name + ".part")
    try:
        with src.open("rb") as fi, part.open("wb") as fo:
            if fi.read(len(_SEALED_MAGIC)) != _SEALED_MAGIC:
                raise IntegrityError(f"backup {bid}: {name}{SEALED_SUFFIX} is not a sealed backup member",
                                     hint="use another backup (`emergent backup list`)")
            index, head = 0, fi.read(_LEN.size)
            while head:
                (n,) = _LEN.unpack(head) if len(head) == _LEN.size else (-1,)
                blob = fi.read(n) if n >= 0 else b""
                if n < 0 or len(blob) != n:
                    raise IntegrityError(f"backup {bid}: {name}{SEALED_SUFFIX} is truncated",
                                         hint="use another backup (`emergent backup list`)")
                head = fi.read(_LEN.size)
                fo.write(zd.decompress(cipher.open(blob, _member_aad(bid, name, index, not head))))
                index += 1
            if index == 0:
                raise IntegrityError(f"backup {bid}: {name}{SEALED_SUFFIX} is empty",
                                     hint="use another backup (`emergent backup list`)")
        part.replace(dst)
    finally:
        part.unlink(missing_ok=True)


def _seal_stage(cipher: Any, stage: Path, bid: str) -> list[str]:
    """Replace ``stm.bin`` and every file under ``sql/`` by its sealed form; returns their names."""
    plain = [stage / "stm.bin", *sorted(p for p in (stage / "sql").rglob("*") if p.is_file())]
    names = []
    for path in plain:
        name = path.relative_to(stage).as_posix()
        _seal_file(cipher, path, path.with_name(path.name + SEALED_SUFFIX), bid, name)
        path.unlink()
        names.append(name)
    return names


def _open_stage(cipher: Any, staged: Path, manifest: dict[str, Any]) -> int:
    """Open the sealed members of an extracted backup into their plain names (a restore's first step),
    after adding to the key ring the backup's data keys it lacks (wrapped by the KEK in force; the
    ``crypto_keys`` table is kept by every restore, so they stay). Returns how many keys were added."""
    adopted = cipher.ring.adopt(manifest.get("keys") or []) if cipher is not None else 0
    sealed = manifest.get("sealed")
    if not sealed:
        return adopted
    if cipher is None:
        raise BackupError(f"backup {manifest.get('id')} is sealed ({len(sealed.get('files', []))} encrypted "
                          "members) but this workspace does not encrypt; nothing was replaced",
                          hint="open the workspace with EMERGENT_SECURITY__ENCRYPT=true and the KEK it was "
                               "sealed under (EMERGENT_SECURITY__KEK or EMERGENT_SECURITY__KEK_FILE)",
                          backup=manifest.get("id"))
    for name in sealed.get("files", []):
        src = staged / (name + SEALED_SUFFIX)
        try:
            _open_file(cipher, src, staged / name, str(manifest["id"]), name)
        except NotFoundError as exc:  # its data key is neither in the ring nor adoptable under this KEK
            fps = sorted({k.get("kek_fp") for k in manifest.get("keys") or []} - {None})
            raise BackupError(f"backup {manifest.get('id')} was sealed under a data key this workspace's key ring "
                              f"does not hold (the backup's keys are wrapped by the KEK {', '.join(fps) or '?'}, "
                              f"this one is {cipher.ring.kek_fingerprint}); nothing was replaced",
                              hint="open the workspace with the KEK the backup was sealed under "
                                   "(EMERGENT_SECURITY__KEK or EMERGENT_SECURITY__KEK_FILE)",
                              backup=manifest.get("id")) from exc
        src.unlink()
    return adopted


# ------------------------------------------------------------------------------ catalogue
def list_backups(path: Path, sql: Any, *, uncatalogued: bool = True) -> list[BackupInfo]:
    """Catalogued backups, plus archives in ``<path>/backups`` the catalogue lacks; newest first."""
    with sql.connect() as conn:
        rows = conn.execute(sa.select(backups_table)).mappings()
        found = [BackupInfo(**dict(r)) for r in rows]
    folder = Path(path) / "backups"
    if uncatalogued and folder.is_dir():
        known = {Path(b.path).name for b in found}
        for archive in sorted(folder.glob(f"*{SUFFIX}")):
            if archive.name not in known:
                with contextlib.suppress(IntegrityError):
                    found.append(_info_from_file(archive))
    return sorted(found, key=lambda b: -b.created_at)


def list_archives(path: Path) -> list[BackupInfo]:
    """The archives in ``<path>/backups`` read from their manifests, newest first (no database
    needed: what ``emergent backup list`` shows when the workspace's database is lost)."""
    found = []
    for archive in sorted((Path(path) / "backups").glob(f"*{SUFFIX}")):
        with contextlib.suppress(IntegrityError):
            found.append(_info_from_file(archive))
    return sorted(found, key=lambda b: -b.created_at)


def get(path: Path, sql: Any, backup_id: str) -> BackupInfo:
    """The catalogued backup ``backup_id``; else an archive of that name under ``<path>/backups``
    or at that path (a lost database, an archive copied from elsewhere), read from its manifest."""
    if not isinstance(backup_id, str) or not backup_id:
        raise ValidationError(f"backup id must be a non-empty string, got {backup_id!r}", field="backup_id")
    with sql.connect() as conn:
        row = conn.execute(sa.select(backups_table).where(backups_table.c.id == backup_id)).mappings().first()
    if row is not None:
        return BackupInfo(**dict(row))
    for candidate in (Path(path) / "backups" / f"{backup_id}{SUFFIX}", Path(backup_id)):
        if candidate.name.endswith(SUFFIX) and candidate.is_file():
            return _info_from_file(candidate)
    known = [b.id for b in list_backups(path, sql, uncatalogued=False)[:5]]
    raise NotFoundError(f"no backup {backup_id!r} in the catalogue or the backups directory of {path}",
                        hint="list them with `emergent backup list`" + (f" (newest: {', '.join(known)})" if known else ""))


# ------------------------------------------------------------------------------ verify
def check(path: Path, sql: Any, backup_id: str, *, _extract_to: Path | None = None) -> dict[str, Any]:
    """Recompute every checksum; returns the manifest, raises :class:`IntegrityError` on any mismatch."""
    info = get(path, sql, backup_id)
    archive = Path(info.path)
    if not archive.exists():
        raise IntegrityError(f"backup {backup_id}: archive {archive} is missing",
                             hint="restore the file from wherever backups are copied, or take a new backup")
    try:
        manifest, problems, digest = scan(archive, _extract_to)
    except (AttributeError, TypeError) as exc:  # a manifest whose ``files`` is not a mapping
        raise IntegrityError(f"backup {backup_id} failed verification: manifest.json is malformed ({exc})",
                             hint="do not restore from it; use another backup (`emergent backup list`)",
                             problems=[f"manifest.json is malformed ({exc})"], backup_id=backup_id) from None
    if problems and _extract_to is not None:  # extracting may have failed, not the archive: look again
        _again, clean, clean_digest = scan(archive, None)
        if not clean and clean_digest == info.sha256:
            extracting = f"extracting backup {info.id} beside the workspace for the restore"
            if any(_is_disk_full(OSError(p)) for p in problems):
                from emergent.stores.lance import disk_full

                raise disk_full(_extract_to, extracting,
                                committed="nothing was replaced; the backup itself is intact (it verifies)")
            raise BackupError(f"{extracting} failed: " + "; ".join(problems[:3]),
                              hint="the backup itself is intact (it verifies); check the filesystem beside the "
                                   "workspace (`emergent doctor`), then retry", problems=problems)
    if manifest:
        problems += _manifest_problems(manifest)
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


def verify(stores: WorkspaceStores, backup_id: str, *, by: Any) -> dict[str, Any]:
    """:func:`check`, recorded in the audit trail (who verified which backup, and the result)."""
    who = verified(stores.principals, by)
    try:
        manifest = check(stores.path, stores.sql, backup_id)
    except IntegrityError as exc:
        note(stores.audit, "workspace.verify", who, {"backup": backup_id, "ok": False,
                                                     "problems": list(getattr(exc, "problems", []))[:20]})
        raise
    note(stores.audit, "workspace.verify", who, {"backup": backup_id, "ok": True, "counts": manifest.get("counts")})
    return manifest


# ------------------------------------------------------------------------------ restore
def _workdir(path: Path) -> Path:
    """A temporary directory on the workspace's filesystem (so every swap is an atomic rename):
    beside the workspace when its parent is on the same filesystem, else inside it."""
    prefix = f".{path.name}-restore-"
    candidates = [path.parent, path]
    try:
        if path.parent.stat().st_dev != path.stat().st_dev:
            candidates = [path]
    except OSError:
        candidates = [path]
    for parent in candidates:
        try:
            return Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
        except PermissionError:
            continue
    raise BackupError(f"cannot create a temporary directory beside {path}", hint="check permissions")


@dataclass
class _Kept:
    """Governance facts read before the swap: what must not go back in time whatever is restored."""

    consumed: list[dict[str, Any]]
    version: int


def _read_kept(sql: Any) -> _Kept:
    a = gov.approvals
    with sql.connect() as conn:
        consumed = [dict(r._mapping) for r in conn.execute(
            sa.select(a.c.id, a.c.consumed_at, a.c.consumed_by).where(a.c.status == "consumed"))]
        v = conn.execute(sa.select(gov.state.c.value).where(gov.state.c.key == "version")).scalar()
    return _Kept(consumed, int(json.loads(v)) if v else 0)


def restore(stores: WorkspaceStores, backup_id: str, *, by: Any, release: Callable[[], None],
            reopen: Callable[[], WorkspaceStores], governance: bool = False, repurge: bool = False) -> RestoreReport:
    """Replace the workspace's data with backup ``backup_id`` (verified first, see the module doc).

    ``by`` must be a human. ``release()`` closes whatever holds the stores' files (the caller's
    services); ``reopen()`` returns the stores opened again on the restored files. The audit chain
    and, unless ``governance=True``, the governance state are kept as they are now.

    A backup that may hold memories erased since it was taken (emergent.security.retention marks
    it) is refused unless ``repurge=True``: the erased memories are then removed from the extracted
    backup (rows, the files that held them, every older table version, short-term items) before it
    replaces anything, and checked gone (erased again if not) before the restore reports done.

    The swap is journaled (:mod:`emergent.workspace.journal`): a failure before the restored
    database is finished puts everything back; a crash or kill at any point is rolled back or
    completed when the workspace is next opened (or by ``emergent doctor --repair``).
    """
    t0 = time.perf_counter()
    who = human(stores.principals, by, "restore a backup")
    info = get(stores.path, stores.sql, backup_id)
    from emergent.security import retention

    blockers = retention.restore_blockers(stores.sql, info.id, info.created_at)
    if blockers and not repurge:
        note(stores.audit, "workspace.restore_refused", who, {"backup": info.id, "erasures": blockers})
        raise BackupError(f"backup {info.id} may hold memories erased since it was taken ({len(blockers)} "
                          "erasure(s)); it is not restored as it is",
                          hint="restore it with repurge=True (`emergent backup restore ID --repurge`): the erased "
                          "memories are removed from it before it goes live", backup=info.id, erasures=blockers)
    purge_ids = retention.erased_ids(stores.sql, blockers) if blockers else []
    lock = stores.path / journal.RESTORE_LOCK
    with journal.os_lock(lock) as locked:
        if not locked:
            if not lock.exists():
                raise BackupError(f"cannot create the restore lock {lock} (read-only or full disk?)",
                                  hint="check the workspace's filesystem (`emergent doctor`)", path=str(lock))
            raise BackupError(f"another restore of {stores.path} is running (process {lock.read_text().strip() or '?'})",
                              hint="wait for it to finish", path=str(stores.path))
        if (stores.path / journal.JOURNAL).exists():
            raise BackupError(f"an interrupted restore of {stores.path} has not been recovered",
                              hint="run `emergent doctor --repair` (or open the workspace again) first")
        intent = {"backup": info.id, "sha256": info.sha256, "governance": "restored" if governance else "kept",
                  **({"repurge": {"erasures": blockers, "ids": len(purge_ids)}} if blockers else {})}
        stores.audit.append("workspace.restore", who, {**intent, "phase": "intent"}, durable=True)
        try:
            report, fresh, rj = _restore(stores, backup_id, info, governance, release, reopen, who.key, purge_ids)
            if purge_ids:
                report.repurged["left_after"] = _check_repurged(fresh, purge_ids, who)
        except BaseException as exc:
            with contextlib.suppress(Exception):  # the restore's own error is the one to report
                current = reopen()
                current.audit.append("workspace.restore", who, {**intent, "phase": "failed",
                                                                "error": f"{type(exc).__name__}: {str(exc)[:500]}"},
                                     durable=True)
            raise
        report.duration_s = time.perf_counter() - t0
        fresh.audit.append("workspace.restored", who, {**intent, "phase": "done", "ltm_rows": report.ltm_rows,
                                                       "stm_items": report.stm_items, "sql": report.sql,
                                                       "repurged": report.repurged,
                                                       "warnings": report.warnings}, durable=True)
        rj.mark("done")
        rj.finish()
    return report


def _restore(stores: WorkspaceStores, backup_id: str, info: BackupInfo, governance: bool,
             release: Callable[[], None], reopen: Callable[[], WorkspaceStores],
             by: str, purge_ids: list[str]) -> tuple[RestoreReport, WorkspaceStores, journal.RestoreJournal]:
    catalogue = [asdict(b) for b in list_backups(stores.path, stores.sql)]
    lance_live = _lance_dir(stores.lance)
    sqlite_live = _sqlite_path(stores.sql)
    work = _workdir(stores.path)
    rj = journal.RestoreJournal(stores.path)
    begun = False
    try:
        manifest = check(stores.path, stores.sql, backup_id, _extract_to=work / "x")
        if info.id not in {row["id"] for row in catalogue}:  # an uncatalogued archive: catalogue it now
            catalogue.append(asdict(info))
        staged = work / "x"
        keys_added = _open_stage(stores.cipher, staged, manifest)
        stm_items = _read_stm(staged / "stm.bin") if (staged / "stm.bin").exists() else []
        repurged: dict[str, Any] = {}
        if purge_ids:  # erased since the backup: removed from it before it replaces anything
            from emergent.security.retention import repurge_staged

            repurged = repurge_staged(staged / "lance", purge_ids)
            gone = set(purge_ids)
            repurged["stm"] = sum(1 for r in stm_items if r.id in gone)
            stm_items = [r for r in stm_items if r.id not in gone]
        sql_mode = manifest["sql"]["mode"]
        _check_embedder(stores.embedder_id, manifest)
        if sql_mode == "file" and sqlite_live is None:
            raise BackupError(f"backup {info.id} holds a SQLite database but this workspace uses "
                              f"{stores.sql.dialect}",
                              hint="restore it into a workspace on SQLite (unset EMERGENT_DATABASE_URL)")
        aside = work / "aside"  # only stores moved out of the workspace go here
        aside.mkdir()
        kept = _read_kept(stores.sql)
        if sql_mode == "jsonl":  # rows are replaced in place: keep the current ones to put back
            _sqldump.dump(stores.sql.engine, work / "sql-before")
        release()  # the services close; the audit trail flushes what it buffered into the current chain
        rj.begin(backup=info.id, sha256=info.sha256, work=str(work), sql_mode=sql_mode,
                 governance="restored" if governance else "kept", by=by)
        begun = True
        try:
            rj.swap("lance", [lance_live], staged / "lance", aside)
            if sql_mode == "file" and sqlite_live is not None:
                rj.swap("sqlite", [sqlite_live.with_name(sqlite_live.name + "-wal"),
                                   sqlite_live.with_name(sqlite_live.name + "-shm"), sqlite_live],
                        staged / "sql" / "emergent.db", aside)
            rj.mark("swapped")
            fresh = reopen()
            if sql_mode == "jsonl":
                rj.mark("sql_loading")
            sql_counts = _finish_sql(fresh.sql, sql_mode, staged / "sql", catalogue,
                                     kept_db=aside / sqlite_live.name if sqlite_live is not None else None,
                                     governance=governance, kept=kept)
            journal.fault_point("restore:sql")
            rj.mark("committed")
        except BaseException:
            _roll_back(stores.path, release, reopen, sql_mode, work / "sql-before", catalogue)
            rj.finish()
            raise
        warnings_: list[str] = []
        try:
            _refill_stm(fresh.memory, stm_items)
        except Exception as exc:  # noqa: BLE001 - the restore stands; say what is missing
            warnings_.append(f"short-term memory could not be refilled ({type(exc).__name__}: {exc}); its "
                             f"{len(stm_items)} items are in the backup archive")
        rj.mark("stm")
    except BaseException:
        rj.close()
        if not begun:
            shutil.rmtree(work, ignore_errors=True)
        raise
    memory = fresh.memory
    report = RestoreReport(info.id, memory.ltm.count(), memory.ltm.archive.count_rows(), len(stm_items),
                           {"mode": sql_mode, **sql_counts, "keys_added": keys_added}, governance="restored" if governance else "kept",
                           warnings=warnings_, repurged=repurged)
    return report, fresh, rj


def _roll_back(path: Path, release: Callable[[], None], reopen: Callable[[], WorkspaceStores], sql_mode: str,
               sql_dump: Path, catalogue: list[dict[str, Any]]) -> None:
    """After a failure before the restored database was finished: close what is open on the
    restored files, move every store back (the journal says what moved), and for a database
    restored in place (not SQLite) put back the rows dumped before. If this fails too, the journal
    stays and the next open finishes the rollback."""
    with contextlib.suppress(Exception):
        release()
    state = journal.read_journal(path)
    if state is not None:
        journal.rollback_files(state)
    current = reopen()
    if sql_mode == "jsonl" and sql_dump.exists():
        _finish_sql(current.sql, sql_mode, sql_dump, catalogue, kept_db=None, governance=True, kept=None)


def _check_repurged(fresh: WorkspaceStores, ids: list[str], who: Any) -> int:
    """After a re-purged restore: the indexes dropped with the erased rows are built again, and no
    erased id may be left (any found is erased again through memory). Returns how many were left."""
    memory = fresh.memory
    memory.ltm.maintain(force=True)
    left = sorted({f["id"] for f in memory.locate(ids=ids)})
    if left:
        memory.erase(left, principal=who)
    return len(left)


def _check_embedder(configured: str, manifest: dict[str, Any]) -> None:
    stored = manifest.get("embedder")
    if stored and stored != configured:
        from emergent.errors import EmbedderMismatchError
        from emergent.providers.embeddings import embedder_spec as spec_of

        raise EmbedderMismatchError(
            f"backup {manifest['id']} was embedded with {stored!r} but the workstation uses {configured!r}; "
            "nothing was replaced",
            hint=f"open the workstation with EMERGENT_EMBEDDER={spec_of(stored)} to restore it, then run "
            "`emergent memory reembed` if you want to switch models",
            stored=stored, configured=configured,
        )


def _finish_sql(sql: Any, mode: str, staged: Path, catalogue: list[dict[str, Any]], *, kept_db: Path | None,
                governance: bool, kept: _Kept | None) -> dict[str, Any]:
    """Load JSONL rows (or, for a restored SQLite file, copy back the kept governance tables from
    the database moved aside), re-insert the catalogue, keep used approvals used."""
    counts: dict[str, Any] = {}
    keep = {AUDIT, *ALWAYS_KEPT, *RETENTION} | (set() if governance else set(GOVERNANCE))
    if mode == "jsonl":
        counts["tables"] = _sqldump.load(sql.engine, staged, keep={backups_table.name} | keep)
    elif kept_db is not None:
        _copy_tables(sql, kept_db, sorted(keep))
    ids = [row["id"] for row in catalogue]
    with sql.begin() as conn:
        if ids:
            conn.execute(backups_table.delete().where(backups_table.c.id.in_(ids)))
            conn.execute(backups_table.insert(), catalogue)
        if governance and kept is not None:
            _carry_forward(conn, kept)
    counts["catalogue"] = len(catalogue)
    counts["kept"] = sorted(keep)
    return counts


def _copy_tables(sql: Any, source: Path, names: list[str]) -> None:
    """Replace the rows of ``names`` with those of the SQLite file ``source`` (one transaction)."""
    from emergent.stores.sql import metadata

    with sql.engine.connect() as conn:
        conn.exec_driver_sql("ATTACH DATABASE ? AS kept", (str(source),))
        try:
            for name in names:
                present = {r[1] for r in conn.exec_driver_sql(f"PRAGMA kept.table_info({name})")}
                cols = ", ".join(c.name for c in metadata.tables[name].columns if c.name in present)
                conn.exec_driver_sql(f"DELETE FROM main.{name}")
                if cols:
                    conn.exec_driver_sql(f"INSERT INTO main.{name} ({cols}) SELECT {cols} FROM kept.{name}")
            conn.commit()
        finally:
            conn.rollback()
            conn.exec_driver_sql("DETACH DATABASE kept")


def _carry_forward(conn: Any, kept: _Kept) -> None:
    """After restoring governance from a backup: an approval used since stays used, and every
    process re-reads the restored policy (its version moves past the current one)."""
    a = gov.approvals
    for row in kept.consumed:
        conn.execute(a.update().where(a.c.id == row["id"]).values(status="consumed", consumed_at=row["consumed_at"],
                                                                  consumed_by=row["consumed_by"]))
    conn.execute(gov.state.delete().where(gov.state.c.key == "version"))
    conn.execute(gov.state.insert(), {"key": "version", "value": json.dumps(kept.version + 1)})


def _refill_stm(memory: Any, items: list[Any]) -> None:
    stm, cfg, now = memory.stm, memory.config, memory.clock.now()
    for agent in stm.agents():
        stm.delete(agent, [r.id for r in stm.scan(agent)])
    for rec in items:
        ttl = decay.time_to_floor(rec.stability, cfg.archive_floor) - max(0.0, now - rec.last_accessed)
        stm.put(rec, max(1.0, min(cfg.stm_ttl_s, ttl)))


def _info_from_file(path: Path) -> BackupInfo:
    """Catalogue data of an uncatalogued archive, from its manifest."""
    manifest = read_manifest(path)
    head = [p for p in _manifest_problems(manifest) if not p.startswith(("manifest.json: files", "manifest.json: sql",
                                                                           "manifest.json: sealed"))]
    if head:
        raise IntegrityError(f"{path} is not a backup archive: " + "; ".join(head),
                             hint="use another backup (`emergent backup list`)", problems=head)
    counts = manifest.get("counts", {})
    return BackupInfo(manifest["id"], float(manifest.get("created_at", 0.0)), str(path), path.stat().st_size,
                      sha256_file(path), int(sum(counts.values())), manifest.get("note"))


__all__ = ["GOVERNANCE", "BackupInfo", "RestoreReport", "WorkspaceStores", "check", "create", "get",
           "list_archives", "list_backups", "restore", "verify"]
