"""Console pages for people and messages: Candidates (search, a candidate's whole history, and cancel /
reschedule / send now on its queued notifications), Dead letters (the error, the raw body, edit and resubmit
through the intake gate) and Replies (the inbox, mark handled). All reads and actions go through engine.desk."""
from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engine import desk
from engine.console.pages import PAGE, act
from engine.console.web import Console, Refused, Visitor, one


def add_routes(router: APIRouter, console: Console) -> None:
    rt = console.runtime

    @router.get("/candidates")
    def candidates(request: Request) -> Response:
        visitor = console.signed_in(request)
        query = (request.query_params.get("q") or "").strip()
        found: tuple[desk.Candidate, ...] = ()
        error, next_cursor = None, None
        if query:
            try:
                listing = desk.candidates(rt.store, query, request.query_params.get("after") or None, PAGE)
                found, next_cursor = listing.items, listing.next
            except desk.DeskError as e:
                error = str(e)
        return console.page(request, visitor, "candidates.html.j2", status=200 if error is None else 422,
                            query=query, found=found, next=next_cursor, error=error)

    def history_page(request: Request, visitor: Visitor, outcome_id: str, notice: str | None = None,
                     error: str | None = None, status: int = 200) -> Response:
        history = desk.history(rt.store, outcome_id)
        if history is None:
            raise Refused(404, "not_found")
        return console.page(request, visitor, "history.html.j2", status=status, notice=notice, error=error,
                            h=history, outcome=history.outcome.data())

    @router.get("/candidates/{outcome_id:path}")
    def candidate(outcome_id: str, request: Request) -> Response:
        return history_page(request, console.signed_in(request), outcome_id)

    @router.post("/candidates/{outcome_id:path}")
    async def candidate_act(outcome_id: str, request: Request) -> Response:
        visitor, fields = await console.posted(request, "approver")
        doing, nid, reason = one(fields, "do"), one(fields, "notification"), one(fields, "reason") or None

        def run() -> str:
            now = rt.now()
            if doing == "cancel":
                desk.cancel(rt.store, nid, now, visitor.actor, reason)
            elif doing == "send_now":
                result = desk.send_now(rt.store, nid, now, visitor.actor, reason, pipeline=rt.pipeline,
                                       override_window=one(fields, "override_window") == "1")
                rt.wake()
                if result.window_closed_until:
                    key = "window_overridden" if result.override_window else "window_closed"
                    until = console.when(datetime.fromisoformat(result.window_closed_until).timestamp())
                    return f"{visitor.t(doing)}: {nid}: {visitor.t(key, until=until)}"
            elif doing == "reschedule":
                desk.reschedule(rt.store, nid, _local_time(one(fields, "at"), console), now, visitor.actor, reason)
                rt.wake()
            elif doing in ("approve", "withdraw"):
                (rt.approve if doing == "approve" else rt.withdraw)(outcome_id, reason, visitor.actor)
            else:
                raise desk.DeskError("do", "do: unknown action")
            return f"{visitor.t(doing)}: {nid or outcome_id}"

        def work() -> Response:
            notice, error = act(visitor, run)
            return history_page(request, visitor, outcome_id, notice, error, 200 if error is None else 409)

        return await run_in_threadpool(work)

    def dead_page(request: Request, visitor: Visitor) -> Response:
        listing = desk.dead_letters(rt.store, request.query_params.get("after") or None, PAGE)
        return console.page(request, visitor, "dead_letters.html.j2", items=listing.items, next=listing.next)

    @router.get("/dead-letters")
    def dead_letters(request: Request) -> Response:
        return dead_page(request, console.signed_in(request))

    def dead_letter_page(request: Request, visitor: Visitor, dead_id: int, body: str | None = None,
                         notice: str | None = None, error: str | None = None, status: int = 200) -> Response:
        dead = rt.store.get_dead_letter(dead_id)
        if dead is None:
            raise Refused(404, "not_found")
        return console.page(request, visitor, "dead_letter.html.j2", status=status, notice=notice, error=error,
                            d=dead, body=dead.text if body is None else body)

    @router.get("/dead-letters/{dead_id}")
    def dead_letter(dead_id: int, request: Request) -> Response:
        return dead_letter_page(request, console.signed_in(request), dead_id)

    @router.post("/dead-letters/{dead_id}")
    async def resubmit(dead_id: int, request: Request) -> Response:
        visitor, fields = await console.posted(request, "approver")
        body = (fields.get("body") or [""])[0]

        def run() -> str:
            status = desk.resubmit(rt.store, dead_id, body.encode("utf-8"), rt.now(), rt.intake, visitor.actor,
                                   one(fields, "reason") or None)
            return f"{visitor.t('resubmit')}: {status.id} ({status.status})"

        def work() -> Response:
            notice, error = act(visitor, run)
            return dead_letter_page(request, visitor, dead_id, body, notice, error, 200 if error is None else 422)

        return await run_in_threadpool(work)

    def replies_page(request: Request, visitor: Visitor, notice: str | None = None,
                     error: str | None = None, status: int = 200) -> Response:
        everything = request.query_params.get("all") == "1"
        listing = desk.replies(rt.store, not everything, request.query_params.get("after") or None, PAGE)
        return console.page(request, visitor, "replies.html.j2", status=status, notice=notice, error=error,
                            items=listing.items, next=listing.next, everything=everything)

    @router.get("/replies")
    def replies(request: Request) -> Response:
        return replies_page(request, console.signed_in(request))

    @router.post("/replies")
    async def replies_act(request: Request) -> Response:
        visitor, fields = await console.posted(request, "approver")
        reply = one(fields, "reply")

        def run() -> str:
            if not reply.isdigit():
                raise desk.DeskError("reply", "reply: not a reply id")
            desk.handle_reply(rt.store, int(reply), rt.now(), visitor.actor)
            return f"{visitor.t('handled')}: {reply}"

        def work() -> Response:
            notice, error = act(visitor, run)
            return replies_page(request, visitor, notice, error, 200 if error is None else 409)

        return await run_in_threadpool(work)


def _local_time(text: str, console: Console) -> float:
    """A time from a datetime-local field (`YYYY-MM-DDTHH:MM`, in the console's zone) as epoch seconds."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise desk.DeskError("at", "at: give a date and time (YYYY-MM-DD HH:MM)") from None
    return (at if at.tzinfo else at.replace(tzinfo=console.zone)).timestamp()
