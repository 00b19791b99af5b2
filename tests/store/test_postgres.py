"""PostgreSQL backend specifics: versioned migrations (applied once by concurrent replicas, a newer schema refused,
an older one refused without upgrade), SQL translation, the expired-lease sweep run by one replica at a time,
an unreachable server reported as StoreUnavailable."""
from __future__ import annotations

import threading

import psycopg
import pytest
from store_support import T0, item

from engine.store import SchemaVersionError, StoreError, StoreUnavailable, open_store
from engine.store.pg_migrations import PG_MIGRATIONS, PgMigration
from engine.store.postgres import SWEEP_LOCK, PostgresStore, redact, translate


def test_translate_placeholders_and_insert_or_ignore():
    assert translate("SELECT * FROM t WHERE a = ? AND b LIKE '%x'") == "SELECT * FROM t WHERE a = %s AND b LIKE '%%x'"
    assert translate("INSERT OR IGNORE INTO t (a) VALUES (?)") == "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    assert (translate("INSERT OR IGNORE INTO t (a) SELECT ? RETURNING id")
            == "INSERT INTO t (a) SELECT %s ON CONFLICT DO NOTHING RETURNING id")
    assert redact("postgresql://u:s3cret@h:5432/db") == "postgresql://u:***@h:5432/db"


def test_replicas_starting_together_migrate_once(pg):
    url = pg.create_database()
    stores: list = []
    errors: list = []

    def start() -> None:
        try:
            stores.append(open_store(url))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and len(stores) == 3
    with psycopg.connect(url) as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in PG_MIGRATIONS]
    for s in stores:
        assert s.schema_version() == PG_MIGRATIONS[-1].version
        s.close()


def test_a_newer_schema_is_refused_and_untouched(pg):
    url = pg.create_database()
    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (99, 'from the future', 0)")
    with pytest.raises(SchemaVersionError, match="version 99"):
        open_store(url)
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM schema_migrations").fetchone() == (len(PG_MIGRATIONS) + 1,)


def test_an_older_schema_needs_db_upgrade(pg):
    url = pg.create_database()
    extra = PgMigration(PG_MIGRATIONS[-1].version + 1, "a column", lambda conn: conn.execute("ALTER TABLE outcomes ADD COLUMN extra TEXT"))
    PostgresStore(url).close()
    with pytest.raises(StoreError, match="herald db upgrade"):
        PostgresStore(url, migrations=(*PG_MIGRATIONS, extra), upgrade=False)
    with PostgresStore(url, migrations=(*PG_MIGRATIONS, extra)) as s:
        assert s.schema_version() == extra.version


def test_the_console_migration_upgrades_a_store_and_its_queries_use_the_indexes(pg):
    """The version before the console's indexes, with outcomes and a reply, upgraded: the old outcomes are found by the
    search, pg_trgm's index serves a substring search, and the queue, replies and day counts read their indexes."""
    import json

    url = pg.create_database()
    body = {"id": "old-1", "decision": "reject", "candidate": {"name": "Hana Kobayashi", "email": "Hana@Example.com",
                                                               "phone": "+81 (90) 1234-5678"}}
    console = next(m.version for m in PG_MIGRATIONS if m.name.startswith("console indexes"))
    with PostgresStore(url, migrations=tuple(m for m in PG_MIGRATIONS if m.version < console)) as s:
        s.accept_outcomes([item("old-1", raw=json.dumps(body)), item("old-2")], at=T0)
        s.add_reply("old-1#1", "thanks", at=T0 + 1)
    with PostgresStore(url) as s:
        assert s.schema_version() == PG_MIGRATIONS[-1].version
        for query in ("kobayashi", "hana@example", "9012345678", "+81 90 1234 5678", "old-1"):
            assert [o.id for o in s.find_outcomes(query)] == ["old-1"], query
        assert [r.content for r in s.replies_for("old-1")] == ["thanks"]
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = {r[0]: r[1] for r in conn.execute("SELECT indexname, indexdef FROM pg_indexes")}
        assert "gin_trgm_ops" in indexes["outcomes_search"]  # pg_trgm is there (Debian's postgresql ships it)
        assert {"notifications_by_state_due", "notifications_by_due", "replies_by_notification",
                "events_by_kind_day", "outcomes_by_status_time"} <= set(indexes)
        assert "events_by_kind" not in indexes and "outcomes_by_status" not in indexes  # covered by the new ones
        conn.execute("SET enable_seqscan = off")  # two rows: the planner would rightly scan

        def plan(sql: str, *params: object) -> str:
            return "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))

        assert "outcomes_search" in plan("SELECT id FROM outcomes WHERE herald_who(raw) LIKE %s", "%kobayashi%")
        queue = plan("SELECT id FROM notifications WHERE state = 'failed' AND coalesce(next_attempt_at, send_at) >= %s "
                     "ORDER BY coalesce(next_attempt_at, send_at), id LIMIT 20", T0)
        assert "Index Scan using notifications_by_" in queue and "Sort" not in queue, queue  # in order: no sort
        assert "replies_by_notification" in plan("SELECT id FROM replies WHERE notification_id = %s", "old-1#1")


def test_one_replica_at_a_time_returns_expired_leases(pg):
    url = pg.create_database()
    with open_store(url) as s:
        s.accept_outcomes([item("a")])
        s.claim_due(T0, 1, "crashed", 30)
        with psycopg.connect(url) as other:  # another replica is sweeping right now
            other.execute("SELECT pg_advisory_xact_lock(%s)", (SWEEP_LOCK,))
            assert s.release_expired_leases(T0 + 31) == 0
        assert s.release_expired_leases(T0 + 31) == 1


def test_an_unreachable_server_is_unavailable(pg):
    url = pg.url("herald_nowhere").replace(f"port={pg.port}", "port=1")
    with pytest.raises(StoreUnavailable) as e:
        PostgresStore(url, timeout=2)
    assert "port=1" in str(e.value)


def _public(cls: type) -> set[str]:
    return {n for n in dir(cls) if not n.startswith("_")}


def test_both_backends_offer_the_same_methods_and_tables(pg, tmp_path):
    from engine.store import SQLiteStore

    assert _public(PostgresStore) - {"url"} == _public(SQLiteStore) - {"open"}
    sqlite_only = {"sqlite_sequence"}  # and the candidate search's FTS5 table with its shadow tables (PostgreSQL:
    sqlite_only |= {"outcome_search", *(f"outcome_search_{s}" for s in ("content", "data", "docsize", "idx",
                                                                          "config"))}  # an index on outcomes)
    sqlite_only.add("event_hours")  # per-hour event counts: one writer only (engine/store/migrations_hours.py)
    with SQLiteStore(tmp_path / "h.db") as s:
        conn = s._db().conn
        lite = {t: {c[1] for c in conn.execute(f"PRAGMA table_info({t})")}
                for (t,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    url = pg.create_database()
    open_store(url).close()
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT table_name, column_name FROM information_schema.columns "
                            "WHERE table_schema = 'public'").fetchall()
    pgt: dict[str, set[str]] = {}
    for t, c in rows:
        pgt.setdefault(t, set()).add(c)
    pg_only = {"rate_limits", "alerts"}  # shared by replicas: rate limits, alert lines (one SQLite file: one daemon)
    assert set(lite) - sqlite_only == set(pgt) - pg_only
    for t in set(pgt) - pg_only:
        assert lite[t] <= pgt[t], t  # PostgreSQL may add a column (rulesets.rowid), never miss one


def test_one_replica_is_leader_and_another_takes_over_when_it_goes(pg):
    from daemon_support import wait_for

    url = pg.create_database()
    first, second = open_store(url), open_store(url)
    try:
        assert first.is_leader()
        assert not second.is_leader()
        first.close()  # its connection goes, and the session lock with it
        wait_for(second.is_leader, timeout=10, step=0.1)
    finally:
        second.close()


def test_two_replicas_share_one_rate_limit(pg):
    """Two stores (two replicas' pools), two threads each, ask 20 times each for slots on one key: together they get
    the limit of one window, no more (each with its own limiter would get it twice)."""
    import time

    url = pg.create_database()
    limit, window = 7, 600.0
    stores = [open_store(url), open_store(url)]
    granted: list[int] = []
    lock = threading.Lock()

    def hammer(store) -> None:
        limiter = store.rate_limiter(limit, window)
        for _ in range(20):  # 80 asks in all, however slow the machine: far more than the limit of 7
            if limiter.reserve("robot:abc", time.time()) == 0.0:
                with lock:
                    granted.append(1)

    threads = [threading.Thread(target=hammer, args=(s,)) for s in stores for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    try:
        assert len(granted) == limit
        wait = stores[0].rate_limiter(limit, window).reserve("robot:abc", time.time())
        assert window - 5 < wait <= window  # the next slot: when the first of the window ages out
        stores[1].rate_limiter(limit, window).block("robot:abc", 2 * window, time.time())  # a provider penalty
        assert stores[0].rate_limiter(limit, window).reserve("robot:abc", time.time()) > window
        assert stores[0].rate_limiter(limit, window).reserve("robot:other", time.time()) == 0.0  # keys apart
    finally:
        for s in stores:
            s.close()


def test_a_provider_block_is_on_the_databases_clock_so_replicas_with_skewed_clocks_agree(pg):
    """Replica A is told by the provider to wait 60 s; replica B's clock runs an hour ahead (C's an hour behind):
    both still see the block, ending 60 s after A's report on the database's clock (not on A's clock, nor theirs)."""
    import time

    url = pg.create_database()
    stores = [open_store(url) for _ in range(3)]
    try:
        a, b, c = (s.rate_limiter(20, 60.0) for s in stores)
        a.block("robot:skew", 60.0, time.time())
        ahead = b.reserve("robot:skew", time.time() + 3600)  # on its own clock the block would be long over
        behind = c.reserve("robot:skew", time.time() - 3600)  # on its own clock it would last another hour
        assert 50 < ahead <= 60 and 50 < behind <= 60, (ahead, behind)
        b.block("robot:skew", 5.0, time.time() + 3600)  # a shorter block never shortens the longer one
        assert 50 < a.reserve("robot:skew", time.time()) <= 60
    finally:
        for s in stores:
            s.close()


def _send_path(store: PostgresStore, n: int) -> None:
    store.accept_outcomes([item(f"p-{i}") for i in range(n)], at=T0)
    for row in store.claim_due(T0 + 1, n, "w", 30):
        a = store.begin_attempt(row.id, row.channel, "outbox", at=T0 + 2, owner="w", claim=row.claims,
                                lease_seconds=30)
        assert store.mark_sent(row.id, at=T0 + 3, provider_id=f"m-{row.id}", attempt_id=a.id, owner="w",
                               claim=row.claims, assumed={"assumed": True})


@pytest.mark.parametrize("listen, prepared", [(True, True), (False, False)])
def test_the_send_path_is_prepared_once_per_connection_unless_polling_only(pg, listen, prepared):
    # the statements a send runs, bound server-side and prepared on the connection (not parsed and planned for
    # every notification); with listen off (PgBouncer in transaction mode) nothing is prepared
    with PostgresStore(pg.create_database(), max_size=1, listen=listen) as store:
        _send_path(store, 3)
        with store._conn() as conn:
            names = [r["statement"] for r in conn.execute("SELECT statement FROM pg_prepared_statements")]
        for i in range(3):
            d = store.get_notification(f"p-{i}#1")
            assert d.notification.state == "delivered" and [e.kind for e in d.events] == ["queued", "sent", "delivered"]
    kinds = ("INSERT INTO attempts", "UPDATE attempts SET status", "UPDATE notifications SET state = 'delivered'",
             "INSERT INTO events", "UPDATE notifications SET state = 'sending'")
    found = {k for k in kinds for s in names if k in " ".join(s.split())}
    assert found == (set(kinds) if prepared else set()), names
