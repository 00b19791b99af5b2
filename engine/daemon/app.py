"""The HTTP API (FastAPI): intake, approve, withdraw, notification and outcome lookups, health, metrics, pushes."""
from __future__ import annotations

import logging
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import __version__
from engine.daemon.auth import MAX_SKEW, TIMESTAMP_HEADER, request_target
from engine.daemon.bodygate import BodyGate
from engine.daemon.health import store_health
from engine.daemon.query import REFUSE_REPEATS, as_sent
from engine.intake.decode import split_body
from engine.store import StoreUnavailable
from engine.desk.actions import ActionError
from engine.desk.paging import DeskError
from engine.daemon.who import BadAction, actor_of, reason_of
from engine.daemon.models import (MAX_BODY, MAX_ITEMS, ActionOut, Health, IntakeResponse, NotificationOut, OutcomeOut, Problem,
                     iso, notification_doc, outcome_doc, outcome_request_schema)

if TYPE_CHECKING:
    from engine.daemon.runtime import Runtime

log = logging.getLogger("herald.http")


class HTTPProblem(Exception):
    """An error answer: status code, message, and optionally the field and dead letter."""

    def __init__(self, code: int, error: str, field: str | None = None, dead_letter: int | None = None,
                 headers: dict | None = None):
        super().__init__(error)
        self.code, self.error, self.field, self.dead_letter, self.headers = code, error, field, dead_letter, headers



def watcher_status(runtime: Any) -> tuple[str, bool]:
    """("ok" | "dead" | "off", whether a given-up reload still runs): hot reload's health."""
    reloader = getattr(runtime, "reloader", None)
    watcher = "off" if reloader is None else ("ok" if reloader.alive else "dead")
    return watcher, any(t.is_alive() for t in getattr(runtime, "stuck_reloads", ()))

def _problems(*codes: int) -> dict:
    words = {401: "No valid bearer token or body signature.", 404: "No such outcome or notification.",
             409: "The outcome is not in a state that allows this.", 413: "Body larger than 8 MiB.",
             422: "Not JSON, or an outcome that breaks the schema (the field is named; the body is kept).",
             503: "The store is busy or unavailable: retry later."}
    return {c: {"model": Problem, "description": words[c]} for c in codes}


def create_app(runtime: Runtime) -> FastAPI:
    """The ASGI app for one Runtime."""
    app = FastAPI(title="herald", version=__version__,
                  description="Tells interview candidates their result. Intake needs `Authorization: Bearer <token>` "
                              "or a signature header `sha256=<hex HMAC-SHA256 of METHOD\\nPATH?QUERY\\nTIMESTAMP\\nBODY>` with "
                              "`X-Herald-Timestamp` (Unix seconds, at most 5 minutes old) when server.auth "
                              "is configured; /healthz and /metrics are open.")
    app.state.runtime = runtime
    app.add_middleware(BodyGate, limit=lambda: runtime.state.deployment.config.server.max_concurrent_bodies)

    @app.exception_handler(HTTPProblem)
    async def _problem(_request: Request, exc: HTTPProblem) -> JSONResponse:
        return JSONResponse({"error": exc.error, "field": exc.field, "dead_letter": exc.dead_letter},
                            status_code=exc.code, headers=exc.headers)

    def console_page(request: Request, status: int, key: str, headers: dict | None = None, **fields: object) -> Any:
        """The console's own error page for a request to /console (Console.error_page), else None: the API's
        answers stay JSON Problems."""
        console = getattr(app.state, "console", None)
        return None if console is None else console.error_page(request, status, key, headers, **fields)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Any:  # unknown path, method
        headers = getattr(exc, "headers", None)
        page = console_page(request, exc.status_code, "not_found" if exc.status_code == 404 else "error", headers)
        return page or JSONResponse({"error": str(exc.detail), "field": None, "dead_letter": None},
                                    status_code=exc.status_code, headers=headers)

    @app.exception_handler(ActionError)
    async def _action(_request: Request, exc: ActionError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "field": None, "dead_letter": None, **exc.detail},
                            status_code=exc.code)

    @app.exception_handler(BadAction)
    async def _bad_action(_request: Request, exc: BadAction) -> JSONResponse:
        return JSONResponse({"error": str(exc), "field": exc.field, "dead_letter": None}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _invalid_request(request: Request, exc: RequestValidationError) -> Any:
        """A parameter FastAPI refused (a limit out of range, an empty rule, one given twice...): one Problem
        naming it (the console's error page naming it, for a console page)."""
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body", "header")]
        field = ".".join(loc) or None
        error = f"{field or 'request'}: {first.get('msg', 'invalid')}"
        return console_page(request, 422, "bad_parameter", detail=error) or JSONResponse(
            {"error": error, "field": field, "dead_letter": None}, status_code=422)

    @app.exception_handler(DeskError)
    async def _desk(_request: Request, exc: DeskError) -> JSONResponse:
        return JSONResponse({"error": str(exc), "field": exc.field, "dead_letter": None}, status_code=422)

    @app.exception_handler(StoreUnavailable)
    async def _busy(_request: Request, exc: StoreUnavailable) -> JSONResponse:
        log.warning("store unavailable: %s", exc)
        return JSONResponse({"error": "the store is busy or unavailable; retry", "field": None, "dead_letter": None},
                            status_code=503, headers={"Retry-After": "1"})

    def authorize(request: Request, body: bytes = b"") -> None:
        raw_path = request.scope.get("raw_path") or request.url.path.encode()
        target = request_target(raw_path.decode("latin-1"), request.scope.get("query_string", b"").decode("latin-1"))
        if not runtime.state.auth.allows(request.method, target, request.headers, body, time.time()):
            raise HTTPProblem(401, "authentication required: Authorization: Bearer <token>, or "
                              f"{runtime.state.auth.signature_header}: sha256=<hex HMAC-SHA256 of "
                              f"METHOD\\nPATH?QUERY\\nTIMESTAMP\\nBODY> with {TIMESTAMP_HEADER}: <Unix seconds, "
                              f"at most {MAX_SKEW // 60} minutes old>", headers={"WWW-Authenticate": "Bearer"})

    def actor(request: Request) -> str:
        return actor_of(request.headers, runtime.state.auth, getattr(request.state, "user", None))

    async def read_body(request: Request) -> bytes:
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > MAX_BODY:
            raise HTTPProblem(413, f"body larger than {MAX_BODY} bytes")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_BODY:
                raise HTTPProblem(413, f"body larger than {MAX_BODY} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    # The two intake routes first: the router tries the routes in order, and these take most requests (the
    # routes and routers after them were tried one by one, 53 regular-expression matches a request).
    from engine.daemon.sources import source_route

    # ATS webhooks (authenticated by the provider's signature): ahead of FastAPI's documentation routes too
    app.router.routes.insert(0, source_route(runtime, read_body))

    _component, request_body = outcome_request_schema()

    # the answer's first outcome id and notification id lead to every operation taking one (schemathesis follows)
    on_outcome = ("GetOutcome", "get_outcome"), ("Approve", "approve"), ("Withdraw", "withdraw"), ("Route", "route"), \
        ("Preview", "preview"), ("History", "history")
    on_notification = ("GetNotification", "get_notification"), ("Cancel", "cancel"), ("Reschedule", "reschedule"), \
        ("SendNow", "send_now")
    links = {**{name: {"operationId": op, "parameters": {"outcome_id": "$response.body#/items/0/id"}}
                for name, op in on_outcome},
             **{name: {"operationId": op, "parameters": {"notification_id": "$response.body#/items/0/notification"}}
                for name, op in on_notification}}

    @app.post("/v1/outcomes", status_code=202, response_model=IntakeResponse, tags=["intake"],
              operation_id="post_outcomes", openapi_extra={"requestBody": request_body},
              responses={202: {"links": links}, **_problems(401, 413, 422, 503)})
    async def post_outcomes(request: Request) -> Any:
        """Takes one outcome or a list; 202 with a status per item once they are durably stored.

        A body that is not JSON, or a single outcome that breaks the schema, gets 422 naming the field, and the
        raw body is kept as a dead letter. In a list, each item is judged alone: valid ones are stored, invalid
        ones get status `invalid` with the field (and a dead letter), and the answer is still 202.
        """
        body = await read_body(request)
        authorize(request, body)
        remote = request.client.host if request.client else None
        items, is_list, error = split_body(body)
        if error is not None:
            dl = await run_in_threadpool(runtime.store.dead_letter, "http", error, "", body, remote)
            runtime.metrics.outcomes.labels("invalid").inc()
            raise HTTPProblem(422, error, "", dl)
        if len(items) > MAX_ITEMS:
            raise HTTPProblem(422, f"{len(items)} outcomes in one request; at most {MAX_ITEMS}", "")
        if is_list:  # group-committed with the lists arriving at the same time
            statuses = await run_in_threadpool(runtime.intake_requests, items, "http", remote)
        else:  # one outcome: group-committed with the single POSTs arriving at the same time
            statuses = [await run_in_threadpool(runtime.intake_grouped, items[0], "http", None, remote)]
        if not is_list and statuses[0].status == "invalid":
            s = statuses[0]
            raise HTTPProblem(422, s.error or "invalid outcome", s.field or "", s.dead_letter)
        return {"items": [s.as_dict() for s in statuses], "counts": dict(Counter(s.status for s in statuses))}

    from engine.tracking.routes import tracking_router

    tz = runtime.state.deployment.config.tracking.timezone
    # REFUSE_REPEATS: a scalar query parameter given twice is 422 (engine/daemon/query.py), on every router and
    # route with query parameters (test_every_documented_scalar_query_parameter_given_twice_is_refused)
    app.include_router(tracking_router(runtime.store, runtime.tracking_key, runtime.clock, authorize=authorize,
                                       report_auth=runtime.state.auth.enabled, report_timezone=tz),
                       dependencies=REFUSE_REPEATS)

    from engine.daemon.desk_routes import desk_router

    app.include_router(desk_router(runtime, authorize, actor, read_body),  # before /v1/outcomes/{id:path}
                       dependencies=REFUSE_REPEATS)

    from engine.console import install as install_console

    install_console(app, runtime, REFUSE_REPEATS)  # /console: the HR team's pages (signed-in sessions, not the API's token)

    from engine.daemon.push import push_router

    app.include_router(push_router(runtime))  # Aliyun SMS pushes: authenticated by a secret in the path (no query)

    @app.post("/v1/outcomes/{outcome_id:path}/approve", response_model=ActionOut, tags=["outcomes"],
              operation_id="approve", responses=_problems(401, 404, 409, 422, 503), dependencies=REFUSE_REPEATS)
    async def approve(outcome_id: str, request: Request, reason: str | None = None) -> Any:
        """Releases a held outcome: its notification is planned now (delays count from the approval). 409 for a
        withdrawn outcome or one already sent. The reason (query or JSON body) and the actor (X-Herald-Actor
        with a shared token) are kept in its history."""
        body = await read_body(request)
        authorize(request, body)  # a signature covers whatever body was sent
        why, who = reason_of(reason, body), actor(request)
        return (await run_in_threadpool(runtime.approve, outcome_id, why, who)).as_dict()

    @app.post("/v1/outcomes/{outcome_id:path}/withdraw", response_model=ActionOut, tags=["outcomes"],
              operation_id="withdraw", responses=_problems(401, 404, 409, 422, 503), dependencies=REFUSE_REPEATS)
    async def withdraw(outcome_id: str, request: Request, reason: str | None = None) -> Any:
        """The decision changed: queued notifications are cancelled and never sent. 409, changing nothing, when a
        message was already sent (the answer's `sent` lists what and when). Reason and actor as for approve."""
        body = await read_body(request)
        authorize(request, body)
        why, who = reason_of(reason, body), actor(request)
        return (await run_in_threadpool(runtime.withdraw, outcome_id, why, who)).as_dict()

    @app.get("/v1/outcomes/{outcome_id:path}", response_model=OutcomeOut, tags=["outcomes"],
             operation_id="get_outcome", responses=_problems(401, 404, 503))
    def get_outcome(outcome_id: str, request: Request) -> Any:
        """An outcome as stored, with its history and notifications."""
        authorize(request)
        store = runtime.store
        row = store.get_outcome(outcome_id)
        if row is None:
            raise HTTPProblem(404, f"no outcome {outcome_id!r}")
        return outcome_doc(row, store.outcome_history(outcome_id), store.notifications_for(outcome_id))

    @app.get("/v1/notifications/{notification_id:path}", response_model=NotificationOut, tags=["notifications"],
             operation_id="get_notification", responses=_problems(401, 404, 503))
    def get_notification(notification_id: str, request: Request) -> Any:
        """A notification (id `<outcome id>#<revision>`) with its attempts and events."""
        authorize(request)
        detail = runtime.store.get_notification(notification_id)
        if detail is None:
            raise HTTPProblem(404, f"no notification {notification_id!r}")
        return notification_doc(detail)

    @app.get("/healthz", response_model=Health, tags=["operations"], operation_id="healthz")
    def healthz() -> Any:
        """Liveness: the rule set in use, whether the last reload failed or is stuck, the file watcher, the clock,
        this replica's id, and the store: reachable, whether this replica is the leader, lease counts."""
        dispatcher = getattr(runtime, "dispatcher", None)
        watcher, stuck = watcher_status(runtime)
        alive = (dispatcher is None or dispatcher.alive) and watcher != "dead" and not stuck
        store = store_health(runtime, dispatcher)
        return {"status": "ok" if alive and store["reachable"] else "degraded", "ruleset": runtime.version,
                "reload_failed": bool(runtime.last_reload_error), "reload_stuck": stuck, "watcher": watcher,
                "now": iso(runtime.now()),
                "time_scale": runtime.clock.scale, "auth": runtime.state.auth.enabled,
                "replica": getattr(dispatcher, "replica_id", None), "store": store}

    @app.get("/metrics", response_class=PlainTextResponse, tags=["operations"], operation_id="metrics",
             responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                              "description": "Prometheus text format."}})
    def metrics() -> Any:
        """Prometheus metrics."""
        watcher, _ = watcher_status(runtime)
        runtime.metrics.watcher_alive.set(0 if watcher == "dead" else 1)
        runtime.metrics.reload_stuck.set(sum(t.is_alive() for t in runtime.stuck_reloads))
        return PlainTextResponse(runtime.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    def openapi() -> dict:
        if app.openapi_schema is None:
            from fastapi.openapi.utils import get_openapi

            doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            comps = doc.setdefault("components", {})
            comps.setdefault("schemas", {})["Outcome"] = _component
            comps["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"},
                "signature": {"type": "apiKey", "in": "header", "name": runtime.state.auth.signature_header,
                              "description": "sha256=<hex HMAC-SHA256 of METHOD\\nPATH?QUERY\\nTIMESTAMP\\nBODY>"}}
            if runtime.state.auth.enabled:
                for path, ops in doc.get("paths", {}).items():
                    if path.startswith("/v1/"):
                        for op in ops.values():
                            op["security"] = [{"bearer": []}, {"signature": []}]
            app.openapi_schema = as_sent(doc)  # query parameters described as they travel (engine/daemon/query.py)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to extend the schema
    return app
