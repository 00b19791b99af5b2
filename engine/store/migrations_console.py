"""Indexes for the console's pages at a million notifications (issue 15's 200 ms): the queue by state and due
time (Today's next sends and failures, /v1/queue), held and unmatched outcomes in the order they came (Approvals,
Unmatched), replies by notification (a candidate's history), events of a
day covered by kind, time, rule and channel (Today's and Rules' counts read the index alone), and the candidate
search: each outcome's name, e-mail and phone digits extracted on insert into a trigram full-text table
(`outcome_search`, FTS5 with the trigram tokenizer: a substring `LIKE` of three characters or more reads the
index). SQLite's statements; pg_migrations.py has PostgreSQL's (pg_trgm). Idempotent."""
from __future__ import annotations

from typing import Any

from engine.store.migrations_desk import statements

NAME = "console indexes: queue and outcomes in order, replies by notification, day counts, candidate search"
SEARCH_FTS5 = "FTS5 trigram index"  # what `herald db upgrade` and `db info` say of SQLite's candidate search

# What a search reads of an outcome's body: name, e-mail (lower case) and the phone's digits, joined by a unit
# separator (a query never spans two of them unless it holds one).
_PHONE = "coalesce(json_extract({raw}, '$.candidate.phone'), '')"
for _sep in (" ", "-", "+", ".", "(", ")"):
    _PHONE = f"replace({_PHONE}, '{_sep}', '')"
WHO = ("CASE WHEN json_valid({raw}) THEN lower(coalesce(json_extract({raw}, '$.candidate.name'), '')) || char(31) "
       "|| lower(coalesce(json_extract({raw}, '$.candidate.email'), '')) || char(31) || " + _PHONE + " ELSE '' END")

_SCHEMA = f"""
CREATE INDEX IF NOT EXISTS notifications_by_state_due ON notifications (state, coalesce(next_attempt_at, send_at), id);
CREATE INDEX IF NOT EXISTS notifications_by_due ON notifications (coalesce(next_attempt_at, send_at), id);
CREATE INDEX IF NOT EXISTS replies_by_notification ON replies (notification_id, id);
CREATE INDEX IF NOT EXISTS outcomes_by_status_time ON outcomes (status, state, received_at, id);
DROP INDEX IF EXISTS outcomes_by_status;
CREATE INDEX IF NOT EXISTS events_by_kind_day ON events (kind, at, rule_id, channel);
DROP INDEX IF EXISTS events_by_kind;
CREATE VIRTUAL TABLE IF NOT EXISTS outcome_search USING fts5 (who, tokenize = 'trigram');
DELETE FROM outcome_search;
INSERT INTO outcome_search (rowid, who) SELECT rowid, {WHO.format(raw="raw")} FROM outcomes;
CREATE TRIGGER IF NOT EXISTS outcomes_search_insert AFTER INSERT ON outcomes BEGIN
    INSERT INTO outcome_search (rowid, who) VALUES (new.rowid, {WHO.format(raw="new.raw")});
END;
CREATE TRIGGER IF NOT EXISTS outcomes_search_update AFTER UPDATE OF raw ON outcomes BEGIN
    DELETE FROM outcome_search WHERE rowid = old.rowid;
    INSERT INTO outcome_search (rowid, who) VALUES (new.rowid, {WHO.format(raw="new.raw")});
END;
CREATE TRIGGER IF NOT EXISTS outcomes_search_delete AFTER DELETE ON outcomes BEGIN
    DELETE FROM outcome_search WHERE rowid = old.rowid;
END;
"""


def apply(db: Any) -> None:
    """The migration (inside the migration's transaction)."""
    conn = getattr(db, "conn", db)
    for stmt in statements(_SCHEMA):
        conn.execute(stmt)
