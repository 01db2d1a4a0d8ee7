"""Dialect-neutral SQL dump: every table as JSON lines, through SQLAlchemy reflection.

Used by backups when the database is not SQLite (PostgreSQL and friends); SQLite files are copied
with the ``sqlite3`` online backup API instead. Values JSON cannot hold natively (bytes, dates,
decimals, UUIDs) are tagged so they come back with their type. ``alembic_version`` is not dumped:
the restored database keeps the schema of the running code, and only rows move.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import json
import uuid
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

SKIP = {"alembic_version"}


def _encode(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, decimal.Decimal):
        return {"$dec": str(value)}
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot dump a {type(value).__name__} value")


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and len(value) == 1:
        (tag, raw), = value.items()
        if tag == "$b64":
            return base64.b64decode(raw)
        if tag == "$dt":
            return dt.datetime.fromisoformat(raw)
        if tag == "$date":
            return dt.date.fromisoformat(raw)
        if tag == "$dec":
            return decimal.Decimal(raw)
    return value


def _reflect(conn: Connection) -> sa.MetaData:
    md = sa.MetaData()
    md.reflect(bind=conn)
    return md


def dump(engine: Engine, target: Path) -> dict[str, int]:
    """Write ``<table>.jsonl`` for every table into ``target``; returns rows per table."""
    target.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with engine.connect() as conn:  # one snapshot: a REPEATABLE READ-like view on PostgreSQL
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        for table in _reflect(conn).sorted_tables:
            if table.name in SKIP:
                continue
            n = 0
            with (target / f"{table.name}.jsonl").open("w", encoding="utf-8") as fh:
                for row in conn.execute(sa.select(table)).mappings():
                    fh.write(json.dumps(dict(row), default=_encode, ensure_ascii=False) + "\n")
                    n += 1
            counts[table.name] = n
    return counts


def load(engine: Engine, source: Path, keep: set[str] | None = None) -> dict[str, int]:
    """Replace the rows of every dumped table (one transaction); tables in ``keep`` are left alone.

    Columns present in only one side (a newer schema) are skipped; tables the running schema does
    not have are ignored.
    """
    keep = keep or set()
    counts: dict[str, int] = {}
    with engine.begin() as conn:
        md = _reflect(conn)
        tables = [t for t in md.sorted_tables if t.name not in SKIP | keep and (source / f"{t.name}.jsonl").exists()]
        for table in reversed(tables):
            conn.execute(table.delete())
        for table in tables:
            cols = set(table.c.keys())
            rows = []
            with (source / f"{table.name}.jsonl").open(encoding="utf-8") as fh:
                for line in fh:
                    raw = json.loads(line)
                    rows.append({k: _decode(v) for k, v in raw.items() if k in cols})
            for start in range(0, len(rows), 1000):
                conn.execute(table.insert(), rows[start : start + 1000])
            counts[table.name] = len(rows)
            if engine.dialect.name == "postgresql":
                _advance_sequences(conn, table)
    return counts


def _advance_sequences(conn: Connection, table: sa.Table) -> None:
    """Explicit ids were inserted: move each serial sequence past the largest one."""
    for col in table.primary_key.columns:
        if isinstance(col.type, sa.Integer):
            conn.execute(
                sa.text(
                    f"SELECT setval(pg_get_serial_sequence(:t, :c), "
                    f"COALESCE((SELECT MAX({conn.dialect.identifier_preparer.quote(col.name)}) "
                    f"FROM {conn.dialect.identifier_preparer.quote(table.name)}), 0) + 1, false)"
                ),
                {"t": table.name, "c": col.name},
            )
