"""Versioned schema migrations for the SQLite store: an ordered list, applied once each, recorded in schema_migrations."""
from __future__ import annotations

import time
from dataclasses import dataclass
from collections.abc import Callable, Sequence

from sqlite_utils import Database

from engine.store import (migrations_console, migrations_desk, migrations_hours, migrations_leases,
                          migrations_sources, migrations_suppressions, migrations_tracking, migrations_vocabulary)
from engine.store.errors import SchemaVersionError, StoreError


@dataclass(frozen=True)
class Migration:
    """One step of the schema: applied in order, exactly once, inside the same transaction as its record."""

    version: int
    name: str
    apply: Callable[[Database], None]


# Times are epoch seconds (REAL, UTC). JSON columns hold UTF-8 JSON text. Booleans are 0/1.
_V1 = """
CREATE TABLE outcomes (
    id           TEXT PRIMARY KEY,               -- the outcome's idempotency key
    raw          TEXT NOT NULL,                  -- the JSON body exactly as received (latest revision)
    rev          INTEGER NOT NULL DEFAULT 1,     -- bumped by each amendment
    received_at  REAL NOT NULL,
    occurred_at  REAL,
    decision     TEXT, stage TEXT, role TEXT, reason TEXT,
    approved     INTEGER NOT NULL DEFAULT 1 CHECK (approved IN (0, 1)),
    approved_at  REAL,
    state        TEXT NOT NULL DEFAULT 'active' CHECK (state IN ('active', 'withdrawn', 'superseded')),
    status       TEXT NOT NULL,                  -- matched | unmatched | held | invalid | routed ...
    source       TEXT,                           -- http | file | cli
    handled_by   TEXT,
    handled_at   REAL,
    updated_at   REAL NOT NULL
);
CREATE INDEX outcomes_by_status ON outcomes (status, state);

CREATE TABLE outcome_changes (                   -- append-only history of every outcome
    id          INTEGER PRIMARY KEY,
    outcome_id  TEXT NOT NULL REFERENCES outcomes (id),
    kind        TEXT NOT NULL,                   -- received | approved | withdrawn | superseded | amended | routed
    at          REAL NOT NULL,
    body        TEXT,
    detail      TEXT
);
CREATE INDEX outcome_changes_by_outcome ON outcome_changes (outcome_id, id);
CREATE TRIGGER outcome_changes_no_update BEFORE UPDATE ON outcome_changes
    BEGIN SELECT RAISE(ABORT, 'outcome_changes is append-only'); END;
CREATE TRIGGER outcome_changes_no_delete BEFORE DELETE ON outcome_changes
    BEGIN SELECT RAISE(ABORT, 'outcome_changes is append-only'); END;

CREATE TABLE notifications (
    id               TEXT PRIMARY KEY,           -- "<outcome id>#<outcome revision>"
    outcome_id       TEXT NOT NULL REFERENCES outcomes (id),
    outcome_rev      INTEGER NOT NULL,
    rule_id          TEXT,
    ruleset_version  TEXT,
    variant          TEXT,
    template         TEXT,
    locale           TEXT,
    channels         TEXT NOT NULL,              -- JSON list: the fallback order
    channel_count    INTEGER NOT NULL,
    channel_index    INTEGER NOT NULL DEFAULT 0, -- position in channels being tried
    channel          TEXT NOT NULL,              -- channels[channel_index]
    messages         TEXT NOT NULL,              -- JSON list of rendered messages, one per channel
    send_at          REAL NOT NULL,
    deadline_at      REAL,
    escalate_after_s REAL,
    escalate_at      REAL,                       -- when the current channel's escalation falls due
    await_read       INTEGER NOT NULL DEFAULT 0 CHECK (await_read IN (0, 1)),  -- only a read stops escalation
    next_attempt_at  REAL,
    attempt_count    INTEGER NOT NULL DEFAULT 0,
    state            TEXT NOT NULL CHECK (state IN ('scheduled', 'sending', 'sent', 'delivered', 'read',
                                                    'failed', 'cancelled', 'expired')),
    lease_owner      TEXT,
    lease_until      REAL,
    late             INTEGER NOT NULL DEFAULT 0 CHECK (late IN (0, 1)),
    sent_at          REAL,
    delivered_at     REAL,
    read_at          REAL,
    last_error       TEXT,
    created_at       REAL NOT NULL,
    updated_at       REAL NOT NULL
);
CREATE UNIQUE INDEX notifications_by_outcome ON notifications (outcome_id, outcome_rev);
CREATE INDEX notifications_due ON notifications (state, next_attempt_at);
CREATE INDEX notifications_escalation ON notifications (state, escalate_at);
CREATE INDEX notifications_lease ON notifications (state, lease_until);

CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY,
    notification_id  TEXT NOT NULL REFERENCES notifications (id),
    channel          TEXT NOT NULL,
    channel_index    INTEGER NOT NULL,
    transport        TEXT NOT NULL,
    attempt_key      TEXT NOT NULL UNIQUE,       -- idempotency key passed to the provider
    provider_id      TEXT,
    status           TEXT NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'accepted', 'recoverable', 'permanent')),
    error            TEXT,
    code             TEXT,
    started_at       REAL NOT NULL,
    finished_at      REAL
);
CREATE INDEX attempts_by_provider_id ON attempts (provider_id);
CREATE INDEX attempts_by_notification ON attempts (notification_id, id);

CREATE TABLE events (                            -- append-only
    id               INTEGER PRIMARY KEY,
    notification_id  TEXT REFERENCES notifications (id),
    outcome_id       TEXT,
    kind             TEXT NOT NULL,
    channel          TEXT,
    at               REAL NOT NULL,
    detail           TEXT,
    rule_id          TEXT,
    ruleset_version  TEXT,
    template         TEXT,
    variant          TEXT,
    dedupe_key       TEXT UNIQUE
);
CREATE INDEX events_by_rule ON events (rule_id, ruleset_version, variant, kind);
CREATE INDEX events_by_kind ON events (kind, at);
CREATE INDEX events_by_notification ON events (notification_id, id);
CREATE TRIGGER events_no_update BEFORE UPDATE ON events
    BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;
CREATE TRIGGER events_no_delete BEFORE DELETE ON events
    BEGIN SELECT RAISE(ABORT, 'events is append-only'); END;

CREATE TABLE rulesets (
    version         TEXT PRIMARY KEY,            -- content hash
    files           TEXT NOT NULL,               -- JSON object: path -> content
    loaded_at       REAL NOT NULL,
    last_loaded_at  REAL NOT NULL,
    ok              INTEGER NOT NULL CHECK (ok IN (0, 1)),
    errors          TEXT NOT NULL                -- JSON list of strings
);
CREATE INDEX rulesets_by_time ON rulesets (ok, last_loaded_at);

CREATE TABLE dead_letters (
    id           INTEGER PRIMARY KEY,
    received_at  REAL NOT NULL,
    source       TEXT NOT NULL,                  -- http | file | cli
    reason       TEXT NOT NULL,
    field        TEXT,
    raw          BLOB NOT NULL,                  -- the bytes exactly as received, even when not UTF-8
    remote       TEXT
);

CREATE TABLE replies (
    id               INTEGER PRIMARY KEY,
    notification_id  TEXT REFERENCES notifications (id),
    channel          TEXT,
    at               REAL NOT NULL,
    content          TEXT NOT NULL,
    handled_at       REAL
);
CREATE INDEX replies_unhandled ON replies (handled_at, id);
"""


def _v1(db: Database) -> None:
    db.executescript(_V1)


def _v5(db: Database) -> None:
    """attempts.template_hash: the sha256 of the template file each attempt's message was rendered from."""
    db.execute("ALTER TABLE attempts ADD COLUMN template_hash TEXT")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "initial schema", _v1),
    Migration(2, migrations_tracking.NAME, migrations_tracking.apply),
    Migration(3, migrations_sources.NAME, migrations_sources.apply),
    Migration(4, migrations_suppressions.NAME, migrations_suppressions.apply),
    Migration(5, "attempt template hash", _v5),
    Migration(6, migrations_desk.NAME, migrations_desk.apply),
    Migration(7, migrations_leases.NAME, migrations_leases.apply),
    Migration(8, migrations_vocabulary.NAME, migrations_vocabulary.apply),
    Migration(9, migrations_console.NAME, migrations_console.apply),
    Migration(10, migrations_hours.NAME, migrations_hours.apply),
)


def current_version(db: Database) -> int:
    """The schema version recorded in the database; 0 for an empty one."""
    if "schema_migrations" not in db.table_names():
        return 0
    row = db.execute("SELECT max(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


def check_not_newer(db: Database, migrations: Sequence[Migration] = MIGRATIONS, where: str = "") -> int:
    """The database's version; SchemaVersionError when it is newer than the newest migration known here."""
    have = current_version(db)
    known = migrations[-1].version if migrations else 0
    if have > known:
        raise SchemaVersionError(
            f"store {where or 'database'} is at schema version {have}, but this herald knows versions up to "
            f"{known} only: it was written by a newer herald. Upgrade herald, or point it at another store; "
            f"the file was left untouched."
        )
    return have


def migrate(db: Database, migrations: Sequence[Migration] = MIGRATIONS, where: str = "") -> list[int]:
    """Applies every migration newer than the database, in one IMMEDIATE transaction; returns the versions applied.

    Safe when several processes open the same fresh file at once: the write lock is taken first and the
    version read again under it, so each migration runs exactly once.
    """
    versions = [m.version for m in migrations]
    if versions != sorted(set(versions)):
        raise StoreError(f"migrations must have increasing, distinct versions: {versions}")
    if check_not_newer(db, migrations, where) == (versions[-1] if versions else 0):
        return []  # the common case: nothing to do, no write lock taken
    conn = db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        db.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
        )
        have = check_not_newer(db, migrations, where)
        applied = []
        for m in migrations:
            if m.version > have:
                m.apply(db)
                db.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (m.version, m.name, time.time()),
                )
                applied.append(m.version)
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return applied
