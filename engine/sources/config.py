"""The `sources:` section of herald.yaml: each source's kind, secret (from the environment), approval and `map:`.

Problems are located diagnostics (file:line:column), with "did you mean" for kinds and outcome fields:
unknown kind, missing or unset secret, a literal secret in the file, a path that does not parse, a field an
outcome does not have, a decision outside pass/reject/offer/hold. `check_vocabulary` compares the codes a
`values:` mapping (or `default:`) produces with the rule set's `vocabulary:` (`ruleset.vocabulary`, judged
by engine/rules/vocabulary.py) or, without one, with the values the rules match on, each located at its own
entry with did-you-mean, so a typo in a mapping is found by `herald validate` before the first event arrives.
"""
from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field as dc_field
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping

from engine.errors import Diagnostic, Loc
from engine.rules.suggest import did_you_mean
from engine.sources.paths import PathError, parse_path

if TYPE_CHECKING:
    from engine.model import RuleSet
    from engine.rules.yamlpos import Document

Locate = Callable[..., Loc]  # loc(*path, key=False): where a part of `sources:` is in herald.yaml

APPROVE = ("auto", "manual")
DECISIONS = ("pass", "reject", "offer", "hold")
NOT_MAPPABLE = frozenset({"id", "approved"})
VOCABULARY_FIELDS = ("stage", "role", "reason")
SECRET_SETTINGS = ("api_key", "app_secret", "verification_token")  # taken from the environment, like `secret`
REQUIRED_SETTINGS = {"lever": (("api_key", "Lever's events carry ids only"),),
                     "feishu": (("verification_token", "it proves Feishu's URL verification"),
                                ("app_id", "Feishu's events carry ids only: details come from the Hire API"),
                                ("app_secret", "Feishu's events carry ids only: details come from the Hire API"))}
_UNSET = object()


@dataclass(frozen=True)
class FieldMap:
    """One outcome field's origin: a parsed path into the event, translations, and a default."""

    field: str
    path: tuple
    path_text: str
    values: Mapping[str, Any] | None = None
    default: Any = None
    has_default: bool = False
    loc: Loc | None = dc_field(default=None, compare=False)
    value_locs: Mapping[str, Loc] = dc_field(default_factory=dict, compare=False, repr=False)  # values: key, "default"

    def produced(self) -> list[tuple[str, Any]]:
        """(where, code) for every value this mapping can produce: its `values:` entries, then its default."""
        return list((self.values or {}).items()) + ([("default", self.default)] if self.has_default else [])


@dataclass(frozen=True)
class SourceConfig:
    """One configured source (`POST /v1/sources/<name>`)."""

    name: str
    kind: str
    secret: str = dc_field(repr=False, default="")
    approve: str = "auto"
    maps: tuple = ()  # (FieldMap, ...)
    settings: Mapping[str, Any] = dc_field(default_factory=dict, repr=False)  # kind-specific (api_key: a secret)
    loc: Loc | None = dc_field(default=None, compare=False)

    def setting_path(self, key: str) -> tuple | None:
        raw = self.settings.get(key)
        try:
            return parse_path(raw) if isinstance(raw, str) else None
        except PathError:
            return None


def _mappable_fields() -> list[str]:
    from engine.rules.schemas import outcome_fields

    return [p for p in outcome_fields().leaves() if p not in NOT_MAPPABLE]


def _field_known(name: str) -> bool:
    from engine.rules.schemas import outcome_fields

    catalog = outcome_fields()
    return name not in NOT_MAPPABLE and catalog.knows(name) and (name in _mappable_fields() or
                                                                   any(name.startswith(f + ".") for f in catalog.free))


def load_sources(raw: Any, doc: Document | None, env: Mapping[str, str]) -> tuple[dict[str, SourceConfig], list[Diagnostic]]:
    """The `sources:` mapping to SourceConfigs (only the usable ones) and every problem, located."""
    from engine.config.settings import expand_env, literal_secret
    from engine.sources import KIND_NAMES

    diags: list[Diagnostic] = []
    out: dict[str, SourceConfig] = {}
    if not isinstance(raw, dict):
        return out, diags

    def loc(*path: Any, key: bool = False) -> Loc:
        return doc.loc(("sources",) + path, key=key) if doc is not None else Loc("herald.yaml", 1, 1)

    for name, spec in raw.items():
        if not isinstance(spec, dict):
            continue  # the schema check names it
        where = f"source {name}"
        ok = True
        if not isinstance(name, str) or not name or "/" in name or len(name) > 64:
            diags.append(loc(name, key=True).error("bad-source", f"{where}: a source name is 1-64 characters "
                                                                 "without '/' (it is part of the URL)"))
            continue
        kind = spec.get("kind")
        if kind not in KIND_NAMES:
            if isinstance(kind, str):
                diags.append(loc(name, "kind").error(
                    "unknown-kind", f'{where}: unknown kind "{kind}"{did_you_mean(kind, KIND_NAMES)} '
                                    f"(known: {', '.join(KIND_NAMES)})"))
            ok = False
        secret_raw = spec.get("secret")
        missing: list = []
        secret = expand_env(secret_raw, env, missing) if isinstance(secret_raw, str) else ""
        for var in missing:
            diags.append(loc(name, "secret").error(
                "unset-env", f"{where}: secret: environment variable {var} is not set (events would all get 401)"))
            ok = False
        if isinstance(secret_raw, str) and not missing and not secret:
            diags.append(loc(name, "secret").error("empty-secret", f"{where}: the secret is empty"))
            ok = False
        if literal_secret(secret_raw):
            diags.append(loc(name, "secret").warning(
                "literal-secret", f'{where}: "secret" is written in the file; write "${{ENV_VAR}}" and set it in '
                                  "the environment"))
        approve = spec.get("approve", "auto")
        maps, more = _field_maps(name, spec.get("map"), loc)
        diags += more
        ok = ok and not any(d.is_error for d in more)
        settings = {}
        for k, v in spec.items():
            if k in ("kind", "secret", "approve", "map"):
                continue
            unset: list = []
            settings[k] = expand_env(v, env, unset)
            diags.extend(loc(name, k).error("unset-env", f"{where}: {k}: environment variable {var} is not set")
                         for var in unset)
            ok = ok and not unset
            if k in SECRET_SETTINGS and literal_secret(v):
                diags.append(loc(name, k).warning(
                    "literal-secret", f'{where}: "{k}" is written in the file; write "${{ENV_VAR}}" and set it '
                                      "in the environment"))
        for needed, why in REQUIRED_SETTINGS.get(str(kind), ()):
            if not settings.get(needed):
                diags.append(loc(name, key=True).error(
                    "missing-setting", f"{where}: a {kind} source needs `{needed}` ({why})"))
                ok = False
        for key in ("event_id", "application_id"):
            if isinstance(settings.get(key), str):
                try:
                    parse_path(settings[key])
                except PathError as e:
                    diags.append(loc(name, key).error("bad-path", f"{where}: {key}: {e}"))
                    ok = False
        if kind == "generic":
            more = _generic_checks(name, spec, maps, loc)
            diags += more
            ok = ok and not more
        if ok and approve in APPROVE:
            out[name] = SourceConfig(name, str(kind), secret, approve, tuple(maps), settings, loc(name, key=True))
    return out, diags


def _generic_checks(name: str, spec: dict, maps: list[FieldMap], loc: Locate) -> list[Diagnostic]:
    diags = [loc(name, key=True).error("missing-setting", f"source {name}: a generic source needs `{key}`")
             for key in ("signature_header", "application_id")
             if not isinstance(spec.get(key), str) or not spec.get(key)]
    mapped = {fm.field for fm in maps}
    diags.extend(loc(name, "map", key=True).error(
        "missing-mapping", f"source {name}: a generic source maps every field: `{needed}` is missing")
        for needed in ("decision", "candidate.name") if needed not in mapped)
    return diags


def _field_maps(name: str, raw: Any, loc: Locate) -> tuple[list[FieldMap], list[Diagnostic]]:
    diags: list[Diagnostic] = []
    maps: list[FieldMap] = []
    if not isinstance(raw, dict):
        return maps, diags
    for target, spec in raw.items():
        where = f"source {name}: map.{target}"
        if not isinstance(target, str) or not _field_known(target):
            diags.append(loc(name, "map", target, key=True).error(
                "unknown-field", f"{where}: an outcome has no field {target!r}"
                                 f"{did_you_mean(str(target), _mappable_fields())}"))
            continue
        if not isinstance(spec, dict):
            continue  # the schema check names it
        path_text = spec.get("from")
        path: tuple = ()
        if isinstance(path_text, str):
            try:
                path = parse_path(path_text)
            except PathError as e:
                diags.append(loc(name, "map", target, "from").error("bad-path", f"{where}: from: {e}"))
                continue
        elif "default" not in spec:
            diags.append(loc(name, "map", target, key=True).error(
                "missing-from", f"{where}: needs `from` (a path into the event) or a `default`"))
            continue
        values = spec.get("values")
        if values is not None and not isinstance(values, dict):
            continue  # the schema check names it
        value_locs = {}
        if values is not None:
            value_locs = {_yaml_key(k): loc(name, "map", target, "values", k) for k in values}
            values = {_yaml_key(k): v for k, v in values.items()}
        if "default" in spec:
            value_locs["default"] = loc(name, "map", target, "default")
        fm = FieldMap(target, path, path_text or "", values, spec.get("default"), "default" in spec,
                      loc(name, "map", target), value_locs)
        if target == "decision":
            bad = [(k, v) for k, v in fm.produced() if v not in DECISIONS]
            for k, v in bad:
                diags.append(value_locs[k].error("bad-decision", f"{where}: {v!r} is not a decision"
                                                 f"{did_you_mean(str(v), DECISIONS)} (one of {', '.join(DECISIONS)})"))
            if bad:
                continue
        maps.append(fm)
    return maps, diags


def _yaml_key(key: Any) -> str:
    if isinstance(key, bool):
        return "true" if key else "false"
    return str(key)


def rule_values(ruleset: RuleSet) -> dict[str, set]:
    """The values the rules match on per field (stage, role, reason): what a mapping is compared with when the
    rule set declares no `vocabulary:`."""
    known: dict[str, set] = {}
    for rule in getattr(ruleset, "rules", ()):
        for path, values in rule.match:
            if path in VOCABULARY_FIELDS:
                known.setdefault(path, set()).update(str(v) for v in values)
    return known


def check_vocabulary(sources: Mapping[str, SourceConfig], ruleset: RuleSet | None) -> list[Diagnostic]:
    """Codes a mapping produces that the rule set does not know, each located at its `values:` entry (or
    `default:`), with did-you-mean: errors against a declared `vocabulary:` (the rule set's own verdict:
    locales cover their children, `attributes.KEY` must be a declared key), else warnings against the values
    the rules match on (a catch-all rule may still take them)."""
    if ruleset is None:
        return []
    vocab = getattr(ruleset, "vocabulary", None)
    diags: list[Diagnostic] = []
    for src in sources.values():
        for fm in src.maps:
            where = f"source {src.name}: map.{fm.field}"
            if vocab:
                field_problem = vocab.problem(fm.field, None)  # an attribute key outside the vocabulary
                problems = [("", field_problem)] if field_problem else \
                    [(k, vocab.problem(fm.field, v)) for k, v in fm.produced() if v is not None]
                for k, problem in problems:
                    if problem:
                        at = fm.value_locs.get(k) or fm.loc or Loc("herald.yaml", 1, 1)
                        diags.append(at.error("unknown-value", f"{where}: {problem}"))
                continue
            known = rule_values(ruleset).get(fm.field) or set()
            for k, value in fm.produced() if known else ():
                if isinstance(value, str) and value not in known:
                    at = fm.value_locs.get(k) or fm.loc or Loc("herald.yaml", 1, 1)
                    diags.append(at.warning("unknown-value", f"{where}: {value!r} is not in the values the rules "
                                                             f"match on{did_you_mean(value, sorted(known))}"))
    return diags
