"""Events (append-only, with the rule fields copied for reporting) and candidates' replies."""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping

from engine.store._base import SqlStore, _now, _opt, _row
from engine.store.rows import EventCount, Instant, ReplyRow


class Events(SqlStore):
    """Events and replies."""

    def add_event(self, notification_id: str, kind: str, at: Instant | None = None, channel: str | None = None,
                  detail: Mapping[str, Any] | None = None, dedupe_key: str | None = None) -> bool:
        """Records an event (channel defaults to the current one); with a dedupe_key, only once. True if recorded."""
        with self._write() as conn:
            return self._add_event(conn, notification_id, kind, _now(at), channel, detail, dedupe_key)

    def add_reply(self, notification_id: str | None, content: str, at: Instant | None = None,
                  channel: str | None = None) -> int:
        """Keeps a candidate's reply (and a 'replied' event when the notification is known)."""
        t = _now(at)
        with self._write() as conn:
            rid = self._q(conn, "INSERT INTO replies (notification_id, channel, at, content) VALUES (?,?,?,?) "
                                "RETURNING id", (notification_id, channel, t, content))[0]["id"]
            if notification_id is not None:
                self._add_event(conn, notification_id, "replied", t, channel, {"reply_id": rid})
            return int(rid)

    def replies(self, unhandled: bool = True, limit: int = 100) -> list[ReplyRow]:
        where = "WHERE handled_at IS NULL" if unhandled else ""
        rows = self._all(f"SELECT * FROM replies {where} ORDER BY id LIMIT ?", (limit,))
        return [_row(ReplyRow, r) for r in rows]

    def mark_reply_handled(self, reply_id: int, at: Instant | None = None) -> bool:
        with self._write() as conn:
            return bool(self._x(conn, "UPDATE replies SET handled_at = ? WHERE id = ? AND handled_at IS NULL",
                                     (_now(at), reply_id)).rowcount)

    def event_counts(self, since: Instant | None = None) -> list[EventCount]:
        """Events grouped by rule, rule-set version, template, variant, channel and kind (for `herald report`)."""
        rows = self._all("SELECT rule_id, ruleset_version, template, variant, channel, kind, "
                       "count(*) AS count FROM events WHERE at >= ? GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6",
                       (_opt(since) if since is not None else float("-inf"),))
        return [_row(EventCount, r) for r in rows]
