"""SQLite backend specifics: migrations on a file, claims across processes, thread connections, a locked file,
crash safety under kill -9. What every backend must do is in test_contract.py."""
from __future__ import annotations

import json
import multiprocessing
import os
import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from datetime import datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.store.migrations import MIGRATIONS, Migration
from engine.store import (SchemaVersionError, SQLiteStore, StoreError,
                          StoreUnavailable)

from store_support import T0, item, plan


@pytest.fixture
def store(tmp_path: Path):
    s = SQLiteStore(tmp_path / "herald.db")
    yield s
    s.close()


def count(path: Path, table: str) -> int:
    c = sqlite3.connect(path)
    try:
        return c.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        c.close()


# ------------------------------------------------------------------------------------------- migrations

def test_migrations_from_an_empty_file(tmp_path: Path):
    path = tmp_path / "empty.db"
    path.touch()
    with SQLiteStore(path) as s:
        assert s.schema_version() == MIGRATIONS[-1].version
        c = s._db().conn
        assert c.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert c.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert c.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert c.execute("PRAGMA busy_timeout").fetchone()[0] > 0
        tables = {r[0] for r in c.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"schema_migrations", "outcomes", "outcome_changes", "notifications", "attempts", "events",
            "rulesets", "dead_letters", "replies"} <= tables


def test_reopen_is_idempotent_and_keeps_data(tmp_path: Path):
    path = tmp_path / "h.db"
    with SQLiteStore(path) as s:
        s.accept_outcomes([item("a")])
    with SQLiteStore(path) as s:
        assert s.get_outcome("a") is not None
    with SQLiteStore.open(path) as s:
        assert s.schema_version() == MIGRATIONS[-1].version
    assert count(path, "schema_migrations") == len(MIGRATIONS)


def test_an_older_database_is_upgraded_once(tmp_path: Path):
    path = tmp_path / "h.db"
    ran = []

    def add_note(db):
        ran.append(1)
        db.execute("ALTER TABLE outcomes ADD COLUMN note TEXT")

    with SQLiteStore(path) as s:
        s.accept_outcomes([item("a")])
    newer = (*MIGRATIONS, Migration(MIGRATIONS[-1].version + 1, "outcome notes", add_note))
    with SQLiteStore(path, migrations=newer) as s:
        assert s.schema_version() == newer[-1].version
        assert s.get_outcome("a") is not None
    with SQLiteStore(path, migrations=newer):
        pass
    assert ran == [1]
    c = sqlite3.connect(path)
    assert "note" in [r[1] for r in c.execute("PRAGMA table_info(outcomes)")]
    c.close()


def _plans(store: SQLiteStore, call) -> str:
    """The query plans (EXPLAIN QUERY PLAN) of every SELECT that `call(store)` runs, joined."""
    conn = store._db().conn
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        call(store)
    finally:
        conn.set_trace_callback(None)
    return " | ".join(r[3] for sql in seen if sql.lstrip().upper().startswith("SELECT")
                      for r in conn.execute("EXPLAIN QUERY PLAN " + sql))


def test_the_console_migration_upgrades_a_store_and_its_queries_use_the_indexes(tmp_path: Path):
    """The version before the console's indexes, with outcomes and a reply, upgraded: the old outcomes are
    found by the search (backfilled), and the console's queries read indexes instead of scanning or sorting."""
    path = tmp_path / "h.db"
    from engine.store import migrations_console

    console = next(m.version for m in MIGRATIONS if m.name == migrations_console.NAME)
    older = tuple(m for m in MIGRATIONS if m.version < console)
    body = {"id": "old-1", "decision": "reject", "candidate": {"name": "Hana Kobayashi", "email": "Hana@Example.com",
                                                               "phone": "+81 (90) 1234-5678"}}
    with SQLiteStore(path, migrations=older) as s:
        s.accept_outcomes([item("old-1", raw=json.dumps(body)), item("old-2")], at=T0)
        s.add_reply("old-1#1", "thanks", at=T0 + 1)
        assert s.schema_version() == console - 1
    with SQLiteStore(path) as s:
        assert s.schema_version() == MIGRATIONS[-1].version
        for query in ("kobayashi", "hana@example", "9012345678", "+81 90 1234 5678", "old-1"):
            assert [o.id for o in s.find_outcomes(query)] == ["old-1"], query
        assert [r.content for r in s.replies_for("old-1")] == ["thanks"]
        search = _plans(s, lambda x: x.find_outcomes("kobayashi"))
        assert "VIRTUAL TABLE" in search and "SCAN outcomes" not in search, search
        queue = _plans(s, lambda x: x.notifications_page(states=["failed"], since=T0 - 86400, until=T0 + 86400))
        assert "notifications_by_state_due" in queue and "TEMP B-TREE" not in queue, queue
        upcoming = _plans(s, lambda x: x.notifications_page(states=["scheduled", "sending"], limit=20))
        assert upcoming.count("notifications_by_state_due") == 2 and "SCAN notifications" not in upcoming, upcoming
        everything = _plans(s, lambda x: x.notifications_page(limit=20))
        assert "notifications_by_due" in everything and "TEMP B-TREE" not in everything, everything
        day = _plans(s, lambda x: x.event_counts_between(("queued", "sent"), T0 - 86400 + 1, T0 + 86400))
        assert "COVERING INDEX events_by_kind_day" in day, day  # the edges of a range that is not whole hours
        held = _plans(s, lambda x: x.outcomes_page(["held"], limit=20))
        assert "outcomes_by_status_time" in held and "TEMP B-TREE" not in held, held
        replies = _plans(s, lambda x: x.replies_for("old-1"))
        assert "replies_by_notification" in replies and "SCAN r" not in replies, replies


def test_the_hour_counts_are_backfilled_kept_and_read_for_a_day(tmp_path: Path):
    """The hours' migration counts the events already there; new events are counted as they come; a day's counts
    read those rows, not the day's events; pruned events stay counted (as in the report)."""
    path = tmp_path / "h.db"
    from engine.store import migrations_hours

    hours = next(m.version for m in MIGRATIONS if m.name == migrations_hours.NAME)
    with SQLiteStore(path, migrations=tuple(m for m in MIGRATIONS if m.version < hours)) as s:
        s.accept_outcomes([item("a"), item("b")], at=T0)
        s.add_event("a#1", "sent", at=T0 + 10, channel="email")
    with SQLiteStore(path) as s:
        s.add_event("b#1", "sent", at=T0 + 3700, channel="email")
        day = lambda x: {(c.kind, c.channel): c.count for c in x.event_counts_between(("sent",), T0, T0 + 86400)}  # noqa: E731
        assert day(s) == {("sent", "email"): 2}
        plans = _plans(s, day)
        assert "event_hours" in plans and "events" not in plans.replace("event_hours", ""), plans
        s.cancel("a#1", at=T0 + 4000), s.cancel("b#1", at=T0 + 4000)  # finished: their events may be pruned
        assert s.prune_events(T0 + 86400 * 400) >= 2 and day(s) == {("sent", "email"): 2}


def test_a_failing_migration_leaves_the_database_as_it_was(tmp_path: Path):
    path = tmp_path / "h.db"
    SQLiteStore(path).close()

    def broken(db):
        db.execute("CREATE TABLE half_done (x)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        SQLiteStore(path, migrations=(*MIGRATIONS, Migration(99, "broken", broken)))
    c = sqlite3.connect(path)
    assert c.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == MIGRATIONS[-1].version
    assert not c.execute("SELECT 1 FROM sqlite_master WHERE name = 'half_done'").fetchall()
    c.close()


def test_a_newer_database_is_refused_and_untouched(tmp_path: Path):
    path = tmp_path / "h.db"
    SQLiteStore(path).close()
    c = sqlite3.connect(path)
    c.execute("INSERT INTO schema_migrations VALUES (999, 'from the future', 0)")
    c.commit()
    c.close()
    with pytest.raises(SchemaVersionError, match=r"schema version 999.*knows versions up to"):
        SQLiteStore(path)
    c = sqlite3.connect(path)
    assert c.execute("SELECT max(version) FROM schema_migrations").fetchone()[0] == 999
    c.close()


def test_memory_and_naive_times_are_refused(tmp_path: Path, store: SQLiteStore):
    with pytest.raises(StoreError):
        SQLiteStore(":memory:")
    with pytest.raises(StoreError, match="naive"):
        store.claim_due(datetime(2026, 1, 1), 10, "x", 30)


# ---------------------------------------------------------------------------------------------- intake

@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.lists(st.sampled_from("abcdefgh"), max_size=8), max_size=5))
def test_accept_is_idempotent_on_id_property(tmp_path_factory, batches):
    path = tmp_path_factory.mktemp("prop") / "h.db"
    seen: set = set()
    with SQLiteStore(path) as s:
        for batch in batches:
            res = s.accept_outcomes([item(i) for i in batch])
            expect = []
            for i in batch:
                expect.append("duplicate" if i in seen else "accepted")
                seen.add(i)
            assert res == expect
    assert count(path, "outcomes") == len(seen) == count(path, "notifications")


# ----------------------------------------------------------------------------------------------- claims

def _claim_worker(path: str, owner: str, out: str, both_ready) -> None:
    got: list[str] = []
    with SQLiteStore(path) as s:
        both_ready.wait(60)  # start claiming together, so the claims really race
        while True:
            rows = s.claim_due(T0 + 10, 7, owner, 300)
            if not rows:
                break
            got.extend(r.id for r in rows)
    Path(out).write_text(json.dumps(got))


def test_two_processes_never_claim_the_same_notification(tmp_path: Path):
    path = tmp_path / "h.db"
    with SQLiteStore(path) as s:
        for k in range(5):
            s.accept_outcomes([item(f"o{k}-{i}", note=plan(send_at=T0 + (i % 10))) for i in range(100)])
    ctx = multiprocessing.get_context("spawn")
    both_ready = ctx.Barrier(2)
    procs, outs = [], []
    for w in range(2):
        outs.append(tmp_path / f"claims{w}.json")
        procs.append(ctx.Process(target=_claim_worker, args=(str(path), f"w{w}", str(outs[-1]), both_ready)))
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
        assert p.exitcode == 0
    a, b = (json.loads(o.read_text()) for o in outs)
    assert len(a) == len(set(a)) and len(b) == len(set(b))
    assert not set(a) & set(b)
    assert len(a) + len(b) == 500
    print(f"\nclaims split {len(a)}/{len(b)}")
    with SQLiteStore(path) as s:
        assert s.notification_counts_by_state()["sending"] == 500


# --------------------------------------------------------------------------------------- threads, crashes
# (threads sharing one store is a contract test: tests/store/test_contract.py runs it on both backends)

def test_a_finished_threads_connection_is_freed(store: SQLiteStore):
    def worker(k: int) -> None:
        store.accept_outcomes([item(f"t{k}-{i}") for i in range(5)])

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(store.notification_counts_by_state().values()) == 20
    import gc
    gc.collect()
    assert len(store._dbs) == 1  # a finished thread's connection is freed, not kept until close()


_CHILD = textwrap.dedent("""
    import json, sys, time
    from engine.store import Accepted, PlannedNotification, SQLiteStore
    from engine.model import Message
    path, mode, prefix, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    note = PlannedNotification(channels=("email",), messages=(Message("email", "x" * 400),), send_at=1.0)
    s = SQLiteStore(path)
    def batch(tag):
        return [Accepted(f"{prefix}-{tag}-{i}", json.dumps({"id": i, "pad": "y" * 300}), notification=note)
                for i in range(size)]
    if mode == "once":
        s.accept_outcomes(batch(0))
        print("done", flush=True)
        time.sleep(60)
    else:
        print("ready", flush=True)
        k = 0
        while True:
            s.accept_outcomes(batch(k))
            k += 1
""")


def _child(path: Path, mode: str, prefix: str, size: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", _CHILD, str(path), mode, prefix, str(size)],
                            stdout=subprocess.PIPE, text=True)


def test_a_locked_database_is_reported_as_unavailable(tmp_path: Path):
    path = tmp_path / "h.db"
    SQLiteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with SQLiteStore(path, busy_timeout=0.2) as s:
            assert s.get_outcome("a") is None  # WAL: reads go on while another process writes
            with pytest.raises(StoreUnavailable, match="locked"):
                s.accept_outcomes([item("a")])
            holder.execute("ROLLBACK")
            assert s.accept_outcomes([item("a")]) == ["accepted"]
    finally:
        holder.close()


@pytest.mark.slow
def test_an_acknowledged_batch_survives_sigkill(tmp_path: Path):
    path = tmp_path / "h.db"
    SQLiteStore(path).close()
    p = _child(path, "once", "k", 1000)
    assert p.stdout.readline().strip() == "done"
    os.kill(p.pid, signal.SIGKILL)
    p.wait()
    with SQLiteStore(path) as s:
        assert s.notification_counts_by_state()["scheduled"] == 1000
        assert s.get_outcome("k-0-999") is not None
    assert count(path, "outcomes") == 1000


@pytest.mark.slow
def test_a_batch_killed_mid_transaction_is_all_or_nothing(tmp_path: Path):
    path = tmp_path / "h.db"
    size = 250
    SQLiteStore(path).close()
    rng = random.Random(4)
    for run in range(6):
        p = _child(path, "loop", f"r{run}", size)
        assert p.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.05, 0.5))
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    n = count(path, "outcomes")
    print(f"\n{n} outcomes survived 6 kills")
    assert n % size == 0
    assert count(path, "notifications") == n == count(path, "events") == count(path, "outcome_changes")
    c = sqlite3.connect(path)
    per_batch = c.execute("SELECT count(*) FROM outcomes GROUP BY substr(id, 1, instr(substr(id, 4), '-') + 3)")
    assert {r[0] for r in per_batch} <= {size}
    assert c.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    c.close()
