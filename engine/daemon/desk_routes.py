"""The desk's HTTP API under /v1 (the CLI's `herald held`, `queue`, `history`... and any script use it): listings
with filters and cursors, and the actions, each authorized like the rest of /v1 (bearer token or signed body)
and recorded in the audit log with the actor (X-Herald-Actor with a shared token, else how the caller came in).
The work is engine.desk's; this module parses, authorizes and answers."""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Path, Query, Request
from fastapi.concurrency import run_in_threadpool

from engine import desk
from engine.daemon import desk_models as docs
from engine.daemon.models import ActionOut, ItemResult, Problem
from engine.daemon.who import BadAction, reason_of
from engine.desk.paging import DEFAULT_LIMIT, MAX_LIMIT
from engine.schedule.timing import load_timezone
from engine.store import NOTIFICATION_STATES

_WORDS = {401: "No valid bearer token or body signature.", 404: "No such outcome, notification, reply, dead "
          "letter or channel.", 409: "Not in a state that allows this (the answer says which state).",
          422: "A bad parameter (cursor, limit, time, query) or, on resubmit, a body the gate still refuses: the "
          "field is named.", 503: "The store is busy or unavailable: retry later."}


def _problems(*codes: int) -> dict:
    return {c: {"model": Problem, "description": _WORDS[c]} for c in codes}


LIST = _problems(401, 422, 503)
ACT = _problems(401, 404, 409, 422, 503)
Cursor = Query(None, max_length=512, description="The `next` of the previous page; omit for the first page.")
STATES = f"One of {', '.join(NOTIFICATION_STATES)}; repeatable."
MAX_ID = 2**63 - 1  # ids are 64-bit integers
Limit = Query(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="Rows per page.")


def _instant(value: str | None, field: str) -> float | None:
    """An RFC 3339 time with its offset as epoch seconds; BadAction (422) otherwise."""
    if value is None or value == "":
        return None
    try:
        t = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise BadAction(field, f"{field}: not an RFC 3339 time (e.g. 2026-11-24T15:00:00+08:00)") from None
    if t.tzinfo is None or t.utcoffset() is None:
        raise BadAction(field, f"{field}: give the time zone offset (e.g. +08:00 or Z)")
    try:
        return t.timestamp()
    except (OverflowError, OSError, ValueError):
        raise BadAction(field, f"{field}: out of range") from None


def desk_router(runtime: Any, authorize: Callable[..., None], actor: Callable[[Request], str],
                read_body: Callable[[Request], Awaitable[bytes]]) -> APIRouter:
    """The desk's /v1 routes over one Runtime; `authorize`, `actor` and `read_body` are the app's."""
    r = APIRouter(prefix="/v1")

    async def act(request: Request, reason: str | None) -> tuple[bytes, str | None, str]:
        body = await read_body(request)
        authorize(request, body)  # a signature covers whatever body was sent
        return body, reason_of(reason, body), actor(request)

    def paused() -> list[str]:
        return [p.channel for p in runtime.store.pauses()]

    # -- listings

    @r.get("/held", response_model=docs.OutcomePage, tags=["desk"], operation_id="list_held", responses=LIST)
    def list_held(request: Request, cursor: str | None = Cursor, limit: int = Limit) -> Any:
        """Outcomes waiting for approval, oldest first. See what each would get with /v1/outcomes/{id}/preview."""
        authorize(request)
        p = desk.held(runtime.store, cursor, limit)
        return {"items": [docs.summary(o) for o in p.items], "next": p.next}

    @r.get("/unmatched", response_model=docs.OutcomePage, tags=["desk"], operation_id="list_unmatched",
           responses=LIST)
    def list_unmatched(request: Request, cursor: str | None = Cursor, limit: int = Limit) -> Any:
        """Outcomes no rule matched and no person routed yet, oldest first; route one with .../route."""
        authorize(request)
        p = desk.unmatched(runtime.store, cursor, limit)
        return {"items": [docs.summary(o) for o in p.items], "next": p.next}

    @r.get("/dead-letters", response_model=docs.DeadLetterPage, tags=["desk"], operation_id="list_dead_letters",
           responses=LIST)
    def list_dead_letters(request: Request, cursor: str | None = Cursor, limit: int = Limit,
                          resolved: bool = Query(False, description="Also those resubmitted and taken.")) -> Any:
        """Refused inputs (invalid outcomes), newest first, with the error, the field and the raw body."""
        authorize(request)
        p = desk.dead_letters(runtime.store, cursor, limit, resolved)
        return {"items": [docs.dead_letter(d) for d in p.items], "next": p.next}

    @r.get("/queue", response_model=docs.QueuePage, tags=["desk"], operation_id="list_queue", responses=LIST)
    def list_queue(request: Request, cursor: str | None = Cursor, limit: int = Limit,
                   state: list[str] = Query([], description=STATES),
                   since: str | None = Query(None, description="RFC 3339; due at or after."),
                   until: str | None = Query(None, description="RFC 3339; due before."),
                   today: bool = Query(False, description="Today (in `timezone`), instead of since/until."),
                   timezone: str | None = Query(None, max_length=64,
                                                description="IANA zone of `today` (default: tracking.timezone)."),
                   channel: str | None = Query(None, max_length=100)) -> Any:
        """Notifications in the order they go (or went) out: a pending one by its next attempt, others by their
        planned send time. `paused` lists the channels paused now."""
        authorize(request)
        bad = [s for s in state if s not in NOTIFICATION_STATES]
        if bad:
            raise BadAction("state", f"state: {bad[0]!r} is not one of {', '.join(NOTIFICATION_STATES)}")
        lo, hi = _instant(since, "since"), _instant(until, "until")
        if today:
            name = timezone or runtime.state.deployment.config.tracking.timezone
            zone = load_timezone(name) if name else ZoneInfo("UTC")
            if zone is None:
                raise BadAction("timezone", f"timezone: unknown zone {name!r}")
            lo, hi = desk.day_bounds(runtime.now(), zone)
        p = desk.queue(runtime.store, states=state, since=lo, until=hi, channel=channel, cursor=cursor, limit=limit)
        return {"items": [docs.queue_item(n) for n in p.items], "next": p.next, "paused": paused()}

    @r.get("/candidates", response_model=docs.CandidatePage, tags=["desk"], operation_id="find_candidates",
           responses=LIST)
    def find_candidates(request: Request, q: str = Query(..., min_length=1, max_length=200,
                                                         description="Outcome id, part of a name, e-mail or phone."),
                        cursor: str | None = Cursor, limit: int = Limit) -> Any:
        """Outcomes of the candidate a query names, newest first; the full story is at .../history."""
        authorize(request)
        p = desk.candidates(runtime.store, q, cursor, limit)
        return {"items": [docs.candidate(c) for c in p.items], "next": p.next}

    @r.get("/history/{outcome_id:path}", response_model=docs.HistoryOut, tags=["desk"], operation_id="history",
           responses=_problems(401, 404, 503))
    def history(outcome_id: str, request: Request) -> Any:
        """An outcome's whole history: revisions and changes, notifications with attempts and events, replies,
        ratings, and the audit entries (who did what, when, why)."""
        authorize(request)
        h = desk.history(runtime.store, outcome_id)
        if h is None:
            raise desk.ActionError(404, f"no outcome {outcome_id!r}")
        return docs.history(h)

    @r.get("/inbox", response_model=docs.ReplyPage, tags=["desk"], operation_id="list_replies", responses=LIST)
    def list_replies(request: Request, cursor: str | None = Cursor, limit: int = Limit,
                     all: bool = Query(False, description="Also replies already handled.")) -> Any:
        """Candidates' replies (the inbox), oldest first; only those not handled yet unless `all`. (They come in
        through POST /v1/replies.)"""
        authorize(request)
        p = desk.replies(runtime.store, not all, cursor, limit)
        return {"items": [docs.reply(x) for x in p.items], "next": p.next}

    @r.get("/audit", response_model=docs.AuditPage, tags=["desk"], operation_id="list_audit", responses=LIST)
    def list_audit(request: Request, cursor: str | None = Cursor, limit: int = Limit,
                   action: str | None = Query(None, max_length=50)) -> Any:
        """The audit log, newest first (of one action kind when given)."""
        authorize(request)
        p = desk.audit(runtime.store, cursor, limit, action)
        return {"items": [docs.audit(a) for a in p.items], "next": p.next}

    @r.get("/pauses", response_model=docs.PausesOut, tags=["desk"], operation_id="list_pauses",
           responses=_problems(401, 503))
    def list_pauses(request: Request) -> Any:
        """The sending pauses in force."""
        authorize(request)
        return {"paused": [docs.pause(p) for p in runtime.store.pauses()]}

    @r.get("/outcomes/{outcome_id:path}/preview", response_model=docs.PreviewOut, tags=["desk"],
           operation_id="preview", responses=_problems(401, 404, 503))
    def preview(outcome_id: str, request: Request) -> Any:
        """What the outcome would get if approved now: rule, channels, send time, each channel's message."""
        authorize(request)
        plan = desk.would_send(runtime.store, runtime.pipeline, outcome_id, runtime.now())
        if plan is None:
            raise desk.ActionError(404, f"no outcome {outcome_id!r}")
        return docs.preview(plan)

    # -- actions

    @r.post("/outcomes/{outcome_id:path}/route", response_model=ActionOut, tags=["desk"], operation_id="route",
            responses=ACT)
    async def route(outcome_id: str, request: Request, rule: str = Query(..., min_length=1, max_length=200),
                    reason: str | None = None) -> Any:
        """Routes an outcome by hand with `rule` (its template, channels and timing) and queues it."""
        _body, why, who = await act(request, reason)
        res = await run_in_threadpool(desk.route_by_hand, runtime.store, runtime.pipeline, outcome_id, rule,
                                      runtime.now(), who, why)
        runtime.wake()
        return res.as_dict()

    def queue_action(name: str, fn: Callable[..., desk.QueueResult], doc: str, wake: bool = False) -> None:
        async def endpoint(notification_id: str, request: Request, reason: str | None = None,
                           at: str | None = Query(None, description="reschedule: RFC 3339 time"),
                           override_window: bool = Query(False, description="send-now: send even inside a "
                                                         "closed send window (recorded)")) -> Any:
            _body, why, who = await act(request, reason)
            extra: tuple = ()
            kw: dict[str, Any] = {}
            if name == "reschedule":
                when = _instant(at, "at")
                if when is None:
                    raise BadAction("at", "at: required (RFC 3339, e.g. 2026-11-24T15:00:00+08:00)")
                extra = (when,)
            elif name == "send_now":
                kw = {"pipeline": runtime.pipeline, "override_window": override_window}
            res = await run_in_threadpool(lambda: fn(runtime.store, notification_id, *extra, runtime.now(), who, why,
                                                     **kw))
            if wake:
                runtime.wake()
            return res.as_dict()

        endpoint.__doc__ = doc
        r.add_api_route(f"/notifications/{{notification_id:path}}/{name.replace('_', '-')}", endpoint,
                        methods=["POST"], response_model=docs.QueueResultOut, tags=["desk"],
                        operation_id=name, responses=ACT)

    queue_action("cancel", desk.cancel, "Cancels a scheduled notification: it is never sent (409 once claimed, "
                 "sent or ended). The reason and actor go to the audit log.")
    queue_action("reschedule", desk.reschedule, "Moves a scheduled notification's next attempt to `at` (at most a "
                 "year ahead; a past time means now). The rule's send window still applies.", wake=True)
    queue_action("send_now", desk.send_now, "Makes a scheduled notification due now (unless its channel is paused). "
                 "When its rule's send window is closed now (the candidate's hours, holidays), it goes at the "
                 "window's opening instead and `window_closed_until` says when, unless `override_window` is set: "
                 "then it goes now, and the override is in the audit log.", wake=True)

    @r.post("/pause", response_model=docs.PausesOut, tags=["desk"], operation_id="pause", responses=ACT)
    async def pause(request: Request, channel: str | None = Query(None, max_length=100),
                    reason: str | None = None) -> Any:
        """Pauses sending on `channel` (omitted: every channel), on every replica. Intake, planning and approvals
        go on; what falls due waits. Pausing again keeps the first pause."""
        _body, why, who = await act(request, reason)
        rows = await run_in_threadpool(desk.pause, runtime.store, runtime.now(), channel, who, why,
                                       list(runtime.state.deployment.config.channels))
        return {"paused": [docs.pause(p) for p in rows]}

    @r.post("/resume", response_model=docs.PausesOut, tags=["desk"], operation_id="resume", responses=ACT)
    async def resume(request: Request, channel: str | None = Query(None, max_length=100),
                     reason: str | None = None) -> Any:
        """Lifts the pause of `channel` (omitted: the pause of every channel; a channel's own pause stays)."""
        _body, why, who = await act(request, reason)
        rows = await run_in_threadpool(desk.resume, runtime.store, runtime.now(), channel, who, why)
        runtime.wake()
        return {"paused": [docs.pause(p) for p in rows]}

    @r.post("/replies/{reply_id}/handle", response_model=docs.ReplyOut, tags=["desk"], operation_id="handle_reply",
            responses=ACT)
    async def handle_reply(request: Request, reply_id: int = Path(..., ge=1, le=MAX_ID), reason: str | None = None) -> Any:
        """Marks a reply handled (its time to answer ends now)."""
        _body, why, who = await act(request, reason)
        return docs.reply(await run_in_threadpool(desk.handle_reply, runtime.store, reply_id, runtime.now(), who,
                                                  why))

    @r.post("/dead-letters/{dead_letter_id}/resubmit", response_model=ItemResult, tags=["desk"],
            operation_id="resubmit", responses=ACT, openapi_extra={"requestBody": {
                "required": True, "description": "The corrected outcome (one JSON object).",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Outcome"}}}}})
    async def resubmit(request: Request, dead_letter_id: int = Path(..., ge=1, le=MAX_ID), reason: str | None = None) -> Any:
        """Takes a corrected body for a dead letter through the same gate as intake. 422 with the field when it
        is still refused (no new dead letter); else what became of it, and the dead letter is marked resolved."""
        body, _why, who = await act(request, None)  # the body is the outcome: the reason comes from the query
        why = reason_of(reason, b"")
        status = await run_in_threadpool(desk.resubmit, runtime.store, dead_letter_id, body, runtime.now(),
                                         lambda items, source: runtime.intake(items, source), who, why)
        return status.as_dict()

    return r
