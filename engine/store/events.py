"""Events (append-only, with the rule fields copied for reporting) and candidates' replies."""
from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from engine.store._base import SqlStore, _now, _opt, _row
from engine.store.errors import StoreError
from engine.store.rows import EventCount, Instant, ReplyRow, epoch

KEPT_KINDS = ("unsubscribed",)  # the report still counts these from the events: never pruned


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

    _EVENT_HOURS = False  # whether event_hours (migrations_hours.py) counts the events per hour: SQLite's store

    def event_counts_between(self, kinds: Sequence[str], since: Instant, until: Instant) -> list[EventCount]:
        """Events of `kinds` in [since, until) by kind, rule and channel (the console's day; version, template,
        variant: None). The whole UTC hours inside the range are read from event_hours where it is kept, the
        rest from the events' (kind, at, rule, channel) index: the cost follows the hours and the events at the
        edges, not the events of the range."""
        if not kinds:
            return []
        t0, t1 = _now(since), _now(until)
        h0, h1 = math.ceil(t0 / 3600) * 3600, math.floor(t1 / 3600) * 3600
        marks = ", ".join("?" for _ in kinds)
        group = " GROUP BY kind, rule_id, channel"
        spans = [(t0, t1)]
        totals: Counter = Counter()
        if self._EVENT_HOURS and h0 < h1:
            spans = [(t0, h0), (h1, t1)]
            for r in self._all(f"SELECT kind, rule_id, channel, sum(count) AS count FROM event_hours WHERE hour >= ? "
                               f"AND hour < ? AND kind IN ({marks}){group}", (h0, h1, *kinds)):
                totals[(r["kind"], r["rule_id"] or None, r["channel"] or None)] += int(r["count"])
        for lo, hi in spans:
            if lo < hi:
                for r in self._all(f"SELECT kind, rule_id, channel, count(*) AS count FROM events WHERE kind IN "
                                   f"({marks}) AND at >= ? AND at < ?{group}", (*kinds, lo, hi)):
                    totals[(r["kind"], r["rule_id"], r["channel"])] += int(r["count"])
        return [EventCount(rule, None, None, None, channel, kind, n) for (kind, rule, channel), n
                in sorted(totals.items(), key=lambda kv: tuple(x or "" for x in kv[0]))]

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

    def prune_events(self, before: Instant, limit: int = 10_000) -> int:
        """Deletes up to `limit` events older than `before`, oldest first, of finished notifications (neither
        scheduled nor sending) or of none, except KEPT_KINDS; returns how many (call again until it returns less
        than `limit`: each batch is one short transaction). The report's figures do not change: they are kept
        per notification in report_facts as the events arrive; a pruned notification's own history
        (get_notification().events) keeps only its newer events. The one way round events' append-only rule."""
        if not limit > 0:
            raise StoreError(f"limit must be positive, got {limit!r}")
        kept = ", ".join(f"'{k}'" for k in KEPT_KINDS)
        with self._write() as conn:
            self._allow_prune(conn, True)
            cur = self._x(conn, f"DELETE FROM events WHERE id IN (SELECT e.id FROM events e LEFT JOIN notifications n "
                                f"ON n.id = e.notification_id WHERE e.at < ? AND e.kind NOT IN ({kept}) AND "
                                f"(e.notification_id IS NULL OR n.state NOT IN ('scheduled', 'sending')) "
                                f"ORDER BY e.at, e.id LIMIT ?)", (epoch(before), int(limit)))
            self._allow_prune(conn, False)
            return int(cur.rowcount)

    def _allow_prune(self, conn: Any, on: bool) -> None:
        """Lets this transaction (and only it) delete events; the backend's way (sqlite.py, postgres.py)."""
        raise NotImplementedError
