"""Looking into a store without the application: its schema version and pending migrations, and each table with its
row count (`herald db info`). SQLite is read through sqlite-utils (introspection is what it is good at);
PostgreSQL through information_schema."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.store.errors import StoreError
from engine.store.postgres import is_url, redact


@dataclass(frozen=True)
class StoreInfo:
    """What `herald db info` prints."""

    backend: str  # sqlite | postgresql
    where: str  # the file, or the URL without its password
    version: int  # the schema version the database has
    known: int  # the newest version this herald knows
    tables: tuple[tuple[str, int], ...]  # (table, rows), by name
    search: str | None = None  # how the candidate search reads outcomes (None: no search index yet)


def describe(target: str | Path) -> StoreInfo:
    """The store at `target` as it is; migrates nothing, creates nothing."""
    if is_url(str(target)):
        return _describe_pg(str(target))
    return _describe_sqlite(Path(target))


def _describe_sqlite(path: Path) -> StoreInfo:
    import sqlite3

    from sqlite_utils import Database

    from engine.store.migrations import MIGRATIONS, current_version
    from engine.store.migrations_console import SEARCH_FTS5

    if not path.is_file():
        raise StoreError(f"no store at {path}")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        db = Database(conn)
        tables = tuple(sorted((t.name, t.count) for t in db.tables if not t.name.startswith("sqlite_")))
        search = SEARCH_FTS5 if db["outcome_search"].exists() else None  # (before the console's migration: none)
        return StoreInfo("sqlite", str(path), current_version(db), MIGRATIONS[-1].version, tables, search)
    finally:
        conn.close()


def _describe_pg(url: str) -> StoreInfo:
    import psycopg
    from psycopg import sql

    from engine.store.pg_migrations import PG_MIGRATIONS, current_version, search_index

    try:
        conn = psycopg.connect(url, connect_timeout=10)
    except psycopg.OperationalError as e:
        raise StoreError(f"cannot connect to {redact(url)}: {e}") from None
    with conn:
        names = [r[0] for r in conn.execute("SELECT table_name FROM information_schema.tables "
                                            "WHERE table_schema = 'public' AND table_type = 'BASE TABLE'")]
        counts = [conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(n))).fetchone() for n in names]
        tables = tuple(sorted((n, int(c[0]) if c else 0) for n, c in zip(names, counts, strict=True)))
        return StoreInfo("postgresql", redact(url), current_version(conn), PG_MIGRATIONS[-1].version, tables,
                         search_index(conn))
