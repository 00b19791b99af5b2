"""The gate: the one verdict on each input (decoded by engine.intake.decode): schema (validator compiled once),
lone surrogates, dedup by id, held when not approved. dry-run, `herald test`, ingest, post and HTTP all judge here."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from engine.intake.decode import JITER, Item, _decode_exactly, jiter_json, parse_text
from engine.rules.schemas import check_formats, fast_check, jsonschema_validator, schema
from engine.safetext import SINGLE_LINE_PATTERN, TEXT_PATTERNS, escape_controls, first_control
from engine.schedule.timing import check_timezone, load_timezone
from engine.model import quick_init

_FORMATS = check_formats()  # as fast_check compiles them

OK = "ok"
INVALID = "invalid"
DUPLICATE = "duplicate"
AMENDED = "amended"
HELD = "held"


@quick_init
@dataclass(frozen=True)
class GateResult:
    """The gate's verdict on one input: ok, invalid (with the field named), duplicate, amended (with the
    earlier revision in `previous`) or held."""

    status: str
    outcome: dict | None = None
    outcome_id: str | None = None
    error: str | None = None
    field: str | None = None
    previous: dict | None = None


# id(subschema) -> (the subschema, the outcome validator, that validator for the subschema); the outcome schema
# is loaded once (schemas.schema is cached), so this holds one entry per node of it
_NODE_VALIDATORS: dict[int, tuple[Any, Any, Any]] = {}


def _best_error(record: Any) -> tuple[Any, list]:
    """jsonschema's best_match over the outcome schema's errors for `record` (a ValidationError, or None), and
    its path from the record.

    jsonschema walks the whole record (a fraction of a millisecond); when the compiled checks find one node
    whose own keywords fail (schemafast.violations: the usual bad record), every error is that node's, and
    jsonschema is asked about that node alone: the same errors in the same order, so the same best match."""
    from jsonschema.exceptions import best_match

    from engine.intake.schemafast import Unsupported, violations

    validator = jsonschema_validator("outcome")
    try:
        nodes = violations(schema("outcome"), record, _FORMATS)
    except Unsupported:
        nodes = []
    if len(nodes) == 1:
        where, sub, value = nodes[0]
        kept = _NODE_VALIDATORS.get(id(sub))
        if kept is None or kept[0] is not sub or kept[1] is not validator:
            kept = _NODE_VALIDATORS[id(sub)] = (sub, validator, validator.evolve(schema=sub))
        err = best_match(kept[2].iter_errors(value))
        if err is not None:  # (always: the node fails)
            return err, [*where, *err.absolute_path]
    err = best_match(validator.iter_errors(record))
    return err, list(err.absolute_path) if err is not None else []


def field_error(record: Any) -> tuple[str, str]:
    """(field path, message) for the most relevant schema violation of `record`."""
    err, at = _best_error(record)
    if err is None:
        return "", "invalid outcome"
    path = ".".join(str(p) for p in at)
    if err.validator == "required":
        missing = [k for k in err.validator_value if isinstance(err.instance, dict) and k not in err.instance]
        name = ".".join(filter(None, [path, missing[0] if missing else ""]))
        return name, f"{name} is required"
    if err.validator == "additionalProperties" and isinstance(err.instance, dict):
        allowed = set(err.schema.get("properties", {}))
        extra = [k for k in err.instance if k not in allowed]
        name = ".".join(filter(None, [path, str(extra[0]) if extra else ""]))
        return name, f"{name} is not an outcome field"
    if err.validator == "pattern" and err.validator_value in TEXT_PATTERNS and isinstance(err.instance, str):
        bad = first_control(err.instance, keep_newlines=err.validator_value != SINGLE_LINE_PATTERN)
        return path, f"{path}: control character {escape_controls(err.instance[bad])} at position {bad + 1} is refused"
    return path or "(record)", f"{path or 'record'}: {_short(escape_controls(err.message))}"


def _short(message: str) -> str:
    return message if len(message) <= 160 else message[:157] + "..."


MAX_ATTRIBUTE_DEPTH = 16  # levels of lists and mappings `attributes` may nest (it is the one free-form field)


def _deeper_than(value: Any, limit: int) -> bool:
    """True when `value` nests lists and mappings more than `limit` levels deep (no recursion: any depth is safe)."""
    stack = [(value, 1)]
    while stack:
        v, depth = stack.pop()
        if v.__class__ is dict:
            children: Any = v.values()
        elif v.__class__ is list:
            children = v
        else:
            continue
        if depth > limit:
            return True
        stack.extend((c, depth + 1) for c in children)
    return False


# candidate.timezone values load_timezone found (a str, as the check let through): not asked again
_ZONES: set[str] = set()
_ZONES_LIMIT = 4096
_CHECKS: dict[bool, Callable[[Any], bool]] = {}  # no_controls -> fast_check("outcome", no_controls), looked up once


def _schema_verdict(record: Any, no_controls: bool) -> GateResult:
    """Schema check of one parsed record; fast when valid, names the field when not. `no_controls`: no string of
    the record holds a control character or line separator (schemafast.CONTROLS; e.g. all are printable)."""
    return _schema_problem(record, no_controls) or GateResult(OK, record, record["id"])


def _schema_problem(record: Any, no_controls: bool) -> GateResult | None:
    """_schema_verdict when it is not ok; None when it is (no value made for the usual verdict)."""
    check = _CHECKS.get(no_controls) or _CHECKS.setdefault(no_controls, fast_check("outcome", no_controls))
    if check(record):  # compiled once, then one call
        attributes = record.get("attributes")
        if attributes:
            # only a list or a mapping can nest at all (the usual attributes are flat; this loop, here, is cheaper
            # than _deeper_than's walk, or than a call of a function holding it: measured)
            for v in attributes.values():
                if v.__class__ is dict or v.__class__ is list:
                    if _deeper_than(attributes, MAX_ATTRIBUTE_DEPTH):
                        return GateResult(INVALID, None, record["id"],
                                          f"attributes: nested more than {MAX_ATTRIBUTE_DEPTH} levels deep", "attributes")
                    break
        tz = record["candidate"].get("timezone")
        if tz is not None and tz not in _ZONES:  # never silently replaced by the rule's zone
            if load_timezone(tz) is None:
                return GateResult(INVALID, None, record["id"], f"candidate.timezone: {check_timezone(tz)}",
                                  "candidate.timezone")
            if len(_ZONES) < _ZONES_LIMIT:
                _ZONES.add(tz)
        return None
    field, message = field_error(record)
    rid = record.get("id") if isinstance(record, dict) and isinstance(record.get("id"), str) else None
    return GateResult(INVALID, None, rid, message, field)


# a lone surrogate in a JSON text: a `\u` escape, or (a Python str, herald used as a library) the character itself
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")
# U+0080-U+009F (the C1 controls), U+2028 and U+2029 in UTF-8 (in valid UTF-8, 0xc2 and 0xe2 only ever lead)
_C1_OR_SEPARATOR = re.compile(rb"\xc2[\x80-\x9f]|\xe2\x80[\xa8\xa9]")
_LONE_SURROGATE = "a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)"


def _has_lone_surrogate(value: Any) -> bool:
    """Whether a string of `value` (a key or a value, at any depth) holds a surrogate: UTF-8 cannot encode one."""
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def check_record(record: Any, printable: bool = False) -> GateResult:
    """The gate's verdict on a record given as a value (Pipeline.run_records, Gate.record: herald as a library):
    the schema, then lone surrogates, as judge gives it on a JSON text. `printable`: every string of the record is
    known to be made of printable characters (then it holds no surrogate either): the compiled check for such
    records, which skips the patterns that only refuse control characters."""
    result = _schema_verdict(record, printable)
    if result.status == OK and not printable and _has_lone_surrogate(record):
        return GateResult(INVALID, None, result.outcome_id, _LONE_SURROGATE, "")
    return result


def judge(item: Item) -> GateResult:
    """The stateless verdict on one decoded input: invalid (with why and the field) or ok."""
    record, problem = judged_item(item)
    return problem or GateResult(OK, record, record["id"])


def judged_item(item: Item) -> tuple[Any, GateResult | None]:
    """judge without the usual verdict's value: (the record, None) when it is ok, else (whatever was decoded, the
    verdict); Pipeline.run_items goes on with the record itself (as judged_text for run_lines)."""
    if item.error is not None:
        return None, GateResult(INVALID, None, None, item.error, "")
    record, raw = item.record, item.raw
    if raw.__class__ is bytes and 92 not in raw:  # UTF-8 (it decoded) without a backslash: no escape, no surrogate
        return record, _problem_utf8(record, raw)
    return record, _problem(record, raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))


def judge_text(text: str) -> GateResult:
    """judge(parse_text(text)) for a JSON text given as a str (a dry-run line), without the Item between."""
    record, problem = judged_text(text)
    return problem or GateResult(OK, record, record["id"])


def judged_text(text: str) -> tuple[Any, GateResult | None]:
    """judge_text without the usual verdict's value: (the record, None) when it is ok, else (whatever was
    decoded, the verdict); Pipeline.run_lines goes on with the record itself."""
    if not JITER:
        return _judged_exactly(text)
    try:
        data = text.encode()
        record = jiter_json(data)
    except Exception:  # noqa: BLE001 - refused by jiter (or a surrogate in the str): decode_json's exact path decides
        return _judged_exactly(text)
    return record, _problem_utf8(record, data)


def _judged_exactly(text: str) -> tuple[Any, GateResult | None]:
    """judged_text for a text jiter refused: json's C scanner decodes it (the value, or the error, of decode_json)."""
    try:
        record = _decode_exactly(text)
    except (ValueError, RecursionError) as e:  # parse_text's error, word for word
        return None, GateResult(INVALID, None, None, f"not JSON: {e}", "")
    return record, _problem(record, text)


def _problem_utf8(record: Any, data: bytes) -> GateResult | None:
    """_problem for a record decoded from the UTF-8 JSON text `data` by jiter_json, or from a `data` without a
    backslash: no string of it holds a surrogate then (jiter's strings are UTF-8; without an escape every string is
    its own UTF-8 bytes), and the walk for one is not needed."""
    if record.__class__ is not dict:
        return GateResult(INVALID, None, None, "an outcome must be a JSON object", "")
    # no backslash: every string is its own bytes, where a decoded JSON text holds no C0 control (JSON refuses one
    # unescaped); no DEL byte, and neither a C1 control nor a separator in UTF-8 (looked for only where their lead
    # bytes 0xc2, 0xe2 occur at all): no string holds a character of schemafast.CONTROLS. (Integers: `in` on bytes
    # is one memchr; a bytes operand would cost an exception inside it each time.)
    return _schema_problem(record, not (92 in data or 127 in data or (
        (0xC2 in data or 0xE2 in data) and _C1_OR_SEPARATOR.search(data) is not None)))


def _problem(record: Any, text: str) -> GateResult | None:
    """The verdict on `record`, decoded from the JSON text `text`, when it is not ok; None when it is."""
    if record.__class__ is not dict:
        return GateResult(INVALID, None, None, "an outcome must be a JSON object", "")
    # no backslash and only printable characters (str.isprintable: no control character, line or paragraph
    # separator, surrogate, or other unprintable one): every string decoded from it is its own characters
    printable = "\\" not in text and text.isprintable()
    problem = _schema_problem(record, printable)
    # only a text that spells a surrogate can hold one (a printable text holds none): the record is walked then
    if problem is None and not printable and _SURROGATE.search(text) and _has_lone_surrogate(record):
        return GateResult(INVALID, None, record["id"], _LONE_SURROGATE, "")
    return problem


def parse_line(line: str | bytes) -> GateResult:
    """One JSON text to its verdict (decode, then judge)."""
    return judge(parse_text(line))


class Gate:
    """Stateful gate for one stream: remembers each id's latest content, so the same id again is a duplicate
    (same content) or an amendment (different content: the earlier revision rides along in `previous`).

    What it remembers is the raw text the content was decoded from when the caller passes it (`raw`), else the
    record: a long dry-run keeps one string per id, not a tree of dicts and lists that the cyclic garbage
    collector would walk again and again. A repeated id is rare: its earlier text is decoded again then (the
    same text decodes to the same value), and compared as records (`==`), exactly as without the text."""

    def __init__(self) -> None:
        self.seen: dict[str, str | bytes | dict] = {}

    def admit(self, result: GateResult, raw: str | bytes | None = None) -> GateResult:
        """The verdict on `result` in this stream; `raw`: the exact text `result`'s outcome was decoded from."""
        if result.status != OK:
            return result
        rid, record = result.outcome_id, result.outcome
        if rid is None or record is None:  # (an ok verdict always carries its outcome and id)
            return result
        return self.check_in(rid, record, raw) or result

    def check_in(self, rid: str, record: dict, raw: str | bytes | None = None) -> GateResult | None:
        """admit for an outcome the stateless gate found ok (`rid` its id): its verdict in this stream when that is
        no longer ok (duplicate, amended, held), else None."""
        kept: str | bytes | dict = record if raw is None else raw
        before = self.seen.get(rid)
        if before is not None:
            if raw is not None and before == raw:  # the same text: the same content
                return GateResult(DUPLICATE, record, rid)
            if not isinstance(before, dict):
                before = parse_text(before).record  # decoded once already: a record
            if before == record:
                return GateResult(DUPLICATE, record, rid)
            self.seen[rid] = kept
            return GateResult(AMENDED, record, rid, previous=before)
        self.seen[rid] = kept
        if record.get("approved", True) is False:
            return GateResult(HELD, record, rid)
        return None

    def item(self, item: Item) -> GateResult:
        """The verdict on one decoded input (engine.intake.decode.Item) in this stream."""
        return self.admit(judge(item), item.raw)

    def line(self, line: str) -> GateResult:
        return self.item(parse_text(line))

    def record(self, record: Any) -> GateResult:
        return self.admit(check_record(record))
