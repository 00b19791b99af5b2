"""Additive schema for ATS webhooks: `source_events`, one row per verified delivery (dedup key, status, raw body).

(source, event_id) is unique, so a replayed delivery is found and answered `duplicate`; `status` is what it
became (an intake status, withdrawn, ignored, unmapped, or resubmitted ones' new status); an unmapped one
keeps why (error, field) until a person resubmits it (`handled_at`). Unsigned deliveries are never stored.
Nothing here changes an existing table. Idempotent (IF NOT EXISTS).
"""
from __future__ import annotations

from typing import Any

NAME = "source events"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS source_events (
    id           INTEGER PRIMARY KEY,
    source       TEXT NOT NULL,                  -- the name under `sources:` in herald.yaml
    event_id     TEXT NOT NULL,                  -- the provider's delivery id (the dedup key)
    received_at  REAL NOT NULL,
    action       TEXT,                           -- the provider's event type
    status       TEXT NOT NULL,                  -- what it became: an intake status, withdrawn, ignored, unmapped
    outcome_id   TEXT,                           -- <source>:<application id>
    error        TEXT,                           -- unmapped: why (the field named)
    field        TEXT,
    raw          BLOB NOT NULL,                  -- the body exactly as received
    handled_at   REAL,                           -- unmapped: when a person resubmitted it
    UNIQUE (source, event_id)
);
CREATE INDEX IF NOT EXISTS source_events_unmapped ON source_events (status, handled_at, id);
"""


def apply(db: Any) -> None:
    """The migration (inside the migration's transaction)."""
    conn = getattr(db, "conn", db)
    for stmt in (s.strip() for s in _SCHEMA.split(";")):
        if stmt:
            conn.execute(stmt)
