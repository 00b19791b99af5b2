"""The web console for the HR team: `/console` in `herald serve`.

Server-rendered pages (Jinja2, autoescaped, plain forms; every asset served by herald, nothing from a CDN, no
build step) in English and Simplified Chinese, behind accounts from herald.yaml `console.users` (argon2 hashes,
roles viewer / approver / admin), signed session cookies and a CSRF token on every form. The pages read and act
through `engine.desk` (the same queries and actions as the /v1 API and the CLI); this package owns only the web
layer: sessions, sign-in, rendering and forms.

`install` mounts it; the names other packages use are exported here (`__all__`) and imported from their
submodule on first use (engine/exports.py), so `herald serve` without a console imports none of it.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from engine.exports import exported, resolve

_EXPORTS = {"accounts": ("PasswordProblem", "user_entry")}
__all__ = ["install", *exported(_EXPORTS)]


def __getattr__(name: str) -> Any:
    return resolve(__name__, _EXPORTS, name)


def install(app: Any, runtime: Any, dependencies: Sequence[Any] = ()) -> None:
    """Mounts the console at /console on the daemon's FastAPI app, its routes with the app's `dependencies`."""
    from engine.console.routes import console_router
    from engine.console.web import Console, Refused

    console = Console(runtime)
    app.state.console = console

    @app.exception_handler(Refused)
    async def _refused(request: Any, exc: Refused) -> Any:
        return console.refused(request, exc)

    app.include_router(console_router(console), dependencies=list(dependencies))
