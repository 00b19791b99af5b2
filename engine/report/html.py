"""The report as ONE self-contained HTML file: inline CSS, inline SVG charts, no script, nothing fetched.

Charts: a funnel per rule (matched -> sent -> delivered -> opened -> clicked -> replied, bar length over matched,
labels with the count and the rate over sent), and time to notify per day (median line, p90 dashed) by the day
the outcome occurred. Headings carry the Chinese names HR use (送达率, 打开率, 反馈率, 满意度).
"""
from __future__ import annotations

import math
from html import escape

from engine.report import Report, Row
from engine.report.formats import duration, pct, rule_lines

FUNNEL = (("matched", "matched 匹配"), ("sent", "sent 发送"), ("delivered", "delivered 送达"),
          ("opened", "opened 打开"), ("clicked", "clicked 点击"), ("replied", "replied 反馈"))
COLORS = ("#9fb3c8", "#627d98", "#2f80ed", "#27ae60", "#f2994a", "#9b51e0")

CSS = """
:root{--fg:#1f2933;--muted:#616e7c;--line:#d9e2ec;--bg:#f5f7fa;--accent:#2f80ed}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC","Microsoft YaHei",
 sans-serif;color:var(--fg);background:var(--bg)}
main{max-width:1280px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px}
.meta{color:var(--muted);margin:0 0 16px}
.cards{display:grid;grid-template-columns:repeat(auto-fit,minmax(128px,1fr));gap:10px}
.card{background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.card b{display:block;font-size:20px}.card span{color:var(--muted);font-size:12px}
.scroll{overflow-x:auto;background:#fff;border:1px solid var(--line);border-radius:8px}
table{border-collapse:collapse;width:100%;font-variant-numeric:tabular-nums}
th,td{padding:5px 8px;border-bottom:1px solid var(--line);text-align:right;white-space:nowrap}
th{background:#f0f4f8;font-weight:600;font-size:12px;vertical-align:bottom}th small{font-weight:400;color:var(--muted)}
th:nth-child(-n+3),td:nth-child(-n+3){text-align:left}
#variants td:nth-child(5),#variants th:nth-child(5),#variants td:last-child,#variants th:last-child{text-align:left}
#variants td:last-child{white-space:normal}
tr.rule td{font-weight:600}tr.part td{color:var(--muted)}tr.part td:first-child{padding-left:24px}
tr.total td{font-weight:700;border-top:2px solid var(--fg)}
.funnels{display:grid;grid-template-columns:repeat(auto-fill,minmax(430px,1fr));gap:12px}
figure{margin:0;background:#fff;border:1px solid var(--line);border-radius:8px;padding:10px}
figcaption{font-weight:600;margin-bottom:4px;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
svg text{font-size:11px;fill:var(--fg)}svg .muted{fill:var(--muted)}
.ok{color:#1e7e34}.wait{color:var(--muted)}
ol.notes{color:var(--muted);font-size:13px;padding-left:20px}
"""


def _e(x: object) -> str:
    return escape(str(x), quote=True)


def funnel_svg(row: Row) -> str:
    """Horizontal bars, one per stage; length relative to matched; label: count and rate over sent."""
    c = row.counts
    top = max(c["matched"], 1)
    w, label_w, bar_h, gap = 420, 100, 18, 6
    h = len(FUNNEL) * (bar_h + gap) + 4
    parts = [f'<svg class="funnel" role="img" viewBox="0 0 {w} {h}" width="100%" '
             f'xmlns="http://www.w3.org/2000/svg" aria-label="funnel {_e(row.label)}">']
    for i, ((key, name), color) in enumerate(zip(FUNNEL, COLORS, strict=False)):
        y = 2 + i * (bar_h + gap)
        n = c[key]
        length = max((w - label_w - 150) * n / top, 1 if n else 0)
        rate = "" if key in ("matched", "sent") else f" · {pct(row.rate(key))}"
        if key == "sent":
            rate = f" · {pct(n / c['matched'] if c['matched'] else None)} of matched"
        parts.append(f'<text x="0" y="{y + 13}">{_e(name)}</text>'
                     f'<rect x="{label_w}" y="{y}" width="{length:.1f}" height="{bar_h}" rx="3" fill="{color}">'
                     f'<title>{_e(name)}: {n:,}{_e(rate)}</title></rect>'
                     f'<text x="{label_w + length + 6:.1f}" y="{y + 13}">{n:,}'
                     f'<tspan class="muted">{_e(rate)}</tspan></text>')
    parts.append("</svg>")
    return "".join(parts)


def _nice_step(span: float, ticks: int = 5) -> float:
    raw = span / max(ticks, 1)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for m in (1, 2, 2.5, 5, 10):
        if raw <= m * mag:
            return m * mag
    return 10 * mag


def ttn_svg(report: Report) -> str:
    """Time to notify per day: median (line) and p90 (dashed), hours on the y axis."""
    days = report.days
    w, h, left, right, top, bottom = 900, 260, 56, 16, 14, 36
    if not days:
        return (f'<svg class="ttn" role="img" viewBox="0 0 {w} 60" width="100%" xmlns="http://www.w3.org/2000/svg">'
                f'<text x="10" y="34" class="muted">No delivered notifications in this period.</text></svg>')
    hours = [d.p90 / 3600 for d in days] + [d.median / 3600 for d in days]
    ymax = max(max(hours), 0.1)
    step = _nice_step(ymax)
    ymax = step * math.ceil(ymax / step)
    n = len(days)

    def px(i: int) -> float:
        return left + (w - left - right) * (i / (n - 1) if n > 1 else 0.5)

    def py(v: float) -> float:
        return top + (h - top - bottom) * (1 - v / ymax)

    out = [f'<svg class="ttn" role="img" viewBox="0 0 {w} {h}" width="100%" xmlns="http://www.w3.org/2000/svg" '
           f'aria-label="time to notify per day">']
    tick = 0.0
    while tick <= ymax + 1e-9:
        y = py(tick)
        out.append(f'<line x1="{left}" x2="{w - right}" y1="{y:.1f}" y2="{y:.1f}" stroke="#d9e2ec"/>'
                   f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="muted">{tick:g}h</text>')
        tick += step
    every = max(1, math.ceil(n / 10))
    for i, d in enumerate(days):
        if i % every == 0 or i == n - 1:
            out.append(f'<text x="{px(i):.1f}" y="{h - bottom + 16}" text-anchor="middle" class="muted">'
                       f'{_e(d.day[5:])}</text>')
    for key, style, color in (("p90", 'stroke-dasharray="5 4"', "#f2994a"), ("median", "", "#2f80ed")):
        pts = " ".join(f"{px(i):.1f},{py(getattr(d, key) / 3600):.1f}" for i, d in enumerate(days))
        out.append(f'<polyline class="{key}" fill="none" stroke="{color}" stroke-width="2" {style} points="{pts}"/>')
    for i, d in enumerate(days):
        out.append(f'<circle cx="{px(i):.1f}" cy="{py(d.median / 3600):.1f}" r="3" fill="#2f80ed">'
                   f'<title>{_e(d.day)}: median {duration(d.median)}, p90 {duration(d.p90)}, '
                   f'{d.count:,} delivered</title></circle>')
    out.append(f'<text x="{w - right}" y="{top + 4}" text-anchor="end" class="muted">'
               f'<tspan fill="#2f80ed">━ median</tspan>  <tspan fill="#f2994a">┅ p90</tspan></text>')
    out.append("</svg>")
    return "".join(out)


def _row_html(row: Row, cls: str, name: str, version: str, variant: str) -> str:
    c = row.counts
    sat = "—" if row.satisfaction is None else f"{row.satisfaction:.2f} <small>({c['rated']})</small>"
    cells = [_e(name), _e(version), _e(variant), f"{c['matched']:,}", f"{c['sent']:,}", pct(row.rate("delivered")),
             pct(row.rate("opened")), pct(row.rate("clicked")), pct(row.rate("replied")), sat,
             duration(row.ttn_median), duration(row.ttn_p90), f"{c['late']:,}", f"{c['fallbacks']:,}",
             f"{c['failed']:,}"]
    return f'<tr class="{cls}">' + "".join(f"<td>{x}</td>" for x in cells) + "</tr>"


HEAD = (("rule", "规则"), ("version", "版本"), ("variant", "变体"), ("matched", "匹配"), ("sent", "发送"),
        ("delivered", "送达率"), ("opened", "打开率"), ("clicked", "点击率"), ("replied", "反馈率"),
        ("satisfaction", "满意度"), ("time to notify", "通知时长 中位数"), ("p90", "90%"), ("late", "超时"),
        ("fallbacks", "转渠道"), ("failed", "失败"))


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
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           "<title>herald report — rule performance</title>", f"<style>{CSS}</style></head><body><main>",
           "<h1>herald report · 规则效果</h1>",
           f'<p class="meta">Generated {_e(d["generated_at"])} ({_e(report.timezone)}) from {_e(report.store)} · '
           f'{_e("; ".join(scope) or "all notifications")} · rates over sent</p>',
           '<section class="cards">' + "".join(f'<div class="card"><b>{_e(v)}</b><span>{_e(k)}</span></div>'
                                                for k, v in cards) + "</section>",
           "<h2>Time to notify per day · 通知时长(按面试结果日期)</h2>",
           f'<figure id="ttn-chart">{ttn_svg(report)}</figure>',
           "<h2>Per rule, version and variant · 各规则</h2>"]
    if not report.rows:
        out.append("<p>No notifications match.</p>")
    else:
        rows = [_row_html(row, kind, label, version, variant)
                for kind, row, label, version, variant in rule_lines(report)]
        rows.append(_row_html(t, "total", "all rules", "", ""))
        out.append('<div class="scroll"><table id="report-table"><thead><tr>' +
                   "".join(f"<th>{_e(en)}<br><small>{_e(zh)}</small></th>" for en, zh in HEAD) + "</tr></thead><tbody>" + "".join(rows) +
                   "</tbody></table></div>")
    if report.comparisons:
        out.append("<h2>Variants · A/B</h2><div class=\"scroll\"><table id=\"variants\"><thead><tr>"
                   "<th>rule</th><th>metric</th><th>variant A</th><th>A rate (sent)</th><th>variant B</th>"
                   "<th>B rate (sent)</th><th>p-value</th><th>verdict</th></tr></thead><tbody>")
        for c in report.comparisons:
            cls = "ok" if c.significant else "wait"
            out.append(f"<tr><td>{_e(c.rule_id)}</td><td>{_e(c.metric)}</td><td>{_e(c.a)}</td>"
                       f"<td>{pct(c.hits_a / c.sent_a if c.sent_a else None)} <small>({c.sent_a:,})</small></td>"
                       f"<td>{_e(c.b)}</td><td>{pct(c.hits_b / c.sent_b if c.sent_b else None)} "
                       f"<small>({c.sent_b:,})</small></td>"
                       f"<td>{'—' if c.p_value is None else f'{c.p_value:.3g}'}</td>"
                       f'<td class="{cls}">{_e(c.verdict)}</td></tr>')
        out.append("</tbody></table></div>")
    if report.rules:
        out.append("<h2>Funnel per rule · 漏斗</h2><div class=\"funnels\">")
        out.extend(f'<figure class="funnel-chart"><figcaption title="{_e(rule.label)}">{_e(rule.label)}'
                   f'</figcaption>{funnel_svg(rule)}</figure>' for rule in report.rules)
        out.append("</div>")
    fails = [(r.label, reason, n) for r in report.rules for reason, n in
             sorted(r.failures.items(), key=lambda kv: (-kv[1], kv[0]))]
    if fails:
        out.append('<h2>Failures by reason · 失败原因</h2><div class="scroll"><table id="failures"><thead><tr>'
                   "<th>rule</th><th>reason</th><th></th><th>count</th></tr></thead><tbody>")
        out += [f"<tr><td>{_e(a)}</td><td>{_e(b)}</td><td></td><td>{n:,}</td></tr>" for a, b, n in fails]
        out.append("</tbody></table></div>")
    r = report.replies
    out.append("<h2>Replies · 候选人回复</h2>")
    out.append(f"<p>{r['received']:,} received, {r['handled']:,} handled, {r['open']:,} waiting; time to answer "
               f"median {duration(r['time_to_answer_median_s'])}, p90 {duration(r['time_to_answer_p90_s'])}."
               + (f" Unmatched outcomes waiting for a person: {report.unmatched:,}." if report.unmatched is not None
                  else "") + "</p>")
    out.append('<h2>Notes</h2><ol class="notes">' + "".join(f"<li>{_e(n)}</li>" for n in report.notes) + "</ol>")
    out.append("</main></body></html>")
    return "\n".join(out) + "\n"
