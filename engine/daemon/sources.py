"""`POST /v1/sources/NAME`: ATS webhooks (engine/sources) received by the daemon.

Authenticated by the provider's signature (an ATS cannot send herald's bearer token), so these routes skip
`server.auth`; the body cap of the rest of the API applies. An unknown NAME gets the same 404 as an
unknown path. The route is left out of the OpenAPI document (it is for the ATSs, which send their own
formats). Answers: 200 duplicate / ignored / withdrawn; 202 taken in (the intake status, or `unmapped`); 401
bad or missing signature (nothing stored); 404 no such source; 422 signed but not the provider's event (kept
as a dead letter). Every delivery is counted in `herald_source_events{source, status}` (401s included).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.sources.base import SourceRequest
from engine.store import SourceDelivery
from engine.sources.receive import receive

if TYPE_CHECKING:  # the runtime imports this module's neighbours; the router only reads it
    from engine.daemon.runtime import Runtime


def sources_router(runtime: Runtime, read_body: Callable[[Request], Awaitable[bytes]]) -> APIRouter:
    """The source route over one Runtime (sources are read from the deployment at each request: reload-safe)."""
    router = APIRouter()

    @router.post("/v1/sources/{name}", include_in_schema=False)
    async def receive_source(name: str, request: Request) -> Any:
        """One webhook delivery from the ATS configured as `sources.NAME` in herald.yaml."""
        source = runtime.state.deployment.config.sources.get(name)
        if source is None:
            raise StarletteHTTPException(404, "Not Found")
        body = await read_body(request)
        now = runtime.now()
        req = SourceRequest(body, {k.lower(): v for k, v in request.headers.items()}, dict(request.query_params), now)
        result = await run_in_threadpool(receive, source, req, store=runtime.store, intake=_intake(runtime, request),
                                         withdraw=runtime.withdraw, now=now)
        runtime.metrics.source_events.labels(name, result.status).inc()
        return JSONResponse(result.as_dict(), status_code=result.code)

    return router


def _intake(runtime: Runtime, request: Request) -> Callable[..., list]:
    """Intake for receive(): an event's outcome with its delivery is group-committed with the events arriving
    at the same time (one transaction for the group); anything else goes through intake as it is."""
    remote = request.client.host if request.client else None

    def take(items: list, origin: str, delivery: SourceDelivery | None = None) -> list:
        if delivery is not None and len(items) == 1:
            return [runtime.intake_grouped(items[0], origin, delivery)]
        return runtime.intake(items, origin, remote)

    return take
