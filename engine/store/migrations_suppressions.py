"""Consent: `suppressions`, one row per (channel, address) a candidate asked not to be messaged on, and the
notification state `suppressed` (no channel left that may be used).

The state is added by loosening the CHECK constraint of notifications in place (SQLite's documented
writable_schema procedure for constraint changes that do not touch stored data: every existing row still
satisfies the looser check). Idempotent.
"""
from __future__ import annotations

from typing import Any

NAME = "suppressions"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS suppressions (
    channel          TEXT NOT NULL,              -- a channel name from herald.yaml (email, sms, ...)
    address          TEXT NOT NULL,              -- normalised: e-mail lower-cased, phone digits with a leading +
    reason           TEXT,                       -- why: "unsubscribed", or what a person wrote
    actor            TEXT,                       -- who: "candidate" (the unsubscribe link) or a person
    notification_id  TEXT,                       -- the message whose unsubscribe link was used, if any
    created_at       REAL NOT NULL,
    PRIMARY KEY (channel, address)
)
"""

_OLD = "'failed', 'cancelled', 'expired'))"
_NEW = "'failed', 'cancelled', 'expired', 'suppressed'))"


def apply(db: Any) -> None:
    """The migration (inside the migration's transaction)."""
    conn = getattr(db, "conn", db)
    conn.execute(_SCHEMA)
    row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'notifications'").fetchone()
    if row is None or _OLD not in row[0]:
        return
    version = conn.execute("PRAGMA schema_version").fetchone()[0]
    conn.execute("PRAGMA writable_schema = ON")
    try:
        conn.execute("UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'notifications'",
                     (_OLD, _NEW))
        conn.execute(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        conn.execute("PRAGMA writable_schema = OFF")
