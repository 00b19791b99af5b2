"""Tests for the `when` expression language: truth tables, syntax errors, field checks, explanations, properties."""
from __future__ import annotations

import dataclasses
import json
import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.rules.when import FieldRef, WhenError, WhenExpr, check_fields, compile_when, parse_when
from engine.rules.schemas import outcome_fields

OUT = {
    "id": "ats-1",
    "decision": "reject",
    "stage": "first_round",
    "role": "backend",
    "score": 72,
    "ratio": 0.5,
    "approved": True,
    "flag": False,
    "nothing": None,
    "candidate": {"name": "张伟", "locale": "zh-CN", "email": "zw@example.com"},
    "feedback": {"strengths": ["逻辑思维清晰", "sql"], "note": "Good SQL, weak on design"},
    "attributes": {"source": "campus", "tags": ["a", 1, True, None], "level": 3, "nested": {"deep": "x"}},
    "position": "not-a-dict",
}

# (expression, outcome, expected); `OUT` above unless the outcome is given
TRUTH = [
    # comparisons on numbers, strings, nested paths
    ("score >= 60", OUT, True),
    ("score > 72", OUT, False),
    ("score <= 72 and score < 73", OUT, True),
    ("score == 72.0", OUT, True),
    ("score != 72", OUT, False),
    ("ratio > 0.25", OUT, True),
    ("score > -1", OUT, True),
    ("score>=-1.5e3", OUT, True),
    ("-5 < score", OUT, True),
    ("100 <= score", OUT, False),
    ('candidate.locale == "zh-CN"', OUT, True),
    ("candidate.locale == 'zh-CN'", OUT, True),
    ('candidate.locale != "en"', OUT, True),
    ('stage < "second_round"', OUT, True),
    ('stage >= "z"', OUT, False),
    ("attributes.nested.deep == \"x\"", OUT, True),
    ("attributes.level == 3", OUT, True),
    ("score >= attributes.level", OUT, True),
    ("attributes.level > score", OUT, False),
    # missing fields and null
    ("missing == null", OUT, True),
    ("nothing == null", OUT, True),
    ("null == null", OUT, True),
    ("missing == nothing", OUT, True),
    ('missing == "x"', OUT, False),
    ('missing != "x"', OUT, True),
    ("missing != null", OUT, False),
    ("score != null", OUT, True),
    ("score == null", OUT, False),
    ("missing >= 60", OUT, False),
    ("missing < 60", OUT, False),
    ("not (missing >= 60)", OUT, True),
    ("not missing >= 60", OUT, True),
    ("score > null", OUT, False),
    ("score <= null", OUT, False),
    ("null < null", OUT, False),
    ("candidate.missing.deeper == null", OUT, True),
    ('position.title == "x"', OUT, False),  # a non-object in the middle of a path is null
    ("position.title == null", OUT, True),
    ("score.value == null", OUT, True),
    ("missing in [null]", OUT, False),
    ("missing not in [1, 2]", OUT, False),
    ("nothing not in []", OUT, False),
    ("missing contains 1", OUT, False),
    ('missing startswith ""', OUT, False),
    ('missing endswith ""', OUT, False),
    ('missing matches ""', OUT, False),
    ("attributes.tags contains null", OUT, False),
    ("score in missing", OUT, False),
    ("score not in missing", OUT, False),
    # type mismatches are false, never errors; bool is not a number
    ('score > "60"', OUT, False),
    ('score == "72"', OUT, False),
    ('score != "72"', OUT, True),
    ('candidate.locale > 5', OUT, False),
    ("approved == 1", OUT, False),
    ("approved != 1", OUT, True),
    ("flag == 0", OUT, False),
    ("approved > 0", OUT, False),
    ("approved >= true", OUT, False),
    ("approved == true", OUT, True),
    ("flag == false", OUT, True),
    ("1 == true", OUT, False),
    ("1 == 1.0", OUT, True),
    ("score < [1]", OUT, False),
    ("feedback.strengths > 1", OUT, False),
    ("candidate < candidate", OUT, False),
    ('candidate == candidate', OUT, True),
    ("feedback.strengths == [\"逻辑思维清晰\", \"sql\"]", OUT, True),
    ('feedback.strengths == ["sql", "逻辑思维清晰"]', OUT, False),
    ("[1, 2] == [1, 2.0]", OUT, True),
    ("[1] == [true]", OUT, False),
    ("[] == []", OUT, True),
    # in / not in
    ('role in ["backend", "frontend"]', OUT, True),
    ('role in ["sales"]', OUT, False),
    ('role not in ["sales"]', OUT, True),
    ('role not in ["backend"]', OUT, False),
    ("score in [70, 72, 74]", OUT, True),
    ("score in [72.0]", OUT, True),
    ('score in ["72"]', OUT, False),
    ('score not in ["72"]', OUT, True),
    ("approved in [1]", OUT, False),
    ("approved in [true]", OUT, True),
    ("approved not in [1, 0]", OUT, True),
    ("attributes.level in [1, true, 3]", OUT, True),
    ("score in []", OUT, False),
    ("score not in []", OUT, True),
    ('"sql" in feedback.strengths', OUT, True),
    ('"java" in feedback.strengths', OUT, False),
    ('"java" not in feedback.strengths', OUT, True),
    ("1 in attributes.tags", OUT, True),
    ("true in attributes.tags", OUT, True),
    ("false in attributes.tags", OUT, False),
    ('"c" in candidate.locale', OUT, False),  # `in` needs a list on the right
    ('"c" not in candidate.locale', OUT, False),
    ("[1] in [1]", OUT, False),
    # contains, startswith, endswith, matches
    ('feedback.strengths contains "sql"', OUT, True),
    ('feedback.strengths contains "SQL"', OUT, False),
    ('attributes.tags contains 1', OUT, True),
    ('attributes.tags contains true', OUT, True),
    ('attributes.tags contains false', OUT, False),
    ('attributes.tags contains 1.0', OUT, True),
    ('feedback.note contains "SQL"', OUT, True),
    ('feedback.note contains "sql"', OUT, False),
    ('feedback.note contains 1', OUT, False),
    ('score contains 7', OUT, False),
    ('candidate contains "locale"', OUT, False),
    ('candidate.locale startswith "zh"', OUT, True),
    ('candidate.locale startswith "en"', OUT, False),
    ('candidate.locale endswith "-CN"', OUT, True),
    ('candidate.locale endswith ""', OUT, True),
    ('score startswith "7"', OUT, False),
    ('candidate.locale startswith 1', OUT, False),
    ('candidate.email matches "@example\\.com$"', OUT, True),
    ('candidate.email matches "^example"', OUT, False),
    ('candidate.email matches "example"', OUT, True),  # a search, not a full match
    ('feedback.note matches "(?i)sql"', OUT, True),
    (r'id matches "\d+$"', OUT, True),
    (r'id matches "^\\d"', OUT, False),
    ('score matches "7"', OUT, False),
    ('feedback.strengths matches "sql"', OUT, False),
    # bare values as conditions: only true is true
    ("approved", OUT, True),
    ("flag", OUT, False),
    ("not flag", OUT, True),
    ("missing", OUT, False),
    ("not missing", OUT, True),
    ("score", OUT, False),
    ("true", OUT, True),
    ("false", OUT, False),
    ("null", OUT, False),
    ('"true"', OUT, False),
    ("(approved)", OUT, True),
    ("(score) >= 60", OUT, True),
    ("(score >= 60) == true", OUT, True),
    ("(score >= 60) == 1", OUT, False),
    # precedence: not > and... `not` takes a whole comparison; and binds tighter than or
    ("not score >= 60", OUT, False),
    ("not not approved", OUT, True),
    ("true or true and false", OUT, True),
    ("(true or true) and false", OUT, False),
    ("false and false or true", OUT, True),
    ("false and (false or true)", OUT, False),
    ("not true or true", OUT, True),
    ("not (true or true)", OUT, False),
    ("not false and false", OUT, False),
    ("not (false and false)", OUT, True),
    ('score >= 60 and candidate.locale == "zh-CN"', OUT, True),
    ('score >= 60 and candidate.locale == "en" or role == "backend"', OUT, True),
    ('score >= 60 and (candidate.locale == "en" or role == "sales")', OUT, False),
    ("((((score))) >= (((60))))", OUT, True),
    # strings: escapes, quotes, unicode, white space
    ('candidate.name == "张伟"', OUT, True),
    ('candidate.name == "\\u5f20\\u4f1f"', OUT, True),
    ('"a\\"b" == \'a"b\'', OUT, True),
    ("'it\\'s' == \"it's\"", OUT, True),
    ('"a\\\\b" == \'a\\\\b\'', OUT, True),
    ('"tab\\there" contains "\t"', OUT, True),
    ('"\\d" == "\\\\d"', OUT, True),  # unknown escapes keep their backslash, for regexes
    ("score\n  >= 60\n  and\tapproved", OUT, True),
    ("score >= 60\u3000and approved", OUT, True),  # an ideographic space is white space
    # odd outcomes
    ("score >= 60", {}, False),
    ("not (score >= 60)", {}, True),
    ("candidate.locale == null", {"candidate": None}, True),
    ("candidate.locale == null", {"candidate": ["locale"]}, True),
    ("candidate.locale == null", {"candidate": "zh-CN"}, True),
    ("score >= 60", {"score": float("nan")}, False),
    ("score != 60", {"score": float("nan")}, True),
    ("score > 60", {"score": float("inf")}, True),
    ("score > 60", {"score": 10**400}, True),
    ("score == 1e999", {"score": float("inf")}, True),
    ("attributes.来源 == \"校园\"", {"attributes": {"来源": "校园"}}, True),
    ("attributes.2024 == 1", {"attributes": {"2024": 1}}, True),
]


@pytest.mark.parametrize("source,outcome,expected", TRUTH, ids=[f"{i}:{row[0][:40]}" for i, row in enumerate(TRUTH)])
def test_truth_table(source, outcome, expected):
    expr, errors = parse_when(source)
    assert errors == [], errors
    assert expr.predicate(outcome) is expected
    assert (expr.explain(outcome) is None) is expected


def test_predicate_does_not_raise_on_odd_outcomes():
    pred = compile_when('score >= 60 and candidate.locale == "zh-CN" or attributes.x contains 1')
    for odd in ({}, {"candidate": 5}, {"score": [1]}, {"score": {"a": 1}}, {"attributes": {"x": {"y": 1}}}):
        assert pred(odd) is False
    for not_a_dict in (None, 5, "text", [1, 2]):
        assert pred(not_a_dict) is False  # type: ignore[arg-type]
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    assert compile_when("attributes.x contains 1")({"attributes": {"x": deep}}) is False
    assert compile_when("attributes.x == attributes.y")({"attributes": {"x": deep, "y": deep}}) in (True, False)


# (source, offset, code, words that must be in the message)
SYNTAX = [
    ("", 0, "when-syntax", "empty expression"),
    ("   \n ", 0, "when-syntax", "empty expression"),
    ("score >", 7, "when-syntax", "unexpected end of expression — expected a value"),
    ("score >= 60 and", 15, "when-syntax", "expected a value"),
    ("score >= and x", 9, "when-syntax", 'unexpected "and" — expected a value'),
    ("and score", 0, "when-syntax", 'unexpected "and"'),
    ("score 60", 6, "when-syntax", 'unexpected "60" — expected an operator'),
    ("score = 60", 6, "when-syntax", 'use "=="'),
    ("a < b < c", 6, "when-syntax", "do not chain"),
    ("a == 1 == 2", 7, "when-syntax", "do not chain"),
    ("(score > 1", 10, "when-syntax", 'unexpected end of expression — expected ")"'),
    ("score > 1)", 9, "when-syntax", 'no "(" to close'),
    ("()", 1, "when-syntax", 'unexpected ")" — expected a value'),
    ("a == 1 b == 2", 7, "when-syntax", 'expected "and" or "or"'),
    ("a == 1 AND b", 7, "when-syntax", 'keywords are lowercase: "and"'),
    ("x in \"abc\"", 5, "when-syntax", "expected a list or a field"),
    ("x in 5", 5, "when-syntax", "expected a list or a field"),
    ("x in", 4, "when-syntax", "expected a list or a field"),
    ("x not", 5, "when-syntax", 'expected "in"'),
    ("x not 5", 6, "when-syntax", 'expected "in"'),
    ("x matches y", 10, "when-syntax", "a regular expression in quotes"),
    ("x in [1,", 8, "when-syntax", 'a literal (string, number, true, false, null) or "]"'),
    ("x in [y]", 6, "when-syntax", "a literal"),
    ("x in [1, [2]]", 9, "when-syntax", "a literal"),
    ("x in [1 2]", 8, "when-syntax", '"]" or ","'),
    ('"abc', 0, "when-syntax", "unterminated string"),
    ("x == 'abc", 5, "when-syntax", "unterminated string: no closing '"),
    ('x == "a\\"', 5, "when-syntax", "unterminated string"),
    ("x && y", 2, "when-syntax", 'write "and"'),
    ("x || y", 2, "when-syntax", 'write "or"'),
    ("!x", 0, "when-syntax", 'write "not"'),
    ("a.b. == 1", 3, "when-syntax", "field path"),
    ("score >= 60 # note", 12, "when-syntax", 'unexpected character "#"'),
    ("a \x00 b", 2, "when-syntax", "unexpected character U+0000"),
    ("x == 1 or or", 10, "when-syntax", 'unexpected "or" — expected a value'),
    ('"a" "b"', 4, "when-syntax", 'unexpected string "b"'),
    ("not", 3, "when-syntax", "expected a value"),
    ("x == " + "9" * 5000, 5, "when-syntax", "too long"),
    ("(" * 60 + "x" + ")" * 60, 50, "when-syntax", "nested too deeply"),
    ("not " * 80 + "x", 204, "when-syntax", "nested too deeply"),
    ("x" * 100_001, 100_000, "when-syntax", "too long"),
    ('x matches "(("', 10, "bad-regex", "bad regular expression"),
    ('x matches "[a-"', 10, "bad-regex", "missing ]"),
    ('x matches "a{2,1}"', 10, "bad-regex", "bad regular expression"),
]


@pytest.mark.parametrize("source,offset,code,words", SYNTAX, ids=[f"{i}:{r[0][:30]}" for i, r in enumerate(SYNTAX)])
def test_syntax_errors(source, offset, code, words):
    expr, errors = parse_when(source)
    assert expr is None
    assert len(errors) == 1, errors
    assert (errors[0].offset, errors[0].code) == (offset, code), errors[0]
    assert words in errors[0].message


def test_every_bad_regex_is_reported():
    expr, errors = parse_when('x matches "(" or y matches "ok" or z matches "["')
    assert expr is None
    assert [(e.offset, e.code) for e in errors] == [(10, "bad-regex"), (45, "bad-regex")]


def test_non_text_source():
    for value in (None, 5, True, ["a"]):
        expr, errors = parse_when(value)  # type: ignore[arg-type]
        assert expr is None and errors[0].code == "when-syntax" and "text" in errors[0].message


def test_fields_in_source_order_with_offsets():
    src = 'score >= 60 and candidate.locale == "zh-CN" or "x" in feedback.strengths and score < 90'
    expr, errors = parse_when(src)
    assert errors == []
    assert expr.fields == (FieldRef("score", 0), FieldRef("candidate.locale", 16),
                           FieldRef("feedback.strengths", 54), FieldRef("score", 77))
    for ref in expr.fields:
        assert src[ref.offset:].startswith(ref.path)


def test_public_types_are_frozen_and_compile_when_raises():
    expr, _ = parse_when("approved")
    assert isinstance(expr, WhenExpr)
    for obj in (expr, WhenError(0, "when-syntax", "x"), FieldRef("a", 0)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            obj.source = "y"  # type: ignore[misc]
    assert compile_when("score > 1")({"score": 2}) is True
    with pytest.raises(ValueError, match="when-syntax at 7"):
        compile_when("score >")
    with pytest.raises(ValueError, match="bad-regex"):
        compile_when('x matches "("')


def test_parse_is_cached_but_results_are_fresh_lists():
    _a, errors_a = parse_when("score >")
    _b, errors_b = parse_when("score >")
    assert errors_a == errors_b and errors_a is not errors_b
    errors_a.clear()
    assert parse_when("score >")[1] == errors_b


# (source, [(offset, code, words in message)])
FIELD_CHECKS = [
    ('score >= 60 and candidate.locale == "zh-CN"', []),
    ('attributes.source == "campus" and attributes.any.depth == 1', []),
    ("scroe >= 60", [(0, "unknown-field", 'unknown field "scroe" (did you mean "score"?)')]),
    ('candidate.loacle == "en"', [(0, "unknown-field", '(did you mean "candidate.locale"?)')]),
    ('locale == "en"', [(0, "unknown-field", '(did you mean "candidate.locale"?)')]),
    ('decision == "reject" and positon.title == "x"',
     [(25, "unknown-field", '(did you mean "position.title"?)')]),
    ('source == "campus"', [(0, "unknown-field", '"attributes.source"')]),
    ("True", [(0, "unknown-field", 'keywords are lowercase: "true"')]),
    ("score == None", [(9, "unknown-field", 'keywords are lowercase: "null"')]),
    ('score > "high"', [(0, "when-type", 'score is a number, but "high" is text: score > "high" is always false')]),
    ('role > 5', [(0, "when-type", "role is text, but 5 is a number")]),
    ('score == "72"', [(0, "when-type", "always false")]),
    ('score != "72"', [(0, "when-type", "always true")]),
    ("score > null", [(0, "when-type", "null cannot be compared with >")]),
    ('decision == "rejected"', [(0, "when-type", '"rejected" never matches (did you mean "reject"?)')]),
    ('decision in ["reject", "offered"]', [(0, "when-type", '"offered" never matches (did you mean "offer"?)')]),
    ('decision == "reject" or decision == null', []),
    ("approved == 1", [(0, "when-type", "approved is true or false, but 1 is a number")]),
    ("score", [(0, "when-type", "score is a number, not true or false: write a comparison, like score >= 60")]),
    ("approved and not approved", []),
    ('"x" in score', [(0, "when-type", "score is a number, not a list")]),
    ('"x" in feedback.strengths', []),
    ("feedback.strengths contains 5", [(0, "when-type", "5 is a number")]),
    ("score contains 5", [(0, "when-type", "`contains` works on lists and text")]),
    ('score startswith "7"', [(0, "when-type", "`startswith` works on text")]),
    ('candidate matches "x"', [(0, "when-type", "`matches` works on text")]),
    ("role endswith 5", [(0, "when-type", "`endswith` needs text")]),
    ('scroe > "x" and score > "x"', [(0, "unknown-field", "scroe"), (16, "when-type", "score is a number")]),
]


@pytest.mark.parametrize("source,expected", FIELD_CHECKS, ids=[f"{i}:{r[0][:30]}" for i, r in enumerate(FIELD_CHECKS)])
def test_check_fields(source, expected):
    expr, errors = parse_when(source)
    assert errors == []
    found = check_fields(expr, outcome_fields())
    assert [(e.offset, e.code) for e in found] == [(o, c) for o, c, _ in expected], found
    for error, (_, _, words) in zip(found, expected, strict=False):
        assert words in error.message, error.message


# (source, outcome, explanation)
EXPLAIN = [
    ("score >= 60", {"score": 55}, "score >= 60 was false (score = 55)"),
    ("score >= 60", {}, "score >= 60 was false (score is missing)"),
    ("score >= 60", {"score": None}, "score >= 60 was false (score = null)"),
    ('score >= 60 and candidate.locale == "zh-CN"', {"score": 70, "candidate": {"locale": "en"}},
     'candidate.locale == "zh-CN" was false (candidate.locale = "en")'),
    ('score >= 60 and candidate.locale == "zh-CN"', {"score": 50, "candidate": {"locale": "en"}},
     "score >= 60 was false (score = 50)"),
    ('decision == "reject" and (score >= 60 or approved)', {"decision": "reject", "score": 5},
     "score >= 60 or approved was false (score = 5, approved is missing)"),
    ('approved and (role == "x" and (score > 1 and score < 3))', {"approved": True, "role": "x", "score": 5},
     "score < 3 was false (score = 5)"),
    ('not role in ["backend"]', {"role": "backend"}, 'not role in ["backend"] was false (role = "backend")'),
    ("feedback.strengths contains \"sql\"", {"feedback": {"strengths": ["a", "b"]}},
     'feedback.strengths contains "sql" was false (feedback.strengths = ["a", "b"])'),
    ("score >\n   60\n   and true", {"score": 1}, "score > 60 was false (score = 1)"),
    ('candidate.name == "a  b"', {"candidate": {"name": "x"}}, 'candidate.name == "a  b" was false (candidate.name = "x")'),
    ("false", {}, "false is always false"),
    ("score == attributes.level", {"score": 1, "attributes": {"level": 2}},
     "score == attributes.level was false (score = 1, attributes.level = 2)"),
    ("score > 1", {"score": "x" * 100}, 'score > 1 was false (score = "' + "x" * 56 + '...)'),
    ('score >= 60 and candidate.locale == "zh-CN"', {"score": 70, "candidate": {"locale": "zh-CN"}}, None),
]


@pytest.mark.parametrize("source,outcome,text", EXPLAIN, ids=[f"{i}" for i in range(len(EXPLAIN))])
def test_explain(source, outcome, text):
    expr, errors = parse_when(source)
    assert errors == []
    assert expr.explain(outcome) == text


# ---------------------------------------------------------------- properties

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60) | st.text(alphabet=st.sampled_from(list("ab.1 ()[],'\"\\=<>!-notandinr")), max_size=40))
def test_parse_never_raises_and_offsets_are_inside(source):
    expr, errors = parse_when(source)
    assert (expr is None) == bool(errors)
    for error in errors:
        assert 0 <= error.offset <= len(source)
        assert error.code in ("when-syntax", "bad-regex")
        assert error.message


FIELDS = ["score", "decision", "approved", "candidate", "candidate.locale", "feedback.strengths",
          "attributes.source", "attributes.tags", "attributes.x.y", "missing"]
OPS = ["==", "!=", "<", "<=", ">", ">=", "in", "not in", "contains", "startswith", "endswith", "matches"]
REGEXES = ["^a", "b$", r"\d", "a|b", "", "[xy]", "(?i)A", "\\."]
POOL = [0, 1, 2, -1, 0.5, 1.0, "a", "b", "ab", "", "zh-CN", "x\"y", "c\\d", True, False, None]

scalars = st.sampled_from(POOL) | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False, width=32) \
    | st.text(max_size=4)
lit_lists = st.lists(scalars, max_size=4).map(tuple)
values = st.one_of(st.tuples(st.just("field"), st.sampled_from(FIELDS)),
                   st.tuples(st.just("lit"), scalars), st.tuples(st.just("lit"), lit_lists))


@st.composite
def comparisons(draw):
    op = draw(st.sampled_from(OPS))
    left = draw(values)
    if op in ("in", "not in"):
        right = draw(st.tuples(st.just("field"), st.sampled_from(FIELDS)) | st.tuples(st.just("lit"), lit_lists))
    elif op == "matches":
        right = ("lit", draw(st.sampled_from(REGEXES)))
    else:
        right = draw(values)
    return ("cmp", op, left, right)


leaves = comparisons() | st.tuples(st.just("truth"), values.filter(lambda v: not isinstance(v[1], tuple)))
conditions = st.recursive(
    leaves,
    lambda sub: st.one_of(st.tuples(st.just("not"), sub),
                          st.tuples(st.sampled_from(["and", "or"]), st.lists(sub, min_size=2, max_size=3))),
    max_leaves=8)

json_scalars = st.sampled_from(POOL) | st.integers(-3, 3) | st.floats(allow_infinity=False) | st.text(max_size=3)
json_values = st.recursive(json_scalars, lambda sub: st.lists(sub, max_size=3) | st.dictionaries(
    st.sampled_from(["x", "y", "locale"]), sub, max_size=2), max_leaves=6)
outcomes = st.fixed_dictionaries({}, optional={
    "score": json_values, "decision": json_values, "approved": st.booleans() | json_values,
    "candidate": st.fixed_dictionaries({}, optional={"locale": json_values}) | json_values,
    "feedback": st.fixed_dictionaries({}, optional={"strengths": st.lists(json_scalars, max_size=3) | json_values}),
    "attributes": st.fixed_dictionaries({}, optional={"source": json_values, "tags": json_values,
                                                      "x": st.fixed_dictionaries({}, optional={"y": json_values})}),
})


def show_literal(v) -> str:
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, tuple):
        return "[" + ", ".join(show_literal(x) for x in v) + "]"
    body = v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    return f'"{body}"'


def show_value(node) -> str:
    return node[1] if node[0] == "field" else show_literal(node[1])


PREC = {"or": 1, "and": 2, "not": 3, "cmp": 4, "truth": 4}


def show(node, need: int = 0, full: bool = False) -> str:
    kind = node[0]
    if kind == "cmp":
        text = f"{show_value(node[2])} {node[1]} {show_value(node[3])}"
    elif kind == "truth":
        text = show_value(node[1])
    elif kind == "not":
        text = "not " + show(node[1], 3, full)
    else:
        text = f" {kind} ".join(show(child, PREC[kind] + 1, full) for child in node[1])
    return f"({text})" if full or PREC[kind] < need else text


# -- the reference interpreter: the SPEC's rules, written plainly

def kind_of(v):
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "num"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (list, tuple)):
        return "list"
    return "dict"


def ref_equal(a, b) -> bool:
    if kind_of(a) != kind_of(b):
        return False
    if kind_of(a) == "list":
        return len(a) == len(b) and all(ref_equal(x, y) for x, y in zip(a, b, strict=False))
    if kind_of(a) == "dict":
        return set(a) == set(b) and all(ref_equal(a[k], b[k]) for k in a)
    return a == b


def ref_value(node, outcome):
    if node[0] == "lit":
        return node[1]
    current = outcome
    for part in node[1].split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def ref_holds(node, outcome) -> bool:
    kind = node[0]
    if kind == "and":
        return all(ref_holds(c, outcome) for c in node[1])
    if kind == "or":
        return any(ref_holds(c, outcome) for c in node[1])
    if kind == "not":
        return not ref_holds(node[1], outcome)
    if kind == "truth":
        return ref_value(node[1], outcome) is True
    op, a, b = node[1], ref_value(node[2], outcome), ref_value(node[3], outcome)
    if op == "==":
        return ref_equal(a, b)
    if op == "!=":
        return not ref_equal(a, b)
    if a is None or b is None:
        return False
    if op in ("<", "<=", ">", ">="):
        if kind_of(a) != kind_of(b) or kind_of(a) not in ("num", "str"):
            return False
        return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
    if op in ("in", "not in"):
        if kind_of(b) != "list":
            return False
        found = any(ref_equal(a, x) for x in b)
        return found if op == "in" else not found
    if op == "contains":
        if kind_of(a) == "list":
            return any(ref_equal(x, b) for x in a)
        return kind_of(a) == kind_of(b) == "str" and b in a
    if kind_of(a) != "str" or kind_of(b) != "str":
        return False
    if op == "startswith":
        return a.startswith(b)
    if op == "endswith":
        return a.endswith(b)
    return re.search(b, a) is not None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(conditions, st.lists(outcomes, min_size=1, max_size=4))
def test_generated_expressions_agree_with_the_reference(tree, outcome_list):
    minimal, full = show(tree), show(tree, full=True)
    expr, errors = parse_when(minimal)
    assert errors == [], (minimal, errors)
    expr_full, errors_full = parse_when(full)
    assert errors_full == [], (full, errors_full)
    for outcome in outcome_list:
        want = ref_holds(tree, outcome)
        got = expr.predicate(outcome)
        assert got is want, (minimal, json.dumps(outcome, default=str), got, want)
        assert expr_full.predicate(outcome) is want, full
        explanation = expr.explain(outcome)
        assert (explanation is None) is want
        if explanation is not None:
            assert "was false" in explanation or "always false" in explanation


@settings(max_examples=200, deadline=None)
@given(conditions)
def test_fields_of_generated_expressions_point_at_their_paths(tree):
    source = show(tree)
    expr, errors = parse_when(source)
    assert errors == []
    for ref in expr.fields:
        assert source[ref.offset:ref.offset + len(ref.path)] == ref.path
    assert isinstance(check_fields(expr, outcome_fields()), list)


def test_floats_print_and_parse_back():
    for number in (1e-05, 1.5e16, -0.0, 123456.789, -3.25):
        assert compile_when(f"score == {number!r}")({"score": number}) is True
    assert math.isinf(1e999) and compile_when("score < 1e999")({"score": 1e308}) is True


@settings(max_examples=200, deadline=None)
@given(texts=st.lists(st.text(alphabet="ab\n张", max_size=6) | st.just("a" * 300 + "b"), min_size=1, max_size=40))
def test_matches_verdicts_are_remembered_per_text_and_stay_re2_s(texts):
    from engine.rules import when as when_mod

    regex = when_mod.compile_regex(r"^a+b$|张")
    calls = []

    class Counting:
        def search(self, text):
            calls.append(text)
            return regex.search(text)

    found = when_mod.memo_search(Counting())
    for text in texts * 2:
        assert found(text) == (regex.search(text) is not None)
    short = [t for t in texts if len(t) <= when_mod.MEMO_TEXT_CHARS]
    # each short text searched once (the memo holds far more than 40), each long one every time
    assert len(calls) == len(set(short)) + 2 * (len(texts) - len(short))


def test_matches_memo_starts_over_when_full(monkeypatch):
    from engine.rules import when as when_mod

    monkeypatch.setattr(when_mod, "MEMO_ENTRIES", 3)
    found = when_mod.memo_search(when_mod.compile_regex("x"))
    for text in ["x", "y", "ax", "b", "xx", "y"]:
        assert found(text) == ("x" in text)
    pred = compile_when('candidate.email matches "^fe"')
    assert pred({"candidate": {"email": "fe@x"}}) is True and pred({"candidate": {"email": "be@x"}}) is False


def test_predicates_of_one_shape_share_their_code_and_keep_their_own_constants():
    # 10,000 rules compiled to 10,000 code objects and namespaces did not stay in the CPU caches: a shape
    # of expression is compiled once, each rule's literals are closure cells of its own function
    low = compile_when("score >= 60 and candidate.locale == \"zh\"")
    high = compile_when("score >= 80 and candidate.locale == \"en\"")
    assert low is not high and low.__code__ is high.__code__
    assert low.__globals__ is high.__globals__
    zh, en = {"score": 70, "candidate": {"locale": "zh"}}, {"score": 90, "candidate": {"locale": "en"}}
    assert (low(zh), low(en), high(zh), high(en)) == (True, False, False, True)
    a, b = compile_when('attributes.level matches "^P5$"'), compile_when('attributes.level matches "^P6$"')
    assert a.__code__ is b.__code__
    for _ in range(2):  # the second time from the memo
        assert (a({"attributes": {"level": "P5"}}), b({"attributes": {"level": "P5"}})) == (True, False)
        assert (a({"attributes": {"level": 5}}), b({"attributes": {"level": "P6"}})) == (False, True)
