"""Retention policies, the purge job and right-to-erasure.

**Policies** (``retention_policies``, set and removed by a human, audited): memories of a kind
(``episodic``, ``semantic``, ``procedural`` or ``*``) in a scope (``agent``, ``agent/user``,
``agent/user/session`` or ``*``) are kept ``max_age_days`` after they were *learned* (stored, not
the event time: a note about last year learned today is kept as long as any other). When several
policies match a memory, the most specific one governs it (the longer scope first, then a named
kind over ``*``), so ``assistant: 30 days`` with ``assistant/legal-hold: 3650 days`` keeps the
legal hold. A memory no policy matches is kept.

**Purge** (:meth:`Retention.purge`, the ``retention_purge`` job as ``service:scheduler``) erases
what its governing policy says has expired, through :meth:`emergent.memory.service.Memory.erase`
(so the rows leave the current data files too), keeping the table versions of the last
``history_days`` for point-in-time recovery. Counts per policy are reported and recorded in the
ledger and the audit trail.

**Erasure** (:meth:`Retention.erase`, a human, with a reason): exactly one selector (ids, a user in
every agent, or a scope naming at least a user), never everything by accident. The memories leave
short-term memory (live and evicted items), long-term memory and its archive, the data files and
indexes that held them, every older LanceDB version (no rewind or time travel reaches them; the
cost: point-in-time history of long-term memory starts again at the erasure), every process's hot
index (each catches up at its next search: the table version changed) and its snapshots. Every
backup that existed then and may hold them is marked: :func:`restore_blockers` makes
``ws.restore`` refuse it unless ``repurge=True``, and :func:`repurge_staged` then removes the
erased memories from the extracted backup before it replaces the workspace.

The ledger (``retention_erasures``, ``retention_erased_ids``) and the audit trail keep the fact:
who, when, why, how many, the ids and the sha256 of the sorted id list, and the selector with its
subject hashed (a user name is personal data) — never a memory's text.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from emergent.clock import Clock, SystemClock, iso
from emergent.errors import NotFoundError, UsageError, ValidationError
from emergent.memory.types import Kind, Scope
from emergent.security.retention_tables import (
    retention_backup_marks as marks_t,
)
from emergent.security.retention_tables import (
    retention_erased_ids as ids_t,
)
from emergent.security.retention_tables import (
    retention_erasures as erasures_t,
)
from emergent.security.retention_tables import (
    retention_policies as policies_t,
)
from emergent.workspace.audited import human, recorded, verified

DAY = 86400.0
#: ids written into one audit entry (all of them are in the ledger; the entry has their digest)
AUDIT_IDS = 1000
KINDS = ("*", *(k.value for k in Kind))


@dataclass(frozen=True)
class Policy:
    id: str
    kind: str
    scope: str
    max_age_days: float
    note: str | None
    created_by: str
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "created": iso(self.created_at)}

    @property
    def specificity(self) -> tuple[int, int]:
        depth = 0 if self.scope == "*" else len(self.scope.split("/"))
        return depth, 0 if self.kind == "*" else 1

    def matches(self, agent: str, user: str | None, session: str | None, kind: str) -> bool:
        if self.kind != "*" and self.kind != kind:
            return False
        if self.scope == "*":
            return True
        return Scope.of(self.scope).contains(Scope(agent, user, session if user else None))


@dataclass
class PurgeReport:
    dry_run: bool
    at: float
    erased: int = 0
    by_policy: dict[str, int] = field(default_factory=dict)
    ids: list[str] = field(default_factory=list)
    erasure_id: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ErasureReport:
    dry_run: bool
    erasure_id: str | None
    count: int
    ids: list[str]
    ids_sha256: str
    by_tier: dict[str, int] = field(default_factory=dict)
    backups_marked: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def ids_digest(ids: Sequence[str]) -> str:
    """sha256 of the sorted ids, newline-separated (what the audit entry and the ledger keep)."""
    return _sha("\n".join(sorted(ids)))


def _new_id() -> str:
    return secrets.token_hex(8)


def _check_kind(kind: Any) -> str:
    if kind not in KINDS:
        raise ValidationError(f"unknown memory kind {kind!r} for a retention policy",
                              hint=f"use one of {', '.join(KINDS)}", field="kind")
    return str(kind)


def _check_scope(scope: Any) -> str:
    if scope == "*":
        return "*"
    if not isinstance(scope, str | Scope):
        raise ValidationError(f"scope must be 'agent[/user[/session]]' or '*', not {scope!r}", field="scope")
    return Scope.of(scope).key


def _check_age(days: Any) -> float:
    if isinstance(days, bool) or not isinstance(days, int | float) or not days > 0 or days != days \
            or days == float("inf"):
        raise ValidationError(f"max_age_days must be a positive number of days, got {days!r}",
                              hint="for example 90 (memories are kept 90 days after they were learned)",
                              field="max_age_days")
    return float(days)


class Retention:
    """Retention policies, purge and right-to-erasure of one workspace (see the module docstring).

    ``stores`` returns the workspace's :class:`emergent.workspace.backup.WorkspaceStores` (the
    backups an erasure marks)."""

    def __init__(self, sql: Any, *, memory: Any, audit: Any, clock: Clock | None = None, principals: Any,
                 stores: Callable[[], Any] | None = None, approvals: Any = None,
                 assistant_runs: Any = None) -> None:
        self.sql = sql
        self.approvals = approvals  # the approval queue: requests that hold an erased memory's text
        self.assistant_runs = assistant_runs  # the assistants' RunStore: runs that wrote or quoted it
        self.memory = memory
        self.audit = audit
        self.clock = clock or SystemClock()
        self.principals = principals
        self.stores = stores

    # ------------------------------------------------------------------ policies
    def policies(self) -> list[Policy]:
        with self.sql.connect() as conn:
            rows = conn.execute(sa.select(policies_t).order_by(policies_t.c.scope, policies_t.c.kind)).mappings()
            return [Policy(**dict(r)) for r in rows]

    def set_policy(self, kind: str, scope: str, max_age_days: float, *, by: Any, note: str | None = None) -> Policy:
        """Keep memories of ``kind`` in ``scope`` ``max_age_days`` after they were learned (replaces
        the policy of that kind and scope). A human decides; audited."""
        who = human(self.principals, by, "set a retention policy")
        kind, scope, days = _check_kind(kind), _check_scope(scope), _check_age(max_age_days)
        if note is not None and not isinstance(note, str):
            raise ValidationError("note must be text", field="note")
        now = self.clock.now()
        old = next((p for p in self.policies() if p.kind == kind and p.scope == scope), None)
        policy = Policy(old.id if old else _new_id(), kind, scope, days, note, who.key, now)
        with recorded(self.audit, "retention.policy_set", who,
                      {"policy": policy.id, "kind": kind, "scope": scope, "max_age_days": days, "note": note,
                       "replaces": old.max_age_days if old else None}), self.sql.begin() as conn:
            if old:
                conn.execute(policies_t.delete().where(policies_t.c.id == old.id))
            conn.execute(policies_t.insert(), [asdict(policy)])
        return policy

    def remove_policy(self, kind: str, scope: str, *, by: Any) -> Policy:
        """Remove the policy of ``kind`` in ``scope`` (a human; audited)."""
        who = human(self.principals, by, "remove a retention policy")
        kind, scope = _check_kind(kind), _check_scope(scope)
        old = next((p for p in self.policies() if p.kind == kind and p.scope == scope), None)
        if old is None:
            raise NotFoundError(f"no retention policy for kind {kind!r} in scope {scope!r}",
                                hint="list them with `emergent retention policies`")
        with recorded(self.audit, "retention.policy_remove", who,
                      {"policy": old.id, "kind": kind, "scope": scope, "max_age_days": old.max_age_days}), \
                self.sql.begin() as conn:
            conn.execute(policies_t.delete().where(policies_t.c.id == old.id))
        return old

    def governing(self, policies: Sequence[Policy], agent: str, user: str | None, session: str | None,
                  kind: str) -> Policy | None:
        """The most specific policy matching a memory (None: no policy, kept)."""
        found = [p for p in policies if p.matches(agent, user, session, kind)]
        return max(found, key=lambda p: p.specificity) if found else None

    # ------------------------------------------------------------------ purge
    def expired(self) -> tuple[list[dict[str, Any]], dict[str, int]]:
        """The memories whose governing policy says they expired (no text), and counts per policy."""
        policies = self.policies()
        now = self.clock.now()
        seen: dict[str, dict[str, Any]] = {}
        for p in policies:
            cutoff = now - p.max_age_days * DAY
            for f in self.memory.locate(scope=None if p.scope == "*" else p.scope,
                                        kinds=None if p.kind == "*" else [p.kind], learned_before=cutoff):
                seen.setdefault(f["id"], f)
        doomed: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for f in seen.values():
            gov = self.governing(policies, f["agent"], f["user"], f.get("session"), f["kind"])
            if gov is not None and f["learned_at"] < now - gov.max_age_days * DAY:
                doomed.append({**f, "policy": gov.id})
                counts[gov.id] = counts.get(gov.id, 0) + 1
        return doomed, counts

    def purge(self, *, by: Any, dry_run: bool = False, history_days: float = 7.0) -> PurgeReport:
        """Erase what the policies say has expired (see the module docstring); ``by`` is any principal
        of the workspace (the scheduler's job too: the policies are a human's decision). Table versions
        younger than ``history_days`` are kept for point-in-time recovery."""
        who = verified(self.principals, by)
        now = self.clock.now()
        doomed, counts = self.expired()
        ids = sorted(f["id"] for f in doomed)
        report = PurgeReport(dry_run, now, len(ids), counts, ids)
        if dry_run:
            return report
        eid = _new_id()
        selector = {"by": "policies", "policies": {p.id: [p.kind, p.scope, p.max_age_days] for p in self.policies()}}
        intent = {"erasure": eid, "count": len(ids), "ids": ids[:AUDIT_IDS], "ids_sha256": ids_digest(ids),
                  "by_policy": counts, "history_days": history_days}
        with recorded(self.audit, "retention.purge", who, intent) as outcome:
            self._ledger_start(eid, "purge", who.key, "retention policy", selector, ids, now)
            try:
                done = self.memory.erase(ids, principal=who, keep_history=timedelta(days=history_days)) if ids else {}
            except BaseException:
                self._ledger_finish(eid, "failed", ids, {})
                raise
            detail = _counts(done)
            self._ledger_finish(eid, "done", ids, detail)
            outcome.update(erased=len(ids), detail=detail)
        report.erasure_id, report.detail = eid, detail
        return report

    # ------------------------------------------------------------------ right to erasure
    def _checkpoint(self) -> None:
        """On SQLite, copy the WAL into the database and truncate it: the old pages of rows rewritten
        for the erasure (an approval's arguments) leave the disk now, not at the next checkpoint. A
        reader holding an old snapshot makes this a partial checkpoint (done again at close)."""
        if self.sql.engine.dialect.name != "sqlite":
            return
        with self.sql.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def _texts(self, found: list[dict[str, Any]]) -> list[str]:
        """The texts of the located memories, read through memory (to find the approval requests that
        hold them); a memory that cannot be read (sealed with a key that is gone, already gone) is skipped."""
        out = []
        for f in found:
            try:
                rec = self.memory.get(f["id"], scope=Scope(f["agent"], f.get("user"), f.get("session")))
            except Exception:  # noqa: BLE001 - reading a text must never stop an erasure
                continue
            if isinstance(rec.text, str):
                out.append(rec.text)
        return out

    def erase(self, *, by: Any, reason: str, ids: Sequence[str] | None = None, user: str | None = None,
              scope: str | Scope | None = None, dry_run: bool = False) -> ErasureReport:
        """Erase memories everywhere (see the module docstring). Exactly one selector: ``ids`` (a
        list), ``user`` (every memory of that user, in every agent), or ``scope`` naming at least a
        user (``agent/user[/session]``). A human decides and gives the ``reason`` (kept in the ledger
        and the audit trail). ``dry_run`` lists what would go and changes nothing."""
        who = human(self.principals, by, "erase memories")
        if not isinstance(reason, str) or not reason.strip():
            raise ValidationError("an erasure needs a reason", hint="for example: 'GDPR art. 17 request #1234'",
                                  field="reason")
        if sum(x is not None for x in (ids, user, scope)) != 1:
            raise ValidationError("erase takes exactly one of ids, user and scope",
                                  hint="never everything by accident: name the ids, the user, or a scope with a user")
        subject: dict[str, Any]
        if ids is not None:
            if isinstance(ids, str) or not ids or any(not isinstance(i, str) or not i for i in ids):
                raise ValidationError("ids must be a non-empty list of memory ids", field="ids")
            ids = list(dict.fromkeys(ids))
            subject = {"by": "ids", "count": len(ids)}
        elif user is not None:
            if not isinstance(user, str) or not user:
                raise ValidationError("user must be a user name", field="user")
            Scope("x", user)
            subject = {"by": "user", "user_sha256": _sha(user)}
        else:
            sc = Scope.of(scope)
            if sc.user is None:
                raise ValidationError(f"scope {sc.key!r} names no user: it would erase the whole agent's memory",
                                      hint="give agent/user[/session], a user, or the ids", field="scope")
            scope = sc
            subject = {"by": "scope", "agent": sc.agent, "scope_sha256": _sha(sc.key)}
        found = self.memory.locate(ids=ids, user=user, scope=scope)
        located = sorted({f["id"] for f in found})
        tiers: dict[str, int] = {}
        for f in found:
            tiers[f["tier"]] = tiers.get(f["tier"], 0) + 1
        if dry_run:
            return ErasureReport(True, None, len(located), located, ids_digest(located), tiers)
        now = self.clock.now()
        eid = _new_id()
        listed = sorted(set(located) | set(ids or ()))
        intent = {"erasure": eid, "reason": reason, "selector": subject, "located": len(located),
                  "ids": listed[:AUDIT_IDS], "ids_sha256": ids_digest(listed)}
        with recorded(self.audit, "retention.erase", who, intent) as outcome:
            # the ledger first: a restore re-purges these even if the erasure stops half-way
            self._ledger_start(eid, "erase", who.key, reason, subject, listed, now)
            holders = self.approvals is not None or self.assistant_runs is not None
            texts = self._texts(found) if holders else []
            try:
                done = self.memory.erase(ids, user=user, scope=scope, principal=who)
            except BaseException:
                self._ledger_finish(eid, "failed", listed, {})
                raise
            erased = sorted(done.get("ids", []))
            detail = _counts(done)
            self._ledger_finish(eid, "done", sorted(set(erased) | set(listed)), detail)
            earliest = min((f["learned_at"] for f in found), default=None)
            if set(erased) - set(located):  # found only in an evicted list: when it was learned is not known
                earliest = None
            marked = self._mark_backups(eid, earliest)
            redacted = self.approvals.erase_content(texts, by=who, reason=reason) \
                if texts and self.approvals is not None else []
            runs = self.assistant_runs.erase_content(texts) if texts and self.assistant_runs is not None else []
            del texts
            self._checkpoint()
            outcome.update(count=len(erased), erased_ids=erased[:AUDIT_IDS], erased_sha256=ids_digest(erased),
                           detail=detail, backups_marked=marked, approvals_redacted=len(redacted),
                           assistant_runs_redacted=len(runs), assistant_runs=runs[:AUDIT_IDS])
        return ErasureReport(False, eid, len(erased), erased, ids_digest(erased), tiers, marked, detail)

    # ------------------------------------------------------------------ ledger
    def _ledger_start(self, eid: str, op: str, by: str, reason: str | None, selector: dict[str, Any],
                      ids: Sequence[str], now: float) -> None:
        with self.sql.begin() as conn:
            conn.execute(erasures_t.insert(), [{
                "id": eid, "op": op, "started_at": now, "finished_at": None, "status": "started", "by": by,
                "reason": reason, "selector": json.dumps(selector, sort_keys=True), "count": len(ids),
                "ids_sha256": ids_digest(ids), "detail": None}])
            if op == "erase" and ids:
                conn.execute(ids_t.insert(), [{"erasure_id": eid, "memory_id": i} for i in ids])

    def _ledger_finish(self, eid: str, status: str, ids: Sequence[str], detail: dict[str, Any]) -> None:
        with self.sql.begin() as conn:
            row = conn.execute(sa.select(erasures_t.c.op).where(erasures_t.c.id == eid)).first()
            if row is not None and row.op == "erase":
                have = {r[0] for r in conn.execute(sa.select(ids_t.c.memory_id).where(ids_t.c.erasure_id == eid))}
                extra = [i for i in ids if i not in have]
                if extra:
                    conn.execute(ids_t.insert(), [{"erasure_id": eid, "memory_id": i} for i in extra])
            conn.execute(erasures_t.update().where(erasures_t.c.id == eid).values(
                status=status, finished_at=self.clock.now(), count=len(ids), ids_sha256=ids_digest(ids),
                detail=json.dumps(detail, sort_keys=True)))

    def _mark_backups(self, eid: str, earliest_learned: float | None) -> list[str]:
        """Mark every backup that exists now: ``holds`` unless it was taken before the earliest erased
        memory was learned (it cannot hold what did not exist yet)."""
        if self.stores is None:
            return []
        from emergent.workspace.backup import list_backups

        stores = self.stores()
        now = self.clock.now()
        rows, held = [], []
        for b in list_backups(stores.path, self.sql):
            holds = earliest_learned is None or b.created_at >= earliest_learned
            rows.append({"backup_id": b.id, "erasure_id": eid, "holds": holds, "marked_at": now,
                         "archive_sha256": b.sha256})
            if holds:
                held.append(b.id)
        if rows:
            with self.sql.begin() as conn:
                conn.execute(marks_t.insert(), rows)
        return held

    def unfinished(self) -> list[dict[str, Any]]:
        """Erasures and purges that started and never recorded an end: running now in another process,
        or stopped half-way (a kill): the rows may be gone from the live table while older table
        versions, which a rewind reads, still hold them."""
        q = sa.select(erasures_t.c.id, erasures_t.c.op, erasures_t.c.started_at).where(
            erasures_t.c.status == "started").order_by(erasures_t.c.started_at)
        with self.sql.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(q)]

    def erased_among(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` an erasure has listed (started or done)."""
        out: set[str] = set()
        ids = list(ids)
        with self.sql.connect() as conn:
            for i in range(0, len(ids), 500):
                out.update(r[0] for r in conn.execute(
                    sa.select(ids_t.c.memory_id).where(ids_t.c.memory_id.in_(ids[i:i + 500]))))
        return out

    def refuse_while_unfinished(self, what: str) -> None:
        """:class:`UsageError` when an erasure or purge has not finished (see :meth:`unfinished`)."""
        if todo := self.unfinished():
            ids = ", ".join(r["id"] for r in todo[:5])
            raise UsageError(f"cannot {what}: {len(todo)} erasure(s) or purge(s) have not finished ({ids}); what "
                             "they began to remove could come back",
                             hint="if none is running now, finish them: `emergent retention finish` "
                                  "(ws.retention.finish_interrupted(by=...))")

    def finish_interrupted(self, *, by: Any) -> list[ErasureReport | PurgeReport]:
        """Run again every unfinished erasure (by the ids its ledger lists) or purge (the policies again)
        and record the first attempt as ``interrupted`` (a backup restore still re-purges for it). A
        human's decision: only when none is running now."""
        who = human(self.principals, by, "finish interrupted erasures")
        reports: list[ErasureReport | PurgeReport] = []
        for row in self.unfinished():
            with self.sql.begin() as conn:
                conn.execute(erasures_t.update().where(erasures_t.c.id == row["id"], erasures_t.c.status == "started")
                             .values(status="interrupted", finished_at=self.clock.now()))
            if row["op"] != "erase":
                reports.append(self.purge(by=who))
            elif ids := erased_ids(self.sql, [row["id"]]):
                reports.append(self.erase(by=who, reason=f"finishing erasure {row['id']}, interrupted", ids=ids))
        return reports

    def erasures(self, limit: int = 100, *, op: str | None = None) -> list[dict[str, Any]]:
        """The ledger, newest first (no text: counts, digests, hashed subjects)."""
        q = sa.select(erasures_t).order_by(erasures_t.c.started_at.desc()).limit(limit)
        if op is not None:
            q = q.where(erasures_t.c.op == op)
        with self.sql.connect() as conn:
            out = []
            for r in conn.execute(q).mappings():
                row = dict(r)
                row["selector"] = json.loads(row["selector"])
                row["detail"] = json.loads(row["detail"]) if row["detail"] else {}
                row["started"] = iso(row["started_at"])
                out.append(row)
        return out

    def marked_backups(self) -> list[dict[str, Any]]:
        """Backups that may hold erased memories (a restore of one re-purges or is refused)."""
        with self.sql.connect() as conn:
            rows = conn.execute(sa.select(marks_t).where(marks_t.c.holds.is_(True))
                                .order_by(marks_t.c.backup_id)).mappings()
            return [dict(r) for r in rows]

    def restore_blockers(self, backup_id: str, created_at: float) -> list[str]:
        return restore_blockers(self.sql, backup_id, created_at)


def _counts(done: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in done.items() if k != "ids"}


# ---------------------------------------------------------------------------- restore (emergent.workspace.backup)
def restore_blockers(sql: Any, backup_id: str, created_at: float) -> list[str]:
    """The erasures backup ``backup_id`` (taken at ``created_at``) may still hold: those marked
    ``holds`` for it, and those it was not taken after (finished before the backup) that never
    judged it (an archive copied in from elsewhere). Empty: the backup restores as it is."""
    try:
        with sql.connect() as conn:
            erasures = conn.execute(sa.select(erasures_t.c.id, erasures_t.c.status, erasures_t.c.finished_at)
                                    .where(erasures_t.c.op == "erase")).all()
            judged = {r.erasure_id: bool(r.holds) for r in conn.execute(
                sa.select(marks_t.c.erasure_id, marks_t.c.holds).where(marks_t.c.backup_id == backup_id))}
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # no retention tables: nothing was ever erased
        return []
    out = []
    for e in erasures:
        if judged.get(e.id) is False:
            continue
        if e.id in judged or e.finished_at is None or e.status != "done" or created_at <= e.finished_at:
            out.append(e.id)
    return sorted(out)


def erased_ids(sql: Any, erasure_ids: Sequence[str]) -> list[str]:
    if not erasure_ids:
        return []
    with sql.connect() as conn:
        return sorted({r[0] for r in conn.execute(
            sa.select(ids_t.c.memory_id).where(ids_t.c.erasure_id.in_(list(erasure_ids))))})


def repurge_staged(lance_dir: Path, ids: Sequence[str]) -> dict[str, int]:
    """Erase ``ids`` from the LanceDB tables of an extracted backup before it goes live: rows deleted,
    the fragments that held them rewritten, indexes dropped (rebuilt by the restored workspace's
    upkeep), every older version removed (the backup carries the tables' history). Counts per table."""
    import lancedb

    from emergent.memory import erasure

    out: dict[str, int] = {}
    if not ids or not Path(lance_dir).is_dir():
        return out
    db = lancedb.connect(str(lance_dir))
    listed: Any = db.list_tables()
    names = list(getattr(listed, "tables", listed))
    for name in ("memories", "memories_archive"):
        if name not in names:
            continue
        table = db.open_table(name)
        path = str(Path(lance_dir) / f"{name}.lance")
        by_agent, fragments = erasure._located(table, ids)
        fragments |= erasure.soft_deleted(path)  # rows the backup had deleted but still held
        found = [i for v in by_agent.values() for i in v]
        for part in erasure._chunks(found):
            table.delete(f"id IN ({erasure._quoted(part)})")
        erasure._rewrite_fragments(table, fragments, path)
        if found:
            erasure._drop_indexes(table, path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            table.optimize(cleanup_older_than=timedelta(0), delete_unverified=True)  # nobody else uses it
        out[name] = len(found)
    return out


# ---------------------------------------------------------------------------- jobs
PURGE_JOB = "retention_purge"
REPORT_JOB = "compliance_report"


def job_notebook(name: str) -> Path:
    """``notebooks/jobs/<name>.ipynb`` of the checkout this package is installed from."""
    from emergent.mainjob import repo_root

    path = repo_root() / "notebooks" / "jobs" / f"{name}.ipynb"
    if not path.is_file():
        raise NotFoundError(f"the job notebook {path} was not found",
                            hint="run from a clone of the repository installed with `pip install -e .`")
    return path


def export_html(notebook: str | Path, target: str | Path | None = None) -> Path:
    """The executed notebook as one HTML file (nbconvert), beside it unless ``target`` is given;
    written atomically (a temporary file renamed over the old one)."""
    import os

    import nbformat
    from nbconvert import HTMLExporter

    src = Path(notebook)
    out = Path(target) if target is not None else src.with_suffix(".html")
    body, _ = HTMLExporter().from_notebook_node(nbformat.read(str(src), as_version=4))
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(body, "utf-8")
    os.replace(tmp, out)
    return out


__all__ = ["REPORT_JOB", "PURGE_JOB", "ErasureReport", "export_html", "job_notebook", "Policy", "PurgeReport", "Retention", "erased_ids", "ids_digest", "repurge_staged",
           "restore_blockers"]
