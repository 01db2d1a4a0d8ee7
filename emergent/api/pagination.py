"""Cursor pagination: ``?limit=&cursor=`` → ``{"items": [...], "next_cursor": str | null}``.

A cursor is opaque to clients (URL-safe base64 of a small JSON object: the position after the last
item, such as ``{"after": 120}`` for the audit trail or ``{"offset": 50}`` for a list); a cursor that
does not decode is a 400 with a hint, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel

from emergent.errors import ValidationError

T = TypeVar("T")
MAX_LIMIT = 500
DEFAULT_LIMIT = 50


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next (null: the last page)."""

    items: list[T]
    next_cursor: str | None = None


def encode_cursor(position: dict[str, Any]) -> str:
    raw = json.dumps(position, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any]:
    """The position a cursor names ({} for none); a ValidationError for anything we did not issue."""
    if not cursor:
        return {}
    try:
        if len(cursor) > 512:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = json.loads(raw)
        if not isinstance(value, dict):
            raise ValueError("not an object")
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValidationError(f"cursor {cursor[:60]!r} is not one this API issued",
                              hint="pass the next_cursor of the previous page unchanged, or leave cursor out for the "
                                   "first page", field="cursor") from None
    return value


def int_position(position: dict[str, Any], key: str, default: int = 0) -> int:
    value = position.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0 or value > 2**62:
        raise ValidationError("cursor is not one this API issued", hint="pass next_cursor unchanged", field="cursor")
    return value


@dataclass(frozen=True)
class PageParams:
    limit: int
    cursor: str | None

    @property
    def position(self) -> dict[str, Any]:
        return decode_cursor(self.cursor)

    def slice(self, items: Sequence[Any]) -> dict[str, Any]:
        """A page of a list the service returned whole (offset cursor)."""
        start = int_position(self.position, "offset")
        chunk = list(items[start:start + self.limit])
        nxt = start + len(chunk)
        return {"items": chunk, "next_cursor": encode_cursor({"offset": nxt}) if nxt < len(items) else None}


def page_params(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
                cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous "
                                                                                 "page")] = None) -> PageParams:
    return PageParams(limit, cursor)
