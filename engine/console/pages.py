"""The console's pages: each reads through engine.desk and renders one template of engine/console/templates."""
from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from engine.console.web import Console


def add_routes(router: APIRouter, console: Console) -> None:
    @router.get("/today")
    def today(request: Request) -> Response:
        visitor = console.signed_in(request)
        rt = console.runtime
        return console.page(request, visitor, "today.html.j2", version=rt.version,
                            reload_error=list(rt.last_reload_error))
