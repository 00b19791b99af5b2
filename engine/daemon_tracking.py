"""The daemon's tracking endpoints (a FastAPI APIRouter): open pixel, click redirect, rating and unsubscribe pages,
inbound replies, the read-only report, and the per-rule figures for /metrics.

    app.include_router(tracking_router(store, secret, clock, authorize=authorize))
    registry.register(ReportCollector(lambda: store))

Routes (tokens: engine/tracking.py):
    GET  /t/o/{token}.gif   1x1 GIF, always (a bad token gets the GIF too, and records nothing); 'opened' once
    GET  /t/c/{token}       302 to the URL inside the token, 'clicked' once; a bad token: 404, never a redirect.
                            An authentic but expired token still redirects (its target is ours) and records nothing.
    GET  /t/r/{token}       the rating page (zh-CN or English by the notification's locale), no JS needed
    POST /t/r/{token}       form: score 1..5, comment up to 1000 characters -> 'rated' {score, comment}, once per
                            notification: a second rating is refused (the first one stands)
    GET  /t/u/{token}       asks to confirm; POST records 'unsubscribed' once (a link scanner's GET records nothing)
    POST /v1/replies        JSON {notification_id | provider_id | phone | email, channel, content, at?}: a candidate's
                            reply from any inbound integration (SMS SmsUp, e-mail, DingTalk); behind `authorize`
    GET  /report            the HTML report (same as `herald report --format html`), read-only; behind `authorize`
                            unless report_auth=False

A forged, altered, expired or replayed token records nothing. Event times come from the daemon's clock.
"""
from __future__ import annotations

import inspect
import json
import logging
import threading
import time
from datetime import datetime
from html import escape
from typing import Any, Callable, Mapping
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from .report import Filters, build_report, report_metrics
from .report.html import render_html
from .report.queries import connect, notification_for_address, notification_for_provider
from .tracking import CLICK, OPEN, PIXEL_GIF, RATE, UNSUBSCRIBE, decode_token, verify_token

log = logging.getLogger("herald.tracking")

MAX_COMMENT = 1000
MAX_FORM = 16 * 1024
MAX_REPLY_BODY = 64 * 1024
MAX_REPLY_CONTENT = 10000
NO_STORE = {"Cache-Control": "no-store, private", "Pragma": "no-cache", "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}
PAGE_HEADERS = {**NO_STORE, "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                                       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
                "X-Frame-Options": "DENY"}


# ------------------------------------------------------------------------------------------------- pages

TEXT = {
    "zh": {
        "lang": "zh-CN", "title": "面试结果通知满意度", "question": "您对这次面试结果通知满意吗?",
        "hint": "请选择 1-5 星(5 星为非常满意),也可以留下您的意见。",
        "labels": ("很不满意", "不满意", "一般", "满意", "非常满意"), "comment": "意见或建议(选填)",
        "send": "提交", "thanks": "感谢您的反馈!", "thanks_body": "您的评价已收到,它会帮助我们改进与候选人的沟通。",
        "already": "您已经评价过了", "already_body": "每条通知只能评价一次,感谢您的反馈。",
        "invalid": "链接无效", "invalid_body": "这个链接无法识别,请检查是否完整复制了链接。",
        "expired": "链接已过期", "expired_body": "这个评价链接已经过期,感谢您的关注。",
        "need_score": "请选择 1 到 5 星。", "too_long": f"意见请不超过 {MAX_COMMENT} 个字。",
        "busy": "系统繁忙,请稍后再试。",
        "unsub_q": "退订招聘消息", "unsub_body": "确认后,我们会记录您不希望再收到此类招聘消息的请求。",
        "unsub_send": "确认退订", "unsub_done": "已记录您的退订请求", "unsub_done_body": "感谢您的告知。",
    },
    "en": {
        "lang": "en", "title": "How did we do?", "question": "How satisfied are you with how we told you the result?",
        "hint": "Choose 1 to 5 stars (5 is very satisfied); a comment is welcome but optional.",
        "labels": ("Very poor", "Poor", "OK", "Good", "Very good"), "comment": "Comment (optional)",
        "send": "Send", "thanks": "Thank you!", "thanks_body": "We have your rating; it helps us talk better with "
                                                               "candidates.",
        "already": "Already rated", "already_body": "Each message can be rated once. Thank you for your feedback.",
        "invalid": "Link not valid", "invalid_body": "This link is not one we recognise; check that it was copied "
                                                     "whole.",
        "expired": "Link expired", "expired_body": "This rating link has expired. Thank you for your interest.",
        "need_score": "Please choose 1 to 5 stars.", "too_long": f"Please keep the comment under {MAX_COMMENT} "
                                                                  f"characters.",
        "busy": "We are busy right now; please try again in a moment.",
        "unsub_q": "Stop recruiting messages", "unsub_body": "Confirm, and we will record that you do not want "
                                                             "further recruiting messages like this one.",
        "unsub_send": "Confirm", "unsub_done": "Your request is recorded", "unsub_done_body": "Thank you for "
                                                                                           "letting us know.",
    },
}

PAGE_CSS = """
*{box-sizing:border-box}body{margin:0;background:#f5f7fa;color:#1f2933;
font:17px/1.5 -apple-system,"PingFang SC","Noto Sans CJK SC","Microsoft YaHei","Segoe UI",sans-serif}
main{max-width:480px;margin:0 auto;padding:28px 18px}h1{font-size:22px;margin:0 0 8px}
p{margin:0 0 16px;color:#52606d}.box{background:#fff;border-radius:14px;padding:20px;
box-shadow:0 1px 3px rgba(0,0,0,.08)}fieldset{border:0;margin:0 0 18px;padding:0}
legend{font-weight:600;margin-bottom:10px}.stars{display:grid;grid-template-columns:repeat(5,1fr);gap:8px}
.stars label{position:relative;display:flex;flex-direction:column;align-items:center;justify-content:center;
min-height:76px;border:2px solid #d9e2ec;border-radius:12px;cursor:pointer;background:#fff;text-align:center}
.stars input{position:absolute;opacity:0;width:100%;height:100%;margin:0;cursor:pointer}
.stars .s{font-size:30px;line-height:1;color:#bcccdc}.stars .n{font-weight:700}
.stars small{font-size:11px;color:#7b8794;line-height:1.2}
.stars input:checked~.s{color:#f0b429}.stars label:has(input:checked){border-color:#f0b429;background:#fffbea}
.stars input:focus-visible~.s{outline:3px solid #2f80ed}
textarea{width:100%;min-height:96px;font:inherit;padding:10px;border:2px solid #d9e2ec;border-radius:10px}
label.c{display:block;font-weight:600;margin-bottom:6px}
button{width:100%;margin-top:16px;padding:14px;font:inherit;font-weight:700;color:#fff;background:#2f80ed;
border:0;border-radius:12px;cursor:pointer}.err{color:#c81e1e;font-weight:600}
"""


def _lang(locale: str | None) -> dict:
    return TEXT["zh"] if (locale or "zh").lower().startswith("zh") else TEXT["en"]


def _page(t: dict, title: str, body: str, status: int = 200) -> HTMLResponse:
    html = (f'<!DOCTYPE html><html lang="{t["lang"]}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="robots" content="noindex, nofollow"><title>{escape(title)}</title>'
            f"<style>{PAGE_CSS}</style></head><body><main><div class=\"box\">{body}</div></main></body></html>")
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def _message_page(t: dict, title_key: str, body_key: str, status: int = 200) -> HTMLResponse:
    return _page(t, t[title_key], f"<h1>{escape(t[title_key])}</h1><p>{escape(t[body_key])}</p>", status)


def _invalid() -> HTMLResponse:
    zh, en = TEXT["zh"], TEXT["en"]
    body = (f"<h1>{zh['invalid']} · {en['invalid']}</h1><p>{escape(zh['invalid_body'])}</p>"
            f"<p>{escape(en['invalid_body'])}</p>")
    return _page(zh, f"{zh['invalid']} · {en['invalid']}", body, 404)


def rating_form(t: dict, score: int | None = None, comment: str = "", error: str | None = None,
                status: int = 200) -> HTMLResponse:
    stars = []
    for i, label in enumerate(t["labels"], 1):
        checked = " checked" if score == i else ""
        stars.append(f'<label><input type="radio" name="score" value="{i}" required{checked} '
                     f'aria-label="{i} - {escape(label)}"><span class="s" aria-hidden="true">★</span>'
                     f'<span class="n">{i}</span><small>{escape(label)}</small></label>')
    err = f'<p class="err" role="alert">{escape(error)}</p>' if error else ""
    body = (f"<h1>{escape(t['title'])}</h1><p>{escape(t['hint'])}</p>{err}"
            f'<form method="post"><fieldset><legend>{escape(t["question"])}</legend>'
            f'<div class="stars">{"".join(stars)}</div></fieldset>'
            f'<label class="c" for="comment">{escape(t["comment"])}</label>'
            f'<textarea id="comment" name="comment" maxlength="{MAX_COMMENT}">{escape(comment)}</textarea>'
            f'<button type="submit">{escape(t["send"])}</button></form>')
    return _page(t, t["title"], body, status)


def unsubscribe_form(t: dict) -> HTMLResponse:
    body = (f"<h1>{escape(t['unsub_q'])}</h1><p>{escape(t['unsub_body'])}</p>"
            f'<form method="post"><button type="submit">{escape(t["unsub_send"])}</button></form>')
    return _page(t, t["unsub_q"], body)


def parse_rating(form: Mapping[str, list]) -> tuple[int | None, str, str | None]:
    """(score, comment, error key) from a submitted form."""
    raw = (form.get("score") or [""])[0].strip()
    comment = (form.get("comment") or [""])[0].replace("\r\n", "\n").strip()
    score = int(raw) if raw.isdigit() and len(raw) == 1 else None
    if score is None or not 1 <= score <= 5:
        return None, comment, "need_score"
    if len(comment) > MAX_COMMENT:
        return score, comment, "too_long"
    return score, comment, None


# -------------------------------------------------------------------------------------------------- router

def _now_fn(clock: Any) -> Callable[[], float]:
    if clock is None:
        return time.time
    if hasattr(clock, "now"):
        return clock.now
    if callable(clock):
        return clock
    raise TypeError("clock: an engine.clock.Clock, a callable returning epoch seconds, or None")


def _parse_at(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return None
        return dt.timestamp() if dt.tzinfo is not None else None
    return None


def _problem(code: int, error: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "field": field, "dead_letter": None}, status_code=code)


def tracking_router(store: Any, secret: str | bytes, clock: Any = None, *,
                    authorize: Callable[..., Any] | None = None, max_age: Mapping[str, float] | None = None,
                    report_auth: bool = True, report_timezone: str = "UTC") -> APIRouter:
    """The tracking routes over `store` (an engine.store.Store), signing key `secret`, time from `clock`.

    authorize(request, body) guards POST /v1/replies (and GET /report when report_auth): it raises (e.g. the
    daemon's HTTPProblem(401)) when the request may not pass; it may be sync or async. None: open (loopback).
    """
    router = APIRouter()
    now = _now_fn(clock)
    if not secret:
        raise ValueError("tracking_router needs the tracking secret")

    async def check(request: Request, body: bytes = b"") -> None:
        if authorize is None:
            return
        result = authorize(request, body)
        if inspect.isawaitable(result):
            await result

    def record(nid: str, kind: str, channel: str | None, detail: Mapping | None, key: str) -> bool | None:
        """True recorded, False refused (duplicate / unknown notification), None: the store is unavailable."""
        try:
            return store.add_event(nid, kind, at=now(), channel=channel, detail=detail, dedupe_key=key)
        except Exception:  # noqa: BLE001 - a candidate's click or open must never fail on the store
            log.exception("cannot record %s for %s", kind, nid)
            return None

    def notification(nid: str):
        try:
            return store.get_notification(nid)
        except Exception:  # noqa: BLE001
            log.exception("cannot read notification %s", nid)
            return None

    @router.get("/t/o/{token}.gif", include_in_schema=False)
    def open_pixel(token: str) -> Response:
        p = verify_token(secret, token, OPEN, now=now(), max_age=max_age)
        if p is not None:
            record(p.notification_id, "opened", p.channel, None, f"opened:{p.notification_id}")
        return Response(PIXEL_GIF, media_type="image/gif", headers=NO_STORE)

    @router.get("/t/c/{token}", include_in_schema=False)
    def click(token: str) -> Response:
        p = decode_token(secret, token, CLICK)
        if p is None or p.url is None:
            return _invalid()
        if verify_token(secret, token, CLICK, now=now(), max_age=max_age) is not None:
            record(p.notification_id, "clicked", p.channel, {"url": p.url}, f"clicked:{p.notification_id}")
        return RedirectResponse(p.url, status_code=302, headers=NO_STORE)

    def _rating_state(token: str):
        p = decode_token(secret, token, RATE)
        if p is None:
            return None, None, _invalid()
        detail = notification(p.notification_id)
        if detail is None:
            return None, None, _invalid()
        t = _lang(detail.notification.locale)
        if verify_token(secret, token, RATE, now=now(), max_age=max_age) is None:
            return p, t, _message_page(t, "expired", "expired_body", 410)
        if any(e.kind == "rated" for e in detail.events):
            return p, t, _message_page(t, "already", "already_body")
        return p, t, None

    @router.get("/t/r/{token}", include_in_schema=False)
    def rating_page(token: str) -> Response:
        _p, t, done = _rating_state(token)
        return done if done is not None else rating_form(t)

    @router.post("/t/r/{token}", include_in_schema=False)
    async def rate(token: str, request: Request) -> Response:
        body = await _read(request, MAX_FORM)
        p, t, done = await run_in_threadpool(_rating_state, token)
        if done is not None:
            return done
        if body is None:
            return rating_form(t, error=t["too_long"], status=413)
        form = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=20)
        score, comment, error = parse_rating(form)
        if error is not None:
            return rating_form(t, score, comment[:MAX_COMMENT * 2], t[error], 422)
        ok = await run_in_threadpool(record, p.notification_id, "rated", p.channel,
                                     {"score": score, "comment": comment or None}, f"rated:{p.notification_id}")
        if ok is None:
            return _message_page(t, "title", "busy", 503)
        if not ok:
            return _message_page(t, "already", "already_body", 409)
        return _message_page(t, "thanks", "thanks_body")

    def _unsub_state(token: str):
        p = decode_token(secret, token, UNSUBSCRIBE)
        detail = notification(p.notification_id) if p is not None else None
        if detail is None:
            return None, None, _invalid()
        t = _lang(detail.notification.locale)
        if verify_token(secret, token, UNSUBSCRIBE, now=now(), max_age=max_age) is None:
            return p, t, _message_page(t, "expired", "expired_body", 410)
        return p, t, None

    @router.get("/t/u/{token}", include_in_schema=False)
    def unsubscribe_page(token: str) -> Response:
        _p, t, done = _unsub_state(token)
        return done if done is not None else unsubscribe_form(t)

    @router.post("/t/u/{token}", include_in_schema=False)
    def unsubscribe(token: str) -> Response:
        p, t, done = _unsub_state(token)
        if done is not None:
            return done
        if record(p.notification_id, "unsubscribed", p.channel, None, f"unsubscribed:{p.notification_id}") is None:
            return _message_page(t, "title", "busy", 503)
        return _message_page(t, "unsub_done", "unsub_done_body")

    @router.post("/v1/replies", status_code=201, tags=["tracking"])
    async def post_reply(request: Request) -> Any:
        """A candidate's reply from an inbound integration: JSON {notification_id | provider_id | phone | email,
        channel, content, at?}. 201 {reply_id, notification_id, matched}; a reply that matches no notification is
        kept unattributed (matched false) so that HR still sees it in `herald replies`."""
        body = await _read(request, MAX_REPLY_BODY)
        if body is None:
            return _problem(413, f"body larger than {MAX_REPLY_BODY} bytes")
        await check(request, body)
        try:
            data = json.loads(body)
        except ValueError:
            return _problem(422, "the body is not JSON")
        if not isinstance(data, dict):
            return _problem(422, "the body must be a JSON object")
        content = data.get("content")
        if not isinstance(content, str) or not content.strip():
            return _problem(422, "content: the reply text is required", "content")
        if len(content) > MAX_REPLY_CONTENT:
            return _problem(422, f"content: at most {MAX_REPLY_CONTENT} characters", "content")
        for key in ("notification_id", "provider_id", "phone", "email", "channel"):
            if data.get(key) is not None and not isinstance(data.get(key), str):
                return _problem(422, f"{key}: must be a string", key)
        at = now()
        if data.get("at") is not None:
            at = _parse_at(data["at"])
            if at is None:
                return _problem(422, "at: an RFC 3339 time with an offset, or epoch seconds", "at")
        if not any(data.get(k) for k in ("notification_id", "provider_id", "phone", "email")):
            return _problem(422, "name the message answered: notification_id, provider_id, phone or email",
                            "notification_id")
        channel = data.get("channel") or None
        nid, err = await run_in_threadpool(_resolve, store, data, channel)
        if err is not None:
            return _problem(404, err, "notification_id")
        rid = await run_in_threadpool(store.add_reply, nid, content, at, channel)
        return {"reply_id": rid, "notification_id": nid, "matched": nid is not None}

    @router.get("/report", response_class=HTMLResponse, tags=["tracking"])
    async def report(request: Request, since: str | None = None, until: str | None = None,
                     rule: list[str] = Query(default=[]), channel: str | None = None, role: str | None = None,
                     stage: str | None = None) -> Any:
        """The performance report as one HTML page (read-only): ?since=YYYY-MM-DD&until=...&rule=...&channel=..."""
        if report_auth:
            await check(request)
        try:
            flt = report_filters(since, until, tuple(rule), channel, role, stage, report_timezone)
        except ValueError as e:
            return _problem(422, str(e))
        rep = await run_in_threadpool(build_report, store.path, flt, timezone_name=report_timezone)
        return HTMLResponse(render_html(rep), headers={"Cache-Control": "no-store"})

    return router


def _resolve(store: Any, data: Mapping, channel: str | None) -> tuple[str | None, str | None]:
    """(notification id or None, error): a named notification must exist; other keys may match nothing."""
    nid = data.get("notification_id")
    if nid:
        if store.get_notification(nid) is None:
            return None, f"no notification {nid!r}"
        return nid, None
    conn = connect(store.path, facts_needed=False)
    try:
        if data.get("provider_id"):
            found = notification_for_provider(conn, data["provider_id"], channel)
            if found:
                return found, None
        return notification_for_address(conn, phone=data.get("phone"), email=data.get("email"), channel=channel), None
    finally:
        conn.close()


async def _read(request: Request, limit: int) -> bytes | None:
    """The body, or None when it is larger than `limit` bytes."""
    size = request.headers.get("content-length")
    if size and size.isdigit() and int(size) > limit:
        return None
    chunks, total = [], 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def report_filters(since: str | None, until: str | None, rules: tuple = (), channel: str | None = None,
                   role: str | None = None, stage: str | None = None, timezone_name: str = "UTC") -> Filters:
    """Filters from dates (YYYY-MM-DD: the day's start in the time zone; --until includes its day) or RFC 3339."""
    from .report.dates import period, tz_offset

    lo, hi = period(since, until, timezone_name)
    return Filters(since=lo, until=hi, rules=tuple(r for r in rules if r), channel=channel or None,
                   role=role or None, stage=stage or None, tz_offset=tz_offset(timezone_name))


# ------------------------------------------------------------------------------------------------ metrics

class ReportCollector:
    """A Prometheus collector of the per-rule figures (report_metrics), cached for `ttl` seconds per scrape.

    Gauges: herald_rule_notifications{rule, stage} (matched, sent, delivered, opened, clicked, replied, rated,
    late, fallbacks, failed), herald_rule_rate{rule, metric} (delivered, opened, clicked, replied; over sent),
    herald_rule_satisfaction{rule} (mean 1-5 rating).
    """

    STAGES = ("matched", "sent", "delivered", "opened", "clicked", "replied", "rated", "late", "fallbacks", "failed")

    def __init__(self, store: Callable[[], Any], ttl: float = 60.0):
        self._store = store
        self._ttl = ttl
        self._lock = threading.Lock()
        self._cached: tuple[float, dict] | None = None

    def data(self) -> dict:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] > self._ttl:
                self._cached = (time.monotonic(), report_metrics(self._store()))
            return self._cached[1]

    def describe(self):
        return self._families({"rules": {}})

    def collect(self):
        try:
            data = self.data()
        except Exception:  # noqa: BLE001 - a scrape must not fail on the report
            log.exception("report metrics")
            return []
        return self._families(data)

    def _families(self, data: dict) -> list:
        from prometheus_client.core import GaugeMetricFamily

        counts = GaugeMetricFamily("herald_rule_notifications", "Notifications per rule by funnel stage (from the "
                                   "report's facts).", labels=["rule", "stage"])
        rates = GaugeMetricFamily("herald_rule_rate", "Delivered, opened, clicked and replied rates per rule, over "
                                  "sent notifications.", labels=["rule", "metric"])
        sat = GaugeMetricFamily("herald_rule_satisfaction", "Mean candidate rating (1-5) per rule.", labels=["rule"])
        for rule, d in sorted(data.get("rules", {}).items()):
            for stage in self.STAGES:
                counts.add_metric([rule, stage], d[stage])
            for m in ("delivered", "opened", "clicked", "replied"):
                if d[f"{m}_rate"] is not None:
                    rates.add_metric([rule, m], d[f"{m}_rate"])
            if d["satisfaction"] is not None:
                sat.add_metric([rule], d["satisfaction"])
        return [counts, rates, sat]


__all__ = ["tracking_router", "report_metrics", "ReportCollector", "report_filters", "parse_rating", "TEXT"]
