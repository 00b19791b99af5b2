"""The SQLite backend: one file, WAL, synchronous=FULL (a call that returned has been fsynced: it survives kill -9 and
power loss), busy_timeout, foreign keys on. Schema: engine/store/migrations.py. The aggregates' SQL lives in
outcomes.py, notifications.py, attempts.py, events.py and rulesets.py; this module owns the connections.

Threads and processes: one sqlite3 connection per thread (threading.local), opened on first use and
closed by `close()`. Every call that changes state is one `BEGIN IMMEDIATE` transaction, so calls from
several threads or processes on the same file serialise on SQLite's write lock (waiting up to
`busy_timeout`); `claim_due` is one UPDATE ... RETURNING under that lock, so no two dispatchers claim the
same notification. Open one store per process (never carry one across fork).
"""
from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any
from collections.abc import Iterator, Mapping, Sequence

from sqlite_utils import Database

from engine.store.attempts import Attempts
from engine.store.desk import Desk
from engine.store.errors import StoreError, StoreUnavailable
from engine.store.events import Events
from engine.store.migrations import MIGRATIONS, Migration, current_version, migrate
from engine.store.migrations_console import SEARCH_FTS5
from engine.store.notifications import Notifications
from engine.store.outcomes import Outcomes
from engine.store.rulesets import RuleSets
from engine.store.sources import SourceEvents
from engine.store.suppressions import Suppressions

if sqlite3.sqlite_version_info < (3, 35, 0):  # RETURNING
    raise ImportError(f"herald's store needs SQLite 3.35 or newer, this Python has {sqlite3.sqlite_version}")

_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN",
              "SQLITE_PROTOCOL")


class SQLiteStore(Outcomes, Notifications, Attempts, Events, RuleSets, SourceEvents, Suppressions, Desk):
    """The herald store over one SQLite file; see the module docstring for thread and process rules."""

    _EVENT_HOURS = True  # one writer: the per-hour counters of migrations_hours.py cost no contention

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0,
                 migrations: Sequence[Migration] = MIGRATIONS):
        """Opens (creating if needed) and migrates the store at `path`; SchemaVersionError if it is newer than us."""
        if str(path) == ":memory:":
            raise StoreError("the store needs a file: each thread has its own connection")
        self.path = Path(path)
        self.busy_timeout = float(busy_timeout)
        self._local = threading.local()
        self._tx = threading.local()
        self._dbs: weakref.WeakSet = weakref.WeakSet()  # every thread's Database; a dead thread's is freed (closed)
        self._lock = threading.Lock()
        self._closed = False
        db = self._db()
        try:
            for attempt in range(50):  # switching a fresh file to WAL needs a moment alone with it
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or attempt == 49:
                        raise
                    time.sleep(0.05)
            migrate(db, migrations, where=str(self.path))
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, path: str | Path, **kwargs: Any) -> SQLiteStore:
        return cls(path, **kwargs)

    def __enter__(self) -> SQLiteStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes every thread's connection; the Store cannot be used afterwards."""
        with self._lock:
            self._closed = True
            dbs, self._dbs = list(self._dbs), weakref.WeakSet()
        for db in dbs:
            with suppress(sqlite3.Error):
                db.conn.close()

    # -- plumbing

    def _db(self) -> Database:
        db = getattr(self._local, "db", None)
        if db is not None and not self._closed:
            return db
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)  # still used by its own thread only; closed by close()
            db = Database(conn, execute_plugins=False)
            self._dbs.add(db)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA temp_store = MEMORY")  # statement journals of the report triggers stay off disk
        self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken up front, so read-then-write never deadlocks."""
        held = self._batched()
        if held is not None:
            yield held
            return
        conn = self._db().conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            if str(getattr(e, "sqlite_errorname", "")).startswith(_TRANSIENT):
                raise StoreUnavailable(f"store {self.path}: {e}") from e
            raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot across several SELECTs."""
        conn = self._db().conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    def _q(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] = (), *,
           prepared: bool = False) -> list[Mapping[str, Any]]:  # sqlite3 keeps its own statement cache
        cur = conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, params).fetchall()

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Mapping[str, Any]]:
        return self._q(self._db().conn, sql, params)

    def _x(self, conn: sqlite3.Connection, sql: str, params: Sequence[Any] = (), *,
           prepared: bool = False) -> sqlite3.Cursor:
        return conn.execute(sql, params)

    def _xm(self, conn: sqlite3.Connection, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        conn.executemany(sql, seq)

    def _allow_prune(self, conn: sqlite3.Connection, on: bool) -> None:
        """Drops events' no-delete trigger inside the pruning transaction and puts it back, word for word, before
        it commits (SQLite's schema is transactional: no other connection ever sees it gone)."""
        if on:
            row = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'events_no_delete'")
            self._local.no_delete = row.fetchone()
            conn.execute("DROP TRIGGER IF EXISTS events_no_delete")
        elif self._local.no_delete is not None:
            conn.execute(self._local.no_delete[0])

    def schema_version(self) -> int:
        return current_version(self._db())

    def ensure_search_index(self) -> str:
        """The candidate search's index: the FTS5 trigram table its migrations keep (always there)."""
        return SEARCH_FTS5
