"""herald on PostgreSQL end to end: `herald --store URL db upgrade/info`, store.url in herald.yaml (password from the
environment, never printed), and two daemons sharing one queue: every outcome sent exactly once."""
from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from daemon_support import make_deployment, outbox, outcome, post, start_daemon, wait_for

from engine.store import SQLiteStore, open_store


def _use_pg(root: Path, url_line: str) -> None:
    cfg = (root / "herald.yaml").read_text()
    (root / "herald.yaml").write_text(cfg.replace("store: {path: herald.db}", f"store: {{url: \"{url_line}\"}}"))


def test_db_upgrade_and_info_on_postgresql_with_the_password_from_the_environment(pg, tmp_path, run_cli):
    url = pg.create_database()
    root = make_deployment(tmp_path / "d")
    with_password = url.replace("herald@", "herald:${HERALD_PG_PASSWORD}@")  # trust auth: the password is unused
    _use_pg(root, with_password)
    env = {"HERALD_PG_PASSWORD": "s3cret-pw"}
    up = run_cli(["db", "upgrade", "--config", str(root / "herald.yaml")], env=env)
    assert up.exit_code == 0, up.output
    info = run_cli(["db", "info", "--config", str(root / "herald.yaml")], env=env)
    assert info.exit_code == 0, info.output
    assert info.output.startswith("postgresql store postgresql://herald:***@/")
    assert "s3cret-pw" not in up.output + info.output
    assert re.search(r"^  notifications +0$", info.output, re.M)
    with open_store(url) as s:
        s.accept_outcomes([])
    other = pg.create_database()
    up = run_cli(["--store", other, "db", "upgrade"], cwd=tmp_path)
    assert up.exit_code == 0 and "schema version" in up.output
    assert run_cli(["--store", other, "db", "info"], cwd=tmp_path).output.startswith("postgresql store")


def test_db_info_on_sqlite_lists_tables_and_counts(tmp_path, run_cli):
    from store_support import item

    with SQLiteStore(tmp_path / "h.db") as s:
        s.accept_outcomes([item("a"), item("b")])
    out = run_cli(["--store", str(tmp_path / "h.db"), "db", "info"], cwd=tmp_path).output
    assert out.startswith(f"sqlite store {tmp_path / 'h.db'}: schema version")
    assert re.search(r"^  outcomes +2$", out, re.M) and re.search(r"^  notifications +2$", out, re.M)


def test_a_newer_postgresql_schema_is_refused_by_db_upgrade(pg, tmp_path, run_cli):
    import psycopg

    url = pg.create_database()
    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO schema_migrations VALUES (999, 'future', 0)")
    r = run_cli(["--store", url, "db", "upgrade"], cwd=tmp_path)
    assert r.exit_code == 1 and "schema version 999" in r.stderr
    assert "NEWER than this herald" in run_cli(["--store", url, "db", "info"], cwd=tmp_path).output


@pytest.mark.slow
def test_two_daemons_share_one_queue_and_send_each_outcome_once(pg, tmp_path):
    url = pg.create_database()
    root = make_deployment(tmp_path / "d", dispatch="{max_attempts: 3, backoff_base: 30s, poll_interval: 0.05s}")
    _use_pg(root, url)
    daemons = [start_daemon(root, upgrade_store=True) for _ in range(2)]
    try:
        ids = [f"r-{i}" for i in range(40)]
        for i, oid in enumerate(ids):
            assert post(daemons[i % 2].url, outcome(oid)).status_code in (200, 201, 202)
        wait_for(lambda: len(outbox(root)) >= len(ids), timeout=60)
        for d in daemons:
            d.runtime.wake()
    finally:
        for d in daemons:
            d.shutdown()
    sent = Counter(m["notification"] for m in outbox(root))
    assert sent == Counter(f"{oid}#1" for oid in ids)  # each once: none lost, none twice
    with open_store(url) as s:
        counts = s.notification_counts_by_state()
        assert counts["scheduled"] == counts["sending"] == counts["failed"] == 0, counts


def test_db_upgrade_creates_the_search_index_pg_trgm_could_not_give_at_first(pg, tmp_path, run_cli):
    """A store migrated where pg_trgm could not be created scans every outcome for a candidate search (here the
    index and the extension dropped): `herald db info` says so, a role that may not create it is told why, and
    `herald db upgrade` by one that may creates the index (once; again, it says it is there)."""
    import psycopg

    url = pg.create_database()
    open_store(url).close()
    with psycopg.connect(url, autocommit=True) as conn:
        db = conn.info.dbname
        conn.execute("DROP INDEX outcomes_search")
        conn.execute("DROP EXTENSION pg_trgm")
        conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'clerk') THEN "
                     "CREATE ROLE clerk LOGIN; END IF; END $$")
        conn.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO clerk")
        conn.execute(f'REVOKE CREATE ON DATABASE "{db}" FROM PUBLIC')
    info = run_cli(["--store", url, "db", "info"], cwd=tmp_path)
    assert "candidate search: a scan of every outcome (no pg_trgm index" in info.output, info.output
    refused = run_cli(["--store", url.replace("herald@", "clerk@"), "db", "upgrade"], cwd=tmp_path)
    assert refused.exit_code == 0, refused.output + refused.stderr
    assert re.search(r"candidate search: a scan of every outcome .*: permission denied", refused.output), refused.output
    up = run_cli(["--store", url, "db", "upgrade"], cwd=tmp_path)
    assert up.exit_code == 0 and "candidate search: pg_trgm index (created now)" in up.output, up.output
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = 'outcomes_search'").fetchone()
    assert row is not None and "gin_trgm_ops" in row[0]
    again = run_cli(["--store", url, "db", "upgrade"], cwd=tmp_path).output
    assert "candidate search: pg_trgm index\n" in again, again
    assert "candidate search: pg_trgm index\n" in run_cli(["--store", url, "db", "info"], cwd=tmp_path).output


def test_db_upgrade_and_info_name_sqlites_search_index(tmp_path, run_cli):
    db = str(tmp_path / "h.db")
    assert "candidate search: FTS5 trigram index\n" in run_cli(["--store", db, "db", "upgrade"], cwd=tmp_path).output
    assert "candidate search: FTS5 trigram index\n" in run_cli(["--store", db, "db", "info"], cwd=tmp_path).output
