"""The body gate: at most `server.max_concurrent_bodies` requests with a body in progress at once.

Each POST/PUT/PATCH holds a place from its first byte to its response (reading, parsing, storing: the
memory a large batch takes); beyond the cap the daemon answers 503 with Retry-After at once, before
reading the body. Requests without a body (GET, /healthz, /metrics) are never held back.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from starlette.responses import JSONResponse

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class BodyGate:
    """ASGI middleware counting requests with a body in progress (one event loop: a plain counter)."""

    def __init__(self, app: Any, limit: Callable[[], int]) -> None:
        self.app = app
        self.limit = limit
        self.active = 0
        self.refused = 0

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        limit = self.limit()
        if self.active >= limit:
            self.refused += 1
            response = JSONResponse(
                {"error": f"{limit} requests with a body are in progress already (server.max_concurrent_bodies); "
                          "retry after the time in Retry-After", "field": None, "dead_letter": None},
                status_code=503, headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
