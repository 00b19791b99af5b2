"""The console's pages: each reads and acts through engine.desk (the same queries and actions as the /v1 API and
the CLI) and renders one template of engine/console/templates. Outcome pages are here; the queue, candidates,
dead letters and replies in pages_queue.py; rules, preview and the report in pages_rules.py; the impact of a rule
change in pages_impact.py."""
from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engine import desk
from engine.console.web import Console, Refused, Visitor, one
from engine.desk.planning import find_rule, pinned

PAGE = 20  # rows per page of a listing


def act(visitor: Visitor, doing: Any) -> tuple[str | None, str | None]:
    """Runs one desk action: (notice, None) when done, (None, error) when the desk refused it (nothing changed)."""
    try:
        return doing(), None
    except (desk.ActionError, desk.DeskError) as e:
        return None, str(e)


def add_routes(router: APIRouter, console: Console) -> None:
    rt = console.runtime

    def today_page(request: Request, visitor: Visitor, notice: str | None = None, error: str | None = None,
                   status: int = 200) -> Response:
        start, end = desk.day_bounds(rt.now(), console.zone)
        counts = desk.day_counts(rt.store, start, end)
        upcoming = desk.queue(rt.store, states=desk.views.PENDING_STATES, limit=PAGE)
        failed = desk.queue(rt.store, states=("failed",), since=start - 6 * 86400, until=end, limit=PAGE)
        return console.page(request, visitor, "today.html.j2", status=status, notice=notice, error=error,
                            counts=counts, upcoming=upcoming.items, failed=failed.items, pauses=desk.pauses(rt.store),
                            channels=sorted(rt.state.deployment.config.channels),
                            version=rt.version, reload_error=list(rt.last_reload_error))

    @router.get("/today")
    def today(request: Request) -> Response:
        return today_page(request, console.signed_in(request))

    @router.post("/today")
    async def today_act(request: Request) -> Response:
        visitor = console.signed_in(request, "admin")
        fields = await console.form(request, visitor)
        channel = one(fields, "channel") or None
        reason = one(fields, "reason") or None
        who = visitor.actor
        known = list(rt.state.deployment.config.channels)
        pausing = one(fields, "do") == "pause"

        def work() -> Response:
            if pausing:
                notice, error = act(visitor, lambda: (desk.pause(rt.store, rt.now(), channel, who, reason, known),
                                                      visitor.t("paused"))[-1])
            else:
                notice, error = act(visitor, lambda: (desk.resume(rt.store, rt.now(), channel, who, reason),
                                                      rt.wake(), visitor.t("running"))[-1])
            return today_page(request, visitor, notice, error, 200 if error is None else 409)

        return await run_in_threadpool(work)

    def approvals_page(request: Request, visitor: Visitor, notice: str | None = None,
                       errors: list[str] | None = None, status: int = 200) -> Response:
        listing = desk.held(rt.store, request.query_params.get("after") or None, PAGE)
        now = rt.now()
        items = [(row, desk.would_send(rt.store, rt.pipeline, row.id, now)) for row in listing.items]
        return console.page(request, visitor, "approvals.html.j2", status=status, notice=notice,
                            errors=errors or [], items=items, next=listing.next)

    @router.get("/approvals")
    def approvals(request: Request) -> Response:
        return approvals_page(request, console.signed_in(request))

    @router.post("/approvals")
    async def approvals_act(request: Request) -> Response:
        visitor, fields = await console.posted(request, "approver")
        doing, ids = _chosen(fields)
        reason = one(fields, "reason") or None
        who = visitor.actor

        def work() -> Response:
            done, errors = [], []
            for oid in ids:
                action = rt.approve if doing == "approve" else rt.withdraw
                _, error = act(visitor, lambda oid=oid, action=action: action(oid, reason, who))
                if error:
                    errors.append(error)
                else:
                    done.append(oid)
            notice = f"{visitor.t(doing)}: {', '.join(done)}" if done else None
            return approvals_page(request, visitor, notice, errors, 200 if not errors else 409)

        return await run_in_threadpool(work)

    def unmatched_page(request: Request, visitor: Visitor, notice: str | None = None, error: str | None = None,
                       status: int = 200) -> Response:
        listing = desk.unmatched(rt.store, request.query_params.get("after") or None, PAGE)
        rules = [r.id for r in rt.state.deployment.ruleset.rules]
        preview_id, rule_id = request.query_params.get("outcome"), request.query_params.get("rule")
        plan = None
        if preview_id and rule_id:
            row, rule = rt.store.get_outcome(preview_id), find_rule(rt.pipeline, rule_id)
            if row is None or rule is None:
                raise Refused(404, "not_found")
            plan = pinned(rt.pipeline, rule).plan(row.data())
        return console.page(request, visitor, "unmatched.html.j2", status=status, notice=notice, error=error,
                            items=listing.items, next=listing.next, rules=rules, plan=plan,
                            preview_id=preview_id, rule_id=rule_id)

    @router.get("/unmatched")
    def unmatched(request: Request) -> Response:
        return unmatched_page(request, console.signed_in(request))

    @router.post("/unmatched")
    async def unmatched_act(request: Request) -> Response:
        visitor, fields = await console.posted(request, "approver")
        oid, rule_id = one(fields, "outcome"), one(fields, "rule")
        who = visitor.actor

        def route() -> str:
            result = desk.route_by_hand(rt.store, rt.pipeline, oid, rule_id, rt.now(), by=who,
                                        reason=one(fields, "reason") or None)
            rt.wake()
            return f"{visitor.t('route')}: {oid} → {rule_id} ({result.notification})"

        def work() -> Response:
            notice, error = act(visitor, route)
            return unmatched_page(request, visitor, notice, error, 200 if error is None else 409)

        return await run_in_threadpool(work)

    from engine.console import pages_impact, pages_queue, pages_rules

    pages_queue.add_routes(router, console)
    pages_rules.add_routes(router, console)
    pages_impact.add_routes(router, console)


def _chosen(fields: dict[str, list[str]]) -> tuple[str, list[str]]:
    """(approve | withdraw, the outcome ids): one row's own button, else the ticked rows with a bulk button."""
    for doing in ("approve", "withdraw"):
        own = one(fields, f"{doing}_one")
        if own:
            return doing, [own]
    doing = "approve" if one(fields, "do") == "approve" else "withdraw"
    return doing, list(dict.fromkeys(v for v in fields.get("id", []) if v))[:200]
