"""Tests for engine.intake.schemafast: the compiled check gives jsonschema's verdict, and refuses what it does not know."""
from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.intake.schemafast import Unsupported, compile_check, ecma_regex
from engine.rules.schemas import check_formats, fast_check, jsonschema_validator, sample_outcome, schema
import contextlib

ROOT = Path(__file__).resolve().parents[2]
JS = jsonschema_validator("outcome")
CHECK = fast_check("outcome")
JS_RULES = jsonschema_validator("rules")


def test_the_outcome_schema_compiles_to_herald_s_own_check():
    assert "def check" in getattr(CHECK, "source", "")


def test_verdicts_agree_on_the_example_outcomes():
    lines = (ROOT / "examples" / "outcomes.jsonl").read_text(encoding="utf-8").splitlines()
    records = []
    for line in lines:
        with contextlib.suppress(ValueError):
            records.append(json.loads(line))
    assert len(records) > 200
    assert sum(not JS.is_valid(r) for r in records) >= 1
    for r in records:
        assert CHECK(r) == JS.is_valid(r), r


# Values that break one keyword or another, put anywhere in an otherwise valid outcome.
ODD = [None, True, False, 0, 1, -1.5, 2.0, "", "x", "x" * 201, "en\n", "+8613800000000\n", "a@b.c\n", "2026-02-30T10:00:00+08:00",
       "2026-11-20T10:00:00+08:00", "2026-11-20T10:00:00", "2026-11-20 10:00Z", "zh-CN", "ZH", "a@b.c", "a@b",
       "+8613800000000", "12", "reject", "rejected", [], ["x"], [1], {}, {"name": "x"}, {"nope": 1}]
PATHS = [("id",), ("occurred_at",), ("decision",), ("stage",), ("role",), ("reason",), ("score",),
         ("approved",), ("candidate",), ("candidate", "name"), ("candidate", "email"), ("candidate", "phone"),
         ("candidate", "locale"), ("candidate", "timezone"), ("candidate", "dingtalk_userid"), ("candidate", "id"),
         ("position",), ("position", "title"), ("feedback",), ("feedback", "strengths"), ("feedback", "note"),
         ("next_step",), ("next_step", "at"), ("attributes",), ("unknown",), ("candidate", "unknown"),
         ("attributes", "anything")]


def changed(record: dict, changes: list) -> dict:
    """A copy of `record` with each (path, value) of `changes` set ("<delete>": the key removed), creating
    the mappings on the way."""
    record = copy.deepcopy(record)
    for path, value in changes:
        parent = record
        for part in path[:-1]:
            if not isinstance(parent.get(part), dict):
                parent[part] = {}
            parent = parent[part]
        if value == "<delete>":
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = copy.deepcopy(value)
    return record


@settings(max_examples=600, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(st.sampled_from(ODD), st.just("<delete>"),
                                                                        st.text(max_size=6))), max_size=4),
       top=st.one_of(st.none(), st.sampled_from([[], "x", 1, None])))
def test_verdicts_agree_with_jsonschema(changes, top):
    record = changed(sample_outcome(), changes)
    if top is not None:
        record = top
    assert CHECK(record) == JS.is_valid(record), record


@pytest.mark.parametrize("sub,good,bad", [
    ({"type": "string", "minLength": 2, "maxLength": 3}, ["ab", "abc", "中文"], ["a", "abcd", 1, None]),
    ({"type": ["string", "null"]}, ["x", None], [1, [], {}]),
    ({"type": "number"}, [1, 1.5, -0.0], [True, "1", None]),
    ({"type": "integer"}, [1, 2.0, -3], [1.5, True, "1"]),
    ({"type": "boolean"}, [True, False], [0, 1, "true", None]),
    ({"type": "array", "items": {"type": "string"}}, [[], ["a"]], [["a", 1], "a", {}]),
    ({"enum": ["a", "b"]}, ["a", "b"], ["c", 1, None, ["a"]]),
    ({"pattern": "^a+$"}, ["a", "aa", 1, None], ["b", "a\n", "ab"]),  # patterns apply to strings only
    ({"type": "object", "required": ["a"], "additionalProperties": False, "properties": {"a": {"type": "integer"}}},
     [{"a": 1}], [{}, {"a": "1"}, {"a": 1, "b": 2}, [], "a"]),
    ({"properties": {"a": False}}, [{}, {"b": 1}, 5], [{"a": 1}]),
    # no other key, counted (every property read; a required one as v[key], KeyError meaning "not there")
    ({"type": "object", "required": ["a", "a"], "additionalProperties": False,
      "properties": {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {}, "d": True}},
     [{"a": 1}, {"a": 1, "b": "x"}, {"b": "x", "a": 1, "c": [None], "d": {}}],
     [{}, {"b": "x"}, {"a": 1, "e": 2}, {"a": 1, "b": "x", "c": 1, "d": 1, "e": 1}, {"a": 1, 1: 2}, {"a": "1"}, 5]),
    ({"type": "object", "additionalProperties": False, "properties": {"a": {}, "b": {"type": "object",
      "required": ["x"], "additionalProperties": False, "properties": {"x": {}, "y": {}}}}},
     [{}, {"a": 1}, {"b": {"x": 1}}, {"b": {"x": 1, "y": 2}, "a": 0}],
     [{"c": 1}, {"b": {}}, {"b": {"y": 1}}, {"b": {"x": 1, "z": 1}}, {"b": {"x": 1}, "c": 1}]),
    ({"required": ["z"], "additionalProperties": False, "properties": {"a": {}}}, [5, "x", None],
     [{}, {"z": 1}, {"a": 1}, {"a": 1, "z": 1}]),  # required, but no property allows it: no object passes
    ({"required": ["a"], "properties": {"a": {"type": "integer"}}}, [{"a": 1}, {"a": 1, "x": 2}, 5], [{}, {"a": "1"}]),
    # only string properties, no other key: one loop over the values, the property checks at a non-str one
    ({"type": "object", "additionalProperties": False, "properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
     [{}, {"a": "x"}, {"a": "x", "b": ""}, {"b": type("S", (str,), {})("sub")}], [{"a": 1}, {"a": "x", "b": None},
                                                                                   {"c": "x"}, {"b": ["x"]}, []]),
    (True, [1, None, "x"], []),
    (False, [], [1, None, "x"]),
])
def test_keywords(sub, good, bad):
    for check in (compile_check(sub), compile_check(sub, no_controls=True)):
        for value in good:
            assert check(value) is True, value
        for value in bad:
            assert check(value) is False, value


def test_an_object_of_plain_strings_is_checked_in_one_loop():
    """position's and next_step's properties are strings only (their patterns ban unprintables): the printable
    check reads their values in one loop; the full check, which keeps the patterns, reads each property."""
    assert PRINTABLE_CHECK.source.count(".values():") == 2
    assert CHECK.source.count(".values():") == 0


def test_formats_come_from_the_caller():
    check = compile_check({"type": "string", "format": "date-time"}, {"date-time": lambda s: s.startswith("2")})
    assert check("2026") and not check("1999") and check(5) is False


@pytest.mark.parametrize("sub", [
    {"minimum": 1}, {"oneOf": [{}]}, {"$ref": "#/x"}, {"format": "email"}, {"type": "bogus"},
    {"additionalProperties": {"type": "string"}}, {"enum": [1, 2]}, {"minLength": "2"}, {"items": [{}]},
    {"properties": {"a": {"anyOf": []}}},
])
def test_unknown_keywords_are_refused_not_ignored(sub):
    with pytest.raises(Unsupported):
        compile_check(sub)


def test_a_schema_it_cannot_compile_falls_back_to_fastjsonschema():
    import yaml

    with pytest.raises(Unsupported):
        compile_check(schema("rules"))
    check = fast_check("rules")
    assert not hasattr(check, "source")  # fastjsonschema's validator behind a predicate
    rules = yaml.safe_load((ROOT / "rules" / "10-offers.yaml").read_text(encoding="utf-8"))
    assert check(rules) is True and JS_RULES.is_valid(rules)
    broken = {**rules, "rules": [{"id": "x", "tempalte": "reject/generic"}]}  # no such key
    assert not JS_RULES.is_valid(broken) and check(broken) is False
    assert check("not a mapping") is False


def test_a_final_newline_does_not_pass_a_pattern_and_the_field_is_named():
    from engine.intake.gate import check_record

    record = sample_outcome()
    record["candidate"]["locale"] = "en\n"
    assert CHECK(record) is False and JS.is_valid(record) is False
    result = check_record(record)
    assert result.status == "invalid" and result.field == "candidate.locale"
    assert "does not match" in result.error


ALLOWED_ONLY = "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$"


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=st.sampled_from(["a", "张", "\n", "\x00", "\x1f", " ", "\x7f", "\x85", "\x9f", "\xa0",
                                              "\u2028", "\u2029", "\u202a", "$", "]"]), max_size=12))
def test_an_only_allowed_characters_pattern_gives_jsonschema_s_verdict(text):
    # `^[^C]*$` is compiled as a search for one character of C; the verdict must be the pattern's
    # (ECMA-262's `$`, as herald's validators read it: the end of the text, not before a final newline)
    sub = {"type": "string", "pattern": ALLOWED_ONLY}
    assert compile_check(sub)(text) == (ecma_regex(ALLOWED_ONLY).search(text) is not None) == \
        (re.fullmatch("[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*", text) is not None)
    assert "is not None" in compile_check(sub).source  # the rewritten form, not the backtracking search


# ---------------------------------------------------------------- the check for printable text (the gate's fast path)

PRINTABLE_CHECK = fast_check("outcome", no_controls=True)
printable_texts = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")),
                          max_size=8).filter(str.isprintable)


def test_the_printable_check_leaves_out_only_the_unprintable_character_patterns():
    assert "R" in CHECK.source and PRINTABLE_CHECK.source.count("R") < CHECK.source.count("R")
    assert "is not None" not in PRINTABLE_CHECK.source  # every `^[^C]*$` of the schema bans unprintables only
    kept = compile_check({"type": "string", "pattern": "^[^\\x00-\\x1fa]*$"}, no_controls=True)
    assert kept("abc") is False and "is not None" in kept.source  # `a` is printable: the pattern stays
    assert compile_check({"type": "string", "pattern": "^[^\\s]*$"}, no_controls=True)("a b") is False
    # unprintable, but not one of CONTROLS (what the gate proves absent from the bytes): the pattern stays
    zero_width = compile_check({"type": "string", "pattern": "^[^\\u200b\\ufeff]*$"}, no_controls=True)
    assert zero_width("a\u200bb") is False and "is not None" in zero_width.source


@settings(max_examples=400, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS),
                                  st.one_of(st.sampled_from([v for v in ODD if not isinstance(v, str) or v.isprintable()]),
                                            st.just("<delete>"), printable_texts)), max_size=4))
def test_on_printable_records_the_printable_check_gives_jsonschema_s_verdict(changes):
    record = changed(sample_outcome(), changes)
    text = json.dumps(record, ensure_ascii=False)
    assume_printable = "\\" not in text and text.isprintable()
    if assume_printable:
        assert PRINTABLE_CHECK(record) == JS.is_valid(record) == CHECK(record), record


UNPRINTABLE = ["\x00", "\n", "\t", "\x1f", "\x7f", "\x85", "\x9f", "\u2028", "\u2029", "\u200b", "\ud800", "\\", '"']


@settings(max_examples=400, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), st.lists(st.sampled_from(
    ["a", "张", " ", "-", "@", "+8", *UNPRINTABLE]), max_size=6).map("".join)), max_size=4),
       escape=st.booleans(), as_bytes=st.booleans())
def test_the_gate_s_verdict_does_not_depend_on_how_the_text_was_written(changes, escape, as_bytes):
    """The gate's verdict on a JSON text (judge, which takes the printable check for a plain text) is the one
    the general check gives on the record it decodes to: the same record written with \\u escapes or with its
    characters as they are (JSON lets \\x7f-\\x9f and \\u2028 stand unescaped; a Python str may even hold a lone
    surrogate) gets the same verdict."""
    from engine.intake.decode import parse_text
    from engine.intake.gate import _has_lone_surrogate, check_record, judge

    record = changed(sample_outcome(), changes)
    text = json.dumps(record, ensure_ascii=escape)
    raw = text.encode("utf-8", "surrogatepass") if as_bytes else text
    got = judge(parse_text(raw))
    general = check_record(record)
    lone = _has_lone_surrogate(record)
    if lone and as_bytes and not escape:
        assert got.status == "invalid" and "not UTF-8" in got.error
        return
    # a lone surrogate, escaped or the character itself in a str, gets check_record's verdict too
    assert (got.status, got.field, got.error) == (general.status, general.field, general.error)


def plain_field_error(record) -> tuple[str, str]:
    """engine.intake.gate.field_error as it was: jsonschema's best match over the whole record's errors."""
    from jsonschema.exceptions import best_match

    from engine.intake import gate

    err = best_match(JS.iter_errors(record))
    real = gate._best_error
    try:  # the message built from that error, by field_error's own wording
        gate._best_error = lambda _record: (err, list(err.absolute_path) if err is not None else [])
        return gate.field_error(record)
    finally:
        gate._best_error = real


@settings(max_examples=600, deadline=None)
@given(changes=st.lists(st.tuples(st.sampled_from(PATHS), st.one_of(st.sampled_from(ODD), st.just("<delete>"),
                                                                        st.text(max_size=6))), min_size=1, max_size=4),
       top=st.one_of(st.none(), st.none(), st.none(), st.sampled_from([[], "x", 1, None])))
def test_field_error_names_what_jsonschema_s_best_match_names(changes, top):
    """field_error asks jsonschema about the one failing node alone (schemafast.violations) when there is one:
    the same field and message as jsonschema's best match over the whole record, on any mix of changes."""
    from engine.intake.gate import field_error

    record = changed(sample_outcome(), changes)
    if top is not None:
        record = top
    assert field_error(record) == plain_field_error(record)


def test_violations_name_each_failing_node_in_document_order():
    from engine.intake.schemafast import violations

    record = changed(sample_outcome(), [(("decision",), "maybe"), (("candidate", "email"), "x"),
                                        (("candidate", "nope"), 1), (("feedback", "strengths"), ["a", 2])])
    formats = check_formats()  # as the gate asks (the outcome schema's date-time needs a format check)
    got = [(path, value) for path, _sub, value in violations(schema("outcome"), record, formats)]
    assert got == [(("decision",), "maybe"), (("candidate",), record["candidate"]), (("candidate", "email"), "x"),
                   (("feedback", "strengths", 1), 2)]
    assert violations(schema("outcome"), sample_outcome(), formats) == []
