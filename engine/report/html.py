"""The report as ONE self-contained HTML file: inline CSS, inline SVG charts, no script, nothing fetched.

Charts: a funnel per rule (matched -> sent -> delivered -> opened -> clicked -> replied, bar length over matched,
labels with the count and the rate over sent), and time to notify per day (median line, p90 dashed) by the day
the outcome occurred. Headings carry the Chinese names HR use (送达率, 打开率, 反馈率, 满意度).

The markup is Jinja2 templates (autoescaped) in engine/report/templates/; this module works out the
charts' geometry and words every figure.
"""
from __future__ import annotations

import math
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined

from engine.report import Report, Row
from engine.report.formats import duration, pct, rule_lines, vocabulary_lead

FUNNEL = (("matched", "matched 匹配"), ("sent", "sent 发送"), ("delivered", "delivered 送达"),
          ("opened", "opened 打开"), ("clicked", "clicked 点击"), ("replied", "replied 反馈"))
COLORS = ("#9fb3c8", "#627d98", "#2f80ed", "#27ae60", "#f2994a", "#9b51e0")
HEAD = (("rule", "规则"), ("version", "版本"), ("variant", "变体"), ("matched", "匹配"), ("sent", "发送"),
        ("delivered", "送达率"), ("opened", "打开率"), ("clicked", "点击率"), ("replied", "反馈率"),
        ("satisfaction", "满意度"), ("time to notify", "通知时长 中位数"), ("p90", "90%"), ("late", "超时"),
        ("fallbacks", "转渠道"), ("failed", "失败"))

# trim_blocks/lstrip_blocks: a line holding only {% ... %} leaves nothing behind, so the template's lines
# are the page's lines.
_ENV = Environment(loader=PackageLoader("engine.report", "templates"), autoescape=True, trim_blocks=True,
                   lstrip_blocks=True, keep_trailing_newline=True, undefined=StrictUndefined)


def funnel_chart(row: Row) -> dict[str, Any]:
    """Horizontal bars, one per stage; length relative to matched; label: count and rate over sent."""
    c = row.counts
    top = max(c["matched"], 1)
    w, label_w, bar_h, gap = 420, 100, 18, 6
    bars = []
    for i, ((key, name), color) in enumerate(zip(FUNNEL, COLORS, strict=True)):
        y = 2 + i * (bar_h + gap)
        n = c[key]
        length = max((w - label_w - 150) * n / top, 1 if n else 0)
        rate = "" if key in ("matched", "sent") else f" · {pct(row.rate(key))}"
        if key == "sent":
            rate = f" · {pct(n / c['matched'] if c['matched'] else None)} of matched"
        bars.append({"name": name, "y": y, "text_y": y + 13, "length": f"{length:.1f}", "color": color,
                     "count": f"{n:,}", "rate": rate, "count_x": f"{label_w + length + 6:.1f}"})
    return {"label": row.label, "w": w, "h": len(FUNNEL) * (bar_h + gap) + 4, "label_w": label_w, "bar_h": bar_h,
            "bars": bars}


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(ticks, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def ttn_chart(report: Report) -> dict[str, Any]:
    """Time to notify per day: median (line) and p90 (dashed), hours on the y axis."""
    days = report.days
    w, h, left, right, top, bottom = 900, 260, 56, 16, 14, 36
    chart: dict[str, Any] = {"w": w, "h": h, "days": bool(days)}
    if not days:
        return chart
    hours = [d.p90 / 3600 for d in days] + [d.median / 3600 for d in days]
    ymax = max(max(hours), 0.1)
    step = _nice_step(ymax)
    ymax = step * math.ceil(ymax / step)
    n = len(days)

    def px(i: int) -> float:
        return left + (w - left - right) * (i / (n - 1) if n > 1 else 0.5)

    def py(v: float) -> float:
        return top + (h - top - bottom) * (1 - v / ymax)

    ticks = []
    tick = 0.0
    while tick <= ymax + 1e-9:
        ticks.append((f"{py(tick):.1f}", f"{py(tick) + 4:.1f}", f"{tick:g}"))
        tick += step
    every = max(1, math.ceil(n / 10))
    chart.update(
        left=left, right_x=w - right, tick_x=left - 6, ticks=ticks, day_label_y=h - bottom + 16, legend_y=top + 4,
        day_labels=[(f"{px(i):.1f}", d.day[5:]) for i, d in enumerate(days) if i % every == 0 or i == n - 1],
        lines=[(key, dash, color, " ".join(f"{px(i):.1f},{py(getattr(d, key) / 3600):.1f}" for i, d in enumerate(days)))
               for key, dash, color in (("p90", "5 4", "#f2994a"), ("median", "", "#2f80ed"))],
        points=[(f"{px(i):.1f}", f"{py(d.median / 3600):.1f}",
                 f"{d.day}: median {duration(d.median)}, p90 {duration(d.p90)}, {d.count:,} delivered")
                for i, d in enumerate(days)])
    return chart


def _row(row: Row, cls: str, name: str, version: str, variant: str) -> dict[str, Any]:
    c = row.counts
    return {"cls": cls,
            "before": [name, version, variant, f"{c['matched']:,}", f"{c['sent']:,}", pct(row.rate("delivered")),
                       pct(row.rate("opened")), pct(row.rate("clicked")), pct(row.rate("replied"))],
            "sat": None if row.satisfaction is None else f"{row.satisfaction:.2f}", "rated": c["rated"],
            "after": [duration(row.ttn_median), duration(row.ttn_p90), f"{c['late']:,}", f"{c['fallbacks']:,}",
                      f"{c['failed']:,}"]}


def render_html(report: Report) -> str:
    d = report.as_dict()
    t = report.total
    f = d["filters"]
    scope = [f"{k}: {v}" for k, v in (("since", f["since"]), ("until", f["until"]), ("rule", ", ".join(f["rules"])),
                                      ("channel", f["channel"]), ("role", f["role"]), ("stage", f["stage"])) if v]
    cards = [("matched 匹配", f"{t.counts['matched']:,}"), ("sent 发送", f"{t.counts['sent']:,}"),
             ("delivered 送达率", pct(t.rate("delivered"))), ("opened 打开率", pct(t.rate("opened"))),
             ("replied 反馈率", pct(t.rate("replied"))),
             ("satisfaction 满意度", "—" if t.satisfaction is None else f"{t.satisfaction:.2f} / 5"),
             ("time to notify 通知时长 (median)", duration(t.ttn_median)), ("p90", duration(t.ttn_p90))]
    rows = []
    if report.rows:
        rows = [_row(row, kind, label, version, variant) for kind, row, label, version, variant in rule_lines(report)]
        rows.append(_row(t, "total", "all rules", "", ""))
    comparisons = [{"rule": c.rule_id, "metric": c.metric, "a": c.a, "b": c.b, "cls": "ok" if c.significant else "wait",
                    "rate_a": pct(c.hits_a / c.sent_a if c.sent_a else None), "sent_a": f"{c.sent_a:,}",
                    "rate_b": pct(c.hits_b / c.sent_b if c.sent_b else None), "sent_b": f"{c.sent_b:,}",
                    "p_value": "—" if c.p_value is None else f"{c.p_value:.3g}", "verdict": c.verdict}
                   for c in report.comparisons]
    failures = [(r.label, reason, f"{n:,}") for r in report.rules for reason, n in
                sorted(r.failures.items(), key=lambda kv: (-kv[1], kv[0]))]
    r = report.replies
    replies = (f"{r['received']:,} received, {r['handled']:,} handled, {r['open']:,} waiting; time to answer "
               f"median {duration(r['time_to_answer_median_s'])}, p90 {duration(r['time_to_answer_p90_s'])}."
               + (f" Unmatched outcomes waiting for a person: {report.unmatched:,}." if report.unmatched is not None
                  else ""))
    outside = report.outside_vocabulary
    vocabulary = None
    if outside is not None and outside.counts:
        vocabulary = {"lead": vocabulary_lead(outside),
                      "rows": [(c.label, c.field, f"{c.outcomes:,}", c.values_text()) for c in outside.counts]}
    return _ENV.get_template("report.html.j2").render(
        generated_at=d["generated_at"], timezone=report.timezone, store=report.store,
        scope="; ".join(scope) or "all notifications", cards=cards, ttn_chart=ttn_chart(report), head=HEAD,
        rows=rows, comparisons=comparisons, funnels=[funnel_chart(rule) for rule in report.rules],
        failures=failures, vocabulary=vocabulary, replies=replies, notes=report.notes)
