"""The jiter fast path of engine.intake.decode and of the gate (judged_text, judge on bytes) against the exact path
it stands in for (json's C scanner with the repeated-key hook, str.isprintable, the surrogate walk): the same value
in value and type, or the same error, on generated JSON texts written every which way."""
from __future__ import annotations

import copy
import json
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.intake import decode, gate
from engine.intake.decode import Item, _decode_exactly, decode_json, jiter_json, parse_text
from engine.intake.schemafast import CONTROLS
from engine.rules.schemas import sample_outcome

pytestmark = pytest.mark.skipif(not decode.JITER, reason="jiter is not installed")


def same(a: Any, b: Any) -> bool:
    """Equal in value and in type at every level: int is not float nor bool, a float's bits (repr: -0.0, inf),
    a mapping's key order (a loop, not recursion: any depth)."""
    stack = [(a, b)]
    while stack:
        a, b = stack.pop()
        if type(a) is not type(b):
            return False
        if type(a) is float:
            if repr(a) != repr(b):
                return False
        elif type(a) is dict:
            if list(a) != list(b):
                return False
            stack += ((a[k], b[k]) for k in a)
        elif type(a) is list:
            if len(a) != len(b):
                return False
            stack += zip(a, b, strict=True)
        elif a != b:
            return False
    return True


def outcome(fn: Any, arg: Any) -> tuple:
    try:
        return ("ok", fn(arg))
    except (ValueError, RecursionError) as e:
        return ("error", type(e).__name__, str(e))


def agree(mine: tuple, ref: tuple) -> bool:
    if "ok" in (mine[0], ref[0]):
        return mine[0] == ref[0] and same(mine[1], ref[1])
    return mine == ref  # the same error, word for word


def strings_of(value: Any) -> list[str]:
    out, stack = [], [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            out += v.keys()
            stack += v.values()
        elif isinstance(v, list):
            stack += v
    return out


# ------------------------------------------------------------------------------- JSON texts, written every way

NUMBERS = ["0", "-0", "-0.0", "0.0", "1", "-1", "1.0", "1.5", "0.1", "1e400", "-1e400", "1E+2", "1e-400", "2.5e-324",
           "4.9e-324", "1.7976931348623157e308", "1.7976931348623159e308", "123456789012345678901234567890",
           "-123456789012345678901234567890.5", "1e5", "1E-2", "0.30000000000000004", "9007199254740993",
           "1" * 400, "1." + "1" * 400, "1e" + "9" * 30, "true", "false", "null"]
NOT_NUMBERS = ["01", "1.", ".5", "+1", "-", "1e", "0x10", "NaN", "Infinity", "-Infinity", "nan", "inf", "tru", "nul"]
ESCAPES = ["\\n", "\\t", '\\"', "\\\\", "\\/", "\\b", "\\f", "\\r", "\\u003a", "\\u003A", "\\u0000", "\\u001f",
           "\\u007f", "\\u0085", "\\u009f", "\\u00a0", "\\u2028", "\\u2029", "\\ud83d\\ude00", "\\uD83D\\uDE00", "\\u5f20"]
BAD_ESCAPES = ["\\ud800", "\\udc00", "\\uDBFF", "\\ud800\\ud800\\udc00", "\\ud800\\u0041", "\\x41", "\\u12", "\\"]
RAW = ["a", ":", "z", "张", "—", "“", "😀", " ", "\x7f", "\x85", "\x9f", "\xa0", "\u2028", "\u2029", "\u200b",
       "\ufeff", "'", "{", "}", "[", "]", ","]
BAD_RAW = ["\x00", "\x1f", "\t", "\n", "\ud800", "\udfff"]
SPACE = ["", "", " ", "\t", "\n", "\r", "\r\n "]
ODD_SPACE = ["\x0b", "\x0c", "\xa0", "\u3000", "\x1c", "\x85"]

plain = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters='"\\'), max_size=3)
finite = st.floats(allow_nan=False, allow_infinity=False)


def _array(items: list[tuple[str, str]]) -> str:
    return "[" + ",".join(sp + v for v, sp in items) + "]"


def _object(pairs: list[tuple[str, str, str, str, str]]) -> str:
    return "{" + ",".join(f"{s1}{k}{s2}:{s3}{v}" for k, v, s1, s2, s3 in pairs) + "}"


def json_texts(wild: bool) -> st.SearchStrategy[str]:
    """JSON texts of nested objects (keys repeated now and then) and arrays, numbers in every spelling, strings
    with escapes and raw characters of every kind; `wild`: also what is not JSON or not UTF-8-encodable (bad
    numbers, escapes, raw controls and surrogates, whitespace JSON does not know, trailing text)."""
    spaces = st.sampled_from(SPACE + ODD_SPACE if wild else SPACE)
    strings = st.lists(st.one_of(st.sampled_from(RAW + BAD_RAW if wild else RAW), plain, st.sampled_from(
        ESCAPES + BAD_ESCAPES if wild else ESCAPES), *([st.text(max_size=3)] if wild else [])),
                       max_size=6).map(lambda parts: '"' + "".join(parts) + '"')
    keys = st.one_of(st.sampled_from(['"a"', '"b"', '"a"', '"id"', '"\\u0061"', '"a:"', '"\\u003a"', '":"']), strings)
    numbers = st.one_of(st.sampled_from(NUMBERS + NOT_NUMBERS if wild else NUMBERS),
                        st.integers(-10**30, 10**30).map(str), finite.map(repr), finite.map(lambda f: f"{f:.17e}"),
                        finite.map(lambda f: f"{f:G}"))
    values = st.recursive(st.one_of(numbers, strings), lambda inner: st.one_of(
        st.lists(st.tuples(inner, spaces), max_size=4).map(_array),
        st.lists(st.tuples(keys, inner, spaces, spaces, spaces), max_size=5).map(_object)), max_leaves=12)
    ends = st.sampled_from(["", "x", ",", "}", " 1", "\u3000"] if wild else [""])
    return st.tuples(spaces, values, spaces, ends).map("".join)


texts = st.one_of(json_texts(False), json_texts(False), json_texts(True))


@settings(max_examples=2500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts)
def test_the_jiter_path_decodes_as_the_exact_path(text):
    """decode_json (jiter first) against json's C scanner with the repeated-key hook: the same value in value and
    type, or the same error word for word; where jiter answers at all, no string of its value holds a surrogate."""
    assert agree(outcome(decode_json, text), outcome(_decode_exactly, text)), text
    try:
        value = jiter_json(text.encode())
    except Exception:  # noqa: BLE001 - refused: the exact path answered above
        return
    assert not any(0xD800 <= ord(c) <= 0xDFFF for s in strings_of(value) for c in s)


def _old_parse_text(raw: bytes) -> Item:
    """parse_text on bytes as it was: UTF-8 decoded, then json's C scanner."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        return Item(raw, error=f"not UTF-8: {e.reason} at byte {e.start}")
    try:
        return Item(raw, _decode_exactly(text))
    except (ValueError, RecursionError) as e:
        return Item(raw, error=f"not JSON: {e}")


BAD_UTF8 = [b"\xff", b"\xc0\x80", b"\xc2", b"\xe4\xb8", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\x80", b"\xef\xbb\xbf"]


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=texts, bad=st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(BAD_UTF8)), max_size=2))
def test_bytes_decode_as_their_utf8_text_did(text, bad):
    """parse_text on bytes (jiter reads them as they are) gives the Item it gave by decoding the text first:
    the same record, or the same error (not UTF-8: where; not JSON: why)."""
    raw = text.encode("utf-8", "surrogatepass")
    for at, piece in bad:
        at %= len(raw) + 1
        raw = raw[:at] + piece + raw[at:]
    got, ref = parse_text(raw), _old_parse_text(raw)
    assert (got.raw, got.error, got.where) == (ref.raw, ref.error, ref.where)
    assert same(got.record, ref.record), raw


# ------------------------------------------------------------------------------------------------ the gate

def _old_judged_text(text: str) -> tuple[Any, gate.GateResult | None]:
    """judged_text as it was: json's C scanner, str.isprintable, the surrogate search."""
    try:
        record = _decode_exactly(text)
    except (ValueError, RecursionError) as e:
        return None, gate.GateResult(gate.INVALID, None, None, f"not JSON: {e}", "")
    return record, gate._problem(record, text)


PATHS = [("id",), ("stage",), ("reason",), ("decision",), ("occurred_at",), ("candidate", "name"),
         ("candidate", "email"), ("candidate", "locale"), ("candidate", "dingtalk_userid"), ("feedback", "note"),
         ("feedback", "strengths"), ("next_step", "at"), ("position", "title"), ("attributes", "x"), ("attributes",),
         ("candidate",), ("score",)]
PIECES = ["a", "张", "—", "“", ":", " ", "\x00", "\t", "\n", "\x1f", "\x7f", "\x80", "\x85", "\x9f", "\xa0", "\u2027",
          "\u2028", "\u2029", "\u202f", "\u200b", "\ufeff", "\ud800", "\udc00", "😀", "\\", '"']
field_values = st.one_of(st.lists(st.sampled_from(PIECES), max_size=5).map("".join), st.sampled_from(
    [None, 1, 2.5, True, [], ["x", "\x85"], {}, {"k": "\u2028"}, "2026-11-20T10:00:00+08:00", "en-US", "a@b.c"]))


def _record_text(changes: list, ascii_only: bool, spaced: bool, repeat: str | None) -> str:
    record = sample_outcome()
    for path, value in changes:
        node = record
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = copy.deepcopy(value)
    text = json.dumps(record, ensure_ascii=ascii_only, indent=1 if spaced else None)
    if repeat is not None:  # a key written twice
        text = text[:-1] + f', "{repeat}": 1}}'
    return text


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), field_values), max_size=4), ascii_only=st.booleans(),
       spaced=st.booleans(), repeat=st.sampled_from([None, None, None, "id", "score", "zzz"]))
def test_the_gate_s_jiter_path_gives_the_exact_path_s_verdict(changes, ascii_only, spaced, repeat):
    """judged_text (jiter, the controls proven absent from the bytes) against judged_text as it was (json's C
    scanner, str.isprintable, the surrogate search): the same record and the same verdict, on outcomes whose
    fields hold control characters, separators, surrogates, escapes or none; as bytes through judge too."""
    text = _record_text(changes, ascii_only, spaced, repeat)
    (got, problem), (ref, ref_problem) = gate.judged_text(text), _old_judged_text(text)
    assert same(got, ref) and problem == ref_problem, text
    try:
        raw = text.encode()
    except UnicodeEncodeError:  # a lone surrogate in the str: no bytes of it
        return
    item = parse_text(raw)
    ref_item = _old_parse_text(raw)
    if ref_item.error is None:
        verdict = gate.judge(item)
        ref_verdict = gate._problem(ref_item.record, text) or gate.GateResult(gate.OK, ref_item.record,
                                                                              ref_item.record["id"])
        assert verdict == ref_verdict, text


@pytest.mark.parametrize("char,vouched", [
    ("a", True), ("张", True), ("—", True), ("“", True), ("\xa0", True), ("\u2027", True), ("\u202f", True),
    ("😀", True), ("\u200b", True), ("\x7f", False), ("\x80", False), ("\x85", False), ("\x9f", False),
    ("\u2028", False), ("\u2029", False), ("\\u0041", False)])
def test_the_check_without_the_control_patterns_is_taken_only_where_the_bytes_prove_none(char, vouched, monkeypatch):
    """_problem_utf8 vouches for no control character (schemafast.CONTROLS) exactly where the bytes hold no
    backslash, no DEL and no C1 control or separator: then the check without those patterns runs."""
    asked = []
    real = gate._schema_problem
    monkeypatch.setattr(gate, "_schema_problem", lambda record, no_controls: asked.append(no_controls) or
                        real(record, no_controls))
    text = json.dumps(sample_outcome(reason="x" + char), ensure_ascii=False).replace("\\\\", "\\")
    gate.judged_text(text)
    assert asked == [vouched]
    assert vouched == (not any(ord(c) in CONTROLS for c in json.loads(text)["reason"]) and "\\" not in text)


def test_deep_nesting_and_long_strings_decode_as_before():
    """jiter stops at 200 levels (the exact path goes on, to Python's recursion limit, and says so past it); a
    string of a megabyte, an integer of 4,000 digits decode alike."""
    for depth in (150, 199, 201, 300, 900, sys.getrecursionlimit() + 10, 10_000):
        text = "[" * depth + "]" * depth
        assert agree(outcome(decode_json, text), outcome(_decode_exactly, text)), depth
        text = '{"a":' * depth + "1" + "}" * depth
        assert agree(outcome(decode_json, text), outcome(_decode_exactly, text)), depth
    for text in ('"' + "张:" * 500_000 + '"', "[" + "9" * 4000 + "]", "[" + "9" * 5000 + "]",
                 '{"a": "' + "x" * 100_000 + '", "a": 1}'):
        assert agree(outcome(decode_json, text), outcome(_decode_exactly, text))


def test_the_bench_s_kind_of_outcome_takes_the_jiter_path():
    """An ordinary outcome is decoded by jiter, not handed on to the exact path (else the fast path is dead)."""
    text = json.dumps(sample_outcome(), ensure_ascii=False)
    assert same(jiter_json(text.encode()), json.loads(text))
    with pytest.raises(ValueError, match="duplicate"):
        jiter_json(b'{"a": 1, "a": 2}')
    with pytest.raises(ValueError):
        jiter_json(b'{"a": NaN}')
