"""herald's command line: a thin click layer that parses options, calls engine, and prints."""
from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

import click

from engine import __version__
from engine.errors import to_json

if TYPE_CHECKING:
    from engine.config.deployment import Deployment
    from engine.desk.planning import ClockedPipeline
    from engine.schedule.clock import Clock
    from engine.store import Store

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("text", "json")


def config_option(f: F) -> F:
    return click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="herald.yaml to use (default: ./herald.yaml, else built-in defaults).")(f)


class HeraldGroup(click.Group):
    """Usage errors exit 2 (click's default); anything unexpected (a corrupt store, an unreadable file) is one
    line on stderr and exit 1, without a traceback; HERALD_DEBUG=1 lets the traceback through."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:  # the promise above: a message, never a traceback
            if os.environ.get("HERALD_DEBUG"):
                raise
            command = ctx.invoked_subcommand or ctx.info_name
            click.echo(f"herald {command}: {type(e).__name__}: {e}", err=True)
            ctx.exit(1)


@click.group(cls=HeraldGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="herald")
@click.option("--store", "store_target", metavar="URL|PATH", default=None,
              help="The store for every command: a postgresql:// URL or a SQLite file (overrides herald.yaml's "
                   "store; the same as HERALD_STORE).")
def main(store_target: str | None) -> None:
    """herald tells interview candidates their result: YAML rules, templates, channels and timing.

    Start with `herald validate`, then `herald dry-run --outcomes examples/outcomes.jsonl`.
    """
    if store_target:  # read by load_config, so every command (and a child process) sees it; put back after
        before = os.environ.get("HERALD_STORE")
        os.environ["HERALD_STORE"] = store_target

        def restore() -> None:
            if before is None:
                os.environ.pop("HERALD_STORE", None)
            else:
                os.environ["HERALD_STORE"] = before

        click.get_current_context().call_on_close(restore)


@main.command()
@click.argument("paths", nargs=-1, type=click.Path())
@config_option
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="text", show_default=True,
              help="text: file:line:col: severity: message; json: a list of objects.")
@click.option("--strict", is_flag=True, help="Treat warnings as failures.")
def validate(paths: tuple, config_path: str | None, fmt: str, strict: bool) -> None:
    """Check rules, templates and config; print every problem with its file, line and column.

    PATHS may be rule files, rule directories, a herald.yaml or a deployment directory.
    Exit 0 when valid, 1 when there are problems.
    """
    from engine.config.deployment import load_deployment

    with _gc_paused():
        dep = load_deployment(paths, config_path, parallel=True)
    diags = list(dep.diagnostics)
    if fmt == "json":
        click.echo(to_json(diags))
    else:
        for d in diags:
            click.echo(d.format())
        errors = sum(d.is_error for d in diags)
        warnings = len(diags) - errors
        if dep.ruleset is not None and not errors:
            rs = dep.ruleset
            summary = (f"ok: {len(rs.rules)} rules in {len(rs.files)} files, "
                       f"{len(dep.templates.names())} templates, {len(dep.config.channels)} channels "
                       f"(rule-set version {rs.version})")
            click.echo(summary + (f", {warnings} warning(s)" if warnings else ""), err=True)
        else:
            click.echo(f"{errors} error(s), {warnings} warning(s)", err=True)
    failed = any(d.is_error for d in diags) or (strict and diags)
    sys.exit(1 if failed else 0)


class InstantType(click.ParamType):
    """An RFC 3339 time with an offset, for --now."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> datetime:
        from engine.schedule.timing import parse_instant

        if not isinstance(value, str):
            return value
        parsed = parse_instant(value)
        if parsed is None:
            self.fail(f"{value!r} is not an RFC 3339 time with an offset (e.g. 2026-11-20T10:00:00+08:00)", param, ctx)
        return parsed


now_option = click.option("--now", type=InstantType(), default=None,
                          help="Fix the clock (RFC 3339 with offset) for reproducible runs.")


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Loading builds hundreds of thousands of small objects and frees none of them: the cyclic collector
    would rescan them again and again. Only here, in the CLI's own process: gc.disable is process-wide,
    so the library (the daemon reloads in a thread) leaves the collector alone."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def _load_or_exit(paths: tuple, config_path: str | None) -> Deployment:
    """The deployment, or the validation errors printed to stderr and exit 1."""
    from engine.config.deployment import load_deployment

    with _gc_paused():
        dep = load_deployment(paths, config_path)
    if not dep.ok:
        for d in dep.diagnostics:
            if d.is_error:
                click.echo(d.format(), err=True)
        click.echo("rules are invalid: fix the errors above (herald validate shows them all)", err=True)
        sys.exit(1)
    return dep


@main.command("dry-run")
@click.option("--outcomes", "outcomes", required=True, type=click.File("rb"),
              help="Outcomes: JSON lines, one JSON list, or CSV with a header row (as ingest reads); - for stdin.")
@click.option("--format", "fmt", type=click.Choice(("text", "jsonl")), default="text", show_default=True)
@now_option
@click.option("--explain", "explain_id", metavar="ID", help="List every rule tried for outcome ID and why it failed.")
@click.option("--show-pii", is_flag=True, help="Show phone numbers and e-mail addresses unmasked.")
@click.option("--messages/--no-messages", default=True, show_default=True, help="text: print each rendered message.")
@click.option("--rules", "paths", multiple=True, type=click.Path(), help="Rule files or directories (default: config).")
@config_option
def dry_run(outcomes: BinaryIO, fmt: str, now: datetime | None, explain_id: str | None, show_pii: bool, messages: bool,
            paths: tuple, config_path: str | None) -> None:
    """Route, render and schedule every outcome; send nothing.

    Shows what would go to whom, when and why. Exit 0 when it ran, 1 when the rules are invalid.
    """
    from engine.cli.dryrun import TABLE_HEADER, Summary, explain_lines, message_lines, progress, table_row
    from engine.intake.decode import items_of
    from engine.intake.gate import judge
    from engine.pipeline import Pipeline, plan_line

    dep = _load_or_exit(paths, config_path)
    pipe = Pipeline(dep, now=now, render_channels="all" if fmt == "text" else "first")
    # read as ingest reads; JSON lines one line at a time, each outcome decoded as its turn comes: the input is
    # never held whole, nor the outcomes decoded from it (the collector would walk them again and again)
    items = items_of(outcomes, getattr(outcomes, "name", "") or "")
    gc.freeze()  # the deployment lives to the end: keep the collector from walking it
    if explain_id is not None:
        for item in items:
            result = judge(item)
            if result.outcome_id == explain_id:
                if result.outcome is None:
                    click.echo(f"{explain_id}: invalid: {result.error}")
                    sys.exit(0)
                for text in explain_lines(pipe.router, result.outcome):
                    click.echo(text)
                plan = pipe.plan(result.outcome)
                click.echo(plan_line(plan))
                sys.exit(0)
        click.echo(f"no outcome with id {explain_id!r} in the input", err=True)
        sys.exit(1)
    bar = sys.stderr.isatty()
    summary = Summary()
    if fmt == "jsonl":
        write = sys.stdout.write
        for plan in progress(pipe.run_items(items), bar):
            summary.add(plan)
            write(plan_line(plan) + "\n")
        for line in summary.lines(dep.ruleset_in_use):
            click.echo(line, err=True)
        return
    plans = []
    click.echo(TABLE_HEADER)
    for plan in progress(pipe.run_items(items), bar):
        summary.add(plan)
        plans.append(plan)
        click.echo(table_row(plan))
    if messages:
        for plan in plans:
            for text in message_lines(plan, show_pii):
                click.echo(text)
    click.echo("")
    for line in summary.lines(dep.ruleset_in_use):
        click.echo(line)


@main.command("test")
@now_option
@click.option("--rules", "paths", multiple=True, type=click.Path(), help="Rule files or directories (default: config).")
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Print passing cases too.")
def test_cmd(now: datetime | None, paths: tuple, config_path: str | None, verbose: bool) -> None:
    """Run the rule test cases in rules/tests/*.yaml; the last line is `N passed, N failed`."""
    from engine.pipeline import Pipeline, utcnow
    from engine.rules.cases import case_files, run_all

    dep = _load_or_exit(paths, config_path)
    pipe = Pipeline(dep, now=now, render_channels="all")
    files = case_files(dep.config.rules)
    results, diags = run_all(pipe, files, now or utcnow())
    for d in diags:
        click.echo(d.format())
    for r in results:
        where = f"{r.case.loc.file}:{r.case.loc.line}"
        if r.passed:
            if verbose:
                click.echo(f"PASS  {where}  {r.case.name}")
            continue
        click.echo(f"FAIL  {where}  {r.case.name}")
        for line in r.failures:
            click.echo(f"      {line}")
    passed = sum(r.passed for r in results)
    failed = len(results) - passed + sum(d.is_error for d in diags)
    if not files:
        click.echo("no test files found (rules/tests/*.yaml)", err=True)
    click.echo(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


# -------------------------------------------------------------------------------------------- sources

@main.group()
def sources() -> None:
    """ATS webhooks (sources: in herald.yaml): try a mapping, resubmit unmapped events."""


@sources.command("test")
@click.argument("name")
@click.option("--event", "event_file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="The webhook body as the ATS sends it (JSON).")
@click.option("--header", "headers", multiple=True, metavar="NAME:VALUE",
              help="A request header the kind reads (e.g. Greenhouse-Event-ID:1); repeatable.")
@now_option
@click.option("--rules", "paths", multiple=True, type=click.Path(), help="Rule files or directories (default: config).")
@config_option
def sources_test(name: str, event_file: str, headers: tuple, now: datetime | None, paths: tuple, config_path: str | None) -> None:
    """Show the outcome an event would become (or why not) and where the rules send it; nothing is stored.

    The signature is not checked. Exit 0 when it maps to an outcome, a withdrawal or an ignored event, 1 when it is
    unmapped or unreadable, 2 when NAME is not a configured source.
    """
    from engine.cli.sources import preview_lines
    from engine.pipeline import Pipeline
    from engine.sources.base import UNMAPPED
    from engine.sources.receive import preview

    dep = _load_or_exit(paths, config_path)
    source = dep.config.sources.get(name)
    if source is None:
        from engine.rules.suggest import did_you_mean

        known = ", ".join(dep.config.sources) or "none configured"
        click.echo(f"no source {name!r}{did_you_mean(name, dep.config.sources)} (sources: {known})", err=True)
        sys.exit(2)
    with open(event_file, "rb") as fh:
        body = fh.read()
    pairs = dict(h.split(":", 1) for h in headers if ":" in h)
    result = preview(source, body, Pipeline(dep, now=now), {k.strip(): v.strip() for k, v in pairs.items()})
    for line in preview_lines(name, result):
        click.echo(line)
    sys.exit(1 if result.event is None or (result.mapped is not None and result.mapped.status == UNMAPPED) else 0)


@sources.command("resubmit")
@click.option("--source", "source_name", default=None, help="Only the events of this source.")
@click.option("--limit", type=click.IntRange(1), default=1000, show_default=True)
@click.option("--rules", "paths", multiple=True, type=click.Path(), help="Rule files or directories (default: config).")
@config_option
def sources_resubmit(source_name: str | None, limit: int, paths: tuple, config_path: str | None) -> None:
    """Map the unmapped ATS events again with the current `map:` and take in those that map now."""

    from engine.desk.actions import withdraw
    from engine.intake.batch import intake
    from engine.sources.receive import resubmit

    dep = _load_or_exit(paths, config_path)
    clock = _clock(config_path, dep)
    pipe = _pipeline(dep, clock)
    with _store(config_path, dep) as store:
        results = resubmit(store, dep.config.sources, source=source_name, limit=limit,
                           intake=lambda items, origin: intake(items, pipe, store, origin),
                           withdraw=lambda oid, why: withdraw(store, oid, clock.now(), why))
    for row, r in results:
        click.echo(f"{row.source}\t{row.event_id}\t{r.outcome_id or '-'}\t{r.status}" + (f": {r.error}" if r.error else ""))
    still = sum(r.status == "unmapped" for _, r in results)
    click.echo(f"{len(results) - still} taken in, {still} still unmapped", err=True)


# --------------------------------------------------------------------------------------------- daemon

rules_option = click.option("--rules", "paths", multiple=True, type=click.Path(),
                            help="Rule files or directories (default: config).")


def _clock(config_path: str | None = None, dep: Deployment | None = None,
           store_path: str | Path | None = None) -> Clock:
    """The time for commands on a store: a running daemon's clock (--time-scale, --start-at), else the wall clock."""
    from engine.schedule.clock import store_clock

    if store_path is None:
        from engine.config.settings import load_config

        store_path = (dep.config if dep is not None else load_config(config_path)[0]).store_path
    return store_clock(store_path)


def _pipeline(dep: Deployment, clock: Clock) -> ClockedPipeline:
    """The planning pipeline for commands that write the store, on `clock` (the daemon's, when it runs)."""
    from engine.desk.planning import ClockedPipeline

    return ClockedPipeline(dep, render_channels="all", source=clock)


def _store(config_path: str | None, dep: Deployment | None = None) -> Store:
    """The store of the deployment (or of herald.yaml alone, when the rules need not be valid)."""
    from engine.config.settings import load_config
    from engine.store import open_store

    cfg = dep.config if dep is not None else load_config(config_path)[0]
    return open_store(cfg.store_target, listen=cfg.store_listen)


@main.command()
@click.option("--host", default=None, help="Address to listen on (default: server.host, else 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: server.port, else 8025; 0: any free port).")
@click.option("--time-scale", type=float, default=1.0, show_default=True,
              help="For demos and tests: time runs this many times faster from the start (600: 10 minutes a second).")
@click.option("--start-at", default=None, metavar="INSTANT",
              help="For demos and tests: the daemon's clock starts at this ISO 8601 instant (with offset), not now.")
@click.option("--log-level", type=click.Choice(("DEBUG", "INFO", "WARNING", "ERROR")), default="INFO",
              show_default=True)
@click.option("--upgrade-store", is_flag=True,
              help="Apply pending PostgreSQL migrations first (`herald db upgrade`); SQLite always upgrades itself.")
@rules_option
@config_option
def serve(host: str | None, port: int | None, time_scale: float, start_at: str | None, log_level: str,
          upgrade_store: bool, paths: tuple, config_path: str | None) -> None:
    """Run the daemon: HTTP intake, scheduler, dispatcher, hot reload of rules and templates.

    Refuses to start when the rules are invalid (exit 1). Stops cleanly on SIGTERM or Ctrl-C (exit 0); a second
    one while it stops exits at once (128 + the signal's number). SIGHUP reloads the rules. Without server.auth
    it listens on loopback only.
    """
    from engine.daemon import Daemon, DaemonError, setup_logging

    if not time_scale > 0:
        raise click.BadParameter("must be positive", param_hint="--time-scale")
    start = None
    if start_at is not None:
        from engine.schedule.timing import parse_instant

        instant = parse_instant(start_at)
        if instant is None:
            raise click.BadParameter(f"{start_at!r} is not an ISO 8601 instant with an offset "
                                     "(e.g. 2026-12-07T09:00:00+08:00)", param_hint="--start-at")
        start = instant.timestamp()
    dep = _load_or_exit(paths, config_path)
    setup_logging(log_level)
    try:
        daemon = Daemon(dep, paths=paths, config_path=config_path, host=host, port=port, time_scale=time_scale,
                        start_at=start, upgrade_store=upgrade_store)
        sys.exit(daemon.run())
    except DaemonError as e:
        click.echo(f"herald serve: {e}", err=True)
        sys.exit(1)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--batch", type=click.IntRange(1, 10000), default=500, show_default=True,
              help="Outcomes per transaction.")
@click.option("--format", "fmt", type=click.Choice(("text", "jsonl")), default="text", show_default=True,
              help="jsonl: one status object per input item, in order.")
@rules_option
@config_option
def ingest(file: str, batch: int, fmt: str, paths: tuple, config_path: str | None) -> None:
    """Load outcomes from FILE (JSON lines, or CSV with a header row) into the store, through the same gate.

    CSV columns are outcome fields, dotted for nested ones (candidate.name, candidate.email, position.title);
    score is read as a number, approved as a boolean, feedback lists split on | or ;. A running daemon picks
    the new notifications up. Invalid items are kept as dead letters and listed.
    """
    import json
    from collections import Counter
    from itertools import islice

    from engine.intake.batch import intake
    from engine.intake.decode import items_of

    dep = _load_or_exit(paths, config_path)
    pipe = _pipeline(dep, _clock(config_path, dep))
    counts: Counter = Counter()
    problems = []
    total = 0
    show_bar = sys.stderr.isatty() and fmt == "text"
    # read a batch at a time (JSON lines never held whole); the bar follows the bytes read
    with open(file, "rb") as fh, _store(config_path, dep) as store, click.progressbar(
            length=max(1, os.fstat(fh.fileno()).st_size), label="ingesting", file=sys.stderr,
            hidden=not show_bar) as bar:
        items, done = items_of(fh, Path(file).name), 0
        while chunk := list(islice(items, batch)):
            total += len(chunk)
            for item, status in zip(chunk, intake(chunk, pipe, store, "file"), strict=False):
                counts[status.status] += 1
                if fmt == "jsonl":
                    click.echo(json.dumps(status.as_dict(), ensure_ascii=False))
                elif status.status == "invalid" or status.error:
                    problems.append(f"{item.where}: {status.id or '-'}: {status.status}: {status.error}")
                if status.outside_vocabulary:
                    counts["outside the vocabulary"] += 1
                    if fmt != "jsonl":
                        problems.append(f"{item.where}: {status.id}: {status.outside_vocabulary}")
            if show_bar and fh.seekable():  # (a pipe has no position)
                at = fh.tell()
                bar.update(at - done)
                done = at
        where = store.path
    for line in problems:
        click.echo(line, err=True)
    summary = ", ".join(f"{counts[k]} {k}" for k in ("matched", "unmatched", "held", "duplicate", "invalid")
                        if counts[k])
    if counts["outside the vocabulary"]:
        summary += f"; {counts['outside the vocabulary']} outside the vocabulary"
    click.echo(f"ingested {total} item(s) from {file} into {where}: {summary or 'nothing'}", err=True)


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--url", default=None, help="The daemon (default: http://<server.host>:<server.port> of herald.yaml).")
@click.option("--token", envvar="HERALD_TOKEN", default=None, help="Bearer token [env HERALD_TOKEN].")
@click.option("--hmac-secret", envvar="HERALD_HMAC_SECRET", default=None,
              help="Sign each body with HMAC-SHA256 instead [env HERALD_HMAC_SECRET].")
@click.option("--batch", type=click.IntRange(1, 1000), default=100, show_default=True)
@config_option
def post(file: str, url: str | None, token: str | None, hmac_secret: str | None, batch: int,
         config_path: str | None) -> None:
    """Post the outcomes of FILE (JSON lines or CSV) to a running daemon, in batches; print the counts."""
    from engine.config.settings import load_config
    from engine.daemon.client import PostError, post_file

    if url is None:
        server = load_config(config_path)[0].server
        url = f"http://{server.host}:{server.port}"
    answers: list = []
    try:
        counts = post_file(file, url, token, hmac_secret, batch, answers=answers)
    except PostError as e:
        click.echo(f"herald post: {e}", err=True)
        sys.exit(1)
    except Exception as e:  # noqa: BLE001 - connection refused and friends: no traceback for a user
        click.echo(f"herald post: {url}: {type(e).__name__}: {e}", err=True)
        sys.exit(1)
    total = sum(counts.values())
    outside = [a for a in answers if a.get("outside_vocabulary")]
    for a in outside:
        click.echo(f"{a.get('id')}: {a['outside_vocabulary']}", err=True)
    click.echo(f"posted {total} to {url}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
               + (f"; {len(outside)} outside the vocabulary" if outside else ""))


@main.command()
@click.option("--retry", is_flag=True, help="Route them again with the current rules.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--actor", envvar="HERALD_ACTOR", default=None,
              help="Who you are, for the audit log of --retry [env HERALD_ACTOR; default: your user name].")
@rules_option
@config_option
def unmatched(retry: bool, limit: int, actor: str | None, paths: tuple, config_path: str | None) -> None:
    """List the outcomes no rule matched, waiting for a person; --retry routes them again."""

    from engine.store import utc

    if retry:
        from engine.cli.desk import operator
        from engine.desk.actions import retry_unmatched

        dep = _load_or_exit(paths, config_path)
        with _store(config_path, dep) as store:
            clock = _clock(config_path, dep)
            results = retry_unmatched(store, _pipeline(dep, clock), clock.now(), limit, operator(actor))
        for r in results:
            if r.notification:
                click.echo(f"{r.id}: matched {r.rule}: notification {r.notification} at {r.send_at}")
            else:
                click.echo(f"{r.id}: still unmatched ({r.error})")
        click.echo(f"{sum(bool(r.notification) for r in results)} routed, "
                   f"{sum(not r.notification for r in results)} still waiting")
        return
    from engine.cli.sources import unmapped_line

    with _store(config_path) as store:
        rows = store.unmatched(limit)
        events = store.unmapped_source_events(limit)
    for row in rows:
        fields = " ".join(f"{k}={v}" for k, v in (("decision", row.decision), ("stage", row.stage),
                                                 ("role", row.role), ("reason", row.reason)) if v)
        received = utc(row.received_at)
        click.echo(f"{row.id}\t{received.isoformat(timespec='seconds') if received else '-'}\t{fields}")
    for event in events:
        click.echo(unmapped_line(event))
    click.echo(f"{len(rows)} outcome(s) waiting for a person" + (
        ": route one with `herald route ID --rule RULE`, or edit the rules and run `herald unmatched --retry`"
        if rows else ""), err=True)
    if events:
        click.echo(f"{len(events)} ATS event(s) unmapped: add the values under `sources.NAME.map` and run "
                   "`herald sources resubmit`", err=True)


@main.command()
@click.argument("outcome_id")
@click.option("--rule", "rule_id", required=True, help="The rule whose template, channels and timing to use.")
@click.option("--by", default=None, help="Who routed it (default: $USER).")
@rules_option
@config_option
def route(outcome_id: str, rule_id: str, by: str | None, paths: tuple, config_path: str | None) -> None:
    """Route one stored outcome by hand with RULE (for an unmatched one, or a rule the match would not pick)."""
    import os

    from engine.desk.actions import ActionError, route_by_hand

    dep = _load_or_exit(paths, config_path)
    with _store(config_path, dep) as store:
        try:
            clock = _clock(config_path, dep)
            r = route_by_hand(store, _pipeline(dep, clock), outcome_id, rule_id, clock.now(),
                              by or os.environ.get("USER") or "cli")
        except ActionError as e:
            click.echo(f"herald route: {e}", err=True)
            sys.exit(1)
    click.echo(f"{r.id}: routed by hand to {rule_id}: notification {r.notification} at {r.send_at}")


# --- tracking and report (issue 6) ---

def _tracking_store_path(store_path: str | None, config_path: str | None) -> str:
    """--store, else the store of herald.yaml (`herald --store`, store.url, store.path, default herald.db): a
    postgresql:// URL, or a SQLite file, which must exist (exit 1 otherwise)."""
    from pathlib import Path

    from engine.config.settings import load_config
    from engine.store.postgres import is_url

    target = store_path or load_config(config_path)[0].store_target
    if not is_url(target) and not Path(target).is_file():
        click.echo(f"herald: no store at {target} (run `herald serve` or `herald ingest` first, or pass --store)",
                   err=True)
        sys.exit(1)
    return target


store_path_option = click.option("--store", "store_path", metavar="URL|PATH",
                                 help="The store: a SQLite file or a postgresql:// URL (default: herald.yaml's "
                                      "store, else herald.db).")


@main.command("report")
@click.option("--since", metavar="DATE", help="Outcomes that occurred on or after DATE (YYYY-MM-DD or RFC 3339).")
@click.option("--until", metavar="DATE", help="... and before the end of DATE (a day is included).")
@click.option("--rule", "rules", multiple=True, metavar="ID", help="Only this rule (repeatable).")
@click.option("--channel", metavar="C", help="Only notifications last sent on channel C.")
@click.option("--role", metavar="R", help="Only outcomes with role R.")
@click.option("--stage", metavar="S", help="Only outcomes at stage S.")
@click.option("--format", "fmt", type=click.Choice(("table", "csv", "json", "html")), default="table",
              show_default=True, help="html: one self-contained file with charts.")
@click.option("--output", "-o", "output", type=click.Path(dir_okay=False), help="Write to FILE, not stdout.")
@click.option("--timezone", "tz_name", default=None, metavar="TZ",
              help="Time zone of DATEs and of the days in charts (default: this machine's).")
@store_path_option
@config_option
def report_cmd(since: str | None, until: str | None, rules: tuple[str, ...], channel: str | None, role: str | None,
               stage: str | None, fmt: str, output: str | None, tz_name: str | None, store_path: str | None,
               config_path: str | None) -> None:
    """Per-rule performance: per rule, rule-set version and variant, matched, sent, delivered %, opened %,
    clicked %, replied % (rates over sent), satisfaction, time to notify (median, p90), late, fallbacks and
    failures by reason; variants compared (two-proportion z-test). Read-only: safe beside a running daemon.

    Exit 0; 1 when there is no store; 2 on a bad option.
    """
    from engine.cli.report import render
    from engine.report import ReportStoreError, build_report
    from engine.report.dates import report_filters, zone_name
    from engine.report.queries import has_facts

    path = _tracking_store_path(store_path, config_path)
    try:
        flt = report_filters(since, until, tuple(rules), channel, role, stage, tz_name)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--since/--until/--timezone") from e
    try:
        if not has_facts(path):
            click.echo("herald report: this store has no report_facts table yet (its migration was not applied): "
                       "rebuilding the figures from the events, which takes longer on a large store", err=True)
        rep = build_report(path, flt, timezone_name=zone_name(tz_name), with_days=fmt in ("json", "html"),
                           now=_clock(store_path=path).now())
    except ReportStoreError as e:
        click.echo(f"herald report: {e}", err=True)
        sys.exit(1)
    text = render(rep, fmt)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
        click.echo(f"wrote {output}", err=True)
    else:
        click.echo(text, nl=False)


@main.group("suppressions", invoke_without_command=True)
@click.option("--channel", default=None, help="Only this channel's entries.")
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@store_path_option
@config_option
@click.pass_context
def suppressions_cmd(ctx: click.Context, channel: str | None, fmt: str, store_path: str | None,
                     config_path: str | None) -> None:
    """The channels and addresses not to message (a candidate's unsubscribe, or a person's entry), with who and
    why; `add` and `remove` change the list. A later notification skips a suppressed channel (`suppressed`),
    falls back to the next one, and ends `suppressed` when none is left."""
    ctx.ensure_object(dict)
    ctx.obj.update(store_path=store_path, config_path=config_path)
    if ctx.invoked_subcommand is not None:
        return
    import json

    from engine.cli.suppressions import entry_line
    from engine.store import open_store

    with open_store(_tracking_store_path(store_path, config_path)) as store:
        rows = store.suppressions(channel)
    if fmt == "json":
        click.echo(json.dumps([r.__dict__ for r in rows], ensure_ascii=False, indent=2))
    elif not rows:
        click.echo("no suppressions")
    for r in rows if fmt == "text" else ():
        click.echo(entry_line(r))


@suppressions_cmd.command("add")
@click.argument("channel")
@click.argument("address")
@click.option("--reason", required=True, help="Why (kept with the entry).")
@click.option("--by", "actor", required=True, help="Who asked for it (kept with the entry).")
@store_path_option
@config_option
@click.pass_context
def suppressions_add(ctx: click.Context, channel: str, address: str, reason: str, actor: str, store_path: str | None,
                     config_path: str | None) -> None:
    """Suppress CHANNEL for ADDRESS (e-mail, phone number, DingTalk user id)."""
    from engine.store import open_store

    path = _tracking_store_path(store_path or ctx.obj.get("store_path"), config_path or ctx.obj.get("config_path"))
    with open_store(path) as store:
        added = store.suppress(channel, address, reason=reason, actor=actor, at=_clock(store_path=path).now())
        entry = store.suppression(channel, address)
    click.echo(("suppressed " if added else "already suppressed ") + f"{channel} {entry.address if entry else address}")


@suppressions_cmd.command("remove")
@click.argument("channel")
@click.argument("address")
@store_path_option
@config_option
@click.pass_context
def suppressions_remove(ctx: click.Context, channel: str, address: str, store_path: str | None,
                        config_path: str | None) -> None:
    """Allow CHANNEL for ADDRESS again (exit 1 when it was not suppressed)."""
    from engine.store import open_store

    path = _tracking_store_path(store_path or ctx.obj.get("store_path"), config_path or ctx.obj.get("config_path"))
    with open_store(path) as store:
        removed = store.unsuppress(channel, address)
    if not removed:
        click.echo(f"herald suppressions: {channel} {address} was not suppressed", err=True)
        sys.exit(1)
    click.echo(f"removed {channel} {address}")


@main.command("replies")
@click.option("--all", "show_all", is_flag=True, help="Also list replies already handled.")
@click.option("--handle", "handle_ids", type=int, multiple=True, metavar="ID",
              help="Mark reply ID handled (repeatable); its time to answer is measured from the reply.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--format", "fmt", type=click.Choice(("text", "json")), default="text", show_default=True)
@store_path_option
@config_option
def replies_cmd(show_all: bool, handle_ids: tuple, limit: int, fmt: str, store_path: str | None,
                config_path: str | None) -> None:
    """Candidates' replies not handled yet, each with the message it answers; --handle ID marks one handled.

    Exit 0; 1 when there is no store or an ID is unknown.
    """
    import json

    from engine.cli.report import format_item
    from engine.report.inbox import inbox
    from engine.safetext import escape_controls, json_safe
    from engine.store import open_store

    path = _tracking_store_path(store_path, config_path)
    with open_store(path) as store:
        if handle_ids:
            from engine.report.queries import reply_exists

            bad = False
            for rid in handle_ids:
                if store.mark_reply_handled(rid):
                    click.echo(f"reply {rid} handled")
                elif reply_exists(path, rid):
                    click.echo(f"reply {rid} was already handled")
                else:
                    click.echo(f"herald replies: no reply {rid}", err=True)
                    bad = True
            sys.exit(1 if bad else 0)
        items = inbox(store, show_all, limit)
    if fmt == "json":
        click.echo(json_safe(json.dumps([i.as_dict() for i in items], ensure_ascii=False, indent=2)))
        return
    if not items:
        click.echo("No replies waiting." if not show_all else "No replies.")
        return
    now = _clock(store_path=path).now()
    # replies are written by candidates: their control characters are shown, never sent to the terminal
    click.echo(escape_controls("\n\n".join(format_item(i, now) for i in items), keep_newlines=True))
    waiting = sum(1 for i in items if i.handled_at is None)
    click.echo(f"\n{waiting} waiting" + (f", {len(items) - waiting} handled" if show_all else "")
               + "; mark one handled with: herald replies --handle ID", err=True)


# --- the store itself ---


@main.group()
def db() -> None:
    """The store: its schema version, tables and migrations (SQLite file or PostgreSQL)."""


def _store_target(config_path: str | None) -> tuple[str, str]:
    from engine.config.settings import load_config

    cfg = load_config(config_path)[0]
    return cfg.store_target, cfg.store_label


@db.command("info")
@config_option
def db_info(config_path: str | None) -> None:
    """Show the store's backend, schema version (and pending migrations) and each table's row count."""
    from engine.store.inspect import describe

    info = describe(_store_target(config_path)[0])
    pending = f", {info.known - info.version} migration(s) pending: herald db upgrade" if info.version < info.known else ""
    newer = ", NEWER than this herald" if info.version > info.known else ""
    click.echo(f"{info.backend} store {info.where}: schema version {info.version} (herald knows {info.known}"
               f"{pending}{newer})")
    for name, rows in info.tables:
        click.echo(f"  {name:<24} {rows:>12,}")
    if info.search is not None:
        click.echo(f"candidate search: {info.search}")


@db.command("upgrade")
@config_option
def db_upgrade(config_path: str | None) -> None:
    """Apply pending migrations (each once, safe with several replicas starting); a newer schema is refused."""
    from engine.store import open_store

    target, label = _store_target(config_path)
    with open_store(target, upgrade=True) as store:
        click.echo(f"store {label}: schema version {store.schema_version()}")
        click.echo(f"candidate search: {store.ensure_search_index()}")


@db.command("prune")
@click.option("--events", "older_than", metavar="DURATION",
              help="Delete events older than this (e.g. 400d; default: store.retention.events of herald.yaml).")
@click.option("--batch", type=click.IntRange(1, 100_000), default=10_000, show_default=True,
              help="Events per transaction (each batch is short: replicas keep working meanwhile).")
@click.option("--now", "now_at", metavar="INSTANT", help="Count the age from this ISO 8601 instant, not from now.")
@config_option
def db_prune(older_than: str | None, batch: int, now_at: str | None, config_path: str | None) -> None:
    """Delete old events of finished notifications (store.retention.events): the report's figures do not change
    (kept per notification in report_facts); events of queued or sending notifications and unsubscribes stay.
    Run it daily (a cron job or systemd timer) on one machine; safe beside running replicas."""
    from datetime import UTC, datetime

    from engine.config.settings import load_config
    from engine.daemon.retention import prune_before, retention_seconds
    from engine.schedule.timing import parse_instant
    from engine.store import open_store

    cfg = load_config(config_path)[0]
    text = older_than or cfg.event_retention
    if not text:
        raise click.UsageError("no retention: set store.retention.events in herald.yaml or pass --events")
    age = retention_seconds(text)
    if age is None:
        raise click.BadParameter(f"{text!r}: a duration of at least 1d (e.g. 400d)", param_hint="--events")
    now = parse_instant(now_at) if now_at else None
    if now_at and now is None:
        raise click.BadParameter(f"{now_at!r} is not an ISO 8601 instant with an offset", param_hint="--now")
    cutoff = (now.timestamp() if now else _clock(config_path).now()) - age
    with open_store(cfg.store_target) as store:
        total = prune_before(store, cutoff, batch)
    when = datetime.fromtimestamp(cutoff, UTC).isoformat(timespec="seconds")
    click.echo(f"pruned {total:,} events before {when} from {cfg.store_label}")


@db.command("copy")
@click.option("--from", "source", required=True, metavar="URL|PATH", help="The store to copy (left untouched).")
@click.option("--to", "target", required=True, metavar="URL|PATH",
              help="Where to: a postgresql:// URL or a SQLite file (created, with the newest schema).")
@click.option("--replace", is_flag=True, help="Empty a target that already holds data (refused otherwise).")
def db_copy(source: str, target: str, replace: bool) -> None:
    """Copy a whole store to another backend: every table with its ids, revisions, events, suppressions and
    report facts, from one snapshot; e.g. `herald db copy --from herald.db --to postgresql://herald@db/herald`.
    Stop the daemons writing the source first. Progress on stderr; exit 1 on any problem (nothing is left half
    written: PostgreSQL in one transaction, SQLite through a temporary file)."""
    import time

    from engine.store.copy import copy_store

    last = [0.0]

    def progress(table: str, n: int, total: int) -> None:
        now = time.monotonic()
        if n == total or now - last[0] >= 1.0:
            last[0] = now
            pct = f" ({100 * n // total}%)" if total else ""
            click.echo(f"  {table:<16} {n:>12,} / {total:,}{pct}", err=True)

    result = copy_store(source, target, replace=replace, progress=progress)
    rows = sum(n for _, n in result.tables)
    click.echo(f"copied {rows:,} rows in {len(result.tables)} tables from {result.source} to {result.target}")


# --- channels (issue 5) ---


@main.group()
def channels() -> None:
    """The configured channels and their transports."""


@channels.command("check")
@click.argument("names", nargs=-1)
@config_option
def channels_check(names: tuple, config_path: str | None) -> None:
    """Verify each channel's settings, credentials and reachability, without messaging a candidate.

    NAMES limits the check to those channels. Exit 0 when every channel is ready, 1 otherwise.
    """
    from engine.channels.check import check_channels
    from engine.config.settings import load_config

    cfg, diags = load_config(config_path)
    for d in diags:
        click.echo(d.format(), err=True)
    unknown = [n for n in names if n not in cfg.channels]
    if unknown:
        raise click.BadParameter(f"no channel {', '.join(unknown)} (configured: {', '.join(cfg.channels)})",
                                 param_hint="NAMES")
    reports = check_channels(cfg, tuple(names))
    for r in reports:
        mark = "ok" if r.ok else "FAILED"
        click.echo(f"{r.channel:<12} {r.transport:<22} {mark}")
        for problem in r.problems:
            click.echo(f"    {problem}")
    sys.exit(0 if all(r.ok for r in reports) else 1)


@main.group()
def user() -> None:
    """Console accounts (herald.yaml console.users)."""


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice(("viewer", "approver", "admin")), required=True,
              help="viewer reads; approver also acts on outcomes; admin also pauses and resumes sending.")
@click.option("--email", default=None, help="The person's e-mail address (for tests sent to them).")
def user_add(name: str, role: str, email: str | None) -> None:
    """Print a console.users entry for herald.yaml, with the argon2 hash of a password read from the prompt
    (or from stdin when it is not a terminal; never from the command line)."""
    from engine.console.accounts import PasswordProblem, user_entry

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True, err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    try:
        entry = user_entry(name, role, password, email)
    except PasswordProblem as e:
        raise click.UsageError(str(e)) from e
    click.echo("# add under console: users: in herald.yaml", err=True)
    click.echo(entry, nl=False)


@main.command("diff")
@click.option("--rules", "new_rules", required=True, multiple=True, type=click.Path(exists=True),
              help="The changed rule files or directories (repeatable).")
@click.option("--since", default="7d", show_default=True, metavar="DURATION",
              help="Compare the outcomes received in this last stretch (e.g. 7d, 36h).")
@click.option("--examples", type=click.IntRange(0, 1000), default=10, show_default=True)
@click.option("--format", "fmt", type=click.Choice(("table", "json")), default="table", show_default=True)
@config_option
def diff_cmd(new_rules: tuple, since: str, examples: int, fmt: str, config_path: str | None) -> None:
    """The impact of a rule change: over the outcomes in the store received since --since, how many would now go
    to another rule, template, channel order or send time with the rules of --rules, with examples. Read-only.

    Exit 0; 1 when a rule set is invalid or there is no store; 2 on a bad option.
    """
    import dataclasses
    import json

    from engine.desk.diff import impact, impact_text
    from engine.pipeline import Pipeline
    from engine.schedule.timing import parse_duration

    window = parse_duration(since)
    if window is None or window.total_seconds() <= 0:
        raise click.BadParameter(f"{since!r}: a duration such as 7d or 36h", param_hint="--since")
    current = _load_or_exit((), config_path)
    proposed = _load_or_exit(new_rules, config_path)
    now = _clock(config_path, current).now_dt()
    with _store(config_path, current) as store:
        imp = impact(store, Pipeline(current, now=now, render_channels="first"),
                     Pipeline(proposed, now=now, render_channels="first"),
                     now.timestamp() - window.total_seconds(), examples=examples)
    if fmt == "json":
        click.echo(json.dumps(dataclasses.asdict(imp), ensure_ascii=False, indent=2))
    else:
        click.echo(impact_text(imp))


# --- the operator's desk (issue 15): held, approve, withdraw, queue, cancel, reschedule, send-now, pause, resume,
# history, dead-letters; each talks to the running daemon's /v1 API ---

from engine.cli.desk import register as _register_desk  # noqa: E402 - the commands join the group defined above

_register_desk(main)


if __name__ == "__main__":  # pragma: no cover
    main()
