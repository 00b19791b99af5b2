"""Console pages about the rules: Rules (the rule set in use, the located errors of a refused reload, each rule's
hits today), Preview (a rule's template in a chosen locale and channel over a
stored or sample outcome, rendered through the pipeline, with SMS segments, and "send a test to me":
engine.desk.testsend) and Report (engine.report's HTML page
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
from engine.console.web import Console, Refused, Visitor, one
from engine.desk.planning import find_rule, pinned
from engine.desk.testsend import operator_address, send_test
from engine.model import ACCEPTED, Plan
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

    def previewed(rule: str, locale: str, channel: str, outcome: str, text: str) -> tuple[Plan | None, str | None]:
        """The preview's plan: `rule` over the stored outcome or the sample, in `locale`, `channel`'s message only."""
        chosen = find_rule(rt.pipeline, rule)
        data, error = _outcome(rt, outcome, text)
        if chosen is None:
            return None, f"no rule {rule!r}"
        if data is None:
            return None, error
        if locale:
            data = {**data, "candidate": {**(data.get("candidate") or {}), "locale": locale}}
        plan = pinned(rt.pipeline, chosen).plan(data)
        return (_only(plan, channel) if channel else plan), None

    def preview_page(request: Request, visitor: Visitor, rule: str, locale: str, channel: str, outcome: str,
                     sample: str, notice: str | None = None, error: str | None = None, status: int = 200) -> Response:
        dep = rt.state.deployment
        plan = None
        text = sample or json.dumps(SAMPLE, ensure_ascii=False, indent=2)
        if rule:
            plan, failed = previewed(rule, locale, channel, outcome, text)
            error = error or failed
        email = visitor.account.email if visitor.account else None
        testable = [c for c in sorted(dep.config.channels) if operator_address(c, email)]
        return console.page(request, visitor, "preview.html.j2", status=422 if error is not None and status == 200 else status,
                            notice=notice, error=error, rule_ids=[r.id for r in dep.ruleset.rules],
                            channels=sorted(dep.config.channels), rule=rule, locale=locale, channel=channel,
                            outcome=outcome, sample=text, plan=plan, testable=testable, my_email=email,
                            locales=sorted({r.locale for r in dep.ruleset.rules} | {"zh-CN", "en"}))

    @router.get("/preview")
    def preview(request: Request, rule: str = "", locale: str = "", channel: str = "", outcome: str = "",
                sample: str = "") -> Response:
        return preview_page(request, console.signed_in(request), rule, locale, channel, outcome, sample)

    @router.post("/preview/test")
    async def send_test_to_me(request: Request) -> Response:
        """"Send a test to me": the previewed message for one channel, through that channel's real transport, to
        the signed-in operator's own address; recorded as a test (audit log), never as a notification."""
        visitor, fields = await console.posted(request, "approver")
        rule, locale, outcome = one(fields, "rule"), one(fields, "locale"), one(fields, "outcome")
        channel, sample = one(fields, "test_channel"), (fields.get("sample") or [""])[0]

        def work() -> Response:
            def again(notice: str | None = None, error: str | None = None, status: int = 200) -> Response:
                return preview_page(request, visitor, rule, locale, channel, outcome, sample, notice, error, status)

            to = operator_address(channel, visitor.account.email if visitor.account else None)
            if to is None or visitor.actor is None:
                return again(error=visitor.t("no_test_address", channel=channel or "-"), status=409)
            plan, error = previewed(rule, locale, channel, outcome, sample)
            transport, why = rt.state.transports.get(channel)
            if plan is None or transport is None:
                return again(error=error or why or f"channel {channel!r} cannot send", status=409)
            try:
                sent = send_test(rt.store, transport, plan, channel, to, rt.now(), visitor.actor, outcome or None)
            except desk.ActionError as e:
                return again(error=str(e), status=409)
            if sent.status != ACCEPTED:
                return again(error=visitor.t("test_failed", to=to, error=sent.error or sent.status), status=502)
            return again(notice=visitor.t("test_sent", to=to, channel=channel))

        return await run_in_threadpool(work)

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
