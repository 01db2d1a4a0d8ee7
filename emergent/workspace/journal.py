"""The restore journal, recovery of an interrupted restore, and debris of killed backups.

A restore swaps whole stores: the LanceDB directory, then the SQLite database (with its ``-wal``
and ``-shm``). Each swap is a pair of renames on one filesystem (the live store into the restore's
work directory, the restored one into place). Before each rename the journal
``<workspace>/.restore-journal`` gets a line saying what is about to move (write-ahead, fsync'd),
and the directories are fsync'd after it, so after a crash or ``kill -9`` at any point the journal
and the files say exactly where everything is. Renames are atomic, so a store is either still in
place or already aside, never half-moved.

The journal's records, in order: ``begin`` (backup, work directory, who), ``unit`` (a store to
swap: its live paths and which exist), ``aside``/``in`` (a rename about to happen), ``swapped``
(every rename done), ``committed`` (the SQL database finished: the current audit chain and
governance copied into it, the catalogue re-inserted), ``stm`` (short-term memory refilled),
``done`` (``workspace.restored`` in the audit trail).

**Recovery** (:func:`recover`, run when a workspace is opened and by ``emergent doctor --repair``):

* a restore that did not reach ``committed`` is **rolled back**: every store moved aside goes back
  (a restored store already moved in goes back to the work directory first, with the ``-wal``/
  ``-shm`` it grew, so SQLite never applies one database's log to another);
* a restore past ``committed`` is **completed**: short-term memory refilled from the backup, the
  audit entry written;

either way a ``workspace.restore`` entry (``phase: recovered``, ``outcome: rolled back|completed``)
goes into the audit trail, a :class:`RestoreRecovered` warning is issued, the report is returned,
and the work directory is removed. A restore still running in another process holds
``<workspace>/.restore.lock`` (an OS lock, released when its process dies), and is left alone.

**Debris** (:func:`find_debris`, :func:`clean_debris`): what a killed backup leaves
(``backups/.staging-*`` with its ``.part`` archive, or an older version's ``backups/*.part``) is
ours by its name and abandoned when no backup is being written (``backups/.lock``: writers hold it
shared); it is removed on the next open. A restore work directory (``.<workspace>-restore-*``) is
removed when no restore runs and either the journal names it as finished, or it holds no data moved
aside (only the extracted backup, a copy). A work directory that holds data moved aside without a
journal (left by an older version) may be the only copy of the pre-restore data: it is never
removed, only reported (by ``emergent doctor``) with what to do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import time
import warnings
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emergent.errors import BackupError

log = logging.getLogger("emergent.workspace")

JOURNAL = ".restore-journal"
RESTORE_LOCK = ".restore.lock"
BACKUPS_LOCK = ".lock"
STAGING_PREFIX = ".staging-"
#: the environment variable that makes a process SIGKILL itself at a named step (fault-injection tests)
#: fault injection for tests: a child process sets this to a step name and is SIGKILLed there
#: (a module attribute the test sets in its own child, never read from the environment)
KILL_AT: str | None = None

#: the steps of a restore on SQLite, in order (the names ``KILL_AT = "restore:<step>"`` takes)
RESTORE_STEPS = (
    "begin",
    "lance:aside", "lance:aside:done", "lance:in", "lance:in:done",
    "sqlite:aside:0", "sqlite:aside:0:done", "sqlite:aside:1", "sqlite:aside:1:done",
    "sqlite:aside:2", "sqlite:aside:2:done", "sqlite:in", "sqlite:in:done",
    "swapped", "sql", "committed", "stm", "done", "cleaned",
)
#: the steps of a backup
BACKUP_STEPS = ("staged", "part", "archived")

_inspect_only: ContextVar[bool] = ContextVar("emergent_journal_inspect_only", default=False)


class RestoreRecovered(UserWarning):
    """An interrupted restore was rolled back or completed when the workspace was opened."""


def fault_point(name: str) -> None:
    """SIGKILL this process at step ``name`` when :data:`KILL_AT` names it (tests only)."""
    if KILL_AT is not None and name == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------------------ file helpers
def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _rename(src: Path, dst: Path) -> None:
    """Atomic rename (same filesystem), made durable."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    os.rename(src, dst)
    _fsync_dir(dst.parent)
    if src.parent != dst.parent:
        _fsync_dir(src.parent)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def os_lock(path: Path, *, shared: bool = False, wait_s: float = 0.0) -> Iterator[bool]:
    """An advisory OS lock on ``path`` (flock; released when the process dies). Yields whether it
    was taken (within ``wait_s``); without ``fcntl`` (Windows) it always is."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux/macOS
        yield True
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError:  # a read-only or full disk: nothing proves the lock is free
        yield False
        return
    try:
        mode = (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, mode)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        if not shared:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
                os.write(fd, str(os.getpid()).encode())
        try:
            yield True
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock_holder(path: Path) -> str:
    try:
        return path.read_text().strip() or "?"
    except OSError:
        return "?"


# ------------------------------------------------------------------------------ the journal
@dataclass
class Unit:
    """A store swapped as one: ``live`` paths (moved aside in this order), then ``new`` moved in to ``live[-1]``."""

    name: str
    live: list[str]
    present: list[bool]
    aside: str
    new: str | None

    def aside_path(self, i: int) -> Path:
        return Path(self.aside) / Path(self.live[i]).name


@dataclass
class JournalState:
    """What a journal file says happened."""

    begin: dict[str, Any]
    units: list[Unit] = field(default_factory=list)
    marks: set[str] = field(default_factory=set)

    @property
    def work(self) -> Path:
        return Path(self.begin["work"])

    @property
    def step(self) -> str:
        for mark in ("done", "stm", "committed", "swapped"):
            if mark in self.marks:
                return mark
        return "swapping" if self.units else "begin"


def read_journal(path: Path) -> JournalState | None:
    """The journal of the workspace at ``path`` (None when there is none). A torn last line (the
    process died while writing it) is ignored: what it announced had not started."""
    try:
        lines = (path / JOURNAL).read_text("utf-8").splitlines()
    except FileNotFoundError:
        return None
    state: JournalState | None = None
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        op = rec.get("op")
        if op == "begin":
            state = JournalState(rec)
        elif state is None:
            continue
        elif op == "unit":
            state.units.append(Unit(rec["name"], rec["live"], rec["present"], rec["aside"], rec.get("new")))
        else:
            state.marks.add(str(op))
    return state


class RestoreJournal:
    """The write-ahead journal of one restore (see the module docstring)."""

    def __init__(self, workspace: Path) -> None:
        self.workspace = workspace
        self.path = workspace / JOURNAL
        self._fh: Any = None

    def _write(self, record: dict[str, Any]) -> None:
        if self._fh is None:
            self._fh = self.path.open("a", encoding="utf-8")
        self._fh.write(json.dumps(record, sort_keys=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def begin(self, **info: Any) -> None:
        if self.path.exists():
            raise BackupError(f"{self.path} exists: an interrupted restore has not been recovered",
                              hint="run `emergent doctor --repair` (or reopen the workspace) first")
        self._write({"op": "begin", "at": time.time(), "pid": os.getpid(), **info})
        _fsync_dir(self.workspace)
        fault_point("restore:begin")

    def mark(self, op: str) -> None:
        self._write({"op": op, "at": time.time()})
        fault_point(f"restore:{op}")

    def swap(self, name: str, live: list[Path], new: Path | None, aside: Path) -> Unit:
        """Move ``live`` (in order) into ``aside``, then ``new`` to ``live[-1]``; each rename journaled first."""
        unit = Unit(name, [str(p) for p in live], [p.exists() or p.is_symlink() for p in live], str(aside),
                    None if new is None else str(new))
        self._write({"op": "unit", **asdict(unit)})
        for i, p in enumerate(live):
            kill = f"restore:{name}:aside" if len(live) == 1 else f"restore:{name}:aside:{i}"
            self._write({"op": "aside", "unit": name, "i": i})
            fault_point(kill)
            if unit.present[i]:
                _rename(p, unit.aside_path(i))
            fault_point(f"{kill}:done")
        if new is not None:
            self._write({"op": "in", "unit": name})
            fault_point(f"restore:{name}:in")
            _rename(new, live[-1])
            fault_point(f"restore:{name}:in:done")
        return unit

    def finish(self) -> None:
        """After ``done``: remove the work directory, then the journal (in that order: a journal
        saying ``done`` proves a leftover work directory is finished)."""
        state = read_journal(self.workspace)
        self.close()
        if state is not None:
            _remove(state.work)
            fault_point("restore:cleaned")
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.workspace)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def rollback_files(state: JournalState) -> list[str]:
    """Put every store a restore moved aside back in place; returns what was done (for the report).

    A live path whose original is aside holds the restored store (or the ``-wal``/``-shm`` a reopened
    restored database grew): it goes to ``<work>/rolled-back/`` first, never over the original."""
    done: list[str] = []
    stray = state.work / "rolled-back"
    for unit in reversed(state.units):
        moved = [unit.aside_path(i).exists() or unit.aside_path(i).is_symlink() for i in range(len(unit.live))]
        took_over = moved[-1]  # the store's main file/directory went aside: whatever is live now is foreign
        live_paths = [Path(p) for p in unit.live]
        if took_over:
            for i, live in enumerate(live_paths):
                if (live.exists() or live.is_symlink()) and (moved[i] or not unit.present[i]):
                    target = stray / unit.name / live.name
                    if i == len(live_paths) - 1 and unit.new is not None and not Path(unit.new).exists():
                        target = Path(unit.new)
                    _rename(live, target)
        for i in reversed(range(len(live_paths))):
            if not moved[i]:
                continue
            live = live_paths[i]
            if live.exists() or live.is_symlink():  # recreated meanwhile (e.g. an empty lance/ by a reader)
                _rename(live, stray / unit.name / f"{live.name}.recreated")
            _rename(unit.aside_path(i), live)
            done.append(f"{live} put back")
    return done


# ------------------------------------------------------------------------------ recovery
@dataclass
class RecoveryReport:
    """What opening the workspace did about an interrupted restore and debris."""

    outcome: str = "none"  # none | rolled back | completed | in progress
    backup: str | None = None
    interrupted_at: str | None = None
    by: str | None = None
    actions: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    kept: list[dict[str, str]] = field(default_factory=list)  # debris we may not remove, with what to do

    @property
    def recovered(self) -> bool:
        return self.outcome in ("rolled back", "completed")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.outcome == "rolled back":
            return (f"an interrupted restore of backup {self.backup} (stopped at {self.interrupted_at!r}) was rolled "
                    "back: the workspace is as it was before that restore")
        if self.outcome == "completed":
            return (f"an interrupted restore of backup {self.backup} (stopped at {self.interrupted_at!r}) was "
                    "completed: the workspace holds that backup")
        return "no interrupted restore"


@contextlib.contextmanager
def inspect_only() -> Iterator[None]:
    """Within the block, opening a workspace neither recovers nor cleans (``emergent doctor`` looks first)."""
    token = _inspect_only.set(True)
    try:
        yield
    finally:
        _inspect_only.reset(token)


def on_open(path: Path, stores: Callable[[], Any]) -> RecoveryReport | None:
    """What ``Workstation.open`` runs first: recover an interrupted restore, clean finished debris.

    Cheap when there is nothing to do (a few ``stat`` calls). ``stores()`` gives the workspace's
    stores (:class:`emergent.workspace.backup.WorkspaceStores`), built only when a restore is recovered.
    """
    if _inspect_only.get() or not path.is_dir():
        return None
    report: RecoveryReport | None = None
    if (path / JOURNAL).exists():
        report = recover(path, stores)
    if _has_debris(path):
        report = report or RecoveryReport()
        clean_debris(path, report)
        if report.cleaned:
            log.info("removed what killed backups/restores left in %s: %s", path, ", ".join(report.cleaned))
        for item in report.kept:
            log.warning("%s: %s", item["path"], item["why"])
    return report


def recover(path: Path, stores: Callable[[], Any], *, wait_s: float = 30.0) -> RecoveryReport:
    """Roll back or complete an interrupted restore of the workspace at ``path`` (see the module doc)."""
    report = RecoveryReport()
    with os_lock(path / RESTORE_LOCK, wait_s=wait_s) as locked:
        if not locked:
            raise BackupError(
                f"a restore of {path} is running in process {_lock_holder(path / RESTORE_LOCK)}",
                hint="wait for it to finish and open the workspace again", path=str(path))
        state = read_journal(path)
        if state is None:
            (path / JOURNAL).unlink(missing_ok=True)  # begun but not even its first line written
            return report
        report.backup = state.begin.get("backup")
        report.by = state.begin.get("by")
        report.interrupted_at = state.step
        if "done" in state.marks:
            report.outcome = "completed"
            report.actions.append("the restore had finished; its work directory was removed")
        elif "committed" in state.marks:
            report.outcome = "completed"
            report.actions += _complete(state, stores)
        else:
            report.outcome = "rolled back"
            report.actions += rollback_files(state)
            report.actions += _rollback_sql(state, stores)
        if "done" not in state.marks:
            _record(state, report, stores)
        journal = RestoreJournal(path)
        journal.finish()
    warnings.warn(f"{path}: {report.summary()}", RestoreRecovered, stacklevel=3)
    log.warning("%s: %s", path, report.summary())
    return report


def _complete(state: JournalState, stores: Callable[[], Any]) -> list[str]:
    from emergent.workspace import backup

    actions = []
    if "stm" not in state.marks:
        items_file = state.work / "x" / "stm.bin"
        items = backup._read_stm(items_file) if items_file.exists() else []
        try:
            backup._refill_stm(stores().memory, items)
            actions.append(f"short-term memory refilled from the backup ({len(items)} items)")
        except Exception as exc:  # noqa: BLE001 - reported; the long-term stores are restored
            actions.append(f"short-term memory could NOT be refilled ({type(exc).__name__}: {exc}); "
                           "its items are in the backup archive")
    return actions


def _rollback_sql(state: JournalState, stores: Callable[[], Any]) -> list[str]:
    """A database restored in place (not SQLite): load the rows dumped before the restore began."""
    if state.begin.get("sql_mode") != "jsonl" or "sql_loading" not in state.marks:
        return []
    from emergent.workspace import _sqldump
    from emergent.workspace.backup import AUDIT

    dump = state.work / "sql-before"
    if not dump.is_dir():
        return ["the SQL rows dumped before the restore are missing: check the database (`emergent doctor`)"]
    counts = _sqldump.load(stores().sql.engine, dump, keep={AUDIT})
    return [f"SQL rows put back from the dump taken before the restore ({sum(counts.values())} rows)"]


def _record(state: JournalState, report: RecoveryReport, stores: Callable[[], Any]) -> None:
    from emergent.workspace.audited import check_kind

    data = {"backup": report.backup, "phase": "recovered", "outcome": report.outcome,
            "interrupted_at": report.interrupted_at, "restore_by": report.by, "actions": report.actions[:20]}
    try:
        current = stores()
        current.audit.append(check_kind("workspace.restore"), "system:recovery", data, durable=True)
        if report.outcome == "completed":
            current.audit.append(check_kind("workspace.restored"), "system:recovery",
                                 {**data, "phase": "done"}, durable=True)
    except Exception as exc:  # noqa: BLE001 - the files are recovered; say that the entry is missing
        report.actions.append(f"the audit entry could not be written ({type(exc).__name__}: {exc})")
        log.error("recovered the interrupted restore of %s but could not record it: %s", state.work, exc)


# ------------------------------------------------------------------------------ debris
@dataclass(frozen=True)
class Debris:
    path: Path
    kind: str  # staging | part | restore-work
    removable: bool
    why: str


def _restore_dirs(path: Path) -> list[Path]:
    prefix = f".{path.name}-restore-"
    out: list[Path] = []
    for folder in {path.parent, path}:
        with contextlib.suppress(OSError):
            out += [p for p in folder.iterdir() if p.name.startswith(prefix) and p.is_dir()]
    return sorted(out)


def _has_debris(path: Path) -> bool:
    backups = path / "backups"
    if backups.is_dir():
        with contextlib.suppress(OSError):
            if any(p.name.startswith(STAGING_PREFIX) or p.name.endswith(".part") for p in backups.iterdir()):
                return True
    return bool(_restore_dirs(path))


def _holds_data(folder: Path) -> bool:
    aside = folder / "aside"
    return aside.is_dir() and any(aside.iterdir())


def _kept_why(folder: Path) -> str:
    return (f"left by an interrupted restore (without a journal: an older emergent version) and holds data moved "
            f"aside ({folder / 'aside'}): it may be the only copy of the workspace as it was before that restore. "
            "Compare it with the workspace; to keep it, move its lance/ and emergent.db back into the workspace "
            "(with the workspace closed); when it is not needed, delete the folder")


def find_debris(path: Path) -> list[Debris]:
    """What killed backups and restores left, and whether it may be removed now."""
    out: list[Debris] = []
    backups = path / "backups"
    if backups.is_dir():
        names = sorted(p for p in backups.iterdir() if p.name.startswith(STAGING_PREFIX) or p.name.endswith(".part"))
        if names:
            with os_lock(backups / BACKUPS_LOCK) as idle:
                for p in names:
                    kind = "staging" if p.name.startswith(STAGING_PREFIX) else "part"
                    out.append(Debris(p, kind, idle, "left by a backup that was killed" if idle
                                      else "a backup is being written now"))
    dirs = _restore_dirs(path)
    if dirs:
        state = read_journal(path)
        journaled = state.work if state is not None else None
        with os_lock(path / RESTORE_LOCK) as idle:
            for d in dirs:
                if not idle:
                    out.append(Debris(d, "restore-work", False, "a restore is running now"))
                elif journaled is not None and d == journaled:
                    out.append(Debris(d, "restore-work", False, "the interrupted restore's work directory: "
                                      "recovered when the workspace is opened (or `emergent doctor --repair`)"))
                elif not _holds_data(d):
                    out.append(Debris(d, "restore-work", True, "left by a restore that was killed (only the "
                                      "extracted backup, a copy)"))
                else:
                    out.append(Debris(d, "restore-work", False, _kept_why(d)))
    return out


def clean_debris(path: Path, report: RecoveryReport | None = None) -> RecoveryReport:
    """Remove the debris :func:`find_debris` says is removable (under the same locks it checked)."""
    report = report or RecoveryReport()
    backups = path / "backups"
    if backups.is_dir():
        with os_lock(backups / BACKUPS_LOCK) as idle:
            if idle:
                for p in sorted(backups.iterdir()):
                    if p.name.startswith(STAGING_PREFIX) or p.name.endswith(".part"):
                        _remove(p)
                        report.cleaned.append(str(p))
    if _restore_dirs(path):
        with os_lock(path / RESTORE_LOCK) as idle:
            state = read_journal(path)
            for d in _restore_dirs(path):
                if not idle or (state is not None and d == state.work):
                    continue
                if _holds_data(d):
                    report.kept.append({"path": str(d), "why": _kept_why(d)})
                    continue
                _remove(d)
                report.cleaned.append(str(d))
    return report


__all__ = ["BACKUP_STEPS", "JOURNAL", "KILL_AT", "RESTORE_STEPS", "Debris", "RecoveryReport", "RestoreJournal",
           "RestoreRecovered", "clean_debris", "fault_point", "find_debris", "inspect_only", "on_open", "os_lock",
           "read_journal", "recover", "rollback_files"]
