"""The PostgreSQL backend: several herald replicas share one database and one queue.

psycopg 3 with a connection pool (psycopg_pool). The aggregates' SQL (outcomes.py, notifications.py, ...) is
written once in SQLite's dialect; `_sql` translates it (placeholders, INSERT OR IGNORE -> ON CONFLICT DO
NOTHING) and caches the result. Parameters are bound client-side (psycopg's ClientCursor), so untyped NULLs
compare as in SQLite; the few statements of the send path (`prepared=True`: the claim, the attempt, the result,
the events) are bound server-side and prepared once per pooled connection instead, so PostgreSQL does not parse
and plan them again for every notification (about a third of its time per send), except with `listen` off
(PgBouncer in transaction mode, where a prepared statement would not follow the session).
Schema: engine/store/pg_migrations.py.

Concurrency: every call that changes state is one READ COMMITTED transaction; transitions are conditional
UPDATEs (`WHERE state = ...`), re-checked by PostgreSQL against the latest row version, so two replicas
never both win one. Claims are one `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED LIMIT n)
RETURNING`, in a short transaction of their own: no row lock is held while a provider is called. Expired
leases are returned by one replica at a time (a transaction-scoped advisory lock; the others skip the sweep).
Reads that need one snapshot run REPEATABLE READ. The periodic work (sweep, escalations, receipt polling) is run by
the one replica holding a session advisory lock (LEADER_LOCK) on a connection of its own, outside the pool: if that
replica dies or loses its connection, PostgreSQL releases the lock and another replica takes it within a second or
so (`is_leader()`). Two leaders for a moment (a partition noticed late) do no harm: that work is idempotent.
"""
from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any

from engine.store.attempts import Attempts
from engine.store.desk import Desk, _like
from engine.store.errors import StoreError, StoreUnavailable
from engine.store.events import Events
from engine.store.notifications import Notifications
from engine.store.outcomes import Outcomes
from engine.store.pg_listen import CHANNEL, Wakeups
from engine.store.pg_alerts import StoreAlertQueue
from engine.store.pg_ratelimit import StoreRateLimiter
from engine.store.pg_migrations import PG_MIGRATIONS, PgMigration, current_version, ensure_search_index, migrate
from engine.store.rulesets import RuleSets
from engine.store.sources import SourceEvents
from engine.store.suppressions import Suppressions

SWEEP_LOCK = 0x6865_7261_6C65  # the advisory lock of the expired-lease sweep
LEADER_LOCK = 0x6865_7261_6C66  # the session advisory lock of the replica that runs the periodic work
LEADER_CHECK_S = 1.0  # seconds between two checks that the leader's connection (and so its lock) is still there
_IGNORE = re.compile(r"^\s*INSERT OR IGNORE INTO", re.I)
_RETURNING = re.compile(r"\sRETURNING\s", re.I)
_VALUES = re.compile(r"^\s*INSERT\b[^;]*?\bVALUES\s*(\([?,\s]*\))\s*$", re.I | re.S)  # one row of placeholders


def is_url(target: object) -> bool:
    """True for a PostgreSQL URL (postgresql:// or postgres://)."""
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    return re.sub(r"(://[^:/@]*):[^@]*@", r"\1:***@", url)


def translate(sql: str) -> str:
    """SQLite-dialect SQL of the aggregates as PostgreSQL: %s placeholders, ON CONFLICT DO NOTHING."""
    out = sql.replace("%", "%%").replace("?", "%s")
    if _IGNORE.match(out):
        out = _IGNORE.sub("INSERT INTO", out, count=1)
        m = _RETURNING.search(out)
        out = (out[:m.start()] + " ON CONFLICT DO NOTHING" + out[m.start():]) if m else out + " ON CONFLICT DO NOTHING"
    return out


class PostgresStore(Outcomes, Notifications, Attempts, Events, RuleSets, SourceEvents, Suppressions, Desk):
    """The herald store on a PostgreSQL database; see the module docstring for concurrency."""

    _JSON_ITEM = "(({})::jsonb ->> CAST(? AS integer))"
    _SKIP_LOCKED = " FOR UPDATE OF n SKIP LOCKED"
    _FOR_UPDATE = " FOR UPDATE"
    _FOR_SHARE = " FOR SHARE"

    def _search(self, texts: Sequence[str]) -> tuple[list[str], list[Any]]:
        """Conditions on outcomes, one per text: a LIKE on herald_who(raw) (name and e-mail in lower case, phone
        digits: pg_migrations.py), which reads its pg_trgm index (without pg_trgm: a scan)."""
        return ["herald_who(raw) LIKE ? ESCAPE '\\'" for _ in texts], [_like(t) for t in texts]

    def __init__(self, url: str, *, migrations: Sequence[PgMigration] = PG_MIGRATIONS, min_size: int = 1,
                 max_size: int = 8, timeout: float = 30.0, upgrade: bool = True, wait: float = 5.0,
                 listen: bool = True):
        """Connects (a pool of `max_size`) and, with `upgrade`, migrates; SchemaVersionError if the schema is newer.

        Without `upgrade` a database behind the newest migration is refused (run `herald db upgrade`). `timeout`
        bounds the first connection; `wait` each later call's wait for a connection (the server down: a call
        fails with StoreUnavailable after it, and intake answers 503 instead of hanging). `listen`: wake-up hints
        (NOTIFY when work becomes due, `wakeups()` to LISTEN); False polls only and prepares no statement
        (PgBouncer, transaction mode).
        """
        import psycopg
        from psycopg.rows import dict_row
        from psycopg_pool import ConnectionPool, PoolTimeout

        self.url = url
        self.wait = wait
        self.listen = listen
        self.path = redact(url)  # what messages and the report name the store by
        self._errors = (psycopg.OperationalError, PoolTimeout)
        self._server_cursor = psycopg.Cursor  # the send path's statements (`prepared`): parameters bound server-side
        self.prepare = listen  # and those statements prepared, except through PgBouncer in transaction mode
        self._sql_cache: dict[str, str] = {}
        self._lock = threading.Lock()
        self._tx = threading.local()
        self._leader_lock = threading.Lock()
        self._limiters: dict[tuple[int, float], StoreRateLimiter] = {}
        self._leader_conn: Any = None
        self._leading = False
        self._leader_checked = -LEADER_CHECK_S
        kwargs = {"row_factory": dict_row, "cursor_factory": psycopg.ClientCursor, "autocommit": True}
        self._pool = ConnectionPool(url, min_size=min_size, max_size=max_size, timeout=timeout, kwargs=kwargs,
                                    open=False, name="herald")
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout as e:  # the database is not reachable
            self._pool.close()
            raise StoreUnavailable(f"store {self.path}: cannot connect: {e}") from None
        try:
            with self._pool.connection() as conn:
                if upgrade:
                    migrate(conn, migrations, where=self.path)
                else:
                    have = current_version(conn)
                    want = migrations[-1].version if migrations else 0
                    if have > want:
                        migrate(conn, migrations, where=self.path)  # raises SchemaVersionError
                    if have < want:
                        raise StoreError(f"store {self.path} is at schema version {have}, herald needs {want}: "
                                         f"run `herald db upgrade`")
        except BaseException:
            self._pool.close()
            raise

    def __enter__(self) -> PostgresStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Closes the pool (and the leader connection, releasing leadership); the store cannot be used afterwards."""
        with self._leader_lock:
            self._drop_leader()
        self._pool.close()

    def _hint(self, conn: Any) -> None:
        if self.listen:
            conn.execute(f"NOTIFY {CHANNEL}")

    def wakeups(self, callback: Any) -> Wakeups | None:
        """LISTENs for hints on a connection of its own (engine/store/pg_listen.py); None when polling only."""
        return Wakeups(self.url, callback).start() if self.listen else None

    def alert_queue(self) -> StoreAlertQueue:
        """HR alert lines shared by the replicas: raised by any, posted by the leader (engine/store/pg_alerts.py)."""
        return StoreAlertQueue(self)

    def rate_limiter(self, limit: int, window: float) -> StoreRateLimiter:
        """Provider rate limits shared by every replica on this database (engine/store/pg_ratelimit.py)."""
        with self._lock:
            got = self._limiters.get((limit, window))
            if got is None:
                got = self._limiters[(limit, window)] = StoreRateLimiter(self, limit, window)
            return got

    def is_leader(self) -> bool:
        """True while this store holds the leader lock (tried at most once a LEADER_CHECK_S; a connection that
        broke gives it up at once, so another replica can take it)."""
        import psycopg

        with self._leader_lock:
            now = time.monotonic()
            if now - self._leader_checked < LEADER_CHECK_S:
                return self._leading
            self._leader_checked = now
            try:
                if self._leader_conn is None:
                    self._leader_conn = psycopg.connect(self.url, autocommit=True, connect_timeout=5,
                                                        application_name="herald-leader")
                conn = self._leader_conn
                if self._leading:
                    conn.execute("SELECT 1")
                else:
                    self._leading = bool(conn.execute("SELECT pg_try_advisory_lock(%s)", (LEADER_LOCK,)).fetchone()[0])
            except psycopg.Error:
                self._drop_leader()
            return self._leading

    def _drop_leader(self) -> None:
        conn, self._leader_conn, self._leading = self._leader_conn, None, False
        if conn is not None:
            with suppress(Exception):  # a broken connection: nothing left to release
                conn.close()

    # -- plumbing

    def _sql(self, sql: str) -> str:
        out = self._sql_cache.get(sql)
        if out is None:
            out = self._sql_cache[sql] = translate(sql)
        return out

    @contextmanager
    def _conn(self) -> Iterator[Any]:
        try:
            with self._pool.connection(timeout=self.wait) as conn:
                yield conn
        except self._errors as e:  # the server went away or no connection came free in time
            raise StoreUnavailable(f"store {self.path}: {e}") from None

    @contextmanager
    def _write(self) -> Iterator[Any]:
        held = self._batched()
        if held is not None:
            yield held
            return
        with self._conn() as conn, conn.transaction():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Any]:
        with self._conn() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield conn

    def _q(self, conn: Any, sql: str, params: Sequence[Any] = (), *,
           prepared: bool = False) -> list[Mapping[str, Any]]:
        cur = self._x(conn, sql, params, prepared=prepared)
        return cur.fetchall() if cur.description is not None else []

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Mapping[str, Any]]:
        with self._conn() as conn:
            return self._q(conn, sql, params)

    def _x(self, conn: Any, sql: str, params: Sequence[Any] = (), *, prepared: bool = False) -> Any:
        if prepared:  # bound server-side; prepared on this connection (not through PgBouncer: self.prepare)
            return self._server_cursor(conn).execute(self._sql(sql), tuple(params), prepare=self.prepare)
        return conn.execute(self._sql(sql), tuple(params))

    def _xm(self, conn: Any, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        """Many rows of one INSERT ... VALUES (?, ...) as multi-row statements of up to 1,000 rows: one round trip
        and one statement each, not one per row (intake's batches of 100 on PostgreSQL). Bound server-side with
        $n placeholders (psycopg's RawCursor: nothing to parse or quote client-side), never prepared (each size
        is a new statement); every value lands in a typed column."""
        if not seq:
            return
        import psycopg

        m = _VALUES.search(sql)
        if m is None or "%" in sql:
            with psycopg.Cursor(conn) as cur:
                cur.executemany(self._sql(sql), [tuple(p) for p in seq])
            return
        width = m.group(1).count("?")
        with psycopg.RawCursor(conn) as raw:
            for i in range(0, len(seq), 1000):
                chunk = seq[i:i + 1000]
                rows = ", ".join("(" + ", ".join(f"${j * width + c + 1}" for c in range(width)) + ")"
                                 for j in range(len(chunk)))
                many = translate(sql[:m.start(1)] + "(?)" + sql[m.end(1):]).replace("(%s)", rows, 1)
                raw.execute(many, [v for row in chunk for v in row], prepare=False)

    def _sole_sweeper(self, conn: Any) -> bool:
        row = conn.execute("SELECT pg_try_advisory_xact_lock(%s) AS ok", (SWEEP_LOCK,)).fetchone()
        return bool(row["ok"])

    def _allow_prune(self, conn: Any, on: bool) -> None:
        """herald_append_only() lets events be deleted while herald.prune is on (PG migration 5): on for this
        transaction only (SET LOCAL), so no lock is taken and no other session may delete."""
        conn.execute(f"SET LOCAL herald.prune = '{'on' if on else 'off'}'")

    def schema_version(self) -> int:
        with self._conn() as conn:
            return current_version(conn)

    def ensure_search_index(self) -> str:
        """`herald db upgrade`: the candidate search's pg_trgm index, created when missing and pg_trgm can be created
        (pg_migrations.ensure_search_index); says how the search reads outcomes."""
        with self._conn() as conn:
            return ensure_search_index(conn)
