"""Compact binary encoding of a MemoryRecord for STM values and backups.

Layout: 4-byte little-endian header length, a JSON header, then the raw float32 vector. A
hand-written format because it is the hot path of every STM get/set: json of a small dict plus
``np.frombuffer`` costs a few microseconds, far below pickle-free alternatives we could install.

The header is a list; new fields are appended, so items written by an older emergent (a shared
Redis, a SQLite file, a backup's ``stm.bin``) still decode: a header without ``learned_at`` reads as
learned at its last access, the best known time.
"""

from __future__ import annotations

import functools
import json
import struct
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from emergent.errors import IntegrityError
from emergent.memory import decay
from emergent.memory.types import Kind, MemoryRecord, Scope, Tier

_LEN = struct.Struct("<I")

try:  # orjson writes and reads the same JSON ~10x faster: it is most of an STM get/set's own cost
    import orjson

    def _dumps(header: list[object]) -> bytes:
        return orjson.dumps(header, option=orjson.OPT_NON_STR_KEYS)

    _loads: Callable[[bytes], Any] = orjson.loads
except ImportError:  # pragma: no cover - the redis extra installs orjson

    def _dumps(header: list[object]) -> bytes:
        return json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()

    _loads = json.loads  # type: ignore[assignment]


@functools.lru_cache(maxsize=4096)
def _scope(agent: str, user: str | None, session: str | None) -> Scope:
    return Scope(agent, user, session)  # immutable: validate each distinct scope once


def encode(rec: MemoryRecord) -> bytes:
    s = rec.scope
    header = _dumps(
        [
            rec.id, rec.text, rec.kind.value, rec.importance, s.agent, s.user, s.session,
            rec.created_at, rec.last_accessed, rec.stability, rec.access_count, rec.meta, rec.sources,
            rec.learned_at,
        ]
    )
    vec = b"" if rec.vector is None else np.ascontiguousarray(rec.vector, dtype=np.float32).tobytes()
    return _LEN.pack(len(header)) + header + vec


class Sealer(Protocol):
    """What sealing at rest looks like to memory: ``emergent.security.crypto.Cipher`` (AES-GCM under a
    data key of one purpose). Memory never sees keys, settings or the KEK."""

    def seal(self, plaintext: bytes, aad: bytes = b"") -> bytes: ...

    def open(self, blob: bytes, aad: bytes = b"") -> bytes: ...


SEALED = b"EGC\x01"  # the header of a sealed blob (emergent.security.crypto.MAGIC)
#: an STM value sealed bound to its key: ``BOUND + id length (u16) + id + sealed blob`` whose AAD is
#: the agent and the id (:func:`key_aad`); the id rides in clear (it is the key's own name) so a value
#: read without its key (an evicted item) is still checked against the agent and id it was sealed for
BOUND = b"EGS\x01"
_ID_LEN = struct.Struct("<H")


def key_aad(agent: str, id: str) -> bytes:
    return b"stm\0" + agent.encode() + b"\0" + id.encode()


def _moved(agent: str, id: str | None, found: str) -> IntegrityError:
    return IntegrityError(f"a sealed short-term memory value under {agent}/{id or '?'} belongs to {found}: "
                          "it was moved from another key", hint="delete the value; it was tampered with",
                          agent=agent, memory_id=id)


def codec(cipher: Sealer | None) -> tuple[Callable[[MemoryRecord], bytes], Callable[..., MemoryRecord]]:
    """``(encode, decode)`` for a backend: the plain functions themselves without a cipher (the default
    path costs nothing more), else ones that seal the whole value (text, meta, vector) bound to its
    key (agent + id) and open it: ``decode(data, agent, id=None)`` refuses a value moved to another key.
    Values written before encryption was turned on still decode, and so do values sealed before the
    binding (``SEALED``: opened without AAD, then their own agent and id must match the key's)."""
    if cipher is None:
        return encode, decode

    def sealed_encode(rec: MemoryRecord) -> bytes:
        rid = rec.id.encode()
        return BOUND + _ID_LEN.pack(len(rid)) + rid + cipher.seal(encode(rec), key_aad(rec.scope.agent, rec.id))

    def sealed_decode(data: bytes, agent: str, id: str | None = None) -> MemoryRecord:
        head = bytes(data[:4])
        if head == BOUND:
            (n,) = _ID_LEN.unpack_from(data, 4)
            bound = bytes(data[6 : 6 + n]).decode()
            if id is not None and bound != id:
                raise _moved(agent, id, bound)
            return decode(cipher.open(bytes(data[6 + n :]), key_aad(agent, bound)))
        if head != SEALED:
            return decode(data)  # stored before encryption was turned on
        rec = decode(cipher.open(data))  # sealed before values were bound to their key: check its content
        if rec.scope.agent != agent or (id is not None and rec.id != id):
            raise _moved(agent, id, f"{rec.scope.agent}/{rec.id}")
        return rec

    return sealed_encode, sealed_decode


def decode(data: bytes, agent: str | None = None, id: str | None = None) -> MemoryRecord:
    """``agent`` and ``id`` (the key read) matter only to sealed values (:func:`codec`)."""
    (n,) = _LEN.unpack_from(data)
    h = _loads(data[4 : 4 + n])
    vec = np.frombuffer(data, dtype=np.float32, offset=4 + n) if len(data) > 4 + n else None
    return MemoryRecord(
        id=h[0], text=h[1], kind=Kind(h[2]), importance=h[3], scope=_scope(h[4], h[5], h[6]),
        created_at=h[7], last_accessed=h[8], stability=decay.bounded(h[9]), access_count=h[10], meta=h[11],
        sources=h[12], learned_at=h[13] if len(h) > 13 else h[8], tier=Tier.STM, vector=vec,
    )
