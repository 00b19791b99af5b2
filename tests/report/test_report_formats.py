"""The report's formats (table, csv, json, html) and the `herald report` / `herald replies` commands."""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

from report_support import T0, open_store

from engine.cli.report import render
from engine.report import build_report
from engine.report.formats import duration


def test_csv_has_a_line_per_rule_part_and_total(scenario):
    rows = list(csv.DictReader(io.StringIO(render(build_report(scenario), "csv"))))
    assert [(r["level"], r["rule"], r["ruleset_version"]) for r in rows] == [
        ("rule", "other", ""), ("variant", "other", "v1"), ("rule", "tech", ""), ("variant", "tech", "v1"),
        ("variant", "tech", "v2"), ("total", "", "")]
    v1 = rows[3]
    assert (v1["matched"], v1["sent"], v1["delivered"], v1["delivered_pct"], v1["opened_pct"], v1["clicked_pct"],
            v1["replied_pct"]) == ("6", "4", "3", "75.00", "50.00", "25.00", "50.00")
    assert (v1["rated"], v1["satisfaction_mean"], v1["time_to_notify_median_s"], v1["time_to_notify_p90_s"]) == \
        ("2", "4", "3700", "10800")
    assert (v1["late"], v1["fallbacks"], v1["failed"], v1["failures"]) == \
        ("1", "1", "1", "email: 550 mailbox unavailable=1")
    assert (v1["replies_received"], v1["replies_open"], v1["time_to_answer_median_s"]) == ("3", "1", "1200")
    assert rows[-1]["matched"] == "8" and rows[1]["delivered_pct"] == "0.00"


def test_json_is_complete(scenario):
    d = json.loads(render(build_report(scenario, timezone_name="UTC"), "json"))
    assert d["rates_over"] == "sent" and d["timezone"] == "UTC"
    tech = next(r for r in d["rules"] if r["rule"] == "tech")
    assert (tech["matched"], tech["sent"], tech["delivered_rate"], tech["opened_rate"], tech["satisfaction"]) == \
        (7, 5, 0.8, 0.6, 4.0)
    assert tech["time_to_notify"] == {"count": 4, "median_s": 2600.0, "p90_s": 10800.0}
    assert d["total"]["failures"] == {"email: 550 mailbox unavailable": 1, "undelivered on the last channel": 1}
    assert d["time_to_notify_by_day"][0] == {"day": "2027-01-15", "count": 3, "median_s": 3700.0, "p90_s": 10800.0}
    assert d["unmatched_outcomes"] == 1 and d["replies"]["open"] == 2
    assert any("time to sent" in n for n in d["notes"])  # the footnote on channels without receipts


def test_table_and_html(scenario):
    rep = build_report(scenario)
    text = render(rep, "table")
    assert "rates over sent" in text and "all rules" in text and "75.0%" in text and "4.00 (2)" in text
    assert "1 of the 4 deliveries here are such acceptances" in text
    html = render(rep, "html")
    assert html.count('class="funnel"') == 2 and 'class="ttn"' in html and 'id="report-table"' in html
    lowered = html.lower()
    assert "<script" not in lowered and "<link" not in lowered and "url(" not in lowered
    assert "http://" not in lowered.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in lowered
    assert "送达率" in html and "满意度" in html


def test_durations():
    assert [duration(x) for x in (None, 42, 600, 3700, 10800, 2 * 86400 + 3600)] == \
        ["—", "42s", "10m", "1h01m", "3h00m", "2d01h"]


# ---------------------------------------------------------------------------------------------------- CLI

def test_report_command_formats_and_output(scenario, run_cli, tmp_path):
    r = run_cli(["report", "--store", str(scenario), "--format", "json", "--timezone", "UTC"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["total"]["matched"] == 8
    out = tmp_path / "r.html"
    r = run_cli(["report", "--store", str(scenario), "--format", "html", "--output", str(out)])
    assert r.exit_code == 0 and out.read_text("utf-8").startswith("<!DOCTYPE html>")
    r = run_cli(["report", "--store", str(scenario), "--rule", "tech", "--role", "frontend", "--format", "csv"])
    assert [row["matched"] for row in csv.DictReader(io.StringIO(r.stdout))] == ["1", "1", "1"]
    r = run_cli(["report", "--store", str(scenario), "--since", "2027-01-16", "--until", "2027-01-16",
                 "--timezone", "UTC", "--format", "json"])
    d = json.loads(r.stdout)
    assert [(x["rule"], x["matched"]) for x in d["rules"]] == [("tech", 1)]
    assert d["filters"]["since"] == "2027-01-16T00:00:00+00:00" and d["filters"]["until"] == "2027-01-17T00:00:00+00:00"
    r = run_cli(["report", "--store", str(scenario)])
    assert r.exit_code == 0 and "all rules" in r.stdout


def test_report_command_errors(scenario, run_cli, tmp_path):
    r = run_cli(["report", "--store", str(tmp_path / "none.db")])
    assert r.exit_code == 1 and "no store at" in r.stderr
    assert not (tmp_path / "none.db").exists()
    r = run_cli(["report", "--store", str(scenario), "--since", "yesterday"])
    assert r.exit_code == 2 and "not a date" in r.stderr
    r = run_cli(["report", "--store", str(scenario), "--timezone", "Mars/Olympus"])
    assert r.exit_code == 2


def test_report_uses_the_configured_store(scenario, run_cli, deployment):
    root = deployment({"herald.yaml": "store: {path: data/h.db}\n"})
    (root / "data").mkdir()
    shutil.copy(scenario, root / "data" / "h.db")
    r = run_cli(["report", "--format", "json"], cwd=root)
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["total"]["sent"] == 6


def test_replies_inbox_and_handling(tmp_path: Path, run_cli):
    from report_support import Builder

    path = tmp_path / "h.db"
    with open_store(path, tracking=False) as store:  # herald's registered migrations: the CLI opens it with them
        b = Builder(store)
        nid = b.outcome("c-1", "tech", occurred=T0, channels=("sms",))
        b.send(nid, T0 + 60)
        first = b.reply(nid, T0 + 600, text="请问有具体的反馈吗?")
        b.reply(None, T0 + 700, text="我是谁?")
        done = b.reply(nid, T0 + 800, handled_after=60)
    r = run_cli(["replies", "--store", str(path)])
    assert r.exit_code == 0
    assert f"#{first} " in r.stdout and "answers c-1: rule tech" in r.stdout and "sent on sms" in r.stdout
    assert 'message: "c-1 您好,感谢参加面试。"' in r.stdout and "请问有具体的反馈吗?" in r.stdout
    assert "matches no notification" in r.stdout and f"#{done} " not in r.stdout
    r = run_cli(["replies", "--store", str(path), "--handle", str(first)])
    assert r.exit_code == 0 and f"reply {first} handled" in r.stdout
    r = run_cli(["replies", "--store", str(path), "--handle", str(first), "--handle", "999"])
    assert r.exit_code == 1 and "already handled" in r.stdout and "no reply 999" in r.stderr
    items = json.loads(run_cli(["replies", "--store", str(path), "--all", "--format", "json"]).stdout)
    assert [(i["reply"], i["handled_at"] is not None, i["rule"]) for i in items] == [
        (first, True, "tech"), (first + 1, False, None), (done, True, "tech")]
    rep = build_report(path)
    assert rep.replies["received"] == 3 and rep.replies["handled"] == 2
