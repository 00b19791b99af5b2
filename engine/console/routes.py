"""The console's HTTP routes: sign-in and sign-out, the static assets, and each page's handlers (engine.console.pages)."""
from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import RedirectResponse, Response

from engine.console.accounts import check_password
from engine.console.web import Console, Refused, one

STATIC = {"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}


def _next(target: str) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    return target if target.startswith("/console/") and not target.startswith("/console//") \
        and "\\" not in target else "/console/"


def console_router(console: Console) -> APIRouter:
    router = APIRouter(prefix="/console", include_in_schema=False)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        if name not in STATIC:
            raise Refused(404, "not_found")
        body = resources.files("engine.console").joinpath("static", name).read_bytes()
        return Response(body, media_type=STATIC[name], headers={"Cache-Control": "max-age=3600",
                                                                "X-Content-Type-Options": "nosniff"})

    @router.get("/login")
    def login_page(request: Request, next: str = "/console/") -> Response:
        visitor = console.visit(request)
        if visitor.account is not None:
            return RedirectResponse(_next(next), status_code=303)
        return console.page(request, visitor, "login.html.j2", next=_next(next), failed=None)

    @router.post("/login")
    async def login(request: Request) -> Response:
        visitor = console.visit(request)
        fields = await console.form(request, visitor)
        name, password = one(fields, "name"), (fields.get("password") or [""])[0]
        target = _next(one(fields, "next", "/console/"))
        address = console.address(request)
        wait = console.limiter.retry_after(name, address)
        if wait:
            minutes = max(1, int(wait + 59) // 60)
            return console.page(request, visitor, "login.html.j2", status=429, next=target,
                                headers={"Retry-After": str(int(wait))}, failed=visitor.t("locked", minutes=minutes))
        account = await run_in_threadpool(check_password, console.settings, name, password)
        if account is None:
            console.limiter.failed(name, address)
            return console.page(request, visitor, "login.html.j2", status=401, next=target,
                                failed=visitor.t("bad_sign_in"))
        console.limiter.succeeded(name, address)
        response = RedirectResponse(target, status_code=303)
        console.set_cookie(response, request, console.sign_in(account))
        return response

    @router.post("/logout")
    async def logout(request: Request) -> Response:
        visitor = console.visit(request)
        await console.form(request, visitor)
        response = RedirectResponse("/console/login", status_code=303)
        console.set_cookie(response, request, None, clear=True)
        return response

    @router.get("/")
    def home(request: Request) -> Response:
        return RedirectResponse("/console/today", status_code=303)

    from engine.console import pages

    pages.add_routes(router, console)
    return router
