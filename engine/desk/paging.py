"""Pages of a listing: `Page[T]` (the rows and the cursor of the next page) and the opaque cursors themselves.

A cursor is the sort key of the last row shown, as URL-safe base64 of a small JSON list, tagged with the
listing it belongs to: a cursor of another listing, or one that was tampered with, is refused (DeskError),
never misread. Keyset paging: a row added or removed between two pages shifts nothing.
"""
from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
MAX_CURSOR = 512  # characters


class DeskError(ValueError):
    """A desk request that cannot be served as asked (a bad cursor, limit or time); `field` names the input."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Page(Generic[T]):
    """Up to `limit` rows of a listing, and `next`: the cursor of the following page (None: this is the last)."""

    items: tuple[T, ...]
    next: str | None = None


def encode(listing: str, key: Sequence[Any]) -> str:
    """The cursor after a row whose sort key is `key`."""
    text = json.dumps([listing, *key], separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(text.encode("ascii")).decode("ascii").rstrip("=")


def decode(listing: str, cursor: str | None, types: Sequence[type]) -> tuple | None:
    """The sort key a cursor of `listing` carries (its parts of `types`), None for no cursor; DeskError otherwise."""
    if cursor is None or cursor == "":
        return None
    bad = DeskError("cursor", f"cursor: not a cursor of this {listing} listing (start again without one)")
    if len(cursor) > MAX_CURSOR:
        raise bad
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii"))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise bad from None
    if not isinstance(data, list) or len(data) != len(types) + 1 or data[0] != listing:
        raise bad
    key = []
    for value, kind in zip(data[1:], types, strict=True):
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise bad
        key.append(value)
    return tuple(key)


def check_limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
        raise DeskError("limit", f"limit: 1 to {MAX_LIMIT}, got {limit!r}")
    return limit


def page(listing: str, rows: list[T], limit: int, key: Callable[[T], Sequence[Any]]) -> Page[T]:
    """A Page from `limit + 1` fetched rows: the extra row only says there is a next page."""
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(tuple(rows), encode(listing, key(rows[-1])) if more and rows else None)
