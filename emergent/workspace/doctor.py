"""``emergent doctor``: is every store of a workspace whole, and what to do when one is not.

:func:`diagnose` takes the stores as callables (:class:`DoctorStores`: each opens its store and may
raise), so one broken store never hides the state of the others, and runs these checks:

* **restore** — an interrupted restore (the journal, :mod:`emergent.workspace.journal`); with
  ``repair`` it is rolled back or completed;
* **debris** — what killed backups and restores left; with ``repair`` what is provably ours and
  abandoned is removed (never a folder that may hold the only copy of data: that is reported);
* **sql** — the database opens (header, migrations), ``PRAGMA quick_check`` on SQLite, the
  Alembic heads applied; a vanished or emptied database while the workspace holds data is named,
  and ``repair`` starts a new one only then (the empty file kept beside it);
* **lance** — every table opens, its schema version is known, every data file reads (a scan of
  the ``id`` column), the embedding model recorded;
* **stm** — short-term memory answers; its layout version; for Redis whether it lost the
  workspace's data (``reset_detected``; ``repair`` acknowledges it) and its persistence settings;
* **audit** — the hash chain and its anchored head verify.

Each finding says what to do. :attr:`DoctorReport.healthy` is true when nothing needs attention
(the CLI exits 0, else 1).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emergent.errors import StoreCorruptError
from emergent.workspace import integrity, journal

OK, WARNING, ERROR = "ok", "warning", "error"


@dataclass
class Finding:
    check: str
    status: str  # ok | warning | error
    summary: str
    remedy: str = ""
    detail: dict[str, Any] = field(default_factory=dict)
    repaired: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == OK


@dataclass
class DoctorReport:
    workspace: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return all(f.ok for f in self.findings)

    def add(self, check: str, status: str, summary: str, remedy: str = "", **detail: Any) -> Finding:
        finding = Finding(check, status, summary, remedy, detail)
        self.findings.append(finding)
        return finding

    def as_dict(self) -> dict[str, Any]:
        return {"workspace": self.workspace, "healthy": self.healthy,
                "findings": [{**asdict(f), "ok": f.ok} for f in self.findings]}

    def text(self) -> str:
        lines = [f"workspace {self.workspace}: " + ("healthy" if self.healthy else "needs attention")]
        for f in self.findings:
            mark = {OK: "ok  ", WARNING: "WARN", ERROR: "FAIL"}[f.status]
            lines.append(f"  [{mark}] {f.check}: {f.summary}")
            if f.repaired:
                lines.append(f"         repaired: {f.repaired}")
            if f.remedy and not f.ok:
                lines.append(f"         what to do: {f.remedy}")
        return "\n".join(lines)


@dataclass
class DoctorStores:
    """How to reach each store of the workspace at ``path`` (each callable opens it and may raise)."""

    path: Path
    sql: Callable[[], Any]  # emergent.stores.sql.SQLStore
    lance: Callable[[], Any]  # emergent.stores.lance.LanceStore
    stm: Callable[[], Any]  # emergent.memory.stm.STM
    audit: Callable[[], Any]  # emergent.audit.AuditLog
    recover: Callable[[], journal.RecoveryReport]  # roll back or complete an interrupted restore
    database_url: str | None = None
    redis_url: str | None = None


def _error(exc: BaseException) -> tuple[str, str]:
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
    return str(message), str(getattr(exc, "hint", "") or "")


# ------------------------------------------------------------------------------ checks
def _check_restore(stores: DoctorStores, report: DoctorReport, repair: bool) -> None:
    state = journal.read_journal(stores.path)
    if state is None and not (stores.path / journal.JOURNAL).exists():
        report.add("restore", OK, "no interrupted restore")
        return
    backup = state.begin.get("backup") if state else None
    step = state.step if state else "begin"
    will = "completed" if state is not None and "committed" in state.marks else "rolled back"
    finding = report.add("restore", ERROR, f"a restore of backup {backup} was interrupted (at {step!r}): the "
                         f"workspace's stores may be half swapped", f"run `emergent doctor --repair` (or open the "
                         f"workspace): it will be {will}", backup=backup, step=step, will=will)
    if repair:
        done = stores.recover()
        finding.status = OK
        finding.repaired = f"{done.summary()} ({'; '.join(done.actions) or 'nothing to move'})"


def _check_debris(stores: DoctorStores, report: DoctorReport, repair: bool) -> None:
    found = journal.find_debris(stores.path)
    removable = [d for d in found if d.removable]
    kept = [d for d in found if not d.removable]
    if removable:
        finding = report.add("debris", WARNING, f"{len(removable)} leftover(s) of killed backups or restores: "
                             + ", ".join(str(d.path) for d in removable[:5]),
                             "run `emergent doctor --repair` to remove them (they hold only copies)",
                             paths=[str(d.path) for d in removable])
        if repair:
            cleaned = journal.clean_debris(stores.path)
            finding.status = OK if not any(d.removable for d in journal.find_debris(stores.path)) else WARNING
            finding.repaired = f"removed {len(cleaned.cleaned)}: " + ", ".join(cleaned.cleaned[:5])
    for d in kept:
        if d.why.startswith("the interrupted restore's"):
            continue  # the restore check above covers it
        if d.why.endswith(" now"):
            report.add("debris", OK, f"{d.path}: {d.why}", path=str(d.path))
        else:
            report.add("debris", ERROR, f"{d.path} was left by an interrupted restore and holds data moved aside",
                       d.why, path=str(d.path))
    if not found:
        report.add("debris", OK, "no leftovers of killed backups or restores")


def _check_sql(stores: DoctorStores, report: DoctorReport, repair: bool) -> Any:
    try:
        sql = stores.sql()
    except StoreCorruptError as exc:
        message, hint = _error(exc)
        finding = report.add("sql", ERROR, message, hint, path=getattr(exc, "path", None))
        vanished = bool(getattr(exc, "evidence", None))
        if not (repair and vanished):
            return None
        moved = integrity.start_new_database(stores.path, stores.database_url)
        with integrity.allow_new_database(stores.path):
            sql = stores.sql()
        finding.status = WARNING
        finding.repaired = ("started a new, empty database" + (f" (the empty file is kept at {moved})" if moved else "")
                            + "; its audit trail starts again")
        finding.remedy = ("restore a backup to bring back the lost database's content (`emergent backup list`, "
                          "then `emergent backup restore ID --governance`), and re-anchor the audit trail "
                          "(`emergent audit anchor`)")
    except Exception as exc:  # noqa: BLE001 - every failure is a finding
        message, hint = _error(exc)
        report.add("sql", ERROR, f"the database does not open: {message}", hint or "run `emergent doctor` again after "
                   "checking EMERGENT_DATABASE_URL and the server")
        return None
    detail: dict[str, Any] = {"dialect": sql.dialect, "heads": sql.heads()}
    missing = sql.missing_heads()
    if missing:
        report.add("sql", ERROR, f"migrations not applied: {', '.join(missing)}",
                   "open the workspace with this emergent version (it applies them), or upgrade", **detail)
        return sql
    if sql.path is not None:
        with sqlite3.connect(f"file:{sql.path}?mode=ro", uri=True) as conn:
            rows = [r[0] for r in conn.execute("PRAGMA quick_check(20)").fetchall()]
        if rows != ["ok"]:
            report.add("sql", ERROR, f"the database {sql.path} is damaged: {'; '.join(rows[:5])}",
                       "restore the newest good backup (`emergent backup list`, then `emergent backup restore ID`)",
                       **detail)
            return sql
        detail["path"] = str(sql.path)
    if not any(f.check == "sql" for f in report.findings):
        report.add("sql", OK, f"{sql.dialect} database opens, migrations at {', '.join(detail['heads'])}", **detail)
    return sql


def _check_lance(stores: DoctorStores, report: DoctorReport) -> None:
    from emergent.stores.lance import SCHEMA_VERSION_KEY, store_error

    try:
        lance = stores.lance()
        names = lance.table_names()
    except Exception as exc:  # noqa: BLE001
        message, hint = _error(exc)
        report.add("lance", ERROR, f"LanceDB does not open: {message}", hint or "run `emergent doctor` again after "
                   "checking EMERGENT_LANCE_URI")
        return
    problems: list[tuple[str, str]] = []
    tables: dict[str, Any] = {}
    for name in names:
        where = lance.table_path(name)
        try:
            table = lance.db.open_table(name)
            version = int((table.schema.metadata or {}).get(SCHEMA_VERSION_KEY, b"0"))
            rows = table.search().select(["id"] if "id" in table.schema.names else table.schema.names[:1]) \
                .limit(max(1, table.count_rows())).to_arrow().num_rows
            tables[name] = {"rows": rows, "schema_version": version, "table_version": int(table.version)}
        except Exception as exc:  # noqa: BLE001
            err = store_error(exc, where, "reading every row")
            message, hint = _error(err or exc)
            problems.append((message, hint))
    meta: dict[str, str] = {}
    try:
        meta = lance.get_meta()
    except Exception as exc:  # noqa: BLE001
        problems.append(_error(exc))
    from emergent.memory.ltm import SCHEMA_VERSION

    for name in ("memories", "memories_archive"):
        found = tables.get(name, {}).get("schema_version", 0)
        if found > SCHEMA_VERSION:
            problems.append((f"LanceDB table {lance.table_path(name)} has schema version {found}, newer than this "
                             f"emergent ({SCHEMA_VERSION})", "upgrade emergent in this environment"))
    for message, hint in problems:
        report.add("lance", ERROR, message, hint or "restore the newest good backup (`emergent backup restore ID`)")
    if not problems:
        report.add("lance", OK, f"{len(tables)} tables read whole"
                   + (f", embedded with {meta['embedder']}" if meta.get("embedder") else ""),
                   tables=tables, embedder=meta.get("embedder"),
                   # a migrated table keeps the schema version it was created with in its metadata
                   memories_schema=int(m) if (m := meta.get("memories_schema", "1")).isdigit() else m)


def _check_stm(stores: DoctorStores, report: DoctorReport, repair: bool) -> None:
    try:
        stm = stores.stm()
        health = dict(stm.health())
    except Exception as exc:  # noqa: BLE001
        message, hint = _error(exc)
        report.add("stm", ERROR, f"short-term memory does not open: {message}",
                   hint or ("start Redis (or unset EMERGENT_REDIS_URL)" if stores.redis_url else "check the disk"))
        return
    detail = {k: v for k, v in health.items() if k not in ("reset",)}
    detail["layout"] = _stm_layout(stm)
    name = health.get("backend", getattr(stm, "name", "stm"))
    if health.get("reset_detected"):
        finding = report.add("stm", ERROR, f"Redis lost this workspace's short-term memory: {health.get('detail')}",
                             "make Redis persistent (appendonly yes), then run `emergent doctor --repair` to "
                             "acknowledge the loss and start an empty short-term memory", **detail)
        if repair and hasattr(stm, "acknowledge_reset"):
            lost = stm.acknowledge_reset()
            finding.status = OK
            finding.repaired = f"acknowledged: a new marker is armed (lost: {lost.get('marker', 'the items')})"
    elif not health.get("ok", True):
        report.add("stm", ERROR, f"{name} short-term memory is unhealthy: {health.get('detail')}",
                   "start Redis, or check the disk" if stores.redis_url else "check the disk and `emergent doctor`",
                   **detail)
    else:
        report.add("stm", OK, f"{name} short-term memory answers ({health.get('items', '?')} items)", **detail)
    warnings = list(health.get("warnings") or [])
    if stores.redis_url and "persistence" not in health:
        warnings.append("this emergent cannot tell whether Redis persists data (no persistence report)")
    for w in warnings:
        report.add("stm", WARNING, w, "make Redis persistent: appendonly yes with appendfsync everysec (or always); "
                   "see the README section Faults" if stores.redis_url else "see the README section Faults")


def _stm_layout(stm: Any) -> Any:
    path = getattr(stm, "path", None)
    if isinstance(path, Path) and path.exists():
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                return int(conn.execute("PRAGMA user_version").fetchone()[0])
        except sqlite3.Error:
            return None
    client, ns = getattr(stm, "client", None), getattr(stm, "ns", None)
    if client is not None and ns:
        try:
            raw = client.get(f"{ns}:stm:layout")
            return int(raw) if raw is not None else None
        except Exception:  # noqa: BLE001 - reported by health already
            return None
    return None


def _check_audit(stores: DoctorStores, report: DoctorReport) -> None:
    try:
        result = stores.audit().verify()
    except Exception as exc:  # noqa: BLE001
        message, hint = _error(exc)
        report.add("audit", ERROR, f"the audit trail cannot be verified: {message}", hint)
        return
    if result.ok:
        report.add("audit", OK, f"the audit chain verifies ({result.entries} entries, head anchored)")
        return
    first = "; ".join(f"#{seq}: {what}" for seq, what in result.problems[:3])
    report.add("audit", ERROR, f"the audit chain does not verify: {first}",
               "see `emergent audit verify`; an entry edited or deleted means the database was changed outside "
               "emergent (restore a backup); a chain without its anchor (a new or moved database): "
               "`emergent audit anchor`", problems=[list(p) for p in result.problems[:20]])


def diagnose(stores: DoctorStores, *, repair: bool = False) -> DoctorReport:
    """Check every store of the workspace (and, with ``repair``, fix what can be fixed safely)."""
    report = DoctorReport(str(stores.path))
    _check_restore(stores, report, repair)
    _check_debris(stores, report, repair)
    sql = _check_sql(stores, report, repair)
    _check_lance(stores, report)
    _check_stm(stores, report, repair)
    if sql is not None:
        _check_audit(stores, report)
    else:
        report.add("audit", ERROR, "not checked: the database does not open", "fix the database first (see above)")
    return report


__all__ = ["DoctorReport", "DoctorStores", "Finding", "diagnose"]
