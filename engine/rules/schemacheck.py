"""JSON Schema checks of loaded YAML, turned into located diagnostics with stable codes and suggestions."""
from __future__ import annotations

import re
from typing import Any

from engine.errors import Diagnostic
from engine.rules.suggest import did_you_mean
from engine.rules.yamlpos import Document

_TYPE_NAMES = {"string": "a string", "integer": "a whole number", "number": "a number", "boolean": "true or false",
               "array": "a list", "object": "a mapping", "null": "null"}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return f'"{value}"' if len(value) < 40 else "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _where(path: tuple, data: Any = None) -> str:
    if len(path) >= 2 and path[0] == "rules" and isinstance(path[1], int) and isinstance(data, dict):
        rules = data.get("rules")
        rule = rules[path[1]] if isinstance(rules, list) and path[1] < len(rules) else None
        if isinstance(rule, dict) and isinstance(rule.get("id"), str):
            rest = _where(path[2:])
            return f'rule "{rule["id"]}"' + ("" if rest == "the file" else f" {rest}")
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "the file"


def _code_for(path: tuple, default: str) -> str:
    names = [p for p in path if isinstance(p, str)]
    if (len(names) >= 2 and names[-1] == "days") or (names and names[-1] == "days"):
        return "bad-weekday"
    if names and names[-1] == "version" and len(path) == 1:
        return "bad-version"
    return default


def schema_diagnostics(name: str, doc: Document) -> list[Diagnostic]:
    """Every schema violation in `doc` against schema `name`; fast when the document is valid."""
    from engine.rules.schemas import fast_validator, jsonschema_validator

    try:
        fast_validator(name)(doc.data)
        return []
    except Exception:  # noqa: BLE001, S110 - any failure: run the full validator for the complete, located list
        pass
    out: list[Diagnostic] = []
    for err in jsonschema_validator(name).iter_errors(doc.data):
        out.extend(_convert(err, doc))
    return out


def _convert(err: Any, doc: Document) -> list[Diagnostic]:
    """Diagnostics for a jsonschema ValidationError (typed Any: its attributes are typed as maybe unset, and
    are always set on an error iter_errors gives)."""
    path = tuple(err.absolute_path)
    where = _where(path, doc.data)
    kw = err.validator
    if kw in ("additionalProperties", "unevaluatedProperties") and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        if kw == "unevaluatedProperties":
            allowed |= _evaluated_names(err)
            named = set(re.findall(r"'([^']*)'", err.message))
            extra = [k for k in err.instance if str(k) in named]
        out = [doc.loc(path + (key,), key=True).error(
                   "unknown-key", f'unknown key "{key}" in {where}{did_you_mean(str(key), sorted(allowed))}')
               for key in extra]
        if out:
            return out
    if kw == "required":
        missing = [k for k in err.validator_value if isinstance(err.instance, dict) and k not in err.instance]
        return [doc.loc(path).error("missing-key", f'{where} needs "{k}"') for k in missing]
    loc = doc.loc(path)
    if kw == "uniqueItems" and path and path[-1] == "channels":
        return []  # the loader names the repeated channel (duplicate-channel)
    if kw == "type":
        want = err.validator_value if isinstance(err.validator_value, list) else [err.validator_value]
        names = " or ".join(str(_TYPE_NAMES.get(t, t)) for t in want)
        return [loc.error(_code_for(path, "bad-type"), f"{where} must be {names}, not {_kind(err.instance)}")]
    if kw == "enum":
        options = [str(o) for o in err.validator_value]
        return [loc.error(_code_for(path, "bad-value"),
                          f"{where}: {_kind(err.instance)} is not one of {', '.join(options)}"
                          f"{did_you_mean(str(err.instance), options)}")]
    if kw == "const":
        return [loc.error(_code_for(path, "bad-value"), f"{where} must be {err.validator_value!r}")]
    if kw in ("anyOf", "oneOf"):
        return [loc.error(_code_for(path, "bad-type"), f"{where}: {_kind(err.instance)} is not allowed here ({_summary(err)})")]
    if kw in ("minItems", "minLength", "maxLength", "maxItems", "minimum", "maximum", "exclusiveMinimum",
              "pattern", "uniqueItems", "format", "minProperties"):
        return [loc.error(_code_for(path, "bad-value"), f"{where}: {err.message}")]
    return [loc.error(_code_for(path, "schema"), f"{where}: {err.message}")]


def _summary(err: Any) -> str:
    parts = []
    for sub in err.schema.get(err.validator, []):
        if "type" in sub:
            t = sub["type"]
            parts.append(" or ".join(str(_TYPE_NAMES.get(x, x)) for x in (t if isinstance(t, list) else [t])))
        elif "$ref" in sub:
            parts.append(sub["$ref"].rsplit("/", 1)[-1])
    return "expected " + " or ".join(parts) if parts else err.message


def _evaluated_names(err: Any) -> set:
    names: set = set()
    for key in ("allOf", "anyOf", "oneOf"):
        for sub in err.schema.get(key, []):
            names |= set(sub.get("properties", {}))
            then = sub.get("then", {})
            names |= set(then.get("properties", {}))
    return names
