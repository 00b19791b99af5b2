"""HR alert lines shared by every replica on one PostgreSQL database (engine.daemon.alerts' Alerter): any
replica puts the lines its work raises into `alerts`; the leader reads them (oldest first) and deletes each only
once its message was posted (or refused for good). A leader that dies holding lines has deleted none of them:
the next leader posts them again, so a line may reach HR twice (the leader died between its post and the delete),
never not at all while the store keeps it."""
from __future__ import annotations

from collections.abc import Collection
from typing import Any


class StoreAlertQueue:
    """put() from any replica; peek() and done() by the leader."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def put(self, kind: str, line: str, at: float) -> None:
        with self.store._write() as conn:
            conn.execute("INSERT INTO alerts (kind, line, at) VALUES (%s, %s, %s)", (kind, line, at))

    def peek(self, limit: int, held: Collection[int] = ()) -> list[tuple[int, str, str]]:
        """Up to `limit` lines (id, kind, line), oldest first, but those whose ids are `held` (read before, not done
        yet); they stay in the queue until done()."""
        if limit < 1:
            return []
        with self.store._read() as conn:
            rows = conn.execute("SELECT id, kind, line FROM alerts WHERE NOT (id = ANY(%s)) ORDER BY id LIMIT %s",
                                (list(held), int(limit))).fetchall()
        return [(r["id"], r["kind"], r["line"]) for r in rows]

    def done(self, ids: Collection[int]) -> None:
        """Deletes the lines `ids` (posted, or refused for good). By id: a line with a lower id that committed after
        a higher one was read is not among them."""
        if ids:
            with self.store._write() as conn:
                conn.execute("DELETE FROM alerts WHERE id = ANY(%s)", (list(ids),))
