"""The daemon's tracking endpoints (a FastAPI APIRouter): open pixel, click redirect, rating and unsubscribe pages,
inbound replies, the read-only report, and the per-rule figures for /metrics.

    app.include_router(tracking_router(store, secret, clock, authorize=authorize))
    registry.register(ReportCollector(lambda: store))

Routes (tokens: engine/tracking/tokens.py):
    GET  /t/o/{token}.gif   1x1 GIF, always (a bad token gets the GIF too, and records nothing); 'opened' once
    GET  /t/c/{token}       302 to the URL inside the token, 'clicked' once; a bad token: 404, an expired one: 410,
                            never a redirect (tokens are only made for links written in the template source)
    GET  /t/r/{token}       the rating page (zh-CN or English by the notification's locale), no JS needed
    POST /t/r/{token}       form: score 1..5, comment up to 1000 characters -> 'rated' {score, comment}, once per
                            notification: a second rating is refused (the first one stands)
    GET  /t/u/{token}       asks to confirm; POST (also RFC 8058 one-click) records 'unsubscribed' once and suppresses
                            the channel + the candidate's address on it (a link scanner's GET records nothing)
    POST /v1/replies        JSON {notification_id | provider_id | phone | email, channel, content, at?}: a candidate's
                            reply from any inbound integration (SMS SmsUp, e-mail, DingTalk); behind `authorize`
    GET  /report            the HTML report (same as `herald report --format html`), read-only; behind `authorize`
                            unless report_auth=False

A forged, altered, expired or replayed token records nothing. Event times come from the daemon's clock.
"""
from __future__ import annotations

import inspect
import json
import math
import logging
import threading
import time
from datetime import datetime
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import parse_qs

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from engine.model import CHANNEL_ADDRESS
from engine.report import build_report, report_metrics
from engine.routing.router import lookup
from engine.report.dates import report_filters
from engine.report.html import render_html
from engine.report.queries import notification_for_address, notification_for_provider, open_reader
from engine.tracking.tokens import CLICK, OPEN, PIXEL_GIF, PLACEHOLDER_SECRET, RATE, UNSUBSCRIBE, decode_token, verify_token
from engine.tracking.pages import (MAX_COMMENT, NO_STORE, invalid_page, message_page, parse_rating, rating_form,
                             texts_for, unsubscribe_form)

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

    from engine.store import NotificationDetail
    from engine.tracking.tokens import TokenPayload

log = logging.getLogger("herald.tracking")

MAX_FORM = 16 * 1024
MAX_REPLY_BODY = 64 * 1024
MAX_REPLY_CONTENT = 10000


# -------------------------------------------------------------------------------------------------- router

def _now_fn(clock: Any) -> Callable[[], float]:
    if clock is None:
        return time.time
    if hasattr(clock, "now"):
        return clock.now
    if callable(clock):
        return clock
    raise TypeError("clock: an engine.schedule.clock.Clock, a callable returning epoch seconds, or None")


MIN_AT, MAX_AT = 0.0, 253402214400.0  # 1970-01-01 .. 9999-12-31: what the store, reports and replies can show


def _parse_at(value: Any) -> float | None:
    """Epoch seconds from a number or an RFC 3339 time with an offset; None when not one, or out of range."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        at = float(value)
    elif isinstance(value, str) and value.strip():
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            if dt.tzinfo is None:
                return None
            at = dt.timestamp()
        except (ValueError, OverflowError):
            return None
    else:
        return None
    return at if math.isfinite(at) and MIN_AT <= at <= MAX_AT else None


def _problem(code: int, error: str, field: str | None = None) -> JSONResponse:
    return JSONResponse({"error": error, "field": field, "dead_letter": None}, status_code=code)


def tracking_router(store: Any, secret: str | bytes | None, clock: Any = None, *,
                    authorize: Callable[..., Any] | None = None, max_age: Mapping[str, float] | None = None,
                    report_auth: bool = True, report_timezone: str = "UTC") -> APIRouter:
    """The tracking routes over `store` (an engine.store.Store), signing key `secret`, time from `clock`.

    authorize(request, body) guards POST /v1/replies (and GET /report when report_auth): it raises (e.g. the
    daemon's HTTPProblem(401)) when the request may not pass; it may be sync or async. None: open (loopback).
    secret None (no tracking.secret, no links sent): every token is refused; replies and the report still work.
    """
    router = APIRouter()
    now = _now_fn(clock)
    if secret == PLACEHOLDER_SECRET:
        raise ValueError("the dry-run placeholder secret cannot sign a daemon's links: set tracking.secret")

    def decode(token: str, kind: str) -> TokenPayload | None:  # authentic (expired or not), or None
        return decode_token(secret, token, kind) if secret else None

    def verify(token: str, kind: str) -> TokenPayload | None:  # authentic and unexpired, or None
        return verify_token(secret, token, kind, now=now(), max_age=max_age) if secret else None

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
        except Exception:  # a candidate's click or open must never fail on the store
            log.exception("cannot record %s for %s", kind, nid)
            return None

    def notification(nid: str) -> NotificationDetail | None:
        try:
            return store.get_notification(nid)
        except Exception:
            log.exception("cannot read notification %s", nid)
            return None

    @router.get("/t/o/{token}.gif", include_in_schema=False)
    def open_pixel(token: str) -> Response:
        p = verify(token, OPEN)
        if p is not None:
            record(p.notification_id, "opened", p.channel, None, f"opened:{p.notification_id}")
        return Response(PIXEL_GIF, media_type="image/gif", headers=NO_STORE)

    @router.get("/t/c/{token}", include_in_schema=False)
    def click(token: str) -> Response:
        p = decode(token, CLICK)
        if p is None or p.url is None:
            return invalid_page()
        if verify(token, CLICK) is None:  # expired: no redirect (an old link must not stay an open redirector)
            detail = notification(p.notification_id)
            return message_page(texts_for(detail.notification.locale if detail else None), "expired",
                                "expired_body", 410)
        record(p.notification_id, "clicked", p.channel, {"url": p.url}, f"clicked:{p.notification_id}")
        return RedirectResponse(p.url, status_code=302, headers=NO_STORE)

    def _link_state(token: str, kind: str, done_event: str | None = None) -> tuple[Any, Any, Response | None]:
        """(payload, texts, None) for a link that leads on, or (..., the page that ends it here): not valid,
        expired, or already done (an event `done_event` recorded for its notification)."""
        p = decode(token, kind)
        detail = notification(p.notification_id) if p is not None else None
        if detail is None:
            return None, None, invalid_page()
        t = texts_for(detail.notification.locale)
        if verify(token, kind) is None:
            return p, t, message_page(t, "expired", "expired_body", 410)
        if done_event is not None and any(e.kind == done_event for e in detail.events):
            return p, t, message_page(t, "already", "already_body")
        return p, t, None

    @router.get("/t/r/{token}", include_in_schema=False)
    def rating_page(token: str) -> Response:
        _p, t, done = _link_state(token, RATE, "rated")
        return done if done is not None else rating_form(t)

    @router.post("/t/r/{token}", include_in_schema=False)
    async def rate(token: str, request: Request) -> Response:
        body = await _read(request, MAX_FORM)
        p, t, done = await run_in_threadpool(_link_state, token, RATE, "rated")
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
            return message_page(t, "title", "busy", 503)
        if not ok:
            return message_page(t, "already", "already_body", 409)
        return message_page(t, "thanks", "thanks_body")

    @router.get("/t/u/{token}", include_in_schema=False)
    def unsubscribe_page(token: str) -> Response:
        _p, t, done = _link_state(token, UNSUBSCRIBE)
        return done if done is not None else unsubscribe_form(t)

    @router.post("/t/u/{token}", include_in_schema=False)
    def unsubscribe(token: str) -> Response:
        """Also RFC 8058's one-click POST (List-Unsubscribe=One-Click): the channel + address is suppressed."""
        p, t, done = _link_state(token, UNSUBSCRIBE)
        if done is not None:
            return done
        if record(p.notification_id, "unsubscribed", p.channel, None, f"unsubscribed:{p.notification_id}") is None:
            return message_page(t, "title", "busy", 503)
        if not _suppress(p.notification_id, p.channel):
            return message_page(t, "title", "busy", 503)
        return message_page(t, "unsub_done", "unsub_done_body")

    def _suppress(nid: str, channel: str | None) -> bool:
        """Suppresses the channel the token names (else the one the notification went out on last) for the
        candidate's address on it; True when done or when there is no candidate address to suppress."""
        try:
            detail = store.get_notification(nid)
            if detail is None:
                return True
            ch = channel or detail.notification.channel
            row = store.get_outcome(detail.notification.outcome_id)
            need = CHANNEL_ADDRESS.get(ch)
            to = lookup(row.data(), need) if row is not None and need else None
            if to:
                store.suppress(ch, str(to), reason="unsubscribed", actor="candidate", notification_id=nid, at=now())
            return True
        except Exception:  # answered 503: the candidate may try again
            log.exception("cannot suppress for %s", nid)
            return False

    _errors: dict[int | str, dict[str, Any]] = {c: {"description": d} for c, d in (
        (401, "No valid bearer token or body signature."), (404, "No such notification."),
        (413, "Body too large."), (422, "Not JSON, or a field is missing or wrong (it is named)."),
        (503, "The store is busy: retry later."))}

    reply_links = {"HandleReply": {"operationId": "handle_reply", "parameters": {"reply_id": "$response.body#/reply_id"}},
                   "GetNotification": {"operationId": "get_notification",
                                       "parameters": {"notification_id": "$response.body#/notification_id"}}}

    @router.post("/v1/replies", status_code=201, tags=["tracking"], operation_id="post_reply",
                 responses={201: {"description": "The reply is kept.", "links": reply_links}, **_errors})
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
            given = _parse_at(data["at"])
            if given is None:
                return _problem(422, "at: an RFC 3339 time with an offset, or epoch seconds, between 1970 and 9999",
                                "at")
            at = given
        if not any(data.get(k) for k in ("notification_id", "provider_id", "phone", "email")):
            return _problem(422, "name the message answered: notification_id, provider_id, phone or email",
                            "notification_id")
        try:
            rid, nid = await run_in_threadpool(
                lambda: record_reply(store, content, at, channel=data.get("channel") or None,
                                     notification_id=data.get("notification_id"),
                                     provider_id=data.get("provider_id"), phone=data.get("phone"),
                                     email=data.get("email")))
        except LookupError as e:
            return _problem(404, str(e), "notification_id")
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
            field = str(e).partition(":")[0]
            return _problem(422, str(e), field if field in ("since", "until") else None)
        rep = await run_in_threadpool(build_report, store, flt, timezone_name=report_timezone)
        return HTMLResponse(render_html(rep), headers={"Cache-Control": "no-store"})

    return router


def record_reply(store: Any, content: str, at: float, *, channel: str | None = None,
                 notification_id: str | None = None, provider_id: str | None = None, phone: str | None = None,
                 email: str | None = None) -> tuple[int, str | None]:
    """Keeps a candidate's reply, attributed to the notification it answers; returns (reply id, notification id).

    The notification: `notification_id` (which must exist: LookupError otherwise), else the one a provider message
    id belongs to, else the one most recently sent to the phone number or e-mail address; a reply matching none is
    kept unattributed (notification None) for HR to place. For inbound integrations in the daemon too, e.g. the
    Aliyun SmsUp push: for r in parse_sms_up(body): record_reply(store, r["content"], at, channel="sms",
    phone=r["phone"]).
    """
    nid = notification_id
    if nid:
        if store.get_notification(nid) is None:
            raise LookupError(f"no notification {nid!r}")
    elif provider_id or phone or email:
        with open_reader(store, facts_needed=False) as db:
            nid = notification_for_provider(db, provider_id, channel) if provider_id else None
            if nid is None and (phone or email):
                nid = notification_for_address(db, phone=phone, email=email, channel=channel)
    return store.add_reply(nid, content, at, channel), nid


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

    def describe(self) -> Iterable[Metric]:
        return self._families({"rules": {}})

    def collect(self) -> Iterable[Metric]:
        try:
            data = self.data()
        except Exception:  # a scrape must not fail on the report
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


__all__ = ["ReportCollector", "record_reply", "report_filters", "report_metrics", "tracking_router"]
