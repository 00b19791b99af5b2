"""Rule files to a validated RuleSet: merging defaults, windows, timing, `when`, templates, channels, with every problem located."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

from engine.config.settings import Config, display_path
from engine.errors import Diagnostic, Loc
from engine.model import DECISIONS, Rule, RuleSet, Timing, Variant
from engine.rules.schemas import FieldCatalog, outcome_fields, schema
from engine.rules.schemacheck import schema_diagnostics
from engine.rules.suggest import closest, did_you_mean
from engine.rules.vocabulary import (CODE as VOCABULARY_CODE, EMPTY, Vocabulary, collect_vocabulary, match_problems,
                                     unreached_locales, when_problems)
from engine.rules.yamlpos import Document, load_yaml_file

if TYPE_CHECKING:
    from engine.rules.when import WhenExpr

RULE_SUFFIXES = (".yaml", ".yml")
_SCHEMA_REPORTS = frozenset({"unknown-key", "bad-weekday", "bad-window"})  # the schema check says these already
DURATION_KEYS = ("delay", "deadline", "escalate_after")
NEVER = "never"  # escalate_after: never switches an inherited escalation off
_LOCALE_OK = __import__("re").compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")


@dataclass
class _Ctx:
    """What building one rule needs to see: config, windows, templates, field catalog, diagnostics sink."""

    cfg: Config
    windows: dict
    window_names: set
    templates: Any
    catalog: FieldCatalog
    diags: list = field(default_factory=list)
    vocabulary: Vocabulary = EMPTY


def rule_files(cfg: Config) -> tuple[list[Path], list[Diagnostic]]:
    """The rule files of a deployment, in the order SPEC gives: by file name within each configured entry."""
    files: list[Path] = []
    diags: list[Diagnostic] = []
    for entry in cfg.rules:
        if entry.is_dir():
            files += sorted((p for p in entry.iterdir() if p.suffix in RULE_SUFFIXES and p.is_file()),
                            key=lambda p: p.name)
        elif entry.is_file():
            files.append(entry)
        else:
            diags.append(Loc(cfg.file or display_path(entry), 0, 0).error(
                "no-rules", f"rules path {display_path(entry)} does not exist"))
    if not files and not diags:
        where = ", ".join(display_path(e) for e in cfg.rules)
        diags.append(Loc(display_path(cfg.rules[0]) if cfg.rules else "rules", 0, 0).warning(
            "no-rules", f"no rule files (*.yaml) in {where}: every outcome would wait as unmatched"))
    return files, diags


def load_documents(paths: list[Path]) -> tuple[list[Document], list[Diagnostic]]:
    """Parse and schema-check every rule file."""
    docs, diags = [], []
    for path in paths:
        doc, problems = load_yaml_file(path, display=display_path(path))
        diags += problems
        if doc.data is None and not problems:
            diags.append(doc.loc().warning("empty-file", "rule file is empty"))
            continue
        if doc.data is not None and not isinstance(doc.data, dict):
            diags.append(doc.loc().error("bad-type", "a rule file must be a mapping with version, defaults, windows and rules"))
            continue
        if doc.data is not None:
            diags += schema_diagnostics("rules", doc)
            docs.append(doc)
    return docs, diags


def collect_windows(cfg: Config, docs: list[Document]) -> tuple[dict, list[Diagnostic]]:
    """Named windows from herald.yaml and every rule file; a name defined twice is an error."""
    from engine.schedule.timing import parse_window

    windows: dict = {}
    first: dict = {}
    diags: list[Diagnostic] = []
    sources: list[tuple[Any, Any, Loc, Document | None, tuple[str, ...] | None]] = [
        (name, spec, loc, None, None) for name, (spec, loc) in cfg.windows.items()]
    for doc in docs:
        raw = doc.data.get("windows")
        if isinstance(raw, dict):
            sources += [(name, spec, doc.loc(("windows", name), key=True), doc, ("windows", name))
                        for name, spec in raw.items()]
    for name, spec, loc, where_doc, path in sources:
        if name in first:
            f = first[name]
            diags.append(loc.error("duplicate-window",
                                   f'window "{name}" is defined twice (first at {f.file}:{f.line})'))
            continue
        first[name] = loc
        if not isinstance(spec, dict):
            continue  # the schema check reported it
        window, problems = parse_window(str(name), spec)
        for key, code, message in problems:
            if code in _SCHEMA_REPORTS:
                continue
            where = where_doc.loc(path + (key,)) if where_doc is not None and path is not None else loc
            diags.append(where.error(code, f'window "{name}": {message}'))
        if window is not None:
            windows[name] = window
    return windows, diags


def _timing_part(raw: Any, doc: Document, path: tuple, ctx: _Ctx) -> dict:
    """Parse the timing keys present in `raw`, reporting problems at their own positions."""
    from engine.schedule.timing import parse_duration

    out: dict = {}
    if not isinstance(raw, dict):
        return out
    for key in DURATION_KEYS:
        if key in raw and raw[key] is not None:
            value = raw[key]
            if key == "escalate_after" and value == NEVER:  # switches an inherited escalation off
                out[key] = None
                continue
            parsed = parse_duration(value) if isinstance(value, str) else None
            if parsed is None:
                if isinstance(value, (str, int, float)):
                    also = f', or "{NEVER}" for no escalation' if key == "escalate_after" else ""
                    ctx.diags.append(doc.loc(path + (key,)).error(
                        "bad-duration", f'{key}: "{value}" is not a duration (write 90s, 30m, 2h, 3d or 1h30m{also})'))
                continue
            out[key] = parsed
    if "window" in raw and raw["window"] is not None:
        name = raw["window"]
        if isinstance(name, str) and name not in ctx.window_names:
            ctx.diags.append(doc.loc(path + ("window",)).error(
                "unknown-window", f'unknown window "{name}"{did_you_mean(name, ctx.windows)}'))
        out["window"] = name if isinstance(name, str) else None
    return out


def _channels_ok(channels: Any, doc: Document, path: tuple, ctx: _Ctx) -> tuple:
    if not isinstance(channels, list):
        return ()
    seen: list = []
    for i, ch in enumerate(channels):
        if not isinstance(ch, str):
            continue
        if ch not in ctx.cfg.channels:
            ctx.diags.append(doc.loc(path + (i,)).error(
                "unknown-channel", f'unknown channel "{ch}"{did_you_mean(ch, ctx.cfg.channels)} '
                                   f'(configured: {", ".join(ctx.cfg.channels)})'))
        elif ch in seen:
            ctx.diags.append(doc.loc(path + (i,)).error("duplicate-channel", f'channel "{ch}" is listed twice'))
        else:
            seen.append(ch)
    return tuple(seen)


def _check_scalar(name: str, value: Any, doc: Document, path: tuple, ctx: _Ctx,
                  check: Callable[[str], str | None]) -> None:
    if isinstance(value, str):
        problem = check(value)
        if problem:
            ctx.diags.append(doc.loc(path).error(f"bad-{name}", problem))


def _match(raw: Any, doc: Document, path: tuple, ctx: _Ctx, rule_id: str = "") -> tuple:
    """The rule's `match` as ((field_path, (values...)), ...), checking fields and value types."""
    if not isinstance(raw, dict):
        return ()
    props = schema("outcome")
    out = []
    for key, value in raw.items():
        key = str(key)
        if not ctx.catalog.knows(key):
            ctx.diags.append(doc.loc(path + (key,), key=True).error(
                "unknown-field", f'match: "{key}" is not an outcome field{did_you_mean(key, ctx.catalog.leaves())}'))
            continue
        values = tuple(value) if isinstance(value, list) else (value,)
        if not all(v is None or isinstance(v, (str, int, float, bool)) for v in values):
            continue  # a mapping or nested list: the schema check reports it; nothing sane to match on
        spec = _field_schema(props, key)
        for j, v in enumerate(values):
            vpath = path + (key, j) if isinstance(value, list) else path + (key,)
            problem = _value_problem(key, v, spec)
            if problem:
                ctx.diags.append(doc.loc(vpath).error("bad-value", problem))
        for j, message in match_problems(ctx.vocabulary, rule_id, key, values):
            vpath = path + (key, j) if isinstance(value, list) else path + (key,)
            ctx.diags.append(doc.loc(vpath).error(VOCABULARY_CODE, message))
        out.append((key, values))
    return tuple(out)


def _field_schema(root: dict, dotted: str) -> dict:
    node = root
    for part in dotted.split("."):
        node = node.get("properties", {}).get(part)
        if node is None:
            return {}
    return node


def _value_problem(key: str, value: Any, spec: dict) -> str | None:
    if "enum" in spec and value not in spec["enum"]:
        return (f'match {key}: "{value}" is never a {key} (one of {", ".join(map(str, spec["enum"]))})'
                f'{did_you_mean(str(value), [str(e) for e in spec["enum"]])}')
    kind = spec.get("type")
    if kind == "number" and (isinstance(value, bool) or not isinstance(value, (int, float))):
        return f"match {key}: {key} is a number; {value!r} never equals it"
    if kind == "string" and not isinstance(value, str):
        return f"match {key}: {key} is text; write the value in quotes"
    if kind == "boolean" and not isinstance(value, bool):
        return f"match {key}: {key} is true or false"
    return None


def _when(raw: Any, doc: Document, path: tuple, ctx: _Ctx, rule_id: str = "") -> WhenExpr | None:
    from engine.rules.when import check_fields, field_literals, parse_when

    if not isinstance(raw, str):
        return None
    expr, errors = parse_when(raw)
    if expr is not None:
        errors = list(errors) + list(check_fields(expr, ctx.catalog))
    for err in errors:
        ctx.diags.append(doc.text_loc(path, err.offset).error(err.code, f"when: {err.message}"))
    if expr is not None and not errors:
        for offset, message in when_problems(ctx.vocabulary, rule_id, field_literals(expr)):
            ctx.diags.append(doc.text_loc(path, offset).error(VOCABULARY_CODE, message))
    return expr if expr is not None and not errors else None


def _text(value: Any, default: str) -> str:
    """`value` when it is a string, else `default` (the schema check reports a value of the wrong type)."""
    return value if isinstance(value, str) else default


def build_rule(doc: Document, index: int, raw: dict, defaults: dict, ctx: _Ctx, order: int) -> Rule | None:
    """One rule with its file's defaults merged in; problems go to ctx.diags."""
    from engine.schedule.timing import check_timezone

    path = ("rules", index)
    rid = raw.get("id")
    if not isinstance(rid, str) or not rid:
        return None
    loc = doc.loc(path)
    channels_raw = raw["channels"] if "channels" in raw else defaults.get("channels")
    channels = (_channels_ok(raw["channels"], doc, path + ("channels",), ctx) if "channels" in raw
                else defaults.get("_channels", ()))
    if channels_raw is None:
        ctx.diags.append(loc.error("missing-channels", f'rule "{rid}" has no channels (set channels: or defaults.channels)'))
    timing = dict(defaults.get("_timing", {}))
    timing.update(_timing_part(raw.get("timing"), doc, path + ("timing",), ctx))
    for key in ("locale", "timezone"):
        if key in raw:
            check = check_timezone if key == "timezone" else locale_problem
            _check_scalar(key, raw[key], doc, path + (key,), ctx, check)
    locale = _text(raw.get("locale"), _text(defaults.get("locale"), "zh-CN"))
    tz = _text(raw.get("timezone"), _text(defaults.get("timezone"), "Asia/Shanghai"))
    match = _match(raw.get("match"), doc, path + ("match",), ctx, rid)
    when = _when(raw.get("when"), doc, path + ("when",), ctx, rid)
    variants: tuple = ()
    if isinstance(raw.get("variants"), list):
        variants = tuple(Variant(v["template"], float(v.get("weight", 1)))
                         for v in raw["variants"] if isinstance(v, dict) and isinstance(v.get("template"), str)
                         and isinstance(v.get("weight", 1), (int, float)) and not isinstance(v.get("weight", 1), bool))
        if "template" in raw:
            ctx.diags.append(doc.loc(path + ("template",), key=True).error(
                "template-and-variants", f'rule "{rid}" has both template and variants: keep one'))
    template = _text(raw.get("template"), variants[0].template if variants else "")
    if not template and "variants" not in raw and not any(  # a misspelt key is reported already
            k not in ("template", "variants") and closest(str(k), ("template", "variants")) for k in raw):
        ctx.diags.append(loc.error("missing-template", f'rule "{rid}" needs a template (or variants)'))
    rule = Rule(
        id=rid, template=template, channels=channels,
        timing=Timing(delay=timing.get("delay", timedelta(0)), window=timing.get("window"),
                      deadline=timing.get("deadline"), escalate_after=timing.get("escalate_after")),
        match=match, when=raw.get("when") if isinstance(raw.get("when"), str) else None,
        variants=variants, locale=locale, timezone=tz,
        priority=raw.get("priority", defaults.get("priority", 0)) if isinstance(raw.get("priority", 0), int) else 0,
        description=raw.get("description", "") if isinstance(raw.get("description"), str) else "",
        file=doc.file, line=loc.line, column=loc.column, order=order, company=file_company(doc),
        predicate=when.predicate if when is not None else None,
    )
    _timing_warnings(rule, doc, path, ctx)
    if ctx.templates is not None:  # decisions are checked even when the channels are wrong
        decisions = tuple(d for d in rule.decisions() if d in DECISIONS)
        used = ([(v.template, path + ("variants", j, "template")) for j, v in enumerate(variants)] if variants
                else [(template, path + ("template",))] if template else [])
        for name, where in used:
            ctx.diags += ctx.templates.check_usage(name, decisions, channels, doc.loc(where))
            for tag, instead in unreached_locales(ctx.vocabulary, ctx.templates, name, locale):
                got = f"{tag} candidates get {instead}" if instead else f"{tag} candidates get no file"
                ctx.diags.append(doc.loc(where).warning(
                    "template-locale-unreached",
                    f'rule "{rid}": template {name} has no file for locale {tag} of the vocabulary, nor a bare '
                    f"{name}.j2: {got}"))
    return rule


def file_company(doc: Document) -> tuple:
    """A rule file's `company:` as ((key, value), ...); the schema check reports what is wrong in it."""
    raw = doc.data.get("company")
    if not isinstance(raw, dict):
        return ()
    return tuple((k, v) for k, v in raw.items() if isinstance(k, str) and isinstance(v, str) and v)


def locale_problem(value: str) -> str | None:
    return None if _LOCALE_OK.match(value) else f'locale "{value}" is not a language tag like zh-CN or en'


def _timing_warnings(rule: Rule, doc: Document, path: tuple, ctx: _Ctx) -> None:
    t = rule.timing
    loc = doc.loc(path + ("timing",)) if "timing" in doc.data["rules"][path[1]] else doc.loc(path)
    if t.deadline is not None and t.delay > t.deadline:
        ctx.diags.append(loc.warning("deadline-before-delay",
                                     f'rule "{rule.id}": delay is longer than the deadline, so every notification is late'))
    if t.escalate_after is not None and len(rule.channels) < 2:
        ctx.diags.append(loc.warning("escalate-single-channel",
                                     f'rule "{rule.id}": escalate_after has no next channel to escalate to'))


def _defaults(doc: Document, ctx: _Ctx) -> dict:
    """A file's defaults, parsed once and checked at their own positions."""
    from engine.schedule.timing import check_timezone

    raw = doc.data.get("defaults")
    if not isinstance(raw, dict):
        return {}
    out = dict(raw)
    out["_timing"] = _timing_part(raw.get("timing"), doc, ("defaults", "timing"), ctx)
    out["_channels"] = _channels_ok(raw.get("channels"), doc, ("defaults", "channels"), ctx)
    _check_scalar("timezone", raw.get("timezone"), doc, ("defaults", "timezone"), ctx, check_timezone)
    _check_scalar("locale", raw.get("locale"), doc, ("defaults", "locale"), ctx, locale_problem)
    if not isinstance(out.get("locale"), str):
        out.pop("locale", None)
    if not isinstance(out.get("timezone"), str):
        out.pop("timezone", None)
    if not isinstance(out.get("priority", 0), int):
        out.pop("priority", None)
    return out


def source_hashes(cfg: Config) -> dict[str, str]:
    """Every rule file and template of the deployment (display path) with a short hash of its content."""
    paths, _ = rule_files(cfg)
    tdir = Path(cfg.templates)
    paths += sorted(tdir.rglob("*.j2")) if tdir.is_dir() else []
    out: dict[str, str] = {}
    for p in paths:
        try:
            out[display_path(p)] = hashlib.sha256(p.read_bytes()).hexdigest()[:12]
        except OSError:
            continue
    return out


def ruleset_version(hashes: dict[str, str]) -> str:
    """The rule-set version: a short hash over the files' names and content hashes."""
    h = hashlib.sha256()
    for name in sorted(hashes):
        h.update(f"{name}\0{hashes[name]}\0".encode())
    return h.hexdigest()[:12]


def load_ruleset(cfg: Config, templates: Any = None, catalog: FieldCatalog | None = None
                 ) -> tuple[RuleSet | None, list[Diagnostic]]:
    """Load, check and order every rule of the deployment. The RuleSet is None when there are errors."""
    from engine.rules.checks import cross_rule_checks

    paths, diags = rule_files(cfg)
    docs, more = load_documents(paths)
    diags += more
    windows, more = collect_windows(cfg, docs)
    diags += more
    names = set(cfg.windows) | {n for d in docs if isinstance(d.data.get("windows"), dict) for n in d.data["windows"]}
    vocabulary, more = collect_vocabulary(docs)
    diags += more
    ctx = _Ctx(cfg, windows, names, templates, catalog or outcome_fields(), diags, vocabulary)
    rules: list[Rule] = []
    disabled: list[int] = []
    order = 0
    for doc in docs:
        defaults = _defaults(doc, ctx)
        raw_rules = doc.data.get("rules")
        if not isinstance(raw_rules, list):
            continue
        for i, raw in enumerate(raw_rules):
            if not isinstance(raw, dict):
                continue
            rule = build_rule(doc, i, raw, defaults, ctx, order)
            order += 1
            if rule is None:
                continue
            if raw.get("enabled", True) is False:
                disabled.append(rule.order)
            rules.append(rule)
    off = set(disabled)
    active = sorted((r for r in rules if r.order not in off), key=lambda r: (-r.priority, r.order))
    ctx.diags += cross_rule_checks(rules, active)
    if any(d.is_error for d in ctx.diags):
        return None, ctx.diags
    sources = source_hashes(cfg)
    return RuleSet(rules=tuple(active), windows=windows, version=ruleset_version(sources),
                   files=tuple(display_path(p) for p in paths), sources=sources,
                   disabled=tuple(r.id for r in rules if r.order in off), vocabulary=vocabulary), ctx.diags
