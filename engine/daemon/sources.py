"""`POST /v1/sources/NAME`: ATS webhooks (engine/sources) received by the daemon.

Authenticated by the provider's signature (an ATS cannot send herald's bearer token), so these routes skip
`server.auth`; the body cap of the rest of the API applies. An unknown NAME gets the same 404 as an
unknown path. Every delivery is counted in `herald_source_events{source, status}` (401s included).
"""
from __future__ import annotations

from typing import Any, Awaitable, Callable

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.sources.base import SourceRequest
from engine.sources.receive import receive


def sources_router(runtime, read_body: Callable[[Request], Awaitable[bytes]]) -> APIRouter:
    """The source route over one Runtime (sources are read from the deployment at each request: reload-safe)."""
    router = APIRouter()

    @router.post("/v1/sources/{name}", tags=["sources"], operation_id="receive_source",
                 responses={200: {"description": "A duplicate, ignored or withdrawn delivery."},
                            202: {"description": "Taken in: the outcome's intake status, or `unmapped`."},
                            401: {"description": "The provider's signature is missing or wrong: nothing stored."},
                            404: {"description": "No such source."},
                            422: {"description": "Signed, but not the provider's event (kept as a dead letter)."}})
    async def receive_source(name: str, request: Request) -> Any:
        """One webhook delivery from the ATS configured as `sources.NAME` in herald.yaml."""
        source = runtime.state.deployment.config.sources.get(name)
        if source is None:
            raise StarletteHTTPException(404, "Not Found")
        body = await read_body(request)
        req = SourceRequest(body, {k.lower(): v for k, v in request.headers.items()}, dict(request.query_params))
        result = await run_in_threadpool(receive, source, req, store=runtime.store, intake=_intake(runtime, request),
                                         withdraw=runtime.withdraw, now=runtime.now())
        runtime.metrics.source_events.labels(name, result.status).inc()
        return JSONResponse(result.as_dict(), status_code=result.code)

    return router


def _intake(runtime, request: Request) -> Callable[[list, str], list]:
    remote = request.client.host if request.client else None
    return lambda items, origin: runtime.intake(items, origin, remote)
