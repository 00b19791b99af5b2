"""`herald db copy`: moves a deployment's store from one backend to the other (SQLite -> PostgreSQL to scale out,
PostgreSQL -> SQLite to take a copy home), row for row.

Every table is copied with its ids (outcome revisions, notification ids, attempt, event, reply and dead-letter
ids, rule sets in their load order) and its report facts, from one consistent snapshot of the source (SQLite: a
read transaction; PostgreSQL: REPEATABLE READ, READ ONLY), and the source is never written. The target gets its
own backend's schema first (migrated to the newest version), then:

- PostgreSQL: one transaction: the rows arrive through COPY with the report-facts trigger off (the facts are
  copied, not recomputed: they hold each outcome's role and occurred_at as they were when queued), then every
  identity sequence is moved past the largest id copied, so new rows never collide. Nothing is visible until
  it commits; a failed copy leaves the database as it was.
- SQLite: written to a temporary file beside the target, fsynced, and renamed over it at the end.

A target that holds data is refused unless `replace` is set (PostgreSQL: its herald tables are emptied in the
same transaction; SQLite: the file is replaced). Both schemas must be at this herald's newest version (run
`herald db upgrade` on an older source first), so every column has a place.
"""
from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.store.errors import StoreError
from engine.store.postgres import is_url, redact

# In foreign-key order; each with the column that orders its rows (the load order rule sets are listed in).
TABLES: tuple[tuple[str, str], ...] = (
    ("outcomes", "id"), ("outcome_changes", "id"), ("notifications", "id"), ("attempts", "id"), ("events", "id"),
    ("replies", "id"), ("report_facts", "notification_id"), ("rulesets", "rowid"), ("dead_letters", "id"),
    ("source_events", "id"), ("suppressions", "channel, address"), ("audit_log", "id"), ("sending_pauses", "channel"),
)
IDENTITY = ("outcome_changes", "attempts", "events", "replies", "dead_letters", "source_events",
            "audit_log")  # integer ids
BATCH = 5000

Progress = Callable[[str, int, int], None]  # (table, rows copied so far, rows in the table)


@dataclass(frozen=True)
class CopyResult:
    """What was copied: (table, rows) in copy order."""

    source: str
    target: str
    tables: tuple[tuple[str, int], ...]


def copy_store(source: str, target: str, *, replace: bool = False, progress: Progress | None = None) -> CopyResult:
    """Copies every herald table from `source` to `target` (a SQLite path or a postgresql:// URL each)."""
    if _same(source, target):
        raise StoreError("source and target are the same store")
    with _open_source(source) as src:
        counts = {t: src.count(t) for t, _ in TABLES}
        if is_url(target):
            done = _into_postgres(src, target, counts, replace, progress)
        else:
            done = _into_sqlite(src, Path(target), counts, replace, progress)
    return CopyResult(_label(source), _label(target), tuple(done))


def _label(target: str) -> str:
    return redact(target) if is_url(target) else str(target)


def _same(a: str, b: str) -> bool:
    if is_url(a) or is_url(b):
        return a == b
    return Path(a).resolve() == Path(b).resolve()


class _Source:
    """One consistent read-only snapshot of the source store."""

    def __init__(self, conn: Any, pg: bool):
        self.conn, self.pg = conn, pg

    def columns(self, table: str) -> list[str]:
        if self.pg:
            rows = self.conn.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = "
                                     "current_schema() AND table_name = %s ORDER BY ordinal_position", (table,))
            return [r[0] for r in rows if not (table == "rulesets" and r[0] == "rowid")]
        return [r[1] for r in self.conn.execute(f"PRAGMA table_info({table})")]

    def count(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])

    def rows(self, table: str, cols: Sequence[str], order: str) -> Iterator[tuple]:
        cur = self.conn.cursor(name=f"copy_{table}") if self.pg else self.conn.cursor()
        cur.execute(f"SELECT {', '.join(cols)} FROM {table} ORDER BY {order}")
        while batch := cur.fetchmany(BATCH):
            yield from batch


@contextlib.contextmanager
def _open_source(source: str) -> Iterator[_Source]:
    if is_url(source):
        import psycopg

        from engine.store.pg_migrations import PG_MIGRATIONS, current_version

        try:
            conn = psycopg.connect(source, connect_timeout=10)
        except psycopg.OperationalError as e:
            raise StoreError(f"cannot connect to {redact(source)}: {str(e).strip()}") from None
        with conn:
            _check_version(current_version(conn), PG_MIGRATIONS[-1].version, redact(source))
            conn.rollback()  # the snapshot starts with the next transaction
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield _Source(conn, pg=True)
            conn.rollback()
        return
    from sqlite_utils import Database

    from engine.store.migrations import MIGRATIONS
    from engine.store.migrations import current_version as lite_version

    path = Path(source)
    if not path.is_file():
        raise StoreError(f"no store at {path}")
    lite = sqlite3.connect(f"file:{path.resolve()}?mode=ro", uri=True, isolation_level=None, timeout=30)
    try:
        _check_version(lite_version(Database(lite)), MIGRATIONS[-1].version, str(path))
        lite.execute("BEGIN")  # one snapshot for every table
        yield _Source(lite, pg=False)
    finally:
        lite.close()


def _check_version(have: int, want: int, where: str) -> None:
    if have != want:
        raise StoreError(f"source {where} is at schema version {have}, this herald's is {want}: "
                         + ("run `herald --store SOURCE db upgrade` first" if have < want else "use a newer herald"))


def _target_columns(src: _Source, table: str, have: Sequence[str], where: str) -> list[str]:
    cols = src.columns(table)
    missing = [c for c in cols if c not in have]
    if missing:
        raise StoreError(f"target {where} has no column {table}.{missing[0]}")
    return cols


def _into_postgres(src: _Source, url: str, counts: dict[str, int], replace: bool,
                   progress: Progress | None) -> list[tuple[str, int]]:
    import psycopg

    from engine.store import open_store
    from engine.store.pg_report_facts import set_trigger

    open_store(url, upgrade=True).close()  # the schema, at the newest version
    where = redact(url)
    done = []
    with psycopg.connect(url) as conn:
        filled = [t for t, _ in TABLES if (conn.execute(f"SELECT EXISTS (SELECT 1 FROM {t})").fetchone() or [0])[0]]
        if filled and not replace:
            raise StoreError(f"target {where} is not empty ({', '.join(filled)}): pass --replace to empty it first")
        if filled:
            conn.execute(f"TRUNCATE {', '.join(t for t, _ in TABLES)} RESTART IDENTITY")
        set_trigger(conn, False)
        for table, order in TABLES:
            have = [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                               "table_schema = current_schema() AND table_name = %s", (table,))]
            cols = _target_columns(src, table, have, where)
            n = 0
            with conn.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as cp:
                for row in src.rows(table, cols, order):
                    cp.write_row(row)
                    n += 1
                    if progress and n % BATCH == 0:
                        progress(table, n, counts[table])
            if progress:
                progress(table, n, counts[table])
            done.append((table, n))
        for table in IDENTITY:
            conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                         f"coalesce((SELECT max(id) FROM {table}), 0) + 1, false)")
        set_trigger(conn, True)
    return done


def _into_sqlite(src: _Source, path: Path, counts: dict[str, int], replace: bool,
                 progress: Progress | None) -> list[tuple[str, int]]:
    from engine.store import SQLiteStore, migrations_tracking

    if path.exists() and path.stat().st_size > 0:
        with SQLiteStore(path) as existing:
            filled = [t for t, _ in TABLES if existing._all(f"SELECT 1 FROM {t} LIMIT 1")]
        if filled and not replace:
            raise StoreError(f"target {path} is not empty ({', '.join(filled)}): pass --replace to replace it")
    tmp = path.with_name(f".{path.name}.copy-{os.getpid()}")
    for p in (tmp, tmp.with_name(tmp.name + "-wal"), tmp.with_name(tmp.name + "-shm")):
        p.unlink(missing_ok=True)
    SQLiteStore(tmp).close()  # the schema, at the newest version
    done = []
    conn = sqlite3.connect(str(tmp), isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = DELETE")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("BEGIN IMMEDIATE")
        migrations_tracking.drop_triggers(conn)  # the facts are copied, not recomputed
        for table, order in TABLES:
            have = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            cols = _target_columns(src, table, have, str(path))
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            n = 0
            batch: list[tuple] = []
            for row in src.rows(table, cols, order):
                batch.append(row)
                if len(batch) == BATCH:
                    conn.executemany(sql, batch)
                    n += len(batch)
                    batch = []
                    if progress:
                        progress(table, n, counts[table])
            conn.executemany(sql, batch)
            n += len(batch)
            if progress:
                progress(table, n, counts[table])
            done.append((table, n))
        migrations_tracking.apply(conn, backfill_existing=False)
        conn.execute("COMMIT")
    except BaseException:
        conn.close()
        tmp.unlink(missing_ok=True)
        raise
    conn.close()
    for suffix in ("-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)
    os.replace(tmp, path)
    return done
