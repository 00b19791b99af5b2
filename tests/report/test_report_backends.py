"""The report gives the same numbers on PostgreSQL as on SQLite for the same data (a contract across backends).

The same notifications are driven through the Store API of each backend (report_support's scenarios, plus an
unsubscribe, a fallback escalation and an unattributed reply), then every format of the report, the /metrics
figures and the report_facts rows themselves are compared; PostgreSQL's trigger-kept facts also equal the facts
rebuilt from its events (pg_report_facts.BACKFILL).
"""
from __future__ import annotations

import json

import psycopg
import pytest
from report_support import DAY, T0, Builder, build_scenario, build_variants, open_store

from engine.report import build_report, report_metrics
from engine.report.formats import to_csv
from engine.report.queries import Filters, ReportStoreError, has_facts
from engine.store import pg_report_facts

FILTERS = [Filters(), Filters(since=T0 + 50, until=T0 + 2 * DAY), Filters(rules=("tech",)), Filters(role="frontend"),
           Filters(channel="email"), Filters(stage="first_round", tz_offset=8 * 3600)]


def _extras(target) -> None:
    """What the shared scenarios leave out: an unsubscribe, a late escalation to a second channel, a rating given
    twice (the first counts), an e-mail reply found by address."""
    with open_store(target) as store:
        b = Builder(store)
        n = b.outcome("extra-1", "tech", occurred=T0 + 3 * DAY, channels=("email", "sms"), variant="warm",
                      email="Cand@Example.com")
        b.send(n, T0 + 3 * DAY + 60)
        assert b.event(n, "unsubscribed", T0 + 3 * DAY + 90, {"channel": "email"})
        assert b.event(n, "late", T0 + 3 * DAY + 95)
        assert b.store.add_event(n, "rated", at=T0 + 3 * DAY + 100, detail={"score": 2})
        assert b.store.add_event(n, "rated", at=T0 + 3 * DAY + 101, detail={"score": 5})
        assert b.store.add_event(n, "escalated", at=T0 + 3 * DAY + 102, detail={"to": "sms"})


def _report(target, f: Filters) -> dict:
    rep = build_report(target, f, now=T0 + 10 * DAY, timezone_name="UTC+8" if f.tz_offset else "UTC")
    d = rep.as_dict()
    d.pop("store")
    return d | {"csv": to_csv(rep)}


def _facts(target) -> list[tuple]:
    if str(target).startswith("postgresql://"):
        with psycopg.connect(str(target)) as conn:
            rows = conn.execute("SELECT * FROM report_facts ORDER BY notification_id").fetchall()
    else:
        import sqlite3

        conn = sqlite3.connect(str(target))
        rows = conn.execute("SELECT * FROM report_facts ORDER BY notification_id").fetchall()
        conn.close()
    return [tuple(float(v) if isinstance(v, float) else v for v in r) for r in rows]


@pytest.fixture(scope="module")
def both(pg, tmp_path_factory) -> tuple:
    lite = tmp_path_factory.mktemp("backends") / "herald.db"
    url = pg.create_database("report")
    for target in (lite, url):
        build_scenario(target)
        build_variants(target)
        _extras(target)
    return lite, url


@pytest.mark.parametrize("f", FILTERS, ids=lambda f: json.dumps(f.as_dict() | {"tz": f.tz_offset}))
def test_the_report_is_the_same_on_both_backends(both, f):
    lite, url = both
    sqlite_report = _report(lite, f)
    assert sqlite_report["total"]["matched"] > 0
    assert _report(url, f) == sqlite_report


def test_the_scenario_covers_what_is_compared(both):
    rep = _report(both[0], Filters())
    total = rep["total"]
    assert total["unsubscribed"] == 1 and total["late"] == 2 and total["fallbacks"] == 2 and total["failed"] == 2
    assert total["satisfaction"] == pytest.approx((5 + 3 + 2) / 3)
    assert rep["unmatched_outcomes"] == 1 and rep["variants"] and rep["time_to_notify_by_day"]


def test_metrics_and_facts_are_the_same_on_both_backends(both):
    lite, url = both
    assert report_metrics(url) == report_metrics(lite)
    assert _facts(url) == _facts(lite)
    assert has_facts(url) and has_facts(lite)


def test_postgresql_facts_kept_by_the_trigger_equal_the_facts_rebuilt_from_events(both):
    url = both[1]
    with psycopg.connect(url) as conn:
        kept = conn.execute("SELECT * FROM report_facts ORDER BY notification_id").fetchall()
        conn.execute("DELETE FROM report_facts")
        conn.execute(pg_report_facts.BACKFILL)
        rebuilt = conn.execute("SELECT * FROM report_facts ORDER BY notification_id").fetchall()
        conn.rollback()
    assert len(kept) > 100 and rebuilt == kept


def test_a_reply_finds_its_notification_by_address_on_both_backends(both):
    from engine.tracking.routes import record_reply

    for target in both:
        with open_store(target) as store:
            _, nid = record_reply(store, "ok", T0 + 4 * DAY, channel="email", email="cand@example.COM")
            assert nid == "extra-1#1", target


def test_a_database_without_the_facts_migration_is_named(pg):
    url = pg.create_database("bare")
    with pytest.raises(ReportStoreError, match="herald db upgrade"):
        build_report(url)


def test_herald_report_reads_postgresql_through_the_store_option(both, run_cli, tmp_path):
    lite, url = both
    outs = []
    for args in (["--store", url, "report"], ["report", "--store", str(lite)]):
        r = run_cli([*args, "--format", "json", "--timezone", "UTC"], cwd=tmp_path)
        assert r.exit_code == 0, r.stderr
        d = json.loads(r.stdout)
        outs.append({k: v for k, v in d.items() if k not in ("store", "generated_at")})
    assert outs[0] == outs[1] and outs[0]["total"]["sent"] > 0
