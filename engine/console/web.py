"""What every console page shares: who is asking (session cookie, role), the CSRF check on every form, the
language, the page headers and the rendering of the Jinja2 templates (autoescaped) in engine/console/templates."""
from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, tzinfo
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, StrictUndefined

from engine.config.console import ROLES, Account, ConsoleSettings
from engine.console.accounts import SignInLimiter
from engine.console.i18n import pick_language, translator
from engine.console.session import COOKIE, Session, Signer, fingerprint

ANONYMOUS = Account("anonymous (loopback)", "", "admin")  # no accounts configured: the daemon is on loopback
MAX_FORM = 8 * 1024 * 1024  # bytes: a dead letter's corrected body fits (the API's MAX_BODY)
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; script-src 'self'; frame-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
    "X-Frame-Options": "DENY"}

_ENV = Environment(loader=PackageLoader("engine.console", "templates"), autoescape=True, undefined=StrictUndefined,
                   trim_blocks=True, lstrip_blocks=True)


class Refused(Exception):
    """A console request that cannot be served: status, the message key (translated), its fields."""

    def __init__(self, status: int, key: str, headers: dict | None = None, **fields: object):
        super().__init__(key)
        self.status, self.key, self.headers, self.fields = status, key, headers or {}, fields


@dataclass(frozen=True)
class Visitor:
    """One request's view of the console: the session (new or from the cookie), the account, the language."""

    session: Session
    cookie: str | None  # a cookie to set (a new session), else None
    account: Account | None
    lang: str

    def t(self, key: str, **fields: object) -> str:
        return translator(self.lang)(key, **fields)

    def may(self, role: str) -> bool:
        return self.account is not None and self.account.may(role)

    @property
    def actor(self) -> str | None:
        """The signed-in name the audit log records for this visitor's actions (None when anonymous)."""
        return self.account.name if self.account else None


class Console:
    """The console of one daemon: reads console settings from the runtime at each request (reload-aware)."""

    def __init__(self, runtime: Any, clock: Callable[[], float] = time.time):
        self.runtime = runtime
        self.clock = clock
        self._random_key = secrets.token_urlsafe(32)
        s = self.settings
        self.limiter = SignInLimiter(s.max_failures, s.lockout)
        self._signers: dict[str, Signer] = {}

    @property
    def settings(self) -> ConsoleSettings:
        return self.runtime.state.deployment.config.console

    @property
    def signer(self) -> Signer:
        key = self.settings.secret or self._random_key
        if key not in self._signers:
            self._signers = {key: Signer(key)}
        return self._signers[key]

    @property
    def zone(self) -> tzinfo:
        """The time zone the console shows times and counts days in (tracking.timezone, as the report)."""
        name = self.runtime.state.deployment.config.tracking.timezone
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            return UTC

    def when(self, ts: float | None) -> str:
        """A stored time (epoch seconds) as the console shows it: `YYYY-MM-DD HH:MM` in its zone."""
        if ts is None:
            return "-"
        return datetime.fromtimestamp(ts, self.zone).strftime("%Y-%m-%d %H:%M")

    def require(self, visitor: Visitor, role: str) -> None:
        """403 unless the visitor's role is `role` or above."""
        if not visitor.may(role):
            raise Refused(403, "need_role", role=visitor.account.role if visitor.account else "-", need=role)

    def secure(self, request: Request) -> bool:
        """Whether the browser reached us over https: the request's scheme, or X-Forwarded-Proto from a trusted
        proxy (console.trusted_proxy)."""
        if self.settings.trusted_proxy:
            proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
            if proto:
                return proto == "https"
        return request.url.scheme == "https"

    def address(self, request: Request) -> str:
        """The client's address (the last hop a trusted proxy adds, else the socket's peer)."""
        if self.settings.trusted_proxy:
            hops = [h.strip() for h in request.headers.get("x-forwarded-for", "").split(",") if h.strip()]
            if hops:
                return hops[-1][:100]
        return request.client.host if request.client else "?"

    def visit(self, request: Request) -> Visitor:
        """Who is asking. No accounts configured: everyone is the anonymous admin (only ever on loopback)."""
        settings = self.settings
        if not settings.enabled:
            raise Refused(404, "disabled")
        lang = pick_language(request.headers.get("accept-language"))
        now = self.clock()
        session = self.signer.read(request.cookies.get(COOKIE), now)
        account = None
        if not settings.users:
            account = ANONYMOUS
        elif session is not None and session.user:
            found = settings.account(session.user)
            if found is not None and fingerprint(found.password_hash) == session.fingerprint:
                account = found
        cookie = None
        if session is None:
            session, cookie = self.signer.new("", "", now + settings.session)
        return Visitor(session, cookie, account, lang)

    def sign_in(self, account: Account) -> str:
        """A fresh cookie for `account` (a new nonce, so the CSRF token changes at sign-in)."""
        return self.signer.new(account.name, fingerprint(account.password_hash),
                               self.clock() + self.settings.session)[1]

    def set_cookie(self, response: Response, request: Request, value: str | None, clear: bool = False) -> None:
        if clear:
            response.delete_cookie(COOKIE, path="/console", httponly=True, samesite="lax",
                                   secure=self.secure(request))
        elif value is not None:
            response.set_cookie(COOKIE, value, max_age=int(self.settings.session), path="/console", httponly=True,
                                samesite="lax", secure=self.secure(request))

    def page(self, request: Request, visitor: Visitor, template: str, status: int = 200,
             headers: dict | None = None, **context: Any) -> HTMLResponse:
        """A page rendered from engine/console/templates, with the page headers (and the session cookie)."""
        context.setdefault("notice", None)
        context.setdefault("error", None)
        html = _ENV.get_template(template).render(
            t=visitor.t, lang=visitor.lang, me=visitor.account, csrf=self.signer.csrf(visitor.session),
            path=request.url.path, when=self.when, zone=str(self.zone), roles=ROLES, **context)
        response = HTMLResponse(html, status_code=status, headers={**PAGE_HEADERS, **(headers or {})})
        self.set_cookie(response, request, visitor.cookie)
        return response

    def signed_in(self, request: Request, role: str = "viewer") -> Visitor:
        """The visitor, who must be signed in (else a redirect to sign-in) with `role` or above (else 403)."""
        visitor = self.visit(request)
        if visitor.account is None:
            raise Refused(303, "sign_in", headers={"Location": "/console/login"})
        self.require(visitor, role)
        return visitor

    async def posted(self, request: Request, role: str) -> tuple[Visitor, dict[str, list[str]]]:
        """An action's visitor and form: signed in (else a redirect), the form's CSRF token checked (else 403),
        then `role` or above required (else 403), in that order."""
        visitor = self.signed_in(request)
        fields = await self.form(request, visitor)
        self.require(visitor, role)
        return visitor, fields

    async def form(self, request: Request, visitor: Visitor) -> dict[str, list[str]]:
        """The fields of a posted form; 403 unless it carries this session's CSRF token."""
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > MAX_FORM:
            raise Refused(413, "error")
        body, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > MAX_FORM:
                raise Refused(413, "error")
            body.append(chunk)
        ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
        fields: dict[str, list[str]] = parse_qs(b"".join(body).decode("utf-8", "replace"), keep_blank_values=True,
                          max_num_fields=10_000) if ctype == "application/x-www-form-urlencoded" else {}
        if not self.signer.csrf_ok(visitor.session, one(fields, "csrf") or None):
            raise Refused(403, "csrf")
        return fields

    def error_page(self, request: Request, status: int, key: str, headers: dict | None = None,
                   **fields: object) -> Response | None:
        """The console's page for an error the app met before a console route ran (an unknown console page, a
        parameter FastAPI refused): for a request to /console only, else None (the API answers JSON)."""
        path = request.url.path
        if path != "/console" and not path.startswith("/console/"):
            return None
        return self.refused(request, Refused(status, key, headers, **fields))

    def refused(self, request: Request, exc: Refused) -> Response:
        """The page for a refused request (a redirect for a visitor who must sign in)."""
        if exc.status in (301, 302, 303, 307):
            return RedirectResponse(exc.headers["Location"], status_code=exc.status)
        try:
            visitor = self.visit(request)
        except Refused:
            visitor = Visitor(self.signer.new("", "", self.clock() + 60)[0], None, None,
                              pick_language(request.headers.get("accept-language")))
        return self.page(request, visitor, "refused.html.j2", status=exc.status, headers=exc.headers,
                         message=visitor.t(exc.key, **exc.fields))


def one(fields: dict[str, list[str]], name: str, default: str = "") -> str:
    """The first value of a form field (stripped), or `default`."""
    values = fields.get(name)
    return values[0].strip() if values else default
