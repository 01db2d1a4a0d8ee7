"""Runs of the assistant in SQL: each completed step is a checkpoint, and a run is owned by one process at a time.

A run row holds the conversation so far (the model's messages), the tool calls still to make, the
sources, the steps and the usage (``state``, JSON). A process that drives a run holds its *lease*
(``lease_owner``, ``lease_until``), renewed at every checkpoint; another process takes a run over only
by a compare-and-set on ``revision`` — when it waits for an approval that was decided, or when its
owner's lease ran out (the owner was killed). So two surfaces that see the same decision (the chat
widget's poll and ``emergent approvals approve``) never both continue the run.
"""

from __future__ import annotations

import base64
import builtins
import json
import os
import socket
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from emergent.assistant.tables import assistant_runs as runs
from emergent.clock import Clock, SystemClock
from emergent.errors import ConfigError, NotFoundError

RUNNING, WAITING, COMPLETED, STOPPED, FAILED, CANCELLED = (
    "running", "waiting_approval", "completed", "stopped", "failed", "cancelled")
FINAL = frozenset({COMPLETED, STOPPED, FAILED, CANCELLED})
#: how long a driving process owns a run without a checkpoint (a model call can take this long)
LEASE_S = 300.0
OWNER = f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class RunRow:
    id: str
    assistant: str
    principal: str
    asked_by: str
    status: str
    stop_reason: str | None
    mode: str
    question: str
    answer: str | None
    pending_approval: str | None
    state: dict[str, Any]
    revision: int
    lease_owner: str | None
    lease_until: float | None
    created_at: float
    updated_at: float
    extra: dict[str, Any] = field(default_factory=dict)


#: what the conversation is made of: sealed at rest with a cipher (EMERGENT_SECURITY__ENCRYPT)
SEALED_COLUMNS = ("question", "answer", "state")
_SEALED_PREFIX = "egc1:"  # a sealed text column: this prefix, then the sealed blob in base64


class RunStore:
    """Assistant runs in SQL. With ``cipher`` (an ``emergent.security.crypto.Cipher``) the question, the
    answer and the checkpointed state (messages, tool calls and their results, sources) are sealed
    with AES-GCM, each bound to its run id and column; statuses, leases and times stay queryable."""

    def __init__(self, sql: Any, *, clock: Clock | None = None, lease_s: float = LEASE_S, cipher: Any = None) -> None:
        self.sql = sql
        self.clock = clock or SystemClock()
        self.lease_s = lease_s
        self.cipher = cipher

    def _seal(self, run_id: str, values: dict[str, Any]) -> dict[str, Any]:
        if self.cipher is None:
            return values
        out = dict(values)
        for col in SEALED_COLUMNS:
            if out.get(col) is not None:
                blob = self.cipher.seal(str(out[col]).encode(), f"{run_id}/{col}".encode())
                out[col] = _SEALED_PREFIX + base64.b64encode(blob).decode()
        return out

    def _row(self, r: Any) -> RunRow:
        d = dict(r._mapping)
        for col in SEALED_COLUMNS:
            value = d[col]
            if isinstance(value, str) and value.startswith(_SEALED_PREFIX):
                if self.cipher is None:
                    raise ConfigError(f"assistant run {d['id']} is sealed but encryption is off",
                                      hint="set EMERGENT_SECURITY__ENCRYPT=true (and the KEK it was sealed with)")
                blob = base64.b64decode(value[len(_SEALED_PREFIX):])
                d[col] = self.cipher.open(blob, f"{d['id']}/{col}".encode()).decode()
        d["state"] = json.loads(d["state"])
        return RunRow(**d)

    def create(self, *, assistant: str, principal: str, asked_by: str, mode: str, question: str,
               state: dict[str, Any]) -> RunRow:
        now = self.clock.now()
        row = {"id": "run-" + uuid.uuid4().hex[:16], "assistant": assistant, "principal": principal,
               "asked_by": asked_by, "status": RUNNING, "stop_reason": None, "mode": mode, "question": question,
               "answer": None, "pending_approval": None, "state": json.dumps(state, default=str), "revision": 1,
               "lease_owner": OWNER, "lease_until": now + self.lease_s, "created_at": now, "updated_at": now}
        with self.sql.begin() as conn:
            conn.execute(runs.insert(), self._seal(str(row["id"]), row))
        return self.get(str(row["id"]))

    def get(self, run_id: str) -> RunRow:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(runs).where(runs.c.id == run_id)).first()
        if r is None:
            raise NotFoundError(f"no assistant run {run_id!r}", hint="assistant.runs() lists the recent ones",
                                run=run_id)
        return self._row(r)

    def save(self, run: RunRow, **values: Any) -> bool:
        """Checkpoint ``run`` (its state and ``values``) if nobody took it over meanwhile; renews the lease
        while it runs, drops it otherwise. False when another process owns the run now."""
        now = self.clock.now()
        status = values.get("status", run.status)
        values = {**values, "state": json.dumps(run.state, default=str), "revision": run.revision + 1,
                  "updated_at": now, "lease_owner": OWNER if status == RUNNING else None,
                  "lease_until": now + self.lease_s if status == RUNNING else None}
        with self.sql.begin() as conn:
            done = conn.execute(runs.update().where(runs.c.id == run.id, runs.c.revision == run.revision)
                                .values(**self._seal(run.id, values))).rowcount
        if done != 1:
            return False
        for k, v in values.items():
            if k != "state":
                setattr(run, k, v)
        return True

    def claim(self, run: RunRow) -> bool:
        """Take ``run`` over to drive it (it waits for a decided approval, or its owner's lease ran out)."""
        now = self.clock.now()
        with self.sql.begin() as conn:
            done = conn.execute(runs.update().where(runs.c.id == run.id, runs.c.revision == run.revision)
                                .values(status=RUNNING, revision=run.revision + 1, lease_owner=OWNER,
                                        lease_until=now + self.lease_s, updated_at=now)).rowcount
        if done == 1:
            run.status, run.revision, run.lease_owner, run.lease_until = RUNNING, run.revision + 1, OWNER, \
                now + self.lease_s
        return done == 1

    def abandoned(self, run: RunRow) -> bool:
        """True when ``run`` says it is running but its owner stopped renewing the lease (killed)."""
        return run.status == RUNNING and (run.lease_until or 0.0) < self.clock.now()

    def list(self, assistant: str | None = None, *, status: str | None = None, limit: int = 20) -> list[RunRow]:
        q = sa.select(runs).order_by(runs.c.created_at.desc()).limit(limit)
        if assistant is not None:
            q = q.where(runs.c.assistant == assistant)
        if status is not None:
            q = q.where(runs.c.status == status)
        with self.sql.connect() as conn:
            return [self._row(r) for r in conn.execute(q)]

    def erase_content(self, texts: Iterable[str]) -> builtins.list[str]:
        """Right-to-erasure for the runs: every run whose question, answer or checkpointed state (messages,
        tool calls and results, sources, steps) holds one of ``texts`` (an erased memory's text) has it
        replaced by ``[erased]``; the run keeps its id, status, structure and times. A text of at least
        :data:`ERASE_MIN_CHARS` characters is replaced wherever it occurs (also as JSON-escaped inside a
        tool result); a shorter one only where a whole value equals it ("ok" must not blank every run).
        The revision moves on, so a process still driving the run cannot checkpoint the text back
        (its next save fails: it lost the run). Sealed runs are opened, redacted and sealed again.
        Returns the ids of the runs changed."""
        long, short = _needles(texts)
        if not long and not short:
            return []
        changed = []
        with self.sql.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.select(runs.c.id))]
        for run_id in ids:
            for _ in range(5):  # a checkpoint may land between the read and the write: read again
                try:
                    run = self.get(run_id)
                except (NotFoundError, ConfigError):  # gone, or sealed with a key this process lacks
                    break
                question = _redact(run.question, long, short)
                answer = _redact(run.answer, long, short)
                state = _redact(run.state, long, short)
                if (question, answer, state) == (run.question, run.answer, run.state):
                    break
                values = {"question": question, "answer": answer, "state": json.dumps(state, default=str),
                          "revision": run.revision + 1}
                with self.sql.begin() as conn:
                    if conn.dialect.name == "sqlite":  # the old value's freed bytes are zeroed
                        conn.exec_driver_sql("PRAGMA secure_delete=ON")
                    done = conn.execute(runs.update().where(runs.c.id == run_id, runs.c.revision == run.revision)
                                        .values(**self._seal(run_id, values))).rowcount
                if done == 1:
                    changed.append(run_id)
                    break
        return changed

    def waiting_on(self, approval_id: str) -> RunRow | None:
        with self.sql.connect() as conn:
            r = conn.execute(sa.select(runs).where(runs.c.pending_approval == approval_id,
                                                   runs.c.status == WAITING)).first()
        return None if r is None else self._row(r)


#: an erased text shorter than this is replaced only where a whole value equals it, never inside a longer one
ERASE_MIN_CHARS = 8
ERASED = "[erased]"


def _needles(texts: Iterable[str]) -> tuple[list[str], set[str]]:
    """The erased texts to replace inside longer values (with their JSON-escaped forms, as a tool result
    serialised into a message holds them), longest first, and the short ones matched whole."""
    long: set[str] = set()
    short: set[str] = set()
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            continue
        t = t.strip()
        if len(t) < ERASE_MIN_CHARS:
            short.add(t)
            continue
        long.add(t)
        for ascii_ in (True, False):
            long.add(json.dumps(t, ensure_ascii=ascii_)[1:-1])
    return sorted(long, key=len, reverse=True), short


def _redact(value: Any, long: list[str], short: set[str]) -> Any:
    if isinstance(value, str):
        if value.strip() in short:
            return ERASED
        for needle in long:
            if needle in value:
                value = value.replace(needle, ERASED)
        return value
    if isinstance(value, dict):
        return {k: _redact(v, long, short) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(v, long, short) for v in value]
    return value


__all__ = ["CANCELLED", "COMPLETED", "FAILED", "FINAL", "RUNNING", "RunRow", "RunStore", "STOPPED", "WAITING"]
