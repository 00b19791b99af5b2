"""Additive schema for tracking and the report: `report_facts`, one row per notification, kept by triggers on events.

Why: `herald report` must summarise 1,000,000 notifications and 5,000,000 events in a few seconds. Scanning the
events and grouping them per notification costs about 5 s on SQLite before any join, and time to notify needs
each outcome's occurred_at, i.e. a million lookups into outcomes (2.5 s more). So the facts the report needs are
kept as they happen, one narrow row per notification:

- `events_report_queued` (AFTER INSERT of a 'queued' event, which the store writes in the same transaction as
  the notification) inserts the row, copying rule, rule-set version, template, variant, the channel, and the
  outcome's occurred_at, role and stage as they stand for that outcome revision;
- `events_report_facts` (AFTER INSERT of any other event) updates it: first sent, first delivered (or read,
  which implies delivery), first opened (e-mail pixel, or a DingTalk read), clicked, replied, rated (score of the
  first rating), late, fallbacks (escalated events), undelivered receipts, failed (with the reason), cancelled.

An event the store ignores (INSERT OR IGNORE on a dedupe key) fires no trigger, so facts count what events count.
The events table stays the source of truth: `backfill()` rebuilds every row from it (the migration runs it once
for a store that already has events), and tests check that trigger-kept rows equal rebuilt ones.

Two expression indexes on outcomes (the candidate's phone and e-mail) let an inbound reply that names only an
address find its notification without scanning every outcome.

Nothing here changes an existing table, column, index or trigger. Idempotent (IF NOT EXISTS; the backfill only
inserts rows that are missing).
"""
from __future__ import annotations

import sqlite3
from typing import Any

NAME = "tracking and report facts"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS report_facts (        -- one row per notification, kept by triggers on events
    rule_id          TEXT NOT NULL,              -- '' for none: the key orders rows by rule, so the report's
    ruleset_version  TEXT NOT NULL,              -- GROUP BY streams without a sort
    variant          TEXT NOT NULL,
    notification_id  TEXT NOT NULL UNIQUE,
    outcome_id       TEXT,
    template         TEXT,
    role             TEXT,                       -- the outcome's, when the notification was queued
    stage            TEXT,
    occurred_at      REAL,                       -- the outcome's occurred_at (time to notify starts here)
    queued_at        REAL NOT NULL,              -- when herald matched and queued it
    channel          TEXT,                       -- the channel it was last sent on (first planned until sent)
    sent_at          REAL,                       -- first 'sent'
    sends            INTEGER NOT NULL DEFAULT 0, -- 'sent' events (one per channel tried)
    delivered_at     REAL,                       -- first 'delivered' or 'read'
    delivered_channel TEXT,
    assumed          INTEGER NOT NULL DEFAULT 0, -- first delivery was the provider's acceptance (no receipts)
    undelivered      INTEGER NOT NULL DEFAULT 0,
    opened_at        REAL,                       -- first 'opened' (e-mail pixel) or 'read' (DingTalk)
    clicked_at       REAL,
    replied_at       REAL,
    replies          INTEGER NOT NULL DEFAULT 0,
    rated_at         REAL,
    score            INTEGER,                    -- the first rating (1..5)
    late             INTEGER NOT NULL DEFAULT 0,
    fallbacks        INTEGER NOT NULL DEFAULT 0, -- 'escalated' events: moves to a later channel
    failed_at        REAL,
    failed_reason    TEXT,
    cancelled_at     REAL,                       -- cancelled or expired
    PRIMARY KEY (rule_id, ruleset_version, variant, notification_id)
) WITHOUT ROWID;

-- inbound replies (SMS SmsUp, e-mail) name the candidate's address, not the notification
CREATE INDEX IF NOT EXISTS outcomes_by_phone ON outcomes (json_extract(raw, '$.candidate.phone'));
CREATE INDEX IF NOT EXISTS outcomes_by_email ON outcomes (lower(json_extract(raw, '$.candidate.email')));

CREATE TRIGGER IF NOT EXISTS events_report_queued AFTER INSERT ON events
WHEN NEW.kind = 'queued' AND NEW.notification_id IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO report_facts (rule_id, ruleset_version, variant, notification_id, outcome_id, template,
                                        role, stage, occurred_at, queued_at, channel)
    SELECT coalesce(NEW.rule_id, ''), coalesce(NEW.ruleset_version, ''), coalesce(NEW.variant, ''),
           NEW.notification_id, NEW.outcome_id, NEW.template,
           o.role, o.stage, o.occurred_at, NEW.at, NEW.channel
    FROM (SELECT 1) LEFT JOIN outcomes o ON o.id = NEW.outcome_id;
END;

CREATE TRIGGER IF NOT EXISTS events_report_facts AFTER INSERT ON events
WHEN NEW.kind <> 'queued' AND NEW.notification_id IS NOT NULL
BEGIN
    UPDATE report_facts SET
        sent_at = CASE WHEN NEW.kind = 'sent' THEN min(coalesce(sent_at, NEW.at), NEW.at) ELSE sent_at END,
        sends = sends + (NEW.kind = 'sent'),
        channel = CASE WHEN NEW.kind = 'sent' AND NEW.channel IS NOT NULL THEN NEW.channel ELSE channel END,
        assumed = CASE WHEN NEW.kind IN ('delivered', 'read') AND (delivered_at IS NULL OR NEW.at < delivered_at)
                       THEN coalesce(NEW.kind = 'delivered' AND json_extract(NEW.detail, '$.assumed') = 1, 0)
                       ELSE assumed END,
        delivered_channel = CASE WHEN NEW.kind IN ('delivered', 'read')
                                      AND (delivered_at IS NULL OR NEW.at < delivered_at)
                                 THEN NEW.channel ELSE delivered_channel END,
        delivered_at = CASE WHEN NEW.kind IN ('delivered', 'read') THEN min(coalesce(delivered_at, NEW.at), NEW.at)
                            ELSE delivered_at END,
        undelivered = undelivered + (NEW.kind = 'undelivered'),
        opened_at = CASE WHEN NEW.kind IN ('opened', 'read') THEN min(coalesce(opened_at, NEW.at), NEW.at)
                         ELSE opened_at END,
        clicked_at = CASE WHEN NEW.kind = 'clicked' THEN min(coalesce(clicked_at, NEW.at), NEW.at) ELSE clicked_at END,
        replied_at = CASE WHEN NEW.kind = 'replied' THEN min(coalesce(replied_at, NEW.at), NEW.at) ELSE replied_at END,
        replies = replies + (NEW.kind = 'replied'),
        score = CASE WHEN NEW.kind = 'rated' AND rated_at IS NULL
                     THEN CAST(json_extract(NEW.detail, '$.score') AS INTEGER) ELSE score END,
        rated_at = CASE WHEN NEW.kind = 'rated' THEN coalesce(rated_at, NEW.at) ELSE rated_at END,
        late = max(late, NEW.kind = 'late'),
        fallbacks = fallbacks + (NEW.kind = 'escalated'),
        failed_reason = CASE WHEN NEW.kind = 'failed' AND failed_at IS NULL
                             THEN coalesce(json_extract(NEW.detail, '$.reason'), 'unknown') ELSE failed_reason END,
        failed_at = CASE WHEN NEW.kind = 'failed' THEN coalesce(failed_at, NEW.at) ELSE failed_at END,
        cancelled_at = CASE WHEN NEW.kind IN ('cancelled', 'expired') THEN coalesce(cancelled_at, NEW.at)
                            ELSE cancelled_at END
    WHERE notification_id = NEW.notification_id;
END;
"""

# The same facts computed from the events (the source of truth): for stores that had events before this
# migration, and for tests comparing it with what the triggers kept. Ties in first-of times resolve to the
# earliest event by (at, id), as the triggers see them in insertion order.
_BACKFILL = """
INSERT OR IGNORE INTO {target} (
    rule_id, ruleset_version, variant, notification_id, outcome_id, template, role, stage, occurred_at, queued_at,
    channel, sent_at, sends, delivered_at, delivered_channel, assumed, undelivered, opened_at, clicked_at, replied_at,
    replies, rated_at, score, late, fallbacks, failed_at, failed_reason, cancelled_at)
SELECT coalesce(q.rule_id, ''), coalesce(q.ruleset_version, ''), coalesce(q.variant, ''), e.notification_id,
       q.outcome_id, q.template,
       o.role, o.stage, o.occurred_at, q.at,
       coalesce((SELECT s.channel FROM events s WHERE s.notification_id = e.notification_id AND s.kind = 'sent'
                 AND s.channel IS NOT NULL ORDER BY s.id DESC LIMIT 1), q.channel),
       e.sent_at, e.sends, e.delivered_at,
       (SELECT d.channel FROM events d WHERE d.notification_id = e.notification_id AND d.kind IN ('delivered', 'read')
        ORDER BY d.at, d.id LIMIT 1),
       coalesce((SELECT d.kind = 'delivered' AND json_extract(d.detail, '$.assumed') = 1 FROM events d
                 WHERE d.notification_id = e.notification_id AND d.kind IN ('delivered', 'read')
                 ORDER BY d.at, d.id LIMIT 1), 0),
       e.undelivered, e.opened_at, e.clicked_at, e.replied_at, e.replies, e.rated_at,
       (SELECT CAST(json_extract(r.detail, '$.score') AS INTEGER) FROM events r
        WHERE r.notification_id = e.notification_id AND r.kind = 'rated' ORDER BY r.id LIMIT 1),
       e.late, e.fallbacks, e.failed_at,
       (SELECT coalesce(json_extract(f.detail, '$.reason'), 'unknown') FROM events f
        WHERE f.notification_id = e.notification_id AND f.kind = 'failed' ORDER BY f.id LIMIT 1),
       e.cancelled_at
FROM (SELECT notification_id,
             min(CASE WHEN kind = 'sent' THEN at END) AS sent_at,
             sum(kind = 'sent') AS sends,
             min(CASE WHEN kind IN ('delivered', 'read') THEN at END) AS delivered_at,
             sum(kind = 'undelivered') AS undelivered,
             min(CASE WHEN kind IN ('opened', 'read') THEN at END) AS opened_at,
             min(CASE WHEN kind = 'clicked' THEN at END) AS clicked_at,
             min(CASE WHEN kind = 'replied' THEN at END) AS replied_at,
             sum(kind = 'replied') AS replies,
             min(CASE WHEN kind = 'rated' THEN at END) AS rated_at,
             max(kind = 'late') AS late,
             sum(kind = 'escalated') AS fallbacks,
             min(CASE WHEN kind = 'failed' THEN at END) AS failed_at,
             min(CASE WHEN kind IN ('cancelled', 'expired') THEN at END) AS cancelled_at
      FROM events WHERE notification_id IS NOT NULL GROUP BY notification_id) e
JOIN events q ON q.id = (SELECT min(id) FROM events WHERE notification_id = e.notification_id AND kind = 'queued')
LEFT JOIN outcomes o ON o.id = q.outcome_id
"""


def _statements(sql: str) -> list[str]:
    """Splits a script on ';' at the end of a line, keeping trigger bodies (whose lines end in ';') whole."""
    out, buf = [], []
    for line in sql.strip().splitlines():
        buf.append(line)
        text = "\n".join(buf).strip()
        if text.endswith(";") and (not text.upper().startswith("CREATE TRIGGER") or text.upper().endswith("END;")):
            out.append(text)
            buf = []
    if "".join(buf).strip():
        out.append("\n".join(buf))
    return out


def apply(db: Any, backfill_existing: bool = True) -> None:
    """The migration: creates report_facts and its triggers, then fills it from the events already stored.

    `db` is a sqlite_utils Database or a sqlite3 Connection; run it inside the migration's transaction.
    """
    conn = getattr(db, "conn", db)
    for stmt in _statements(_SCHEMA):
        conn.execute(stmt)
    if backfill_existing:
        backfill(conn)


def backfill(conn: sqlite3.Connection, target: str = "report_facts") -> int:
    """Inserts the facts of every notification that has events but no row yet in `target` (a table with
    report_facts' columns); returns how many rows were added."""
    conn = getattr(conn, "conn", conn)
    before = conn.total_changes
    conn.execute(_BACKFILL.format(target=target))
    return conn.total_changes - before


def table_ddl(name: str = "report_facts", temp: bool = False) -> str:
    """CREATE TABLE for report_facts' shape under another name (TEMP: on a read-only connection too)."""
    ddl = next(s for s in _statements(_SCHEMA) if s.upper().startswith("CREATE TABLE"))
    head = f"CREATE {'TEMP ' if temp else ''}TABLE IF NOT EXISTS {name} ("
    return head + ddl.split("(", 1)[1]


def drop_triggers(conn: sqlite3.Connection) -> None:
    """For bulk loads (benchmarks, restores): load events without the triggers, then apply() again to backfill."""
    conn = getattr(conn, "conn", conn)
    conn.execute("DROP TRIGGER IF EXISTS events_report_queued")
    conn.execute("DROP TRIGGER IF EXISTS events_report_facts")
