"""`POST /v1/sources/NAME`: ATS webhooks (engine/sources) received by the daemon.

Authenticated by the provider's signature (an ATS cannot send herald's bearer token), so these routes skip
`server.auth`; the body cap of the rest of the API applies. An unknown NAME gets the same 404 as an
unknown path. The route is left out of the OpenAPI document (it is for the ATSs, which send their own
formats). Answers: 200 duplicate / ignored / withdrawn; 202 taken in (the intake status, or `unmapped`); 401
bad or missing signature (nothing stored); 404 no such source; 422 signed but not the provider's event (kept
as a dead letter). Every delivery is counted in `herald_source_events{source, status}` (401s included).

The route is a plain ASGI endpoint on a Starlette route, not a FastAPI route: it declares nothing for
OpenAPI and validates nothing FastAPI could, and FastAPI's request handling (dependency solving, the
endpoint's wrappers) took about as much of the event loop's time as the endpoint itself
(bench/sources.py prints the daemon's CPU per event). Errors still reach the app's exception handlers
(HTTPProblem, 404, StoreUnavailable -> 503) as they propagate. The delivery runs in the event loop's default
executor (asyncio's thread pool, min(32, CPUs + 4) threads, shut down with the loop) rather than through
anyio's `run_in_threadpool`, whose capacity limiter and cancel-shielded checkpoints cost about 80 us of the
server's CPU a request (of about 370 us in the HTTP layer).
"""
from __future__ import annotations

import asyncio
import functools
from typing import TYPE_CHECKING
from collections.abc import Awaitable, Callable

from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from engine.sources.base import SourceRequest
from engine.store import SourceDelivery
from engine.sources.receive import receive

if TYPE_CHECKING:  # the runtime imports this module's neighbours; the route only reads it
    from starlette.types import Receive, Scope, Send

    from engine.daemon.runtime import Runtime

PATH = "/v1/sources/{name}"


class SourceEndpoint:
    """The ASGI endpoint of `POST /v1/sources/NAME` over one Runtime (sources are read from the deployment at
    each request: reload-safe)."""

    def __init__(self, runtime: Runtime, read_body: Callable[[Request], Awaitable[bytes]]) -> None:
        self.runtime = runtime
        self.read_body = read_body

    async def __call__(self, scope: Scope, receive_: Receive, send: Send) -> None:
        runtime = self.runtime
        name = scope["path_params"]["name"]
        source = runtime.state.deployment.config.sources.get(name)
        if source is None:
            raise StarletteHTTPException(404, "Not Found")
        request = Request(scope, receive_)
        body = await self.read_body(request)
        now = runtime.now()
        headers = dict(request.headers.items())  # lower-case names, as ASGI gives them
        query = scope.get("query_string", b"")
        req = SourceRequest(body, headers, dict(QueryParams(query)) if query else {}, now)
        take = functools.partial(receive, source, req, store=runtime.store, intake=_intake(runtime, request),
                                 withdraw=runtime.withdraw, now=now)
        result = await asyncio.get_running_loop().run_in_executor(None, take)
        runtime.metrics.source_events.labels(name, result.status).inc()
        await JSONResponse(result.as_dict(), status_code=result.code)(scope, receive_, send)


def source_route(runtime: Runtime, read_body: Callable[[Request], Awaitable[bytes]]) -> Route:
    """The source route (left out of the OpenAPI document: it is for the ATSs)."""
    return Route(PATH, SourceEndpoint(runtime, read_body), methods=["POST"], include_in_schema=False)


def _intake(runtime: Runtime, request: Request) -> Callable[..., list]:
    """Intake for receive(): an event's outcome with its delivery is group-committed with the events arriving
    at the same time (one transaction for the group); anything else goes through intake as it is."""
    remote = request.client.host if request.client else None

    def take(items: list, origin: str, delivery: SourceDelivery | None = None) -> list:
        if delivery is not None and len(items) == 1:
            return [runtime.intake_grouped(items[0], origin, delivery)]
        return runtime.intake(items, origin, remote)

    return take
