"""The audit trail: one :class:`Auditor` protocol, and its implementation, an append-only,
hash-chained log in SQL whose head is anchored outside the database.

Every entry carries the hash of the one before it: ``hash = sha256(prev_hash + canonical JSON of
{seq, at, kind, actor, data})``. Editing an entry breaks its own hash; inserting or deleting one
breaks the link (and the sequence) at that position; :meth:`AuditLog.verify` names the position.

Truncation (deleting the newest entries) and rewriting the chain from some entry on are caught by
the **anchor**: after every write the head (sequence number and hash) is written to a file signed
with an HMAC key; both files live apart from the database (by default in the user's config
directory, not in the workspace). :meth:`AuditLog.verify` checks the chain against the anchored
head, and against a head you wrote down yourself (``emergent audit verify --head HASH``).

Writes: entries of read-only actions are buffered and chained when flushed (every ``flush_every``
entries, every ``flush_interval`` seconds, on read and on close), so a read pays for a list append.
``durable=True`` entries (decisions, the intent and outcome of actions that change something) are
written before ``append`` returns. A write that fails raises :class:`~emergent.errors.AuditWriteError`
(after retrying a busy database), so the action it records fails too; a background flush that fails
keeps its entries and the next ``append`` raises instead of dropping them.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import hmac
import json
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

import sqlalchemy as sa

from emergent.autonomy.tables import audit_log
from emergent.clock import Clock, SystemClock
from emergent.errors import AuditWriteError, PrincipalError
from emergent.principals import Principal
from emergent.stores.batching import BatchWriter

GENESIS = "0" * 64
_AUDIT_COLS = ("seq", "at", "kind", "actor", "data", "prev_hash", "hash")


def canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` with lone surrogates (valid in JSON and in a Python str, never in UTF-8) as U+FFFD.

    One such character in an entry (a question, a tool argument, a file name) would make its batch
    fail to write forever, and with it every later audited action of the process. Text that was
    encodable is unchanged, so existing chains verify as before."""
    return text if text.isascii() else _SURROGATE.sub("\ufffd", text)


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
    last_seq: int = 0
    anchored: bool | None = None  # None: no anchor configured; False: none written yet

    @property
    def first_bad(self) -> int | None:
        return self.problems[0][0] if self.problems else None

    def summary(self) -> str:
        if self.ok:
            anchored = {True: ", matches its anchored head", False: ", not anchored yet", None: ""}[self.anchored]
            return f"audit chain intact: {self.entries} entries, head {self.head[:16]}{anchored}"
        pos, what = self.problems[0]
        return f"audit chain broken at entry {pos}: {what} ({len(self.problems)} problem(s) in {self.entries} entries)"


class Auditor(Protocol):
    """What every service receives to record what happened (``append(kind, principal, data, durable)``)."""

    def append(self, kind: str, principal: Any, data: dict[str, Any], *, durable: bool = False) -> None:
        """Record an entry; with ``durable`` it is stored before this returns (or this raises)."""
        ...


#: the system's own actors (no person or agent behind them): a closed list, never a prefix a
#: caller could extend with a name of its choosing
SYSTEM_ACTORS = frozenset({"system:expiry", "system:gate", "system:recovery", "system:defaults", "system:close"})


def actor_key(principal: Any) -> str:
    """The stored actor of an entry: a principal's key, or one of :data:`SYSTEM_ACTORS`."""
    if isinstance(principal, Principal):
        return principal.key
    if isinstance(principal, str) and principal in SYSTEM_ACTORS:
        return principal
    raise ValueError(f"audit entries need a Principal (or one of {sorted(SYSTEM_ACTORS)}), got {principal!r}")


def personal_digest(value: Any) -> dict[str, Any]:
    """What the records keep of a personal argument (a memory's text): its length and sha256, never
    the text. A value already reduced to that is kept as it is."""
    if isinstance(value, dict) and value.get("personal") is True and set(value) == {"personal", "chars", "sha256"}:
        return value
    text = value if isinstance(value, str) else canonical(value)
    return {"personal": True, "chars": len(text),
            "sha256": hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()}


_SECRET = re.compile(r"(pass(word|wd)?|secret|token|api[_-]?key|authori[sz]ation|cookie|credential|private[_-]?key)",
                     re.I)
REDACTED = "***"


def redact(value: Any, secret_fields: frozenset[str] = frozenset()) -> Any:
    """A copy of ``value`` with secrets replaced: fields the tool's schema marks secret, and any
    key that names a password, token, key, cookie or authorization header."""
    if isinstance(value, Mapping):
        return {k: REDACTED if (k in secret_fields or _SECRET.search(str(k))) and v is not None
                else redact(v, frozenset()) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v, frozenset()) for v in value]
    if isinstance(value, bytes):
        return f"<{len(value)} bytes sha256:{hashlib.sha256(value).hexdigest()[:16]}>"
    return value


@dataclass(frozen=True, slots=True)
class Head:
    seq: int
    hash: str


class HeadAnchor:
    """The chain's head in a file signed with an HMAC key; both outside the database.

    ``directory`` holds ``<name>.key`` (created once, mode 0600) and ``<name>.head``. The head only
    moves forward (a process that wrote an older head after a newer one does not move it back).
    """

    def __init__(self, directory: str | Path, name: str) -> None:
        self.dir = Path(directory)
        self.key_file = self.dir / f"{name}.key"
        self.head_file = self.dir / f"{name}.head"
        # Every durable audit write moves the head: reading and checking the key and the head each
        # time took ~1 ms of a 1.6 ms append. What this process last read or wrote is kept with the
        # file's identity (inode, size, modification and change times; the change time cannot be
        # set back by anyone but the clock), so a file nobody touched since is not read again, and a
        # file anyone replaced or edited is.
        self._mutex = threading.Lock()
        self._file_lock: tuple[int, int] | None = None  # (pid, fd of the lock file)
        self._seen_key: tuple[tuple[int, ...], bytes] | None = None
        self._seen_head: tuple[tuple[int, ...], Head, bytes] | None = None

    def _key(self, create: bool, *, replace: bool = False) -> bytes | None:
        """The signing key (None: there is none and ``create`` is false). A key file that is not
        the key it was written as raises :class:`AuditWriteError`; ``replace`` (a human
        re-anchoring) writes a new one instead."""
        try:
            return self._parse_key(self.key_file.read_text())
        except FileNotFoundError:
            if not create:
                return None
        except AuditWriteError:
            if not replace:
                raise
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = self.key_file.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
        if replace:
            os.replace(tmp, self.key_file)
        else:
            with contextlib.suppress(FileExistsError):
                os.link(tmp, self.key_file)  # first writer wins; never overwrite a key
            tmp.unlink()
        return self._parse_key(self.key_file.read_text())

    def _parse_key(self, text: str) -> bytes:
        try:
            key = bytes.fromhex(text.strip())
        except ValueError:
            key = b""
        if len(key) < 16:
            raise AuditWriteError(f"the audit anchor key {self.key_file} is damaged (it is not the key it was "
                                  "written as)", hint="check the chain (`emergent audit verify`), then anchor it "
                                                      "again under a new key (`emergent audit anchor`)")
        return key

    @staticmethod
    def _mac(key: bytes, seq: int, h: str) -> str:
        return hmac.new(key, f"{seq}:{h}".encode(), hashlib.sha256).hexdigest()

    def read(self) -> tuple[Head | None, str | None]:
        """(head, problem): the anchored head, or why it cannot be trusted."""
        try:
            key = self._key(create=False)
        except (AuditWriteError, OSError, ValueError) as exc:
            return None, str(exc) if isinstance(exc, AuditWriteError) else \
                f"the audit anchor key {self.key_file} is unreadable: {exc}"
        if key is None:
            return None, None
        try:
            doc = json.loads(self.head_file.read_text())
            head = Head(int(doc["seq"]), str(doc["hash"]))
            mac = str(doc["mac"])
        except FileNotFoundError:
            return None, f"the anchored head {self.head_file} is missing although its key exists"
        except (ValueError, KeyError, TypeError):
            return None, f"the anchored head {self.head_file} is unreadable"
        if not hmac.compare_digest(mac, self._mac(key, head.seq, head.hash)):
            return None, f"the anchored head {self.head_file} does not match its signature (it was edited)"
        return head, None

    def write(self, head: Head, *, force: bool = False) -> None:
        """Move the anchored head forward to ``head``. An anchored head that cannot be trusted
        (deleted while its key stayed, unreadable, not matching its signature, a damaged key) is
        evidence: it is never overwritten (:class:`AuditWriteError`), except with ``force``, a
        human re-anchoring the chain after checking it (:meth:`AuditLog.reanchor`)."""
        with self._locked():
            if not force and not self.key_file.exists():  # under the lock: no head can be expected yet
                self._first(head)
                return
            key = self._key(create=True, replace=force) if force else self._known_key()
            assert key is not None
            current, problem = self._known_head(key)
            if problem is not None and not force:
                raise AuditWriteError(f"the audit anchor is not moved on: {problem}",
                                      hint="the chain may have been cut or rewritten; check it (`emergent audit "
                                           "verify`), then anchor it again (`emergent audit anchor`)")
            if current is not None and current.seq >= head.seq and not force:
                return
            self._put_head(head, key)

    @contextlib.contextmanager
    def _locked(self, timeout_s: float = 30.0) -> Iterator[None]:
        """This process's threads queue on a mutex, processes on ``flock`` of a lock file kept open.

        By hand, not ``filelock``: every durable audit write takes this lock, and filelock's
        acquire and release (fork tracking, the lock file opened and closed each time) cost ~0.4 ms
        of a 0.7 ms anchor write, and its default 50 ms polling made a second process's writes wait
        50 ms at a time. A kernel ``flock`` goes with its holder's death (kill -9 included); another
        process's hold is polled every millisecond up to ``timeout_s``."""
        import fcntl

        with self._mutex:
            if self._file_lock is None or self._file_lock[0] != os.getpid():  # a forked child opens its own
                self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
                fd = os.open(str(self.head_file) + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                self._file_lock = (os.getpid(), fd)
            fd = self._file_lock[1]
            deadline = time.monotonic() + timeout_s
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise AuditWriteError(f"another process held the audit anchor's lock "
                                              f"({self.head_file}.lock) for over {timeout_s:.0f} s",
                                              hint="find the process that hangs (`fuser` on the lock file); "
                                                   "nothing was written") from None
                    time.sleep(0.001)
            try:
                yield
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    @staticmethod
    def _identity(path: Path) -> tuple[int, ...] | None:
        try:
            st = path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_dev, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _known_key(self) -> bytes | None:
        """The key (created when missing), read again only when the file is not the one last read."""
        ident = self._identity(self.key_file)
        if ident is not None and self._seen_key is not None and self._seen_key[0] == ident:
            return self._seen_key[1]
        key = self._key(create=True)
        after = self._identity(self.key_file)
        # kept only when the file did not change while it was read (else: read again next time)
        self._seen_key = (after, key) if after is not None and after == ident and key is not None else None
        return key

    def _known_head(self, key: bytes) -> tuple[Head | None, str | None]:
        """:meth:`read`, unless the head file is the one this process last wrote or read and
        trusted, under the same key (a replaced key must not sign on from a head it never checked)."""
        ident = self._identity(self.head_file)
        seen = self._seen_head
        if ident is not None and seen is not None and seen[0] == ident and hmac.compare_digest(seen[2], key):
            return seen[1], None
        current, problem = self.read()
        if current is not None and problem is None and ident is not None and ident == self._identity(self.head_file):
            self._seen_head = (ident, current, key)
        return current, problem

    def _put_head(self, head: Head, key: bytes) -> None:
        tmp = self.head_file.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps({"seq": head.seq, "hash": head.hash, "at": time.time(),
                                   "mac": self._mac(key, head.seq, head.hash)}))
        os.replace(tmp, self.head_file)
        ident = self._identity(self.head_file)
        self._seen_head = (ident, head, key) if ident is not None else None

    def _first(self, head: Head) -> None:
        """The first anchoring: the head is written (signed) before its key, so a process killed
        between the two leaves a head without a key (never trusted; the next write starts over),
        never a key without its head (which reads as a deleted head and stops every action)."""
        key = secrets.token_bytes(32)
        self._put_head(head, key)
        tmp = self.key_file.with_suffix(f".tmp{os.getpid()}")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key.hex())
        with contextlib.suppress(FileExistsError):
            os.link(tmp, self.key_file)  # first writer wins; never overwrite a key
        tmp.unlink()
        real = self._parse_key(self.key_file.read_text())
        if real != key:  # another writer's key won (a lock on another file system): sign with it
            self._put_head(head, real)


#: the entry chained after one that was stored but whose append failed (its head could not be
#: anchored): ``{"seq", "kind", "why"}``; :meth:`AuditLog.entries` marks that entry ``audit_write_failed``
REFUSED_KIND = "audit.write_failed"
#: how far after its entry a marker is looked for when entries are read a page at a time
REFUSED_WITHIN = 10_000

#: entry fields holding what people, models and tools said (a question, a tool call's arguments or
#: result, a text): sealed at rest when the log has a cipher (EMERGENT_SECURITY__ENCRYPT); kinds,
#: actors, ids, decisions and outcomes stay readable, and the chain verifies without the key
SEALED_FIELDS = frozenset({"question", "args", "answer", "result", "text", "query"})
SEALED_PREFIX = "egc1:"


class AuditLog(BatchWriter):
    """Append-only hash chain of decisions, approvals, overrides, tool calls and outcomes.

    With ``cipher`` (``emergent.security.crypto.Cipher``) the values of :data:`SEALED_FIELDS` are
    stored sealed (AES-GCM, bound to the entry's kind and the field) and :meth:`entries` opens them;
    the hash chain is over what is stored, so ``verify`` needs no key."""

    thread_name = "audit-flush"

    def __init__(self, sql: Any, *, clock: Clock | None = None, flush_every: int = 512,
                 flush_interval: float | None = 1.0, anchor: HeadAnchor | None = None,
                 busy_retry_s: float = 30.0, cipher: Any = None) -> None:
        super().__init__(flush_every=flush_every, flush_interval=flush_interval)
        self.sql = sql
        self.cipher = cipher
        self.clock = clock or SystemClock()
        self.anchor = anchor
        self.busy_retry_s = busy_retry_s
        self._write_lock = threading.Lock()
        self._failure: BaseException | None = None
        self._reanchoring = False  # a human re-anchors: the next anchor write replaces what is there
        #: the principal directory that checks who re-anchors (set by ``Principals``)
        self.directory: Any = None

    # ------------------------------------------------------------------ writing
    def append(self, kind: str, principal: Any, data: dict[str, Any], *, durable: bool = False) -> None:
        """Record an entry; ``durable=True`` writes it (and everything before it) now.

        Raises :class:`AuditWriteError` when the entry cannot be stored (now, or, for a buffered
        entry, when an earlier background write failed and still fails). An entry whose append
        raised is kept (nothing is dropped) but marked ``audit_write_failed``: its caller was told
        the action failed, so the entry must not read as a record of something that happened."""
        if self.cipher is not None and not SEALED_FIELDS.isdisjoint(data):
            data = self._sealed(kind, data)
        item = (self.clock.now(), kind, actor_key(principal), data)
        try:
            self._add(item, now=durable or self._failure is not None)
        except AuditWriteError as exc:
            seq = getattr(exc, "committed", {}).get(id(item))
            if seq is not None:
                # stored in the chain, which cannot be edited, but the head was not anchored and the
                # caller is told the action failed: an entry chained after it says so, and
                # :meth:`entries` shows the refused entry with ``audit_write_failed``
                marker = (self.clock.now(), REFUSED_KIND, item[2],
                          {"seq": seq, "kind": kind, "why": str(exc)[:500]})
                with contextlib.suppress(AuditWriteError):  # the anchor fails again; the SQL write is what counts
                    self._add(marker, now=True)
            else:
                with self._lock:
                    for i, queued in enumerate(self._buf):
                        if queued is item:
                            self._buf[i] = (item[0], kind, item[2], {**data, "audit_write_failed": True})
                            break
            raise

    def _sealed(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        out = dict(data)
        for name in SEALED_FIELDS.intersection(data):
            if data[name] is not None:
                blob = self.cipher.seal(canonical(data[name]).encode(), f"{kind}/{name}".encode())
                out[name] = SEALED_PREFIX + base64.b64encode(blob).decode()
        return out

    def _opened(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """``data`` with sealed fields opened (as they are without a cipher: the sealed text shows)."""
        if self.cipher is None:
            return data
        for name in SEALED_FIELDS.intersection(data):
            value = data[name]
            if isinstance(value, str) and value.startswith(SEALED_PREFIX):
                blob = base64.b64decode(value[len(SEALED_PREFIX):])
                data[name] = json.loads(self.cipher.open(blob, f"{kind}/{name}".encode()))
        return data

    def _loop(self) -> None:
        assert self.flush_interval
        while not self._stop.wait(self.flush_interval):
            if self._buf:
                with contextlib.suppress(AuditWriteError):  # kept; the next append raises
                    self.flush()

    def flush(self) -> int:
        """Chain and write the buffered entries; returns how many were written."""
        with self._write_lock:
            batch = self._take()
            if not batch:
                return 0
            problem = getattr(self.sql, "file_problem", lambda: None)()
            if problem is not None:  # SQLite would report success writing into a deleted or emptied file
                self._fail(batch, f"{problem}; restore it from a backup or put the file back")
            deadline = time.monotonic() + self.busy_retry_s
            delay = 0.01
            while True:
                try:
                    head = self._chain(batch)
                    break
                except sa.exc.IntegrityError:  # another process appended first: re-chain at once
                    if time.monotonic() > deadline:
                        self._fail(batch, "other writers kept taking the next position")
                except sa.exc.OperationalError as exc:  # busy or locked database: back off, retry
                    if time.monotonic() > deadline:
                        self._fail(batch, str(exc.orig))
                    time.sleep(delay)
                    delay = min(delay * 2, 0.5)
                except Exception as exc:  # noqa: BLE001 - anything else: keep the entries, fail loudly
                    self._fail(batch, f"{type(exc).__name__}: {exc}")
            self._failure = None
            if self.anchor is not None and head is not None:
                try:
                    self.anchor.write(head, force=self._reanchoring)
                except (OSError, AuditWriteError) as exc:
                    err = exc if isinstance(exc, AuditWriteError) else AuditWriteError(
                        f"the audit head could not be anchored in {self.anchor.dir}: {exc}",
                        hint="check that the directory is writable (EMERGENT_AUDIT_DIR)")
                    # the batch is committed: which entry got which position, for the append that fails
                    first = head.seq - len(batch) + 1
                    err.committed = {id(item): first + i for i, item in enumerate(batch)}  # type: ignore[attr-defined]
                    if err is exc:
                        raise
                    raise err from exc
            return len(batch)

    def _fail(self, batch: list[Any], why: str) -> None:
        self._put_back(batch)
        err = AuditWriteError(f"could not write {len(batch)} audit entr{'y' if len(batch) == 1 else 'ies'}: {why}",
                              hint="the action was not carried out (or is reported failed); check the database "
                                   "(`emergent doctor`) and retry")
        self._failure = err
        raise err

    def _write(self, batch: list[Any]) -> None:
        self._chain(batch)

    def _chain(self, batch: list[tuple[float, str, str, dict[str, Any]]]) -> Head | None:
        """Chain ``batch`` onto the stored head and insert it in one transaction; the new head."""
        with self.sql.begin() as conn:
            last = conn.execute(sa.select(audit_log.c.seq, audit_log.c.hash)
                                .order_by(audit_log.c.seq.desc()).limit(1)).first()
            seq, prev = (last[0], last[1]) if last else (0, GENESIS)
            rows = []
            for at, kind, actor, data in batch:
                seq += 1
                text = storable(canonical(data))
                h = entry_hash(prev, seq, at, kind, actor, text)
                rows.append((seq, at, kind, actor, text, prev, h))
                prev = h
            insert_many(conn, audit_log, _AUDIT_COLS, rows)
        return Head(seq, prev) if rows else None

    # ------------------------------------------------------------------ reading
    def entries(self, *, start: int = 1, limit: int | None = None, kind: str | None = None) -> list[AuditEntry]:
        self.flush()
        q = sa.select(audit_log).where(audit_log.c.seq >= start).order_by(audit_log.c.seq)
        if kind:
            q = q.where(audit_log.c.kind == kind)
        if limit:
            q = q.limit(limit)
        with self.sql.connect() as conn:
            out = [AuditEntry(r.seq, r.at, r.kind, r.actor, self._opened(r.kind, json.loads(r.data)), r.prev_hash,
                              r.hash) for r in conn.execute(q)]
            if out:  # entries whose append failed after they were stored: their markers follow them
                lo, hi = out[0].seq, out[-1].seq
                marks = sa.select(audit_log.c.data).where(audit_log.c.kind == REFUSED_KIND, audit_log.c.seq > lo)
                if limit:  # a marker is written right after its entry: other writers' entries may come between
                    marks = marks.where(audit_log.c.seq <= hi + REFUSED_WITHIN)
                refused = {int(json.loads(d).get("seq", 0)) for (d,) in conn.execute(marks)}
                for e in out:
                    if e.seq in refused:
                        e.data["audit_write_failed"] = True
            return out

    def _iter_rows(self) -> Iterator[Any]:
        with self.sql.connect() as conn:
            yield from conn.execute(sa.select(audit_log).order_by(audit_log.c.seq)).yield_per(2000)

    def verify(self, *, head: str | None = None) -> VerifyReport:
        """Walk the chain; every edited, inserted or deleted entry is reported with its position.

        The chain is also checked against the anchored head (entries deleted from the end, or a
        chain rewritten from some entry on) and, when given, against ``head``: the hash of an
        entry you saw earlier, which must still be in the chain."""
        self.flush()
        report = VerifyReport(ok=True, entries=0)
        prev, expected_seq = GENESIS, 1
        hashes: dict[int, str] = {}
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
            hashes[r.seq] = r.hash
            prev, expected_seq = r.hash, r.seq + 1
        report.head = prev
        report.last_seq = expected_seq - 1
        if self.anchor is not None:
            self._check_anchor(report, hashes)
        if head is not None and head not in hashes.values():
            report.problems.append((report.entries, f"the head you gave ({head[:16]}) is not in the chain: "
                                                    "entries were deleted or the chain was rewritten"))
        report.ok = not report.problems
        return report

    def _check_anchor(self, report: VerifyReport, hashes: dict[int, str]) -> None:
        assert self.anchor is not None
        anchored, problem = self.anchor.read()
        if problem is not None:
            report.problems.append((report.entries, problem))
            return
        if anchored is None:
            report.anchored = False
            if report.entries:
                report.problems.append((report.entries, (
                    f"the chain has {report.entries} entries but no anchor in {self.anchor.dir}: the key and head "
                    "were deleted, or this database was moved here (then anchor it again with "
                    "`emergent audit anchor`)")))
            return
        report.anchored = True
        if anchored.seq > report.last_seq:
            report.problems.append((report.entries, f"the chain ends at entry {report.last_seq} but its anchored head "
                                                    f"is entry {anchored.seq}: entries were deleted from the end"))
        elif hashes.get(anchored.seq) != anchored.hash:
            report.problems.append((anchored.seq, f"entry seq={anchored.seq} is not the one anchored: the chain was "
                                                  "rewritten from here or earlier"))

    def head(self) -> Head | None:
        """The newest entry's position and hash (None for an empty chain)."""
        self.flush()
        with self.sql.connect() as conn:
            last = conn.execute(sa.select(audit_log.c.seq, audit_log.c.hash)
                                .order_by(audit_log.c.seq.desc()).limit(1)).first()
        return None if last is None else Head(int(last[0]), str(last[1]))

    def reanchor(self, by: Any) -> Head | None:
        """Anchor the chain's current head (after moving a workspace here, or upgrading one that had
        none); recorded in the chain itself. ``by`` must be a human principal issued by the workspace's
        directory (:attr:`directory`, set by the directory): a hand-built one could anchor a truncated
        chain in a made-up person's name."""
        if self.directory is not None:
            by = self.directory.verify(by)
        elif by.__class__ is not Principal:
            raise PrincipalError(f"{type(by).__name__} {by!r} is not a principal", hint="run `emergent audit anchor`")
        if not by.is_human:
            raise AuditWriteError("only a human re-anchors the audit trail", hint="run `emergent audit anchor`")
        head = self.head()
        if head is None or self.anchor is None:
            return head
        with self._write_lock:
            self._reanchoring = True
        try:
            self.append("audit.reanchored", by, {"seq": head.seq, "hash": head.hash, "dir": str(self.anchor.dir)},
                        durable=True)
        finally:
            self._reanchoring = False
        return self.head()

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
