"""The report and the replies inbox for the terminal: the aligned table (East Asian wide characters
counted as two columns), one block per reply, and `render`, which picks the format `herald report` asks for."""
from __future__ import annotations

import time
import unicodedata
from collections.abc import Sequence
from datetime import datetime

from engine.report import Report, Row
from engine.report.formats import duration, pct, rule_lines, to_csv, to_json, vocabulary_lead
from engine.report.html import render_html
from engine.report.inbox import InboxItem


def render(report: Report, fmt: str) -> str:
    """The report as text in `fmt`: table, csv, json or html."""
    return {"table": to_table, "csv": to_csv, "json": to_json, "html": render_html}[fmt](report)


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
    outside = report.outside_vocabulary
    if outside is not None and outside.counts:
        out += ["", f"Outside the vocabulary: {vocabulary_lead(outside)}"]
        out += ["  " + line for line in table(("rule", "field", "outcomes", "values"),
                                              [(c.label, c.field, f"{c.outcomes:,}", c.values_text())
                                               for c in outside.counts], (False, False, True, False))]
    r = report.replies
    out += ["", f"Replies: {r['received']:,} received, {r['handled']:,} handled, {r['open']:,} waiting; "
                f"time to answer median {duration(r['time_to_answer_median_s'])}, "
                f"p90 {duration(r['time_to_answer_p90_s'])}."]
    if report.unmatched is not None:
        out.append(f"Unmatched outcomes (waiting for a person): {report.unmatched:,}.")
    out += ["", "Notes:"] + [f"  [{i}] {n}" for i, n in enumerate(report.notes, 1)]
    return "\n".join(out) + "\n"


def format_item(item: InboxItem, now: float | None = None) -> str:
    def t(ts: float | None) -> str:
        return "—" if ts is None else datetime.fromtimestamp(ts).astimezone().strftime("%Y-%m-%d %H:%M")

    now = time.time() if now is None else now
    state = (f"handled {t(item.handled_at)} after {duration(item.handled_at - item.at)}" if item.handled_at
             else f"waiting {duration(now - item.at)}")
    head = f"#{item.reply_id}  {t(item.at)}  {item.channel or '?'}  {state}"
    if item.notification_id is None:
        about = "   (matches no notification: find the candidate by hand)"
    else:
        about = (f"   answers {item.outcome_id}: rule {item.rule_id or '—'}"
                 + (f" ({item.variant})" if item.variant else "")
                 + f", sent on {item.sent_channel or '—'} {t(item.sent_at)}"
                 + (f'\n   message: "{item.first_line}"' if item.first_line else ""))
    content = " ".join(item.content.split())
    if len(content) > 300:
        content = content[:299] + "…"
    return f"{head}\n{about}\n   reply: {content}"
