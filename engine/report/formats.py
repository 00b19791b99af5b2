"""The report as CSV (one line per rule / version / variant and per rule, for spreadsheets) and JSON
(everything, for scripts), and the figures' wording shared with the HTML page and the terminal table
(engine/cli/report.py)."""
from __future__ import annotations

import csv
import io
import json

from engine.report import Report, Row
from engine.report.vocabulary import OutsideVocabulary

CSV_COLUMNS = ("level", "rule", "ruleset_version", "variant", "matched", "sent", "delivered", "delivered_pct",
               "opened", "opened_pct", "clicked", "clicked_pct", "replied", "replied_pct", "rated",
               "satisfaction_mean", "time_to_notify_count", "time_to_notify_median_s", "time_to_notify_p90_s",
               "late", "fallbacks", "failed", "failures", "cancelled", "assumed_deliveries", "unsubscribed", "replies_received",
               "replies_open", "time_to_answer_median_s")


# ----------------------------------------------------------------------------------------------- helpers

def duration(seconds: float | None) -> str:
    """A duration for people: 42s, 12m, 3h05m, 2d04h; a dash for none."""
    if seconds is None:
        return "—"
    s = round(seconds)
    sign, s = ("-", -s) if s < 0 else ("", s)
    if s < 60:
        return f"{sign}{s}s"
    if s < 3600:
        return f"{sign}{s // 60}m"
    if s < 86400:
        return f"{sign}{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{sign}{s // 86400}d{s % 86400 // 3600:02d}h"


def pct(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.1f}%"


def short_version(v: str | None) -> str:
    return "—" if v is None else v[:10]


def rule_lines(report: Report) -> list[tuple[str, Row, str, str, str]]:
    """The table's lines, rule by rule: ("rule", row, label, version, variant), then the rule's ("part",
    ...) lines when it ran in more than one version or variant; "*" stands for several."""
    out: list = []
    for rule in report.rules:
        parts = report.breakdown(rule.rule_id)
        versions = {p.ruleset_version for p in parts}
        variants = {p.variant for p in parts}
        out.append(("rule", rule, rule.label, short_version(next(iter(versions))) if len(versions) == 1 else "*",
                    (next(iter(variants)) or "—") if len(variants) == 1 else "*"))
        if len(parts) > 1:
            out += [("part", p, "", short_version(p.ruleset_version), p.variant or "—") for p in parts]
    return out


def vocabulary_lead(outside: OutsideVocabulary) -> str:
    """The sentence above the table of values outside the vocabulary (terminal and HTML)."""
    return (f"{outside.outcomes:,} outcomes carried values the rules' vocabulary does not list (typos in the ATS "
            f"data?); they were accepted and routed as they came. Per rule and field:")


# --------------------------------------------------------------------------------------------- csv, json

def _csv_row(row: Row) -> dict:
    c = row.counts
    d = {"level": row.level, "rule": row.rule_id or "", "ruleset_version": row.ruleset_version or "",
         "variant": row.variant or "", "matched": c["matched"], "sent": c["sent"], "rated": c["rated"],
         "satisfaction_mean": _num(row.satisfaction), "time_to_notify_count": len(row.ttn_sorted),
         "time_to_notify_median_s": _num(row.ttn_median), "time_to_notify_p90_s": _num(row.ttn_p90),
         "late": c["late"], "fallbacks": c["fallbacks"], "failed": c["failed"],
         "failures": "; ".join(f"{k}={v}" for k, v in sorted(row.failures.items(), key=lambda kv: (-kv[1], kv[0]))),
         "cancelled": c["cancelled"], "assumed_deliveries": c["assumed"], "unsubscribed": c.get("unsubscribed", 0),
         "replies_received": row.replies.get("received", 0), "replies_open": row.replies.get("open", 0),
         "time_to_answer_median_s": _num(row.replies.get("time_to_answer_median_s"))}
    for name in ("delivered", "opened", "clicked", "replied"):
        d[name] = c[name]
        rate = row.rate(name)
        d[f"{name}_pct"] = "" if rate is None else f"{rate * 100:.2f}"
    return d


def _num(v: float | None) -> str:
    return "" if v is None else (f"{v:.3f}".rstrip("0").rstrip(".") or "0")


def to_csv(report: Report) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, CSV_COLUMNS, lineterminator="\n")
    w.writeheader()
    for rule in report.rules:
        w.writerow(_csv_row(rule))
        for part in report.breakdown(rule.rule_id):
            w.writerow(_csv_row(part))
    w.writerow(_csv_row(report.total))
    return buf.getvalue()


def to_json(report: Report) -> str:
    return json.dumps(report.as_dict(), ensure_ascii=False, indent=2) + "\n"
