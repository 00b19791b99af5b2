"""Source events (ATS webhooks, engine/sources): one row per verified delivery; schema in migrations_sources.py."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.store._base import SqlStore, _now, _raw_bytes
from engine.store.rows import Instant


@dataclass(frozen=True)
class SourceDelivery:
    """One verified ATS delivery to keep: written in the same transaction as the outcome it became
    (`accept_outcomes(..., deliveries=)`, `amend(..., delivery=)`) or alone (`record_delivery`)."""

    source: str
    event_id: str
    raw: bytes | str
    status: str = ""
    action: str | None = None
    outcome_id: str | None = None
    error: str | None = None
    field: str | None = None


_SE_INSERT = ("INSERT INTO source_events (source, event_id, received_at, action, status, outcome_id, error, field, raw) "
              "VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT (source, event_id) DO NOTHING")


def _delivery_values(d: SourceDelivery, now: float) -> tuple:
    return (d.source, d.event_id, now, d.action, d.status, d.outcome_id, d.error, d.field, _raw_bytes(d.raw))


@dataclass(frozen=True)
class SourceEventRow:
    """One stored delivery of a source."""

    id: int
    source: str
    event_id: str
    received_at: float
    action: str | None
    status: str
    outcome_id: str | None
    error: str | None
    field: str | None
    raw: bytes
    handled_at: float | None

    def text(self) -> str:
        return self.raw.decode("utf-8", "replace")


def _row(r: Mapping[str, Any]) -> SourceEventRow:
    return SourceEventRow(r["id"], r["source"], r["event_id"], r["received_at"], r["action"], r["status"],
                          r["outcome_id"], r["error"], r["field"], bytes(r["raw"]), r["handled_at"])


class SourceEvents(SqlStore):
    """Deliveries of the ATS sources: dedup by (source, event id), the unmapped list, resubmission."""

    def source_event(self, source: str, event_id: str) -> SourceEventRow | None:
        rows = self._all("SELECT * FROM source_events WHERE source = ? AND event_id = ?", (source, event_id))
        return _row(rows[0]) if rows else None

    def record_source_event(self, source: str, event_id: str, status: str, raw: bytes | str, *,
                            action: str | None = None, outcome_id: str | None = None, error: str | None = None,
                            field: str | None = None, at: Instant | None = None) -> bool:
        """Keeps one delivery; False (nothing changed) when (source, event_id) is already stored."""
        return self.record_delivery(SourceDelivery(source, event_id, raw, status, action, outcome_id, error, field), at)

    def record_delivery(self, delivery: SourceDelivery, at: Instant | None = None) -> bool:
        """Keeps one delivery in a transaction of its own; False when (source, event_id) is already stored."""
        with self._write() as conn:
            return bool(self._x(conn, _SE_INSERT, _delivery_values(delivery, _now(at))).rowcount == 1)

    def unmapped_source_events(self, limit: int = 100, source: str | None = None) -> list[SourceEventRow]:
        """Deliveries kept as unmapped (or pending: details not fetched yet) and not resubmitted yet, oldest first."""
        sql = "SELECT * FROM source_events WHERE status IN ('unmapped', 'pending') AND handled_at IS NULL"
        params: Sequence[Any] = ()
        if source is not None:
            sql, params = sql + " AND source = ?", (source,)
        return [_row(r) for r in self._all(sql + " ORDER BY id LIMIT ?", (*params, limit))]

    def resolve_source_event(self, row_id: int, status: str, outcome_id: str | None = None,
                             at: Instant | None = None) -> bool:
        """An unmapped delivery was mapped and taken in after all: its new status, and when."""
        with self._write() as conn:
            cur = self._x(conn, "UPDATE source_events SET status = ?, outcome_id = coalesce(?, outcome_id), "
                                "handled_at = ?, error = NULL, field = NULL WHERE id = ? AND handled_at IS NULL",
                          (status, outcome_id, _now(at), row_id))
            return bool(cur.rowcount == 1)
