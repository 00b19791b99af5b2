"""The shipped JSON Schemas: loading them, compiled validators, and the catalog of outcome field paths."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterator

if TYPE_CHECKING:
    from jsonschema.protocols import Validator

from engine.rules.suggest import closest

SCHEMA_NAMES = ("rules", "outcome", "config")

# Variables herald adds to a template's context beside the outcome's own fields.
TEMPLATE_EXTRAS: dict[str, Any] = {
    "company": {"name": "示例科技", "website": "https://www.example.com", "contact": "hr@example.com"},
    "links": {"rating": "https://herald.example/r/SAMPLE", "unsubscribe": "https://herald.example/u/SAMPLE"},
    "channel": "email",
    # the revision an amended outcome replaces (engine.pipeline.previous_view); undefined on a first revision
    "previous": {"decision": "pass", "stage": "first_round", "role": "backend", "reason": None, "rev": 1,
                 "sent_at": "2026-11-20T10:00:00+08:00", "channel": "email"},
}


@cache
def schema(name: str) -> dict:
    """The parsed schema `name` (rules, outcome, config)."""
    if name not in SCHEMA_NAMES:
        raise KeyError(name)
    text = resources.files("herald_schemas").joinpath(f"{name}.schema.json").read_text("utf-8")
    return json.loads(text)


@cache
def jsonschema_validator(name: str) -> Validator:
    """A jsonschema Draft 2020-12 validator (full error lists, paths)."""
    from jsonschema import Draft202012Validator, FormatChecker, validators
    from jsonschema.exceptions import ValidationError

    from engine.intake.schemafast import ecma_regex
    from engine.schedule.timing import parse_instant

    def pattern(validator: Validator, patrn: str, instance: Any, _schema: Any) -> Iterator[ValidationError]:
        # `$` as ECMA-262 has it, like the fast checks
        if validator.is_type(instance, "string") and ecma_regex(patrn).search(instance) is None:
            yield ValidationError(f"{instance!r} does not match {patrn!r}")

    checker = FormatChecker()
    checker.checks("date-time")(lambda s: not isinstance(s, str) or parse_instant(s) is not None)
    validator = validators.extend(Draft202012Validator, {"pattern": pattern})
    return validator(schema(name), format_checker=checker)


@cache
def fast_validator(name: str) -> Callable[[Any], Any]:
    """A fastjsonschema-compiled check: raises on the first problem; the fast path for valid input."""
    import fastjsonschema

    from engine.schedule.timing import parse_instant

    # a real date and time with an offset (the pattern alone lets 2026-02-30 through)
    return fastjsonschema.compile(schema(name), formats={"date-time": lambda s: parse_instant(s) is not None})


@cache
def check_formats() -> dict[str, Callable[[str], Any]]:
    """The `format` checks of herald's compiled checks (one object, so caches keyed on it hit): a date-time is
    what herald's instant parser reads (the parsed instant, always true, or None)."""
    from engine.schedule.timing import parse_instant_text

    return {"date-time": parse_instant_text}


@cache
def fast_check(name: str, no_controls: bool = False) -> Callable[[Any], bool]:
    """A predicate, True when the schema accepts a value: herald's own compiled check (engine.intake.schemafast)
    where the schema keeps to the keywords it knows, else fastjsonschema's validator. `no_controls`: for values
    whose strings hold no control character (see compile_check), which may skip what cannot fail on them."""
    from engine.intake.schemafast import Unsupported, compile_check

    try:
        return compile_check(schema(name), check_formats(), no_controls)
    except Unsupported:
        validate = fast_validator(name)

        def check(value: Any) -> bool:
            try:
                validate(value)
            except Exception:  # noqa: BLE001 - JsonSchemaException, or anything odd in the input
                return False
            return True
        return check


@dataclass(frozen=True)
class FieldCatalog:
    """Known dotted field paths; under a `free` prefix anything goes (e.g. attributes.*)."""

    paths: frozenset
    free: frozenset

    def knows(self, path: str) -> bool:
        if path in self.paths:
            return True
        return any(path.startswith(prefix + ".") for prefix in self.free)

    def suggest(self, path: str) -> str | None:
        return closest(path, sorted(self.paths))

    def leaves(self) -> list:
        """Paths that are not parents of other paths."""
        return sorted(p for p in self.paths if not any(q.startswith(p + ".") for q in self.paths))


def _walk(node: dict, prefix: str, paths: set, free: set) -> None:
    for key, sub in node.get("properties", {}).items():
        path = f"{prefix}{key}"
        paths.add(path)
        if sub.get("type") == "object":
            if "properties" in sub:
                _walk(sub, path + ".", paths, free)
            if sub.get("additionalProperties", True) is not False:
                free.add(path)


@cache
def outcome_fields() -> FieldCatalog:
    """Field paths an outcome may have, read from outcome.schema.json."""
    paths: set = set()
    free: set = set()
    _walk(schema("outcome"), "", paths, free)
    return FieldCatalog(frozenset(paths), frozenset(free))


@cache
def template_fields() -> FieldCatalog:
    """What a template may use: the outcome's fields and herald's extras (company, links, channel)."""
    base = outcome_fields()
    extra: set = set()
    for key, value in TEMPLATE_EXTRAS.items():
        extra.add(key)
        if isinstance(value, dict):
            extra.update(f"{key}.{k}" for k in value)
    return FieldCatalog(base.paths | frozenset(extra), base.free)


def _example(node: dict) -> Any:
    if "examples" in node:
        return copy.deepcopy(node["examples"][0])
    if node.get("type") == "object":
        return {k: _example(v) for k, v in node.get("properties", {}).items()}
    if "enum" in node:
        return node["enum"][0]
    return None


@cache
def _sample() -> dict:
    out = {k: _example(v) for k, v in schema("outcome")["properties"].items()}
    out["approved"] = True
    return out


def sample_outcome(**overrides: Any) -> dict:
    """A complete, valid outcome built from the schema's examples; top-level fields overridable."""
    out = copy.deepcopy(_sample())
    out.update(overrides)
    return out
