"""Envelope encryption at rest: AES-256-GCM data keys wrapped by a key-encryption key (KEK).

- The KEK (32 bytes, base64) comes from ``EMERGENT_SECURITY__KEK`` or a file (created 0600 with a
  fresh key when missing: :func:`load_kek`). It never reaches SQL: only its fingerprint (an HMAC of
  a constant under it) is stored beside each data key, so a wrong KEK is a clear
  :class:`~emergent.errors.ConfigError`, never garbage.
- Data keys (one active per *purpose*: ``memory.ltm``, ``memory.stm``, ``sql.tool_calls``...) live in
  the table ``crypto_keys`` (migration branch ``crypto_0001``) only wrapped with AES key wrap
  (RFC 3394, whose integrity check refuses a wrong KEK a second time). Unwrapped keys are cached in
  the process.
- A sealed blob is ``b"EGC" + version (1) + data key id (16 bytes) + nonce (12 random bytes) +
  AES-GCM ciphertext and tag``; the header, the purpose and the caller's ``aad`` are authenticated,
  so a blob moved to another purpose or another row (``aad`` = its id) does not open.
- :meth:`KeyRing.rotate_kek` re-wraps every data key under a new KEK in one transaction, touching no
  sealed data; :meth:`KeyRing.rotate_data_key` retires a purpose's key for new writes (old blobs name
  their key and stay readable). Both are audited before they happen.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from emergent.clock import Clock, SystemClock
from emergent.errors import ConfigError, IntegrityError, NotFoundError, ValidationError
from emergent.security.crypto_tables import crypto_keys

MAGIC = b"EGC\x01"  # "emergent ciphertext", format 1
_ID_LEN = 16
_NONCE_LEN = 12
HEADER_LEN = len(MAGIC) + _ID_LEN + _NONCE_LEN
OVERHEAD = HEADER_LEN + 16  # header + GCM tag
KEK_HINT = ("the KEK is 32 random bytes in base64 (`python -c \"import os,base64;"
            "print(base64.b64encode(os.urandom(32)).decode())\"`), in EMERGENT_SECURITY__KEK or the file "
            "EMERGENT_SECURITY__KEK_FILE")


def is_sealed(blob: bytes | bytearray | memoryview | None) -> bool:
    """True when ``blob`` starts with this module's header (a zstd frame or JSON never does)."""
    return blob is not None and len(blob) >= OVERHEAD and bytes(blob[:4]) == MAGIC


def _decode_kek(text: str, where: str) -> bytes:
    try:
        kek = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"the key-encryption key in {where} is not base64", hint=KEK_HINT) from exc
    if len(kek) != 32:
        raise ConfigError(f"the key-encryption key in {where} is {len(kek)} bytes, not 32", hint=KEK_HINT)
    return kek


def new_kek() -> bytes:
    return secrets.token_bytes(32)


def write_kek(path: str | os.PathLike[str], kek: bytes) -> Path:
    """Write ``kek`` (base64) to a new file readable by its owner only; an existing file is refused."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(base64.b64encode(kek).decode() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return p


def load_kek(b64: str | None, path: str | os.PathLike[str]) -> bytes:
    """The 32-byte KEK: from ``b64`` when given, else from the file ``path`` (created 0600 holding a
    fresh key when missing). A malformed key is a :class:`ConfigError` with a hint."""
    if b64:
        return _decode_kek(b64, "EMERGENT_SECURITY__KEK")
    p = Path(path)
    try:
        return _decode_kek(p.read_text(), str(p))
    except FileNotFoundError:
        pass
    try:
        write_kek(p, kek := new_kek())
    except FileExistsError:  # another process created it meanwhile: use theirs
        return _decode_kek(p.read_text(), str(p))
    return kek


def finish_interrupted_rotation(sql: Any, path: str | os.PathLike[str], kek: bytes) -> bytes:
    """The KEK that opens the stored data keys, finishing a KEK rotation a kill interrupted.

    ``emergent keys rotate-kek`` writes the new KEK to ``<path>.new``, re-wraps the data keys (one
    commit), then renames the new file over ``path``. Killed between the commit and the rename, ``path``
    holds a KEK that wraps nothing any more: when the stored keys carry the fingerprint of ``<path>.new``
    (and not of ``kek``), the rename is done now and that key returned. Anything else is left as it is
    (a ``.new`` that wraps nothing may belong to a rotation running now in another process)."""
    p = Path(path)
    pending = p.with_name(p.name + ".new")
    if not pending.exists():
        return kek
    with sql.connect() as conn:
        stored = {r.kek_fp for r in conn.execute(sa.select(crypto_keys.c.kek_fp).distinct())}
    if not stored or fingerprint(kek) in stored:
        return kek
    new = _decode_kek(pending.read_text(), str(pending))
    if stored == {fingerprint(new)}:
        os.replace(pending, p)
        return new
    return kek


def fingerprint(kek: bytes) -> str:
    """A stored, non-secret identifier of a KEK (HMAC-SHA256 of a constant under it, 16 bytes hex)."""
    return hmac.new(kek, b"emergent kek fingerprint v1", hashlib.sha256).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class DataKeyInfo:
    id: str
    purpose: str
    created_at: float
    created_by: str
    retired_at: float | None


class KeyRing:
    """Data keys wrapped by the KEK, sealing and opening blobs under them (thread-safe)."""

    def __init__(self, sql: Any, *, kek: bytes, audit: Any = None, clock: Clock | None = None,
                 principals: Any = None) -> None:
        if len(kek) != 32:
            raise ConfigError(f"the key-encryption key is {len(kek)} bytes, not 32", hint=KEK_HINT)
        self.sql = sql
        self.audit = audit
        self.principals = principals  # given: rotations are a verified human's (else ``by`` is recorded as is)
        self.clock = clock or SystemClock()
        self._kek = kek
        self._fp = fingerprint(kek)
        self._lock = threading.Lock()
        self._keys: dict[bytes, AESGCM] = {}  # data key id (16 bytes) -> its cipher
        self._active: dict[str, bytes] = {}  # purpose -> id of the key new writes use

    @property
    def kek_fingerprint(self) -> str:
        return self._fp

    # ------------------------------------------------------------------ keys
    def _unwrap(self, row: Any) -> AESGCM:
        if row.kek_fp != self._fp:
            raise ConfigError(
                f"data key {row.id} ({row.purpose}) was wrapped by another key-encryption key "
                f"(fingerprint {row.kek_fp}, this one is {self._fp}): sealed data cannot be opened",
                hint="set EMERGENT_SECURITY__KEK (or EMERGENT_SECURITY__KEK_FILE) to the KEK this workspace "
                     "was sealed with; a lost KEK means the sealed data is lost", key=row.id,
                stored_fingerprint=row.kek_fp, fingerprint=self._fp)
        try:
            return AESGCM(aes_key_unwrap(self._kek, row.wrapped))
        except InvalidUnwrap as exc:
            raise IntegrityError(f"data key {row.id} does not unwrap under the KEK of its fingerprint: the "
                                 "crypto_keys row was altered", hint="restore crypto_keys from a backup",
                                 key=row.id) from exc

    def _load(self, key_id: bytes) -> AESGCM:
        hex_id = key_id.hex()
        with self.sql.connect() as conn:
            row = conn.execute(sa.select(crypto_keys).where(crypto_keys.c.id == hex_id)).first()
        if row is None:
            raise NotFoundError(f"no data key {hex_id}: this blob was sealed in another workspace or its key "
                                "was deleted", hint="restore crypto_keys from the backup taken with the data",
                                key=hex_id)
        cipher = self._unwrap(row)
        with self._lock:
            self._keys[key_id] = cipher
        return cipher

    def _active_key(self, purpose: str) -> tuple[bytes, AESGCM]:
        key_id = self._active.get(purpose)
        if key_id is not None:
            return key_id, self._keys[key_id]
        with self._lock:
            key_id = self._active.get(purpose)
            if key_id is not None:
                return key_id, self._keys[key_id]
            with self.sql.connect() as conn:
                row = conn.execute(sa.select(crypto_keys).where(
                    crypto_keys.c.purpose == purpose, crypto_keys.c.retired_at.is_(None))
                    .order_by(crypto_keys.c.created_at.desc()).limit(1)).first()
            if row is None:
                key_id, cipher = self._create(purpose, by="system:crypto")
            else:
                key_id, cipher = bytes.fromhex(row.id), self._unwrap(row)
            self._keys[key_id] = cipher
            self._active[purpose] = key_id
            return key_id, cipher

    def _create(self, purpose: str, *, by: str) -> tuple[bytes, AESGCM]:
        raw = AESGCM.generate_key(bit_length=256)
        key_id = uuid.uuid4().bytes
        self.check()  # never add a key under a KEK other than the one the existing keys use
        with self.sql.begin() as conn:
            conn.execute(crypto_keys.insert(), {"id": key_id.hex(), "purpose": purpose,
                                                "wrapped": aes_key_wrap(self._kek, raw), "kek_fp": self._fp,
                                                "created_at": self.clock.now(), "created_by": by})
        return key_id, AESGCM(raw)

    def check(self) -> int:
        """Raise the wrong-KEK :class:`ConfigError` when any stored data key was wrapped by another KEK;
        returns how many keys there are."""
        with self.sql.connect() as conn:
            rows = conn.execute(sa.select(crypto_keys.c.id, crypto_keys.c.purpose, crypto_keys.c.kek_fp)).all()
        for row in rows:
            if row.kek_fp != self._fp:
                self._unwrap(row)
        return len(rows)

    def data_keys(self) -> list[DataKeyInfo]:
        with self.sql.connect() as conn:
            rows = conn.execute(sa.select(crypto_keys).order_by(crypto_keys.c.created_at)).all()
        return [DataKeyInfo(r.id, r.purpose, r.created_at, r.created_by, r.retired_at) for r in rows]

    def export_keys(self) -> list[dict[str, Any]]:
        """Every data key row as stored: wrapped by the KEK (base64), never in clear. A backup's
        manifest carries them, so the archive and the KEK alone restore a workspace whose database
        (and with it ``crypto_keys``) was lost."""
        with self.sql.connect() as conn:
            rows = conn.execute(sa.select(crypto_keys)).mappings().all()
        return [{**dict(r), "wrapped": base64.b64encode(r["wrapped"]).decode()} for r in rows]

    def adopt(self, rows: list[dict[str, Any]]) -> int:
        """Add the data keys of ``rows`` (:meth:`export_keys`' form) this ring lacks and that are
        wrapped by its KEK (checked by unwrapping); rows wrapped by another KEK are skipped (a KEK
        rotated since re-wrapped the same keys in the table, or they are another workspace's).
        Returns how many were added; keys are never replaced or deleted."""
        with self.sql.connect() as conn:
            have = set(conn.execute(sa.select(crypto_keys.c.id)).scalars())
        new = []
        for row in rows:
            if row.get("id") in have or row.get("kek_fp") != self._fp:
                continue
            wrapped = base64.b64decode(row["wrapped"])
            try:
                aes_key_unwrap(self._kek, wrapped)
            except InvalidUnwrap as exc:
                raise IntegrityError(f"data key {row['id']} does not unwrap under the KEK of its fingerprint: "
                                     "the backup's key list was altered", hint="use another backup",
                                     key=row["id"]) from exc
            new.append({c.name: row.get(c.name) for c in crypto_keys.columns} | {"wrapped": wrapped})
        if new:
            with self.sql.begin() as conn:
                conn.execute(crypto_keys.insert(), new)
        return len(new)

    # ------------------------------------------------------------------ sealing
    def seal(self, plaintext: bytes, *, purpose: str, aad: bytes = b"") -> bytes:
        key_id, cipher = self._active_key(purpose)
        header = MAGIC + key_id + os.urandom(_NONCE_LEN)
        return header + cipher.encrypt(header[-_NONCE_LEN:], plaintext, header + purpose.encode() + b"\0" + aad)

    def open(self, blob: bytes, *, purpose: str, aad: bytes = b"") -> bytes:
        blob = bytes(blob)
        if not is_sealed(blob):
            raise ValidationError("not a sealed blob (no emergent ciphertext header)",
                                  hint="the data was stored unencrypted, or is damaged")
        key_id = blob[4 : 4 + _ID_LEN]
        cipher = self._keys.get(key_id) or self._load(key_id)
        header = blob[:HEADER_LEN]
        try:
            return cipher.decrypt(header[-_NONCE_LEN:], blob[HEADER_LEN:], header + purpose.encode() + b"\0" + aad)
        except InvalidTag as exc:
            raise IntegrityError(f"a sealed {purpose} blob failed authentication (altered, truncated, or "
                                 "moved from another row or purpose)", hint="restore it from a backup",
                                 purpose=purpose, key=key_id.hex()) from exc

    def cipher(self, purpose: str) -> Cipher:
        """``seal``/``open`` bound to one purpose: what a service is handed (it never sees the KEK)."""
        return Cipher(self, purpose)

    # ------------------------------------------------------------------ rotation
    def _human(self, by: Any) -> Any:
        if self.principals is None:
            return by
        from emergent.workspace.audited import human

        return human(self.principals, by, "rotate encryption keys")

    def rotate_kek(self, new_kek: bytes, *, by: Any) -> int:
        """Re-wrap every data key under ``new_kek`` in one transaction (no sealed data is touched);
        returns how many keys were re-wrapped. Store the new KEK where the workspace reads it before
        the next process starts: the old one no longer opens anything."""
        if len(new_kek) != 32:
            raise ConfigError(f"the new key-encryption key is {len(new_kek)} bytes, not 32", hint=KEK_HINT)
        by = self._human(by)
        new_fp = fingerprint(new_kek)
        n = self.check()
        if self.audit is not None:
            self.audit.append("crypto.kek_rotated", by, {"keys": n, "from": self._fp, "to": new_fp}, durable=True)
        with self._lock, self.sql.begin() as conn:
            rows = conn.execute(sa.select(crypto_keys)).all()
            for row in rows:
                if row.kek_fp != self._fp:  # another process rotated meanwhile: nothing is changed here
                    self._unwrap(row)
                raw = aes_key_unwrap(self._kek, row.wrapped)
                conn.execute(crypto_keys.update().where(crypto_keys.c.id == row.id, crypto_keys.c.kek_fp == self._fp)
                             .values(wrapped=aes_key_wrap(new_kek, raw), kek_fp=new_fp))
            self._kek, self._fp = new_kek, new_fp
        return len(rows)

    def rotate_data_key(self, purpose: str, *, by: Any) -> str:
        """A new data key for ``purpose``: new writes use it; blobs sealed under the older ones stay
        readable (they name their key). Returns the new key's id."""
        from emergent.audit import actor_key

        by = self._human(by)
        with self.sql.connect() as conn:
            old = [r.id for r in conn.execute(sa.select(crypto_keys.c.id).where(
                crypto_keys.c.purpose == purpose, crypto_keys.c.retired_at.is_(None)))]
        if self.audit is not None:
            self.audit.append("crypto.data_key_rotated", by, {"purpose": purpose, "retired": old}, durable=True)
        with self._lock:
            key_id, cipher = self._create(purpose, by=actor_key(by))
            if old:
                with self.sql.begin() as conn:
                    conn.execute(crypto_keys.update().where(crypto_keys.c.id.in_(old))
                                 .values(retired_at=self.clock.now()))
            self._keys[key_id] = cipher
            self._active[purpose] = key_id
        return key_id.hex()


@dataclass(frozen=True, slots=True)
class Cipher:
    """A key ring's sealing bound to one purpose (``memory.ltm``, ``memory.stm``, ``sql.tool_calls``)."""

    ring: KeyRing
    purpose: str

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes:
        return self.ring.seal(plaintext, purpose=self.purpose, aad=aad)

    def open(self, blob: bytes, aad: bytes = b"") -> bytes:
        return self.ring.open(blob, purpose=self.purpose, aad=aad)
