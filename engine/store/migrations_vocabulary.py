"""Values outside the vocabulary, kept per outcome: `outcomes.outside_vocabulary` (JSON object: field path -> the
value as text, or null for an attribute key outside the vocabulary; NULL when every value is inside, or when the
rule set declares no vocabulary), written at intake and by each amendment for its revision. `herald report`
counts them per rule and field through a partial index holding only the marked outcomes. The same DDL serves
SQLite (engine/store/migrations.py) and PostgreSQL (engine/store/pg_migrations.py). Idempotent."""
from __future__ import annotations

from typing import Any

NAME = "values outside the vocabulary per outcome"

INDEX = ("CREATE INDEX IF NOT EXISTS outcomes_outside_vocabulary ON outcomes (id) "
         "WHERE outside_vocabulary IS NOT NULL")


def apply(db: Any) -> None:
    """The SQLite migration (inside the migration's transaction)."""
    conn = getattr(db, "conn", db)
    cols = {r[1] for r in conn.execute("PRAGMA table_info(outcomes)")}
    if "outside_vocabulary" not in cols:
        conn.execute("ALTER TABLE outcomes ADD COLUMN outside_vocabulary TEXT")
    conn.execute(INDEX)


def apply_pg(conn: Any) -> None:
    """The PostgreSQL migration (a psycopg connection inside the migration's transaction)."""
    conn.execute("ALTER TABLE outcomes ADD COLUMN IF NOT EXISTS outside_vocabulary TEXT")
    conn.execute(INDEX)
