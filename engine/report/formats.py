"""The report as a terminal table, CSV (one line per rule / version / variant and per rule, for spreadsheets)
and JSON (everything, for scripts)."""
from __future__ import annotations

import csv
import io
import json
import unicodedata
from collections.abc import Sequence

from engine.report import Report, Row

CSV_COLUMNS = ("level", "rule", "ruleset_version", "variant", "matched", "sent", "delivered", "delivered_pct",
               "opened", "opened_pct", "clicked", "clicked_pct", "replied", "replied_pct", "rated",
               "satisfaction_mean", "time_to_notify_count", "time_to_notify_median_s", "time_to_notify_p90_s",
               "late", "fallbacks", "failed", "failures", "cancelled", "assumed_deliveries", "replies_received",
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


def satisfaction(row: Row) -> str:
    s = row.satisfaction
    return "—" if s is None else f"{s:.2f} ({row.counts['rated']})"


def width(text: str) -> int:
    """Terminal columns: East Asian wide and full-width characters take two."""
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def _pad(text: str, w: int, right: bool) -> str:
    gap = " " * max(0, w - width(text))
    return gap + text if right else text + gap


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], right: Sequence[bool]) -> list[str]:
    widths = [max([width(h)] + [width(r[i]) for r in rows]) for i, h in enumerate(headers)]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(_pad(c, w, rt) for c, w, rt in zip(cells, widths, right, strict=False)).rstrip()

    return [line(headers), line(["-" * w for w in widths]), *[line(r) for r in rows]]


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


# ------------------------------------------------------------------------------------------------- table

def _cells(row: Row, name: str, version: str, variant: str) -> list[str]:
    c = row.counts
    return [name, version, variant, f"{c['matched']:,}", f"{c['sent']:,}", pct(row.rate("delivered")),
            pct(row.rate("opened")), pct(row.rate("clicked")), pct(row.rate("replied")), satisfaction(row),
            duration(row.ttn_median), duration(row.ttn_p90), f"{c['late']:,}", f"{c['fallbacks']:,}",
            f"{c['failed']:,}"]


HEADERS = ("rule", "version", "variant", "matched", "sent", "delivered", "opened", "clicked", "replied",
           "satisfaction", "ttn median", "ttn p90", "late", "fallbacks", "failed")
RIGHT = (False, False, False) + (True,) * 12


def to_table(report: Report) -> str:
    f = report.filters
    out = [f"herald report  {report.as_dict()['generated_at']}  ({report.timezone})  store {report.store}"]
    scope = []
    if f.since is not None or f.until is not None:
        d = report.as_dict()["filters"]
        scope.append(f"period {d['since'] or '…'} to {d['until'] or '…'}")
    scope += [f"{k} {v}" for k, v in (("rule", ", ".join(f.rules)), ("channel", f.channel), ("role", f.role),
                                      ("stage", f.stage)) if v]
    out.append(("; ".join(scope) + "; " if scope else "all notifications; ") + "rates over sent [1]")
    out.append("")
    if not report.rows:
        out.append("No notifications match." if scope else "No notifications yet.")
    else:
        rows = [_cells(row, label, version, variant) for _, row, label, version, variant in rule_lines(report)]
        rows.append(_cells(report.total, "all rules", "", ""))
        out += table(HEADERS, rows, RIGHT)
    if report.comparisons:
        out += ["", "Variants (two-proportion z-test, over sent):"]
        for c in report.comparisons:
            out.append(f"  {c.rule_id}  {c.metric:<7}  {c.a} {pct(c.hits_a / c.sent_a if c.sent_a else None)} "
                       f"(sent {c.sent_a})  vs  {c.b} {pct(c.hits_b / c.sent_b if c.sent_b else None)} "
                       f"(sent {c.sent_b}):  {c.verdict}")
    fails = [(r.label, reason, n) for r in report.rules for reason, n in
             sorted(r.failures.items(), key=lambda kv: (-kv[1], kv[0]))]
    if fails:
        out += ["", "Failures by reason:"]
        out += ["  " + line for line in table(("rule", "reason", "count"), [(a, b, f"{n:,}") for a, b, n in fails],
                                              (False, False, True))]
    r = report.replies
    out += ["", f"Replies: {r['received']:,} received, {r['handled']:,} handled, {r['open']:,} waiting; "
                f"time to answer median {duration(r['time_to_answer_median_s'])}, "
                f"p90 {duration(r['time_to_answer_p90_s'])}."]
    if report.unmatched is not None:
        out.append(f"Unmatched outcomes (waiting for a person): {report.unmatched:,}.")
    out += ["", "Notes:"] + [f"  [{i}] {n}" for i, n in enumerate(report.notes, 1)]
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------------------------- csv, json

def _csv_row(row: Row) -> dict:
    c = row.counts
    d = {"level": row.level, "rule": row.rule_id or "", "ruleset_version": row.ruleset_version or "",
         "variant": row.variant or "", "matched": c["matched"], "sent": c["sent"], "rated": c["rated"],
         "satisfaction_mean": _num(row.satisfaction), "time_to_notify_count": len(row.ttn_sorted),
         "time_to_notify_median_s": _num(row.ttn_median), "time_to_notify_p90_s": _num(row.ttn_p90),
         "late": c["late"], "fallbacks": c["fallbacks"], "failed": c["failed"],
         "failures": "; ".join(f"{k}={v}" for k, v in sorted(row.failures.items(), key=lambda kv: (-kv[1], kv[0]))),
         "cancelled": c["cancelled"], "assumed_deliveries": c["assumed"],
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
