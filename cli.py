"""herald's command line: a thin click layer that parses options, calls engine, and prints."""
from __future__ import annotations

import sys

import click

from engine import __version__
from engine.errors import to_json

FORMATS = ("text", "json")


def config_option(f):
    return click.option("--config", "config_path", type=click.Path(dir_okay=False),
                        help="herald.yaml to use (default: ./herald.yaml, else built-in defaults).")(f)


class HeraldGroup(click.Group):
    """Usage errors exit 2 (click's default); anything unexpected is reported without a traceback."""


@click.group(cls=HeraldGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="herald")
def main() -> None:
    """herald tells interview candidates their result: YAML rules, templates, channels and timing.

    Start with `herald validate`, then `herald dry-run --outcomes examples/outcomes.jsonl`.
    """


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
    from engine.deployment import load_deployment

    dep = load_deployment(paths, config_path)
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

    def convert(self, value, param, ctx):
        from engine.timing import parse_instant

        if not isinstance(value, str):
            return value
        parsed = parse_instant(value)
        if parsed is None:
            self.fail(f"{value!r} is not an RFC 3339 time with an offset (e.g. 2026-11-20T10:00:00+08:00)", param, ctx)
        return parsed


now_option = click.option("--now", type=InstantType(), default=None,
                          help="Fix the clock (RFC 3339 with offset) for reproducible runs.")


def _load_or_exit(paths: tuple, config_path: str | None):
    """The deployment, or the validation errors printed to stderr and exit 1."""
    from engine.deployment import load_deployment

    dep = load_deployment(paths, config_path)
    if not dep.ok:
        for d in dep.diagnostics:
            if d.is_error:
                click.echo(d.format(), err=True)
        click.echo("rules are invalid: fix the errors above (herald validate shows them all)", err=True)
        sys.exit(1)
    return dep


@main.command("dry-run")
@click.option("--outcomes", "outcomes", required=True, type=click.File("r", encoding="utf-8"),
              help="JSON lines of outcomes; - for stdin.")
@click.option("--format", "fmt", type=click.Choice(("text", "jsonl")), default="text", show_default=True)
@now_option
@click.option("--explain", "explain_id", metavar="ID", help="List every rule tried for outcome ID and why it failed.")
@click.option("--show-pii", is_flag=True, help="Show phone numbers and e-mail addresses unmasked.")
@click.option("--messages/--no-messages", default=True, show_default=True, help="text: print each rendered message.")
@click.option("--rules", "paths", multiple=True, type=click.Path(), help="Rule files or directories (default: config).")
@config_option
def dry_run(outcomes, fmt: str, now, explain_id: str | None, show_pii: bool, messages: bool,
            paths: tuple, config_path: str | None) -> None:
    """Route, render and schedule every outcome; send nothing.

    Shows what would go to whom, when and why. Exit 0 when it ran, 1 when the rules are invalid.
    """
    import json

    from engine.dryrun import TABLE_HEADER, Summary, explain_lines, message_lines, progress, table_row
    from engine.gate import parse_line
    from engine.pipeline import Pipeline, plan_json

    dep = _load_or_exit(paths, config_path)
    pipe = Pipeline(dep, now=now, render_channels="all" if fmt == "text" else "first")
    lines = outcomes.read().splitlines()
    if explain_id is not None:
        for line in lines:
            result = parse_line(line)
            if result.outcome_id == explain_id:
                if result.outcome is None:
                    click.echo(f"{explain_id}: invalid: {result.error}")
                    sys.exit(0)
                for text in explain_lines(pipe.router, result.outcome):
                    click.echo(text)
                plan = pipe.plan(result.outcome)
                click.echo(json.dumps(plan_json(plan), ensure_ascii=False))
                sys.exit(0)
        click.echo(f"no outcome with id {explain_id!r} in the input", err=True)
        sys.exit(1)
    stderr_tty = click.get_text_stream("stderr").isatty()
    bar = stderr_tty and len(lines) > 2000
    summary = Summary()
    out = click.get_text_stream("stdout")
    if fmt == "jsonl":
        for plan in progress(pipe.run_lines(lines), len(lines), bar, click.echo):
            summary.add(plan)
            out.write(json.dumps(plan_json(plan), ensure_ascii=False) + "\n")
        for line in summary.lines(dep.ruleset):
            click.echo(line, err=True)
        return
    plans = []
    click.echo(TABLE_HEADER)
    for plan in progress(pipe.run_lines(lines), len(lines), bar, click.echo):
        summary.add(plan)
        plans.append(plan)
        click.echo(table_row(plan))
    if messages:
        for plan in plans:
            for text in message_lines(plan, show_pii):
                click.echo(text)
    click.echo("")
    for line in summary.lines(dep.ruleset):
        click.echo(line)


@main.command("test")
@now_option
@click.option("--rules", "paths", multiple=True, type=click.Path(), help="Rule files or directories (default: config).")
@config_option
@click.option("-v", "--verbose", is_flag=True, help="Print passing cases too.")
def test_cmd(now, paths: tuple, config_path: str | None, verbose: bool) -> None:
    """Run the rule test cases in rules/tests/*.yaml; the last line is `N passed, N failed`."""
    from engine.pipeline import Pipeline, utcnow
    from engine.testcases import case_files, run_all

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


if __name__ == "__main__":  # pragma: no cover
    main()
