"""`herald report` numbers checked exactly against a hand-built set of events, column by column; filters;
the report_facts triggers against a rebuild from the events; a store without the migration."""
from __future__ import annotations

import sqlite3

import pytest
from report_support import DAY, T0, open_store

from engine.store import migrations_tracking
from engine.report import Filters, build_report, report_metrics
from engine.report.queries import connect

V = None  # no variant


def row(report, rule, version=V, variant=V, level="variant"):
    rows = report.rows if level == "variant" else report.rules
    found = [r for r in rows if r.rule_id == rule and (level != "variant" or (r.ruleset_version, r.variant) ==
                                                        (version, variant))]
    assert len(found) == 1, [(r.rule_id, r.ruleset_version, r.variant) for r in rows]
    return found[0]


def counts(r) -> dict:
    c = r.counts
    return {k: c[k] for k in ("matched", "sent", "delivered", "opened", "clicked", "replied", "rated", "score_sum",
                              "late", "fallbacks", "failed", "assumed", "undelivered")}


def test_every_column_of_a_rule_version(scenario):
    rep = build_report(scenario)
    r = row(rep, "tech", "v1")
    assert counts(r) == {"matched": 6, "sent": 4, "delivered": 3, "opened": 2, "clicked": 1, "replied": 2,
                         "rated": 2, "score_sum": 8, "late": 1, "fallbacks": 1, "failed": 1, "assumed": 1,
                         "undelivered": 0}
    assert (r.rate("delivered"), r.rate("opened"), r.rate("clicked"), r.rate("replied")) == (0.75, 0.5, 0.25, 0.5)
    assert r.satisfaction == 4.0
    assert r.ttn_sorted == [960.0, 3700.0, 10800.0]
    assert (r.ttn_median, r.ttn_p90) == (3700.0, 10800.0)
    assert r.failures == {"email: 550 mailbox unavailable": 1}
    assert r.replies == {"received": 3, "handled": 2, "open": 1, "time_to_answer_median_s": 1200.0,
                         "time_to_answer_p90_s": 1800.0}
    v2 = row(rep, "tech", "v2")
    assert counts(v2) == {"matched": 1, "sent": 1, "delivered": 1, "opened": 1, "clicked": 0, "replied": 0,
                          "rated": 0, "score_sum": 0, "late": 0, "fallbacks": 0, "failed": 0, "assumed": 0,
                          "undelivered": 0}
    assert (v2.ttn_median, v2.ttn_p90, v2.satisfaction) == (1500.0, 1500.0, None)


def test_rule_subtotals_total_days_and_replies(scenario):
    rep = build_report(scenario)
    tech = row(rep, "tech", level="rule")
    assert counts(tech) == {"matched": 7, "sent": 5, "delivered": 4, "opened": 3, "clicked": 1, "replied": 2,
                            "rated": 2, "score_sum": 8, "late": 1, "fallbacks": 1, "failed": 1, "assumed": 1,
                            "undelivered": 0}
    assert (tech.ttn_median, tech.ttn_p90) == (2600.0, 10800.0)  # (1500 + 3700) / 2; 4th of 4
    other = row(rep, "other", level="rule")
    assert counts(other) == {"matched": 1, "sent": 1, "delivered": 0, "opened": 0, "clicked": 0, "replied": 0,
                             "rated": 0, "score_sum": 0, "late": 0, "fallbacks": 0, "failed": 1, "assumed": 0,
                             "undelivered": 1}
    assert other.failures == {"undelivered on the last channel": 1}
    assert other.rate("delivered") == 0.0 and other.ttn_median is None
    assert [r.rule_id for r in rep.rules] == ["other", "tech"]
    t = rep.total
    assert counts(t) == {"matched": 8, "sent": 6, "delivered": 4, "opened": 3, "clicked": 1, "replied": 2,
                         "rated": 2, "score_sum": 8, "late": 1, "fallbacks": 1, "failed": 2, "assumed": 1,
                         "undelivered": 1}
    assert t.failures == {"email: 550 mailbox unavailable": 1, "undelivered on the last channel": 1}
    assert [(d.day, d.count, d.median, d.p90) for d in rep.days] == [("2027-01-15", 3, 3700.0, 10800.0),
                                                                    ("2027-01-16", 1, 1500.0, 1500.0)]
    assert rep.replies == {"received": 4, "handled": 2, "open": 2, "time_to_answer_median_s": 1200.0,
                           "time_to_answer_p90_s": 1800.0}
    assert rep.unmatched == 1
    assert rep.comparisons == []


@pytest.mark.parametrize("flt, expect", [
    (Filters(rules=("other",)), {("other", "v1"): 1}),
    (Filters(role="frontend"), {("tech", "v2"): 1, ("other", "v1"): 1}),
    (Filters(stage="second_round"), {("tech", "v2"): 1}),
    (Filters(channel="sms"), {("tech", "v1"): 1}),
    (Filters(channel="dingtalk"), {("tech", "v2"): 1}),
    (Filters(channel="email"), {("tech", "v1"): 5, ("other", "v1"): 1}),
    (Filters(since=T0 + DAY - 1), {("tech", "v2"): 1, ("other", "v1"): 1}),
    (Filters(until=T0 + DAY), {("tech", "v1"): 6}),
    (Filters(since=T0 + 150, until=T0 + 450), {("tech", "v1"): 3}),
    (Filters(rules=("nope",)), {}),
])
def test_filters(scenario, flt, expect):
    rep = build_report(scenario, flt)
    assert {(r.rule_id, r.ruleset_version): r.counts["matched"] for r in rep.rows} == expect
    assert rep.total.counts["matched"] == sum(expect.values())


def test_filtered_figures_are_exact(scenario):
    rep = build_report(scenario, Filters(channel="sms"))
    r = row(rep, "tech", "v1")
    assert counts(r)["sent"] == 1 and counts(r)["delivered"] == 1 and counts(r)["fallbacks"] == 1
    assert r.ttn_sorted == [960.0]
    rep = build_report(scenario, Filters(role="frontend"))
    assert rep.replies["received"] == 0  # the unattributed reply belongs to no role
    assert rep.unmatched == 0  # the unmatched outcome is a qa one
    assert build_report(scenario, Filters(role="qa")).unmatched == 1
    assert build_report(scenario, Filters(rules=("tech",))).unmatched is None  # no rule matched it: not per rule


def test_triggers_agree_with_a_rebuild_from_events(scenario):
    conn = sqlite3.connect(scenario)
    conn.execute(migrations_tracking.table_ddl("rebuilt", temp=True))
    migrations_tracking.backfill(conn, "temp.rebuilt")
    kept = conn.execute("SELECT * FROM report_facts ORDER BY notification_id").fetchall()
    rebuilt = conn.execute("SELECT * FROM temp.rebuilt ORDER BY notification_id").fetchall()
    conn.close()
    assert len(kept) == 8
    assert kept == rebuilt


def test_a_store_without_the_migration_reports_the_same(scenario, tmp_path):
    """The report rebuilds report_facts as a TEMP table (read-only) when the migration was never applied."""
    copy = tmp_path / "old.db"
    src = sqlite3.connect(scenario)
    dst = sqlite3.connect(copy)
    src.backup(dst)
    src.close()
    dst.execute("DROP TABLE report_facts")
    dst.commit()
    dst.close()
    a = build_report(scenario, now=T0).as_dict()
    b = build_report(copy, now=T0).as_dict()
    a.pop("store"), b.pop("store")
    assert a == b
    conn = connect(copy)  # read-only: the main database has still no report_facts
    assert conn.execute("SELECT count(*) FROM sqlite_master WHERE name = 'report_facts'").fetchone()[0] == 0
    conn.close()


def test_report_metrics_per_rule(scenario):
    m = report_metrics(scenario)
    assert m["rules"]["tech"]["matched"] == 7 and m["rules"]["tech"]["delivered_rate"] == 0.8
    assert m["rules"]["other"]["delivered_rate"] == 0.0
    assert m["total"]["sent"] == 6 and m["total"]["satisfaction"] == 4.0
    assert m["total"]["replied_rate"] == pytest.approx(2 / 6)


def test_an_empty_store(tmp_path):
    path = tmp_path / "empty.db"
    open_store(path).close()
    rep = build_report(path)
    assert rep.rows == [] and rep.total.counts["matched"] == 0 and rep.days == []
    from engine.cli.report import render

    for fmt in ("table", "csv", "json", "html"):
        assert render(rep, fmt)
