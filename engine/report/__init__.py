"""How well each rule performs: `herald report`, the daemon's GET /report and the figures behind /metrics.

    report = build_report("herald.db", Filters(since=..., rules=("tech-first-round",)))
    render_html(report), to_csv(report), to_json(report) -> str   (html.py, formats.py; the terminal
                                                                   table is the CLI's: engine/cli/report.py)

Per rule, per rule-set version and per variant: matched, sent, delivered %, opened %, clicked %, replied %
(rates over sent), satisfaction (mean of 1-5 ratings and their count), time to notify (median and p90, outcome
occurred_at to first delivery), late, fallbacks, failures by reason; variants of a rule compared on opened % and
replied % (engine/report/stats.py); replies and the time HR took to answer them; time to notify per day.
The SQL lives in engine/report/queries.py (read-only); CSV and JSON in formats.py, the HTML page in html.py.
Nothing here prints: the terminal's table and reply blocks are engine/cli/report.py's.
"""
from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any
from collections.abc import Iterable

from engine.report import queries, stats
from engine.report.vocabulary import OutsideVocabulary, count as count_outside
from engine.report.queries import COUNT_FIELDS, EXTRA_FIELDS, Filters, ReportStoreError

RATE_FIELDS = ("delivered", "opened", "clicked", "replied")


@dataclass
class Row:
    """One line of the report: a (rule, version, variant), a rule over its versions and variants, or the total."""

    level: str  # variant | rule | total
    rule_id: str | None
    ruleset_version: str | None
    variant: str | None
    counts: dict
    ttn_sorted: list = field(default_factory=list, repr=False)
    failures: dict = field(default_factory=dict)
    replies: dict = field(default_factory=dict)

    def rate(self, name: str) -> float | None:
        return stats.rate(self.counts[name], self.counts["sent"])

    @property
    def satisfaction(self) -> float | None:
        return self.counts["score_sum"] / self.counts["rated"] if self.counts["rated"] else None

    @property
    def ttn_median(self) -> float | None:
        return stats.median(self.ttn_sorted)

    @property
    def ttn_p90(self) -> float | None:
        return stats.nearest_rank(self.ttn_sorted, 0.9)

    @property
    def label(self) -> str:
        if self.level == "total":
            return "all rules"
        return self.rule_id or "(no rule)"

    def as_dict(self) -> dict:
        c = self.counts
        out = {"level": self.level, "rule": self.rule_id, "ruleset_version": self.ruleset_version,
               "variant": self.variant, "matched": c["matched"], "sent": c["sent"]}
        for name in RATE_FIELDS:
            out[name] = c[name]
            out[f"{name}_rate"] = self.rate(name)
        out.update({"rated": c["rated"], "satisfaction": self.satisfaction,
                    "time_to_notify": {"count": len(self.ttn_sorted), "median_s": self.ttn_median,
                                       "p90_s": self.ttn_p90},
                    "late": c["late"], "fallbacks": c["fallbacks"], "failed": c["failed"],
                    "failures": dict(sorted(self.failures.items(), key=lambda kv: (-kv[1], kv[0]))),
                    "cancelled": c["cancelled"], "undelivered": c["undelivered"],
                    "assumed_deliveries": c["assumed"], "unsubscribed": c.get("unsubscribed", 0)})
        if self.replies:
            out["replies"] = dict(self.replies)
        return out


@dataclass
class DayPoint:
    day: str  # YYYY-MM-DD in the report's time zone
    count: int
    median: float
    p90: float

    def as_dict(self) -> dict:
        return {"day": self.day, "count": self.count, "median_s": self.median, "p90_s": self.p90}


@dataclass
class Report:
    """Everything `herald report` shows, in every format."""

    generated_at: float
    store: str
    filters: Filters
    timezone: str
    rows: list          # Row(level="variant"), by rule, version, variant
    rules: list         # Row(level="rule")
    total: Row
    comparisons: list   # stats.Comparison
    days: list          # DayPoint, by day
    unmatched: int | None
    replies: dict       # the totals of replies and time to answer
    notes: list = field(default_factory=list)
    # outcomes with values outside the vocabulary, per rule and field; None: not counted (a channel filter)
    outside_vocabulary: OutsideVocabulary | None = None

    def breakdown(self, rule_id: str | None) -> list[Row]:
        return [r for r in self.rows if r.rule_id == rule_id]

    def as_dict(self) -> dict:
        f = self.filters
        return {
            "generated_at": _iso(self.generated_at, self.tz()),
            "store": self.store,
            "filters": {"since": _iso(f.since, self.tz()), "until": _iso(f.until, self.tz()),
                        "rules": list(f.rules), "channel": f.channel, "role": f.role, "stage": f.stage},
            "timezone": self.timezone,
            "rates_over": "sent",
            "rules": [r.as_dict() for r in self.rules],
            "rows": [r.as_dict() for r in self.rows],
            "total": self.total.as_dict(),
            "variants": [c.as_dict() for c in self.comparisons],
            "time_to_notify_by_day": [d.as_dict() for d in self.days],
            "unmatched_outcomes": self.unmatched,
            "replies": self.replies,
            "outside_vocabulary": None if self.outside_vocabulary is None else self.outside_vocabulary.as_dict(),
            "notes": list(self.notes),
        }

    def tz(self) -> tzinfo:
        return timezone(timedelta(seconds=self.filters.tz_offset))


def _iso(ts: float | None, tz: tzinfo) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def _empty_counts() -> dict:
    return dict.fromkeys(COUNT_FIELDS + EXTRA_FIELDS, 0)


def _add(into: dict, more: dict) -> None:
    for k, v in more.items():
        into[k] += v


def _answer_stats(items: Iterable[tuple[float, float | None]]) -> dict:
    items = list(items)
    waits = sorted(h - a for a, h in items if h is not None)
    return {"received": len(items), "handled": len(waits), "open": len(items) - len(waits),
            "time_to_answer_median_s": stats.median(waits), "time_to_answer_p90_s": stats.nearest_rank(waits, 0.9)}


def build_report(store: str | Path | Any, filters: Filters | None = None, *, timezone_name: str = "UTC",
                 now: float | None = None, with_days: bool = True) -> Report:
    """The report over `store`: a SQLite path, a postgresql:// URL, or an open Store (read-only, one snapshot).

    with_days=False leaves out time to notify per day (the table and CSV do not show it): a little faster.
    """
    f = filters or Filters()
    with queries.open_reader(store) as db:
        groups = queries.groups(db, f, with_days)
        fails = queries.failures(db, f)
        filtered = any(v not in (None, ()) for v in (f.since, f.until, f.rules, f.channel, f.role, f.stage))
        reply_rows = queries.replies(db, f, filtered)
        unmatched = queries.unmatched(db, f)
        outside = queries.outside_vocabulary(db, f)
        where = db.where
    return assemble(where, f, groups, fails, reply_rows, unmatched, timezone_name=timezone_name, now=now,
                    outside=outside)


def assemble(store: str, f: Filters, groups: list, fails: list, reply_rows: list, unmatched: int | None, *,
             timezone_name: str = "UTC", now: float | None = None,
             outside: list[tuple[str | None, str]] | None = None) -> Report:
    """The report from the query results (pure: no I/O); `outside`: the marks of outcomes with values outside
    the vocabulary (queries.outside_vocabulary), None when not counted."""
    fail_by: dict = defaultdict(dict)
    for rule, version, variant, reason, n in fails:
        fail_by[(rule, version, variant)][reason] = n
    replies_by: dict = defaultdict(list)
    for rule, version, variant, at, handled in reply_rows:
        replies_by[(rule, version, variant)].append((at, handled))

    rows, rules = [], []
    total = Row("total", None, None, None, _empty_counts())
    all_ttn: list = []
    by_day: dict = defaultdict(list)
    current: Row | None = None
    rule_ttn: list = []
    rule_replies: list = []

    def close_rule() -> None:
        if current is not None:
            current.ttn_sorted = sorted(rule_ttn)
            if rule_replies:
                current.replies = _answer_stats(rule_replies)
            rules.append(current)

    for g in groups:
        key = (g.rule_id, g.ruleset_version, g.variant)
        for d, v in zip(g.days, g.ttn, strict=False):  # days are aligned with the values as fetched: before sorting them
            by_day[d].append(v)
        g.ttn.sort()
        row = Row("variant", *key, dict(g.counts), g.ttn, dict(fail_by.get(key, {})))
        if key in replies_by:
            row.replies = _answer_stats(replies_by[key])
        rows.append(row)
        if current is None or current.rule_id != g.rule_id:
            close_rule()
            current = Row("rule", g.rule_id, None, None, _empty_counts())
            rule_ttn, rule_replies = [], []
        _add(current.counts, g.counts)
        rule_ttn.extend(g.ttn)
        rule_replies.extend(replies_by.get(key, ()))
        for reason, n in row.failures.items():
            current.failures[reason] = current.failures.get(reason, 0) + n
            total.failures[reason] = total.failures.get(reason, 0) + n
        _add(total.counts, g.counts)
        all_ttn.extend(g.ttn)
    close_rule()
    total.ttn_sorted = sorted(all_ttn)
    total.replies = _answer_stats((a, h) for items in replies_by.values() for a, h in items)

    epoch_day = datetime(1970, 1, 1)
    days = []
    for d in sorted(by_day):
        vals = sorted(by_day[d])
        median, p90 = stats.median(vals), stats.nearest_rank(vals, 0.9)
        if median is not None and p90 is not None:  # a day is listed only with a value
            days.append(DayPoint((epoch_day + timedelta(days=d)).date().isoformat(), len(vals), median, p90))

    comparisons = []
    pooled: dict = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    for r in rows:
        if r.variant is not None:
            acc = pooled[r.rule_id][r.variant]
            acc[0] += r.counts["sent"]
            acc[1] += r.counts["opened"]
            acc[2] += r.counts["replied"]
    for rule_id, variants in pooled.items():
        if len(variants) < 2:
            continue
        for metric, i in (("opened", 1), ("replied", 2)):
            comparisons.extend(stats.compare_variants(rule_id, metric, [(v, a[0], a[i]) for v, a in variants.items()]))

    report = Report(time.time() if now is None else now, store, f, timezone_name, rows, rules, total, comparisons,
                    days, unmatched, total.replies, outside_vocabulary=count_outside(outside))
    report.notes = notes_for(report)
    return report


def notes_for(report: Report) -> list[str]:
    t = report.total.counts
    notes = ["Rates (delivered, opened, clicked, replied) are over sent notifications, not over matched ones. "
             "Matched: notifications queued for the rule (an outcome amended before it was sent has one per "
             "revision; the cancelled ones are counted apart in the JSON and CSV).",
             f"Time to notify runs from the outcome's occurred_at to the first delivery receipt (or DingTalk read). "
             f"On channels that report no deliveries (outbox, smtp, webhook, robot) herald counts the provider's "
             f"acceptance as the delivery, so there it is the time to sent: {t['assumed']} of the "
             f"{t['delivered']} deliveries here are such acceptances. Median: the middle value; p90: nearest rank.",
             "Opened: the e-mail open pixel (only when the reader loads images; some mail privacy proxies load "
             "them for every message) and DingTalk read receipts. SMS reports no opens.",
             "Late: sent after the rule's deadline. Fallbacks: notifications that moved on to a later channel "
             "(the earlier one failed, or nothing was heard from it in time). Failed: no channel left.",
             "Satisfaction: the mean of 1-5 ratings from the rating link, one per notification."]
    f = report.filters
    if f.since is not None or f.until is not None:
        notes.append(f"Period: notifications whose outcome occurred in [{_iso(f.since, report.tz()) or '…'}, "
                     f"{_iso(f.until, report.tz()) or '…'}); everything that happened to them counts, even later.")
    if f.channel:
        notes.append(f"Channel {f.channel}: notifications last sent on {f.channel} (or planned on it and not sent).")
    if report.comparisons:
        notes.append(f"Variants: a two-sided two-proportion z-test on opened % and on replied % (over sent), "
                     f"alpha {stats.ALPHA:g} split over the pairs of a rule; under {stats.MIN_SENT} sent per variant "
                     f"or an expected count under {stats.MIN_EXPECTED:g}: '{stats.NOT_ENOUGH}'.")
    notes.append("Time to answer: from a candidate's reply to HR marking it handled (herald replies --handle).")
    return notes


def report_metrics(store: str | Path | Any) -> dict:
    """The main figures per rule for the daemon's /metrics: counts and rates over sent (cheap: no percentiles).

    {"rules": {rule: {"matched", "sent", "delivered", ..., "delivered_rate", "opened_rate", "replied_rate",
    "clicked_rate", "satisfaction", "late", "fallbacks", "failed"}}, "total": {...}}
    """
    with queries.open_reader(store) as db:
        rows = queries.per_rule_counts(db)
    out: dict = {"rules": {}}
    total = _empty_counts()
    for r in rows:
        counts = {k: (v or 0) for k, v in zip(COUNT_FIELDS, r[1:], strict=False)}
        _add(total, counts)
        out["rules"][r[0] or "(no rule)"] = _metric_dict(counts)
    out["total"] = _metric_dict(total)
    return out


def _metric_dict(c: dict) -> dict:
    d = {k: c[k] for k in ("matched", "sent", "delivered", "opened", "clicked", "replied", "rated", "late",
                           "fallbacks", "failed")}
    for name in RATE_FIELDS:
        d[f"{name}_rate"] = stats.rate(c[name], c["sent"])
    d["satisfaction"] = c["score_sum"] / c["rated"] if c["rated"] else None
    return d


__all__ = [
    "DayPoint",
    "Filters",
    "Report",
    "ReportStoreError",
    "Row",
    "assemble",
    "build_report",
    "report_metrics",
]
