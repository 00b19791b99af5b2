"""Console pages about the rules: Rules (the rule set in use, the located errors of a refused reload, each rule's
hits today), Preview (a rule's template in a chosen locale and channel over a
stored or sample outcome, rendered through the pipeline, with SMS segments) and Report (engine.report's HTML page
for a period, today by default: each rule's performance; a rendering is served again for REPORT_TTL seconds)."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response

from engine import desk
from engine.console.web import Console, Refused
from engine.desk.planning import find_rule, pinned
from engine.model import Plan
from engine.report import build_report
from engine.report.dates import report_filters
from engine.report.html import render_html

REPORT_TTL = 60.0  # seconds a rendered report is served again (the report says when it was generated)
MAX_SAMPLE = 64 * 1024  # characters of a sample outcome
SAMPLE = {"id": "sample-1", "decision": "reject", "stage": "first_round", "role": "backend",
          "candidate": {"name": "张伟", "email": "zhang.wei@example.com", "phone": "+8613800000000"}}
REPORT_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
                                             "frame-ancestors 'self'; base-uri 'none'; form-action 'none'",
                  "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"}


def add_routes(router: APIRouter, console: Console) -> None:
    rt = console.runtime

    def day(offset: int = 0) -> str:
        return (datetime.fromtimestamp(rt.now(), console.zone) + timedelta(days=offset)).strftime("%Y-%m-%d")

    def zone_name() -> str:
        return rt.state.deployment.config.tracking.timezone

    @router.get("/rules")
    def rules(request: Request) -> Response:
        visitor = console.signed_in(request)
        ruleset = rt.state.deployment.ruleset
        start, end = desk.day_bounds(rt.now(), console.zone)
        counts = desk.day_counts(rt.store, start, end)
        return console.page(request, visitor, "rules.html.j2", version=rt.version, rules=ruleset.rules,
                            latest=rt.store.latest_ruleset(), errors=list(rt.last_reload_error), counts=counts)

    @router.get("/preview")
    def preview(request: Request, rule: str = "", locale: str = "", channel: str = "", outcome: str = "",
                sample: str = "") -> Response:
        visitor = console.signed_in(request)
        dep = rt.state.deployment
        rule_ids = [r.id for r in dep.ruleset.rules]
        plan, error = None, None
        text = sample or json.dumps(SAMPLE, ensure_ascii=False, indent=2)
        if rule:
            chosen = find_rule(rt.pipeline, rule)
            data, error = _outcome(rt, outcome, text)
            if chosen is None:
                error = f"no rule {rule!r}"
            elif data is not None:
                if locale:
                    data = {**data, "candidate": {**(data.get("candidate") or {}), "locale": locale}}
                plan = pinned(rt.pipeline, chosen).plan(data)
                if channel:
                    plan = _only(plan, channel)
        return console.page(request, visitor, "preview.html.j2", status=200 if error is None else 422, error=error,
                            rule_ids=rule_ids, channels=sorted(dep.config.channels), rule=rule, locale=locale,
                            channel=channel, outcome=outcome, sample=text, plan=plan,
                            locales=sorted({r.locale for r in dep.ruleset.rules} | {"zh-CN", "en"}))

    @router.get("/report")
    def report_page(request: Request, since: str = "", until: str = "") -> Response:
        visitor = console.signed_in(request)
        since, until = since or day(), until or day()
        return console.page(request, visitor, "report.html.j2", since=since, until=until)

    cache: dict[tuple, tuple[float, str]] = {}

    @router.get("/report/view")
    async def report_view(request: Request, since: str = "", until: str = "") -> Response:
        console.signed_in(request)
        key = (since or day(), until or day(), zone_name())
        hit = cache.get(key)
        if hit is None or time.monotonic() - hit[0] > REPORT_TTL:
            try:
                flt = report_filters(key[0], key[1], timezone_name=key[2])
            except ValueError as e:
                raise Refused(422, "error") from e
            rep = await run_in_threadpool(build_report, rt.store, flt, timezone_name=key[2])
            if len(cache) > 32:
                cache.clear()
            hit = cache[key] = (time.monotonic(), render_html(rep))
        return HTMLResponse(hit[1], headers=REPORT_HEADERS)


def _outcome(rt: Any, outcome_id: str, sample: str) -> tuple[dict | None, str | None]:
    """The outcome to preview: a stored one by id, else the sample (JSON); (None, why) when neither works."""
    if outcome_id:
        row = rt.store.get_outcome(outcome_id)
        return (row.data(), None) if row is not None else (None, f"no outcome {outcome_id!r}")
    if len(sample) > MAX_SAMPLE:
        return None, f"the sample outcome is longer than {MAX_SAMPLE} characters"
    try:
        data = json.loads(sample)
    except ValueError as e:
        return None, f"the sample outcome is not JSON: {e}"
    return (data, None) if isinstance(data, dict) else (None, "the sample outcome must be a JSON object")


def _only(plan: Plan, channel: str) -> Plan:
    """The plan with only `channel`'s message."""
    return replace(plan, messages=tuple(m for m in plan.messages if m.channel == channel))
