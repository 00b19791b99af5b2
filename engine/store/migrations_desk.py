"""Additive schema for the operator's desk (engine/desk): the audit log of what people did, the sending pauses
(kept in the store so that every replica's dispatcher honours them), and a dead letter's resolution (resubmitted
as which outcome, when). SQLite's statements; pg_migrations.py has PostgreSQL's. Idempotent."""
from __future__ import annotations

import sqlite3
from typing import Any

NAME = "operator's desk: audit log, sending pauses, resolved dead letters"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (           -- append-only: who did what, when, why
    id               INTEGER PRIMARY KEY,
    at               REAL NOT NULL,
    actor            TEXT NOT NULL,              -- a person or how the caller came in; never a credential
    action           TEXT NOT NULL,              -- approve | withdraw | cancel | reschedule | send_now | ...
    outcome_id       TEXT,
    notification_id  TEXT,
    target           TEXT,                       -- what else it was about: a channel, a dead letter, a reply
    reason           TEXT,
    detail           TEXT                        -- JSON object: the action's result
);
CREATE INDEX IF NOT EXISTS audit_log_by_outcome ON audit_log (outcome_id, id);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;

CREATE TABLE IF NOT EXISTS sending_pauses (      -- a row pauses sending on one channel, or on all ('*')
    channel     TEXT PRIMARY KEY,
    actor       TEXT NOT NULL,
    reason      TEXT,
    at          REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS notifications_queue ON notifications (next_attempt_at, id);
"""


def statements(script: str) -> list[str]:
    """The complete SQL statements of `script` (a trigger's body keeps its inner semicolons)."""
    out, buf = [], ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip().rstrip(";"))
            buf = ""
    return [s for s in out if s]


def apply(db: Any) -> None:
    """The migration (inside the migration's transaction)."""
    conn = getattr(db, "conn", db)
    for stmt in statements(_SCHEMA):
        conn.execute(stmt)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(dead_letters)").fetchall()}
    if "resolved_at" not in cols:
        conn.execute("ALTER TABLE dead_letters ADD COLUMN resolved_at REAL")
    if "resolved_as" not in cols:
        conn.execute("ALTER TABLE dead_letters ADD COLUMN resolved_as TEXT")
