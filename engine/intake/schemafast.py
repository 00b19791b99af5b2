"""Compiles the JSON Schema subset herald's outcome schema uses into one plain Python predicate (valid: True).

The gate's hot path. fastjsonschema's generated code copies every object's keys into a set and
removes them one by one; this generator reads each property once (a required one as obj[key]: the check's
one `except KeyError` says it is missing), tells an unknown key by counting the properties there against
len(obj), and folds a property's checks into one condition, which makes the check of a typical outcome
about 1.4x cheaper (bench/dryrun.py prints both). It knows only
the keywords below and refuses (`Unsupported`) a schema using any other, so a schema change can
never make it silently lenient: `engine.rules.schemas.fast_check` then falls back to fastjsonschema.
For a value whose strings are known to hold no control character (C0, DEL, C1) nor line or paragraph separator
(the gate knows it from the JSON text), `no_controls=True` leaves out the patterns that ban only those.
Semantics follow JSON Schema 2020-12 as jsonschema implements them; a pattern's `$` means the end of
the text (ECMA-262, as fastjsonschema has it, and as herald's jsonschema validator is told too).
"""
from __future__ import annotations

import re
import re._parser as sre_parse  # type: ignore[import-not-found]  # a character class's items (see _controls_only)
from functools import lru_cache
from typing import Any
from collections.abc import Callable, Mapping

ANNOTATIONS = frozenset({"$schema", "$id", "$comment", "title", "description", "examples", "default",
                         "deprecated", "readOnly", "writeOnly"})
KEYWORDS = frozenset({"type", "required", "properties", "additionalProperties", "minLength", "maxLength",
                      "pattern", "enum", "format", "items"})
# The exact class first (what json.loads makes; no call), isinstance for subclasses.
_TYPES = {
    "object": "({v}.__class__ is dict or isinstance({v}, dict))",
    "array": "({v}.__class__ is list or isinstance({v}, list))",
    "string": "({v}.__class__ is str or isinstance({v}, str))",
    "boolean": "({v} is True or {v} is False)",
    "null": "{v} is None",
    "number": "({v}.__class__ is int or {v}.__class__ is float or "
              "(isinstance({v}, (int, float)) and {v}.__class__ is not bool))",
    "integer": "((isinstance({v}, int) and {v}.__class__ is not bool) or (isinstance({v}, float) and {v}.is_integer()))",
}


@lru_cache(maxsize=256)
def ecma_regex(pattern: str) -> re.Pattern:
    """A schema `pattern` compiled for re.search, with a final `$` meaning the end of the text as in
    ECMA-262 (Python's `$` also matches before a final newline)."""
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


_ONLY_ALLOWED = re.compile(r"\^\[\^((?:[^\]\\\[]|\\.)+)\]\*\$")


def _banned_class(pattern: str) -> re.Pattern | None:
    """For a pattern `^[^C]*$` (only characters outside the class C, e.g. no control characters), the class
    C itself: the text matches the pattern exactly when a search for C finds nothing."""
    m = _ONLY_ALLOWED.fullmatch(pattern)
    return re.compile(f"[{m.group(1)}]") if m else None


# What a caller of the no_controls check vouches that no string holds: the C0 controls, DEL, the C1 controls, the
# line and paragraph separators. All of them unprintable (a text of printable characters holds none), and the
# gate proves their absence from a text's UTF-8 bytes in a few byte scans (gate._problem_utf8).
CONTROLS = frozenset([*range(0x20), *range(0x7F, 0xA0), 0x2028, 0x2029])


def _controls_only(banned: re.Pattern) -> bool:
    """Whether every character the class `banned` matches is one of CONTROLS: a text without them then never
    holds one. False for a class of any other form than characters and ranges (categories, negations): such a
    pattern is always checked."""
    try:
        ((op, items),) = sre_parse.parse(banned.pattern)
    except (ValueError, re.error):
        return False
    if op is not sre_parse.IN:
        return False
    for kind, value in items:
        if kind is sre_parse.LITERAL:
            lo = hi = value
        elif kind is sre_parse.RANGE:
            lo, hi = value
        else:
            return False
        if any(c not in CONTROLS for c in range(lo, hi + 1)):
            return False
    return True


class Unsupported(ValueError):
    """The schema uses a keyword (or a form of one) this compiler does not implement."""


class _Gen:
    def __init__(self, formats: Mapping[str, Callable[[str], Any]], no_controls: bool = False):
        self.formats = formats
        self.no_controls = no_controls
        self.lines: list[str] = []
        self.scope: dict[str, Any] = {}
        self.n = 0

    def name(self, prefix: str, value: Any = None) -> str:
        self.n += 1
        name = f"{prefix}{self.n}"
        if value is not None:
            self.scope[name] = value
        return name

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def node(self, schema: Any, v: str, depth: int, guard: str = "") -> None:
        """Code that returns False unless the value in variable `v` satisfies `schema` (checked only
        where `guard`, a Python condition, holds)."""
        if schema is True or schema == {}:
            return
        if schema is False:
            self.emit(depth, f"if {guard}:" if guard else "if True:")
            self.emit(depth + 1, "return False")
            return
        if not isinstance(schema, dict):
            raise Unsupported(f"a schema must be an object or a boolean, not {schema!r}")
        unknown = set(schema) - KEYWORDS - ANNOTATIONS
        if unknown:
            raise Unsupported(f"keywords not supported: {sorted(unknown)}")
        fails: list[str] = []  # conditions, each meaning "invalid", tried in order
        types = schema.get("type")
        if types is not None:
            types = [types] if isinstance(types, str) else list(types)
            if not types or any(t not in _TYPES for t in types):
                raise Unsupported(f"type {schema['type']!r}")
            fails.append("not (" + " or ".join(_TYPES[t].format(v=v) for t in types) + ")")
        only = types[0] if types and len(types) == 1 else None
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list) or not values or not all(isinstance(x, str) for x in values):
                raise Unsupported("enum of anything but text")
            allowed = self.name("E", frozenset(values))
            fails.append(f"not {_TYPES['string'].format(v=v)} or {v} not in {allowed}")
        text = self.string(schema, v)
        if text:
            fails.append(" or ".join(text) if only == "string" else f"(isinstance({v}, str) and ({' or '.join(text)}))")
        if fails:
            cond = " or ".join(fails)
            self.emit(depth, f"if {guard} and ({cond}):" if guard else f"if {cond}:")
            self.emit(depth + 1, "return False")
        for kind, body in (("object", self.obj), ("array", self.items)):
            sure = only == kind  # the type check above already returned for anything else
            test = "" if sure else _TYPES[kind].format(v=v)
            cond = " and ".join(c for c in (guard, test) if c)
            self.emit(depth, f"if {cond}:" if cond else "if True:")
            mark = len(self.lines)
            body(schema, v, depth + 1)
            if len(self.lines) == mark:
                self.lines.pop()

    def string(self, schema: dict, v: str) -> list[str]:
        checks = []
        lo, hi = schema.get("minLength"), schema.get("maxLength")
        for bound in (lo, hi):
            if bound is not None and (not isinstance(bound, int) or isinstance(bound, bool) or bound < 0):
                raise Unsupported(f"length bound {bound!r}")
        if lo and hi is not None:
            checks.append(f"not {lo} <= len({v}) <= {hi}")  # one len() call
        elif lo:
            checks.append(f"len({v}) < {lo}")
        elif hi is not None:
            checks.append(f"len({v}) > {hi}")
        if "pattern" in schema:
            pattern = schema["pattern"]
            if not isinstance(pattern, str):
                raise Unsupported(f"pattern {pattern!r}")
            banned = _banned_class(pattern)
            if banned is not None and self.no_controls and _controls_only(banned):
                pass  # only CONTROLS banned, and the caller vouches that the text has none
            elif banned is not None:  # `^[^...]*$`: one scan for a banned character, no backtracking
                rx = self.name("R", banned.search)
                checks.append(f"{rx}({v}) is not None")
            else:
                rx = self.name("R", ecma_regex(pattern).search)
                checks.append(f"{rx}({v}) is None")
        if "format" in schema:
            fmt = schema["format"]
            if fmt not in self.formats:
                raise Unsupported(f"format {fmt!r}")
            fn = self.name("F", self.formats[fmt])
            checks.append(f"not {fn}({v})")
        return checks

    def items(self, schema: dict, v: str, depth: int) -> None:
        if "items" not in schema:
            return
        item = self.name("i")
        self.emit(depth, f"for {item} in {v}:")
        mark = len(self.lines)
        self.node(schema["items"], item, depth + 1)
        if len(self.lines) == mark:
            self.lines.pop()

    def obj(self, schema: dict, v: str, depth: int) -> None:
        props = schema.get("properties", {})
        required = schema.get("required", [])
        extra = schema.get("additionalProperties", True)
        if not isinstance(props, dict) or not isinstance(required, list):
            raise Unsupported("properties / required of the wrong shape")
        if extra is not True and extra is not False:
            raise Unsupported("additionalProperties as a schema")
        required = list(dict.fromkeys(required))
        unread = [k for k in required if k not in props]  # required, but no property reads it
        plain = extra is False and bool(props) and not required and all(map(self.plain_string, props.values()))
        # no other key: counted where every property is read (a required one read as v[key]: check's `except
        # KeyError` answers False when it is not there), instead of a set comparison over the object's keys
        counted = extra is False and not plain and not unread
        keys = []
        if unread:
            keys.append(f"not {self.name('Q', frozenset(unread))} <= {v}.keys()")
        if extra is False and not counted:
            keys.append(f"not {v}.keys() <= {self.name('K', frozenset(props))}")
        if keys:
            self.emit(depth, f"if {' or '.join(keys)}:")
            self.emit(depth + 1, "return False")
        if plain:
            # every property only a string, and no other key: an object whose values are all exact str passes;
            # the property checks below run (and decide) at the first value that is not one
            item = self.name("s")
            self.emit(depth, f"for {item} in {v}.values():")
            self.emit(depth + 1, f"if {item}.__class__ is not str:")
            depth += 2
        optional = []
        for key, sub in props.items():
            child = self.name("v")
            there = key in required
            self.emit(depth, f"{child} = {v}[{key!r}]" if there else f"{child} = {v}.get({key!r}, _ABSENT)")
            mark = len(self.lines)
            self.node(sub, child, depth, guard="" if there else f"{child} is not _ABSENT")
            if not there:
                optional.append(child)
            if len(self.lines) == mark and not there and not counted:  # nothing to check under this key
                self.lines.pop()
        if plain:
            self.emit(depth, "break")
        if counted:  # every key a property: as many keys as properties there
            absent = f" + ({', '.join(optional)},).count(_ABSENT)" if optional else ""
            self.emit(depth, f"if len({v}){absent} != {len(props)}:")
            self.emit(depth + 1, "return False")

    def plain_string(self, schema: Any) -> bool:
        """Whether `schema` checks nothing but a string type here: no length, enum, format, or a pattern the
        no_controls variant leaves out."""
        if not isinstance(schema, dict) or schema.get("type") != "string":
            return False
        rest = set(schema) - ANNOTATIONS - {"type"}
        if rest == {"pattern"} and self.no_controls and isinstance(schema["pattern"], str):
            banned = _banned_class(schema["pattern"])
            return banned is not None and _controls_only(banned)
        return not rest


def compile_check(schema: Any, formats: Mapping[str, Callable[[str], Any]] | None = None,
                  no_controls: bool = False) -> Callable[[Any], bool]:
    """A predicate: True when `schema` accepts the value. Raises Unsupported for keywords it does not know.

    `formats` maps a format name to a function of the text whose truth is the verdict. `no_controls`: the
    check for values whose strings hold none of CONTROLS (e.g. strings of printable characters; the gate knows
    it from the text a record was decoded from): a pattern `^[^C]*$` whose class C holds only characters of
    CONTROLS cannot fail there and is left out."""
    gen = _Gen(formats or {}, no_controls)
    gen.emit(0, "def check(d):")
    gen.emit(1, "try:")
    gen.node(schema, "d", 2)
    if gen.lines[-1] == "    try:":  # (a schema that accepts anything)
        gen.emit(2, "pass")
    gen.emit(1, "except KeyError:  # a required property is not there (read as d[key])")
    gen.emit(2, "return False")
    gen.emit(1, "return True")
    scope = dict(gen.scope, _ABSENT=object())
    source = "\n".join(gen.lines) + "\n"
    exec(compile(source, "<herald-schema-check>", "exec"), scope)  # noqa: S102 - generated from the schema
    check = scope["check"]
    check.source = source
    return check


_NO_FORMATS: dict[str, Callable[[str], Any]] = {}
_NODE_CHECKS: dict[int, tuple[Any, Any, Callable[[Any], bool], Callable[[Any], bool]]] = {}


def _node_checks(schema: Any, formats: Mapping[str, Callable[[str], Any]]) -> tuple[Callable[[Any], bool],
                                                                                 Callable[[Any], bool]]:
    """(the whole check of `schema`, the check of its own keywords only: each property's and item's schema
    taken as true), compiled once per schema object and formats (the entry holds both, so their ids stay theirs)."""
    got = _NODE_CHECKS.get(id(schema))
    if got is None or got[0] is not schema or got[1] is not formats:
        own = schema
        if isinstance(schema, dict):
            own = {k: v for k, v in schema.items() if k != "items"}
            if isinstance(schema.get("properties"), dict):
                own["properties"] = dict.fromkeys(schema["properties"], True)
        if len(_NODE_CHECKS) >= 1024:
            _NODE_CHECKS.clear()
        got = _NODE_CHECKS[id(schema)] = (schema, formats, compile_check(schema, formats), compile_check(own, formats))
    return got[2], got[3]


def violations(schema: Any, value: Any, formats: Mapping[str, Callable[[str], Any]] | None = None,
               path: tuple = ()) -> list[tuple[tuple, Any, Any]]:
    """Where `value` breaks `schema`: (path, subschema, the value there) of every node whose own keywords
    fail (type, enum, lengths, pattern, format, required and unknown keys), in document order; a subtree the
    compiled check accepts is not entered. Raises Unsupported as compile_check does."""
    whole, own = _node_checks(schema, formats if formats is not None else _NO_FORMATS)
    if whole(value):
        return []
    out = [] if own(value) else [(path, schema, value)]
    if not isinstance(schema, dict):
        return out
    props = schema.get("properties")
    if isinstance(props, dict) and isinstance(value, dict):
        for key, sub in props.items():
            if key in value:
                out += violations(sub, value[key], formats, (*path, key))
    if "items" in schema and isinstance(value, list):
        for i, item in enumerate(value):
            out += violations(schema["items"], item, formats, (*path, i))
    return out
