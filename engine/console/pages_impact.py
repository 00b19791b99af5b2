"""The console's "Impact of a rule change" page: an operator pastes a changed (or new) rule file, or an admin points
at a rule file or directory on the server, and sees, over the outcomes received in the last N days, how many would
now go to another rule, template, channel order or send time, with the moves between rules and examples: the
same comparison as `herald diff --rules NEW --since Nd` (engine.desk.diff). Read-only: nothing is stored or sent."""
from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from engine.config.deployment import load_deployment
from engine.console.web import Console, Visitor, one
from engine.desk.diff import Impact, impact, proposed_rule_files
from engine.pipeline import Pipeline
from engine.rules.loader import rule_files

MAX_DAYS = 90
BUDGET = 20_000  # outcomes compared per request (the newest beyond it are left out, and the page says so)
EXAMPLES = 20


def add_routes(router: APIRouter, console: Console) -> None:
    rt = console.runtime

    def current_files() -> list[Path]:
        return rule_files(rt.state.deployment.config)[0]

    def page(request: Request, visitor: Visitor, *, name: str, text: str, days: int, path: str = "",
             result: Impact | None = None, problems: list[str] | None = None, error: str | None = None,
             status: int = 200) -> Response:
        return console.page(request, visitor, "impact.html.j2", status=status, error=error,
                            files=[f.name for f in current_files()], name=name, text=text, days=days, server_path=path,
                            result=result, problems=problems or [], max_days=MAX_DAYS, budget=BUDGET)

    @router.get("/impact")
    def impact_form(request: Request, file: str = "") -> Response:
        visitor = console.signed_in(request)
        files = current_files()
        chosen = next((f for f in files if f.name == file), files[0] if files else None)
        text = chosen.read_text(encoding="utf-8", errors="replace") if chosen is not None else ""
        return page(request, visitor, name=chosen.name if chosen else "20-proposed.yaml", text=text, days=7)

    @router.post("/impact")
    async def impact_run(request: Request) -> Response:
        visitor, fields = await console.posted(request, "viewer")
        name, path = one(fields, "name"), one(fields, "path")
        text = (fields.get("rules") or [""])[0]
        days_text = one(fields, "days", "7")
        if path:
            console.require(visitor, "admin")  # reading a path on the server is an admin's

        def work() -> Response:
            days = int(days_text) if days_text.isdigit() else 0
            if not 1 <= days <= MAX_DAYS:
                return page(request, visitor, name=name, text=text, days=7, path=path, status=422,
                            error=f"days: 1 to {MAX_DAYS}")
            with tempfile.TemporaryDirectory(prefix="herald-impact-") as tmp:
                try:
                    paths = [Path(path)] if path else proposed_rule_files(current_files(), name, text, Path(tmp))
                except ValueError as e:
                    return page(request, visitor, name=name, text=text, days=days, path=path, status=422,
                                error=str(e))
                config = rt.state.deployment.config
                proposed = load_deployment([str(p) for p in paths], str(config.file) if config.file else None,
                                           check_templates=False)
                if not proposed.ok:
                    problems = [d.format().replace(tmp + "/", "") for d in proposed.diagnostics if d.is_error]
                    return page(request, visitor, name=name, text=text, days=days, path=path, status=422,
                                problems=problems or ["the proposed rule set is invalid"])
            now = rt.now()
            at = datetime.fromtimestamp(now, UTC)
            result = impact(rt.store, _pipeline(rt.state.deployment, at), _pipeline(proposed, at),
                            now - days * 86400.0, examples=EXAMPLES, limit=BUDGET)
            return page(request, visitor, name=name, text=text, days=days, path=path, result=result)

        return await run_in_threadpool(work)


def _pipeline(deployment: Any, at: datetime) -> Pipeline:
    """A pipeline over `deployment` at the fixed instant `at` (both sides of the comparison share it)."""
    return Pipeline(deployment, now=at, render_channels="first")
