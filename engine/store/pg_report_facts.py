"""PostgreSQL's `report_facts`: the same narrow row per notification as SQLite's (migrations_tracking.py), kept by
one row trigger on events, so `herald report` reads the same facts on either backend and gives the same numbers.

The trigger (`herald_report_facts`, AFTER INSERT ON events for each row with a notification) inserts the row on the
'queued' event (rule, rule-set version, template, variant, channel, and the outcome's occurred_at, role and stage
as they stand for that revision) and updates it on every other event: first sent, first delivered (or read),
first opened, clicked, replied, rated (the first score), late, fallbacks, undelivered, failed (with the reason),
cancelled. Column for column and rule for rule it is SQLite's trigger, written in PL/pgSQL (least() where SQLite
has min(), `(a = b)::int` where SQLite sums booleans, jsonb where it has json_extract). An event ignored by
ON CONFLICT fires no trigger, so facts count what events count.

`BACKFILL` rebuilds the rows from the events (the source of truth): the migration runs it once for a database
that already has events, `herald db copy` and the benchmarks load events without the trigger and run it after.
"""
from __future__ import annotations

from typing import Any

NAME = "report facts"

COLUMNS = ("rule_id", "ruleset_version", "variant", "notification_id", "outcome_id", "template", "role", "stage",
           "occurred_at", "queued_at", "channel", "sent_at", "sends", "delivered_at", "delivered_channel", "assumed",
           "undelivered", "opened_at", "clicked_at", "replied_at", "replies", "rated_at", "score", "late", "fallbacks",
           "failed_at", "failed_reason", "cancelled_at")

SCHEMA = """
CREATE TABLE report_facts (
    rule_id           TEXT NOT NULL,
    ruleset_version   TEXT NOT NULL,
    variant           TEXT NOT NULL,
    notification_id   TEXT NOT NULL PRIMARY KEY,
    outcome_id        TEXT,
    template          TEXT,
    role              TEXT,
    stage             TEXT,
    occurred_at       DOUBLE PRECISION,
    queued_at         DOUBLE PRECISION NOT NULL,
    channel           TEXT,
    sent_at           DOUBLE PRECISION,
    sends             INTEGER NOT NULL DEFAULT 0,
    delivered_at      DOUBLE PRECISION,
    delivered_channel TEXT,
    assumed           INTEGER NOT NULL DEFAULT 0,
    undelivered       INTEGER NOT NULL DEFAULT 0,
    opened_at         DOUBLE PRECISION,
    clicked_at        DOUBLE PRECISION,
    replied_at        DOUBLE PRECISION,
    replies           INTEGER NOT NULL DEFAULT 0,
    rated_at          DOUBLE PRECISION,
    score             INTEGER,
    late              INTEGER NOT NULL DEFAULT 0,
    fallbacks         INTEGER NOT NULL DEFAULT 0,
    failed_at         DOUBLE PRECISION,
    failed_reason     TEXT,
    cancelled_at      DOUBLE PRECISION
) WITH (fillfactor = 80);  -- rows are updated in place as events arrive: room for HOT updates

CREATE OR REPLACE FUNCTION herald_json_int(detail TEXT, key TEXT) RETURNS INTEGER LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE jsonb_typeof(detail::jsonb -> key)
           WHEN 'number' THEN trunc((detail::jsonb ->> key)::numeric)::integer
           WHEN 'boolean' THEN CASE WHEN (detail::jsonb -> key) = 'true'::jsonb THEN 1 ELSE 0 END
           END
$$;

CREATE OR REPLACE FUNCTION herald_report_facts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind = 'queued' THEN
        INSERT INTO report_facts (rule_id, ruleset_version, variant, notification_id, outcome_id, template,
                                  role, stage, occurred_at, queued_at, channel)
        SELECT coalesce(NEW.rule_id, ''), coalesce(NEW.ruleset_version, ''), coalesce(NEW.variant, ''),
               NEW.notification_id, NEW.outcome_id, NEW.template, o.role, o.stage, o.occurred_at, NEW.at, NEW.channel
        FROM (SELECT 1) AS one LEFT JOIN outcomes o ON o.id = NEW.outcome_id
        ON CONFLICT (notification_id) DO NOTHING;
        RETURN NULL;
    END IF;
    UPDATE report_facts SET
        sent_at = CASE WHEN NEW.kind = 'sent' THEN least(sent_at, NEW.at) ELSE sent_at END,
        sends = sends + (NEW.kind = 'sent')::int,
        channel = CASE WHEN NEW.kind = 'sent' AND NEW.channel IS NOT NULL THEN NEW.channel ELSE channel END,
        assumed = CASE WHEN NEW.kind IN ('delivered', 'read') AND (delivered_at IS NULL OR NEW.at < delivered_at)
                       THEN coalesce((NEW.kind = 'delivered' AND herald_json_int(NEW.detail, 'assumed') = 1)::int, 0)
                       ELSE assumed END,
        delivered_channel = CASE WHEN NEW.kind IN ('delivered', 'read')
                                      AND (delivered_at IS NULL OR NEW.at < delivered_at)
                                 THEN NEW.channel ELSE delivered_channel END,
        delivered_at = CASE WHEN NEW.kind IN ('delivered', 'read') THEN least(delivered_at, NEW.at)
                            ELSE delivered_at END,
        undelivered = undelivered + (NEW.kind = 'undelivered')::int,
        opened_at = CASE WHEN NEW.kind IN ('opened', 'read') THEN least(opened_at, NEW.at) ELSE opened_at END,
        clicked_at = CASE WHEN NEW.kind = 'clicked' THEN least(clicked_at, NEW.at) ELSE clicked_at END,
        replied_at = CASE WHEN NEW.kind = 'replied' THEN least(replied_at, NEW.at) ELSE replied_at END,
        replies = replies + (NEW.kind = 'replied')::int,
        score = CASE WHEN NEW.kind = 'rated' AND rated_at IS NULL THEN herald_json_int(NEW.detail, 'score')
                     ELSE score END,
        rated_at = CASE WHEN NEW.kind = 'rated' THEN coalesce(rated_at, NEW.at) ELSE rated_at END,
        late = greatest(late, (NEW.kind = 'late')::int),
        fallbacks = fallbacks + (NEW.kind = 'escalated')::int,
        failed_reason = CASE WHEN NEW.kind = 'failed' AND failed_at IS NULL
                             THEN coalesce(NEW.detail::jsonb ->> 'reason', 'unknown') ELSE failed_reason END,
        failed_at = CASE WHEN NEW.kind = 'failed' THEN coalesce(failed_at, NEW.at) ELSE failed_at END,
        cancelled_at = CASE WHEN NEW.kind IN ('cancelled', 'expired') THEN coalesce(cancelled_at, NEW.at)
                            ELSE cancelled_at END
    WHERE notification_id = NEW.notification_id;
    RETURN NULL;
END $$;

CREATE TRIGGER events_report_facts AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.notification_id IS NOT NULL) EXECUTE FUNCTION herald_report_facts();
"""

# The same facts computed from the events; ties in first-of times resolve to the earliest event by (at, id), as
# the trigger sees them in insertion order (SQLite's backfill, migrations_tracking._BACKFILL, in PostgreSQL's words).
BACKFILL = f"""
INSERT INTO report_facts ({', '.join(COLUMNS)})
SELECT coalesce(q.rule_id, ''), coalesce(q.ruleset_version, ''), coalesce(q.variant, ''), e.notification_id,
       q.outcome_id, q.template, o.role, o.stage, o.occurred_at, q.at,
       coalesce((SELECT s.channel FROM events s WHERE s.notification_id = e.notification_id AND s.kind = 'sent'
                 AND s.channel IS NOT NULL ORDER BY s.id DESC LIMIT 1), q.channel),
       e.sent_at, e.sends, e.delivered_at,
       (SELECT d.channel FROM events d WHERE d.notification_id = e.notification_id AND d.kind IN ('delivered', 'read')
        ORDER BY d.at, d.id LIMIT 1),
       coalesce((SELECT (d.kind = 'delivered' AND herald_json_int(d.detail, 'assumed') = 1)::int FROM events d
                 WHERE d.notification_id = e.notification_id AND d.kind IN ('delivered', 'read')
                 ORDER BY d.at, d.id LIMIT 1), 0),
       e.undelivered, e.opened_at, e.clicked_at, e.replied_at, e.replies, e.rated_at,
       (SELECT herald_json_int(r.detail, 'score') FROM events r
        WHERE r.notification_id = e.notification_id AND r.kind = 'rated' ORDER BY r.id LIMIT 1),
       e.late, e.fallbacks, e.failed_at,
       (SELECT coalesce(f.detail::jsonb ->> 'reason', 'unknown') FROM events f
        WHERE f.notification_id = e.notification_id AND f.kind = 'failed' ORDER BY f.id LIMIT 1),
       e.cancelled_at
FROM (SELECT notification_id,
             min(at) FILTER (WHERE kind = 'sent') AS sent_at,
             count(*) FILTER (WHERE kind = 'sent') AS sends,
             min(at) FILTER (WHERE kind IN ('delivered', 'read')) AS delivered_at,
             count(*) FILTER (WHERE kind = 'undelivered') AS undelivered,
             min(at) FILTER (WHERE kind IN ('opened', 'read')) AS opened_at,
             min(at) FILTER (WHERE kind = 'clicked') AS clicked_at,
             min(at) FILTER (WHERE kind = 'replied') AS replied_at,
             count(*) FILTER (WHERE kind = 'replied') AS replies,
             min(at) FILTER (WHERE kind = 'rated') AS rated_at,
             coalesce(max((kind = 'late')::int), 0) AS late,
             count(*) FILTER (WHERE kind = 'escalated') AS fallbacks,
             min(at) FILTER (WHERE kind = 'failed') AS failed_at,
             min(at) FILTER (WHERE kind IN ('cancelled', 'expired')) AS cancelled_at
      FROM events WHERE notification_id IS NOT NULL GROUP BY notification_id) e
JOIN events q ON q.id = (SELECT min(id) FROM events WHERE notification_id = e.notification_id AND kind = 'queued')
LEFT JOIN outcomes o ON o.id = q.outcome_id
ON CONFLICT (notification_id) DO NOTHING
"""


# Migration 6: the 'queued' facts of a multi-row INSERT of events (intake's batches) are inserted by ONE statement
# per INSERT, reading its new rows as a transition table, instead of one trigger call per row; the row trigger
# keeps every other kind.
SET_BASED = """
CREATE OR REPLACE FUNCTION herald_report_queued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO report_facts (rule_id, ruleset_version, variant, notification_id, outcome_id, template,
                              role, stage, occurred_at, queued_at, channel)
    SELECT coalesce(e.rule_id, ''), coalesce(e.ruleset_version, ''), coalesce(e.variant, ''),
           e.notification_id, e.outcome_id, e.template, o.role, o.stage, o.occurred_at, e.at, e.channel
    FROM fresh e LEFT JOIN outcomes o ON o.id = e.outcome_id
    WHERE e.kind = 'queued' AND e.notification_id IS NOT NULL
    ORDER BY e.id
    ON CONFLICT (notification_id) DO NOTHING;
    RETURN NULL;
END $$;
DROP TRIGGER events_report_facts ON events;
CREATE TRIGGER events_report_facts AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.notification_id IS NOT NULL AND NEW.kind <> 'queued') EXECUTE FUNCTION herald_report_facts();
CREATE TRIGGER events_report_queued AFTER INSERT ON events REFERENCING NEW TABLE AS fresh
    FOR EACH STATEMENT EXECUTE FUNCTION herald_report_queued();
"""
TRIGGERS = ("events_report_facts", "events_report_queued")


def apply(conn: Any) -> None:
    """The migration: the table, its trigger, and the facts of the events already stored."""
    conn.execute(SCHEMA)
    conn.execute(BACKFILL)


def set_trigger(conn: Any, enabled: bool) -> None:
    """Turns the facts triggers off for a bulk load of events (then run BACKFILL or copy the facts) and on again;
    inside the loader's transaction, so no other session ever sees them off."""
    rows = conn.execute("SELECT tgname FROM pg_trigger WHERE tgrelid = 'events'::regclass").fetchall()
    have = {r["tgname"] if isinstance(r, dict) else r[0] for r in rows}
    for name in TRIGGERS:
        if name in have:
            conn.execute(f"ALTER TABLE events {'ENABLE' if enabled else 'DISABLE'} TRIGGER {name}")
