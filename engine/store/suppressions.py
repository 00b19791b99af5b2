"""Suppressions (consent): the channels and addresses a candidate asked not to be messaged on, with who and why;
schema in migrations_suppressions.py. Addresses are normalised so that one person is one entry."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.store._base import SqlStore, _now
from engine.store.rows import Instant


@dataclass(frozen=True)
class SuppressionRow:
    """One suppressed channel + address."""

    channel: str
    address: str
    reason: str | None
    actor: str | None
    notification_id: str | None
    created_at: float


def normal_address(address: str) -> str:
    """The form an address is kept and compared in: e-mail lower-cased; a phone number as + and its digits
    (+86 added to an 11-digit mainland mobile); anything else (a user id, a URL) as given, trimmed."""
    text = address.strip()
    if "@" in text:
        return text.lower()
    digits = "".join(c for c in text if c.isdigit())
    if digits and len(digits) >= 7 and all(c.isdigit() or c in "+-() ." for c in text):
        if len(digits) == 11 and digits.startswith("1") and not text.startswith("+"):
            digits = "86" + digits
        return "+" + digits
    return text


def _row(r: Mapping[str, Any]) -> SuppressionRow:
    return SuppressionRow(r["channel"], r["address"], r["reason"], r["actor"], r["notification_id"], r["created_at"])


class Suppressions(SqlStore):
    """The suppression list: add (idempotent), remove, look up, list."""

    def suppress(self, channel: str, address: str, *, reason: str | None = None, actor: str | None = None,
                 notification_id: str | None = None, at: Instant | None = None) -> bool:
        """Suppresses `channel` for `address`; False (the first entry stands) when it already was."""
        with self._write() as conn:
            cur = self._x(conn, "INSERT INTO suppressions (channel, address, reason, actor, notification_id, created_at) "
                                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (channel, address) DO NOTHING",
                          (channel, normal_address(address), reason, actor, notification_id, _now(at)))
            return bool(cur.rowcount == 1)

    def unsuppress(self, channel: str, address: str) -> bool:
        """Removes the entry; False when there was none."""
        with self._write() as conn:
            cur = self._x(conn, "DELETE FROM suppressions WHERE channel = ? AND address = ?",
                          (channel, normal_address(address)))
            return bool(cur.rowcount)

    def suppression(self, channel: str, address: str) -> SuppressionRow | None:
        """The entry suppressing `channel` for `address`, or None."""
        rows = self._all("SELECT * FROM suppressions WHERE channel = ? AND address = ?",
                         (channel, normal_address(address)))
        return _row(rows[0]) if rows else None

    def suppressed_among(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of these (channel, address) pairs are suppressed, in one query (a dispatcher's batch); each pair
        comes back as it was given."""
        wanted: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for channel, address in pairs:
            wanted.setdefault((channel, normal_address(address)), []).append((channel, address))
        if not wanted:
            return set()
        keys = list(wanted)
        rows = self._all(f"SELECT channel, address FROM suppressions WHERE "
                         f"{' OR '.join('(channel = ? AND address = ?)' for _ in keys)}",
                         [v for k in keys for v in k])
        return {given for r in rows for given in wanted.get((r["channel"], r["address"]), ())}

    def suppressions(self, channel: str | None = None, limit: int = 1000) -> list[SuppressionRow]:
        """Entries, newest first (of one channel, when given)."""
        if channel is None:
            rows = self._all("SELECT * FROM suppressions ORDER BY created_at DESC, channel, address LIMIT ?", (limit,))
        else:
            rows = self._all("SELECT * FROM suppressions WHERE channel = ? ORDER BY created_at DESC, address LIMIT ?",
                             (channel, limit))
        return [_row(r) for r in rows]
