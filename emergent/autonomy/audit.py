"""The decision audit trail: an append-only, hash-chained log in SQL.

Every entry carries the hash of the one before it: ``hash = sha256(prev_hash + canonical JSON of
{seq, at, kind, actor, data})``. Editing an entry breaks its own hash; inserting or deleting one
breaks the link (and the sequence) at that position; :meth:`AuditLog.verify` names the position.

Appends are buffered and chained when flushed (every ``flush_every`` entries, every
``flush_interval`` seconds from a background thread, on read and on close), so a tool call pays for
a list append, not for an INSERT. The chain is computed at flush time from the last stored hash,
inside the writing transaction, with the next ``seq`` as primary key: two processes that flush at
once collide on the key and the loser re-chains, so the chain stays linear. Decisions made by
humans (approvals, overrides, pause) are flushed at once.

What it does not protect against: someone who rewrites the whole chain from a position onwards
(recomputing every later hash) or truncates its tail. Export the log (``emergent audit export``)
and keep the last hash somewhere else to detect those.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import sqlalchemy as sa

from emergent.autonomy.tables import audit_log
from emergent.clock import Clock, SystemClock
from emergent.stores.batching import BatchWriter

GENESIS = "0" * 64
_AUDIT_COLS = ("seq", "at", "kind", "actor", "data", "prev_hash", "hash")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


@functools.lru_cache(maxsize=4096)
def _dumps(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def insert_many(conn: Any, table: sa.Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    """A plain DBAPI ``executemany`` (no per-row ORM/Core processing): the batched writers' hot path."""
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    cols = ", ".join(columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({cols}) VALUES ({', '.join([mark] * len(columns))})", rows)


def entry_hash(prev_hash: str, seq: int, at: float, kind: str, actor: str, data: Any) -> str:
    """sha256 over ``prev_hash`` + the canonical JSON of {actor, at, data, kind, seq}.

    ``data`` may be given as its canonical JSON text (what the table stores) or as an object."""
    text = data if isinstance(data, str) else canonical(data)
    body = f'{{"actor":{_dumps(actor)},"at":{float(at)!r},"data":{text},"kind":{_dumps(kind)},"seq":{int(seq)}}}'
    return hashlib.sha256((prev_hash + body).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEntry:
    seq: int
    at: float
    kind: str
    actor: str
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "kind": self.kind, "actor": self.actor, "data": self.data,
                "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass
class VerifyReport:
    ok: bool
    entries: int
    problems: list[tuple[int, str]] = field(default_factory=list)
    head: str = GENESIS

    @property
    def first_bad(self) -> int | None:
        return self.problems[0][0] if self.problems else None

    def summary(self) -> str:
        if self.ok:
            return f"audit chain intact: {self.entries} entries, head {self.head[:16]}"
        pos, what = self.problems[0]
        return f"audit chain broken at entry {pos}: {what} ({len(self.problems)} problem(s) in {self.entries} entries)"


class AuditLog(BatchWriter):
    """Append-only hash chain of decisions, approvals, overrides, tool calls and outcomes."""

    thread_name = "audit-flush"

    def __init__(self, sql: Any, *, clock: Clock | None = None, flush_every: int = 512,
                 flush_interval: float | None = 1.0) -> None:
        super().__init__(flush_every=flush_every, flush_interval=flush_interval)
        self.sql = sql
        self.clock = clock or SystemClock()
        self._write_lock = threading.Lock()

    # ------------------------------------------------------------------ writing
    def append(self, kind: str, actor: str, data: dict[str, Any], *, durable: bool = False) -> None:
        """Record an entry; ``durable=True`` writes it (and everything before it) now."""
        self._add((self.clock.now(), kind, actor, data), now=durable)

    def flush(self) -> int:
        """Chain and write the buffered entries; returns how many were written."""
        with self._write_lock:
            batch = self._take()
            if not batch:
                return 0
            for _ in range(50):
                try:
                    self._write(batch)
                    return len(batch)
                except sa.exc.IntegrityError:  # another process appended first: re-chain
                    continue
            self._put_back(batch)
            raise RuntimeError("could not append to the audit log after 50 attempts")

    def _write(self, batch: list[tuple[float, str, str, dict[str, Any]]]) -> None:
        with self.sql.begin() as conn:
            last = conn.execute(sa.select(audit_log.c.seq, audit_log.c.hash)
                                .order_by(audit_log.c.seq.desc()).limit(1)).first()
            seq, prev = (last[0], last[1]) if last else (0, GENESIS)
            rows = []
            for at, kind, actor, data in batch:
                seq += 1
                text = canonical(data)
                h = entry_hash(prev, seq, at, kind, actor, text)
                rows.append((seq, at, kind, actor, text, prev, h))
                prev = h
            insert_many(conn, audit_log, _AUDIT_COLS, rows)

    # ------------------------------------------------------------------ reading
    def entries(self, *, start: int = 1, limit: int | None = None, kind: str | None = None) -> list[AuditEntry]:
        self.flush()
        q = sa.select(audit_log).where(audit_log.c.seq >= start).order_by(audit_log.c.seq)
        if kind:
            q = q.where(audit_log.c.kind == kind)
        if limit:
            q = q.limit(limit)
        with self.sql.connect() as conn:
            return [AuditEntry(r.seq, r.at, r.kind, r.actor, json.loads(r.data), r.prev_hash, r.hash)
                    for r in conn.execute(q)]

    def _iter_rows(self) -> Iterator[Any]:
        with self.sql.connect() as conn:
            yield from conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).yield_per(2000)

    def verify(self) -> VerifyReport:
        """Walk the chain; every edited, inserted or deleted entry is reported with its position."""
        self.flush()
        report = VerifyReport(ok=True, entries=0)
        prev, expected_seq = GENESIS, 1
        for r in self._iter_rows():
            report.entries += 1
            pos = report.entries
            if r.seq != expected_seq:
                report.problems.append((pos, f"sequence jumps from {expected_seq - 1} to {r.seq}: "
                                             f"entry {expected_seq} was deleted or renumbered"))
            if r.prev_hash != prev:
                report.problems.append((pos, f"entry seq={r.seq} does not link to the entry before it: "
                                             "an entry was inserted or deleted here"))
            ok = entry_hash(r.prev_hash, r.seq, r.at, r.kind, r.actor, r.data) == r.hash
            if not ok:
                report.problems.append((pos, f"entry seq={r.seq} was edited: its content does not match its hash"))
            prev, expected_seq = r.hash, r.seq + 1
        report.ok = not report.problems
        report.head = prev
        return report

    def export_jsonl(self, out: IO[str]) -> int:
        """Write every entry as one JSON line (with its hashes, so the copy can be verified)."""
        self.flush()
        n = 0
        for r in self._iter_rows():
            out.write(canonical({"seq": r.seq, "at": r.at, "kind": r.kind, "actor": r.actor,
                                 "data": json.loads(r.data), "prev_hash": r.prev_hash, "hash": r.hash}) + "\n")
            n += 1
        return n



def verify_jsonl(lines: Iterator[str]) -> VerifyReport:
    """Verify an exported copy of the chain (same checks as :meth:`AuditLog.verify`)."""
    report = VerifyReport(ok=True, entries=0)
    prev, expected = GENESIS, 1
    for line in lines:
        if not line.strip():
            continue
        e = json.loads(line)
        report.entries += 1
        pos = report.entries
        if e["seq"] != expected:
            report.problems.append((pos, f"sequence jumps from {expected - 1} to {e['seq']}"))
        if e["prev_hash"] != prev:
            report.problems.append((pos, f"entry seq={e['seq']} does not link to the entry before it"))
        if entry_hash(e["prev_hash"], e["seq"], e["at"], e["kind"], e["actor"], e["data"]) != e["hash"]:
            report.problems.append((pos, f"entry seq={e['seq']} was edited"))
        prev, expected = e["hash"], e["seq"] + 1
    report.ok = not report.problems
    report.head = prev
    return report
