"""HR alert lines shared by every replica on one PostgreSQL database (engine.daemon.alerts' AlertQueue): any
replica puts the lines its work raises into `alerts`; the leader takes them (oldest first, deleted as taken, in
one short transaction) and posts them. A line taken by a leader that dies before posting it is lost: alerts are
a courtesy to HR, the log of the replica that raised it keeps it."""
from __future__ import annotations

from typing import Any


class StoreAlertQueue:
    """put() from any replica, take() by the leader."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def put(self, kind: str, line: str, at: float) -> None:
        with self.store._write() as conn:
            conn.execute("INSERT INTO alerts (kind, line, at) VALUES (%s, %s, %s)", (kind, line, at))

    def take(self, limit: int) -> list[tuple[str, str]]:
        """Up to `limit` lines, oldest first, removed from the queue (skipping rows another leader is taking)."""
        if limit < 1:
            return []
        with self.store._write() as conn:
            rows = conn.execute("DELETE FROM alerts WHERE id IN (SELECT id FROM alerts ORDER BY id LIMIT %s "
                                "FOR UPDATE SKIP LOCKED) RETURNING id, kind, line", (int(limit),)).fetchall()
        return [(r["kind"], r["line"]) for r in sorted(rows, key=lambda r: r["id"])]
