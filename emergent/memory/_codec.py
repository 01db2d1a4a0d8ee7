"""Compact binary encoding of a MemoryRecord for STM values and backups.

Layout: 4-byte little-endian header length, a JSON header, then the raw float32 vector. A
hand-written format because it is the hot path of every STM get/set: json of a small dict plus
``np.frombuffer`` costs a few microseconds, far below pickle-free alternatives we could install.
"""

from __future__ import annotations

import json
import struct

import numpy as np

from emergent.memory.types import Kind, MemoryRecord, Scope, Tier

_LEN = struct.Struct("<I")


def encode(rec: MemoryRecord) -> bytes:
    s = rec.scope
    header = json.dumps(
        [
            rec.id, rec.text, rec.kind.value, rec.importance, s.agent, s.user, s.session,
            rec.created_at, rec.last_accessed, rec.stability, rec.access_count, rec.meta, rec.sources,
        ],
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    vec = b"" if rec.vector is None else np.ascontiguousarray(rec.vector, dtype=np.float32).tobytes()
    return _LEN.pack(len(header)) + header + vec


def decode(data: bytes) -> MemoryRecord:
    (n,) = _LEN.unpack_from(data)
    h = json.loads(data[4 : 4 + n])
    vec = np.frombuffer(data, dtype=np.float32, offset=4 + n) if len(data) > 4 + n else None
    return MemoryRecord(
        id=h[0], text=h[1], kind=Kind(h[2]), importance=h[3], scope=Scope(h[4], h[5], h[6]),
        created_at=h[7], last_accessed=h[8], stability=h[9], access_count=h[10], meta=h[11],
        sources=h[12], tier=Tier.STM, vector=vec,
    )
