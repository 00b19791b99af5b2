"""YAML with positions (engine/rules/yamlpos.py): locations, YAML 1.2 scalars, located errors, properties."""
from __future__ import annotations

import math
import textwrap

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.rules.yamlpos import load_yaml, load_yaml_file
from engine.errors import Loc


def load(text: str):
    doc, problems = load_yaml(textwrap.dedent(text), "f.yaml")
    return doc, problems


def codes(problems) -> list:
    return [(p.line, p.column, p.code) for p in problems]


# ---------------------------------------------------------------------------------------------------
# positions


def test_positions_of_keys_and_values_are_one_based() -> None:
    doc, problems = load("""\
        version: 1
        rules:
          - id: a
            match: {decision: reject, role: [x, y]}
        """)
    assert problems == []
    assert doc.data == {"version": 1, "rules": [{"id": "a", "match": {"decision": "reject", "role": ["x", "y"]}}]}
    assert doc.key_pos[("version",)] == (1, 1)
    assert doc.value_pos[("version",)] == (1, 10)
    assert doc.key_pos[("rules",)] == (2, 1)
    assert doc.value_pos[("rules", 0)] == (3, 5)          # the mapping starts at its first key
    assert doc.key_pos[("rules", 0, "id")] == (3, 5)
    assert doc.value_pos[("rules", 0, "id")] == (3, 9)
    assert doc.key_pos[("rules", 0, "match", "decision")] == (4, 13)
    assert doc.value_pos[("rules", 0, "match", "decision")] == (4, 23)
    assert doc.value_pos[("rules", 0, "match", "role", 1)] == (4, 41)


def test_loc_falls_back_to_nearest_known_ancestor() -> None:
    doc, _ = load("""\
        a:
          b: 1
        """)
    assert doc.loc(("a", "b")) == Loc("f.yaml", 2, 6)
    assert doc.loc(("a", "b"), key=True) == Loc("f.yaml", 2, 3)
    assert doc.loc(("a", "missing", "deeper")) == Loc("f.yaml", 2, 3)  # value of a
    assert doc.loc(("nothing",)) == Loc("f.yaml", 1, 1)
    assert doc.loc() == Loc("f.yaml", 1, 1)


def test_key_with_a_non_string_scalar_is_its_text() -> None:
    doc, problems = load("1: a\ntrue: b\nnull: c\n1.5: d\n")
    assert problems == []
    assert doc.data == {"1": "a", "true": "b", "null": "c", "1.5": "d"}


# ---------------------------------------------------------------------------------------------------
# duplicate keys


def test_duplicate_key_reported_at_second_key_first_value_kept() -> None:
    doc, problems = load("""\
        rules:
          - id: a
            template: x
            channels: [email]
            template: y
        """)
    assert codes(problems) == [(5, 5, "duplicate-key")]
    assert problems[0].message == 'key "template" appears twice in one mapping (first at line 3)'
    assert problems[0].severity == "error"
    assert doc.data["rules"][0]["template"] == "x"


def test_duplicate_key_in_flow_mapping() -> None:
    _, problems = load("match: {decision: reject, decision: pass}\n")
    assert codes(problems) == [(1, 27, "duplicate-key")]


def test_same_key_in_different_mappings_is_fine() -> None:
    _, problems = load("a: {x: 1}\nb: {x: 2}\n")
    assert problems == []


# ---------------------------------------------------------------------------------------------------
# YAML 1.2 scalars: no Norway problem


@pytest.mark.parametrize("text, value", [
    ("no", "no"), ("on", "on"), ("off", "off"), ("NO", "NO"), ("yes", "yes"), ("Y", "Y"), ("n", "n"),
    ("09:00", "09:00"), ("1:20", "1:20"), ("2026-11-20", "2026-11-20"), ("1_000", "1_000"),
    ("true", True), ("false", False), ("True", True), ("FALSE", False),
    ("null", None), ("~", None), ("", None),
    ("7", 7), ("-3", -3), ("010", 10), ("0o17", 15), ("0x1f", 31),
    ("1.5", 1.5), ("1e3", 1000.0), (".inf", math.inf), ("-.inf", -math.inf),
    ('"true"', "true"), ("'7'", "7"),
])
def test_core_schema_scalars(text: str, value) -> None:
    doc, problems = load_yaml(f"v: {text}\n", "f.yaml")
    assert problems == []
    got = doc.data["v"]
    assert got == value and type(got) is type(value)


def test_nan_is_a_float() -> None:
    doc, _ = load_yaml("v: .nan\n", "f.yaml")
    assert math.isnan(doc.data["v"])


# ---------------------------------------------------------------------------------------------------
# syntax errors are located, never raised


@pytest.mark.parametrize("text, line, col", [
    ("a: [1, 2\n", 2, 1),                                   # unclosed flow sequence: found at end
    ("version: 1\nrules:\n  - id: a\n    match: {decision: offer\n", 5, 1),
    ("a: b: c\n", 1, 5),                                    # mapping value in a plain scalar
    ("version: 1\nrules:\n  - id: a\n   template: x\n", 4, 4),  # bad indentation
    ('key: "unterminated\n', 2, 1),
    ("- a\nb: c\n", 2, 1),                                  # a mapping after a sequence
    ("a: b\n---\nc: d\n", 2, 1),                            # two documents
    ("a: *nope\n", 1, 4),                                   # undefined alias
    ("\x00", 1, 1),
])
def test_syntax_errors_are_located(text: str, line: int, col: int) -> None:
    doc, problems = load_yaml(text, "f.yaml")
    assert doc.data is None
    assert [(p.file, p.line, p.column, p.severity, p.code) for p in problems] == [
        ("f.yaml", line, col, "error", "yaml-syntax")]
    assert problems[0].message.startswith("YAML syntax: ")


def test_control_character_is_located_at_its_line() -> None:
    _, problems = load_yaml("a: b\nc: d\x01\n", "f.yaml")
    assert codes(problems) == [(2, 5, "yaml-syntax")]


def test_empty_and_comment_only_documents_are_none_without_problems() -> None:
    for text in ("", "# nothing\n", "\n\n"):
        doc, problems = load_yaml(text, "f.yaml")
        assert doc.data is None and problems == []


# ---------------------------------------------------------------------------------------------------
# tags, aliases, keys


@pytest.mark.parametrize("text", [
    "a: !!python/object:os.system x\n",
    "a: !!python/name:os.system x\n",
    "a: !foo x\n",
    "a: !!binary aGk=\n",
    "a: !!timestamp 2026-01-01\n",
])
def test_unsupported_scalar_tags(text: str) -> None:
    doc, problems = load_yaml(text, "f.yaml")
    assert codes(problems) == [(1, 4, "yaml-tag")]
    assert doc.data == {"a": None}


def test_unsupported_collection_tags() -> None:
    _, problems = load_yaml("a: !!set {x: null}\nb: !!omap [x: 1]\n", "f.yaml")
    assert [(p.line, p.code) for p in problems] == [(1, "yaml-tag"), (2, "yaml-tag")]


@pytest.mark.parametrize("text", ["a: &x [*x]\n", "a: &x {b: *x}\n", "a: &x\n  - 1\n  - *x\n"])
def test_recursive_alias_is_a_problem_not_a_hang(text: str) -> None:
    doc, problems = load_yaml(text, "f.yaml")
    assert [(p.line, p.code) for p in problems] == [(1, "yaml-recursive")]
    assert isinstance(doc.data["a"], (list, dict))


def test_plain_alias_is_expanded() -> None:
    doc, problems = load_yaml("b: &A {x: 1}\nc: *A\n", "f.yaml")
    assert problems == [] and doc.data == {"b": {"x": 1}, "c": {"x": 1}}


def test_collection_key_is_a_problem() -> None:
    doc, problems = load_yaml("[a]: b\nc: d\n", "f.yaml")
    assert codes(problems) == [(1, 1, "yaml-key")]
    assert doc.data == {"c": "d"}


def test_deep_nesting_does_not_raise() -> None:
    _doc, problems = load_yaml("[" * 5000 + "]" * 5000, "f.yaml")
    assert all(p.line >= 1 for p in problems)


# ---------------------------------------------------------------------------------------------------
# files


def test_load_yaml_file_rejects_non_utf8(tmp_path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"a: \xff\xfe\n")
    doc, problems = load_yaml_file(path, display="rules/bad.yaml")
    assert doc.data is None
    assert [(p.file, p.line, p.column, p.code) for p in problems] == [("rules/bad.yaml", 1, 1, "encoding")]


def test_load_yaml_file_missing(tmp_path) -> None:
    doc, problems = load_yaml_file(tmp_path / "nope.yaml", display="nope.yaml")
    assert doc.data is None and [p.code for p in problems] == ["io"]


def test_load_yaml_file_reads_utf8_with_positions(tmp_path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("description: 技术岗初试\nid: x\n", encoding="utf-8")
    doc, problems = load_yaml_file(path, display="r.yaml")
    assert problems == [] and doc.data["description"] == "技术岗初试"
    assert doc.loc(("id",)) == Loc("r.yaml", 2, 5)


# ---------------------------------------------------------------------------------------------------
# text_loc: a character inside a string scalar, for errors inside `when`

TEXT_LOC_SOURCE = """\
plain: score >= 60 and
dq: "score >= 60"
sq: 'a b'
lit: |
  line one
  score > x
strip: |-
  x
nested:
  when: role == "x"
"""


@pytest.mark.parametrize("path, offset, line, col", [
    (("plain",), 0, 1, 8),
    (("plain",), 6, 1, 14),      # the '>' of '>='
    (("dq",), 6, 2, 12),         # inside double quotes: one more for the quote
    (("sq",), 2, 3, 8),          # the 'b'
    (("lit",), 0, 5, 3),         # a literal block: lines below the indicator, at the block's indent
    (("lit",), 9, 6, 3),         # 's' of the second line
    (("lit",), 15, 6, 9),        # the 'x'
    (("strip",), 0, 8, 3),
    (("nested", "when"), 8, 10, 17),  # the '"'
])
def test_text_loc(path, offset, line, col) -> None:
    doc, problems = load_yaml(TEXT_LOC_SOURCE, "f.yaml")
    assert problems == []
    assert doc.text_loc(path, offset) == Loc("f.yaml", line, col)


def test_text_loc_checks_the_source_character() -> None:
    """Whatever text_loc says, the character there in the source is the one at the offset in the value."""
    doc, _ = load_yaml(TEXT_LOC_SOURCE, "f.yaml")
    lines = TEXT_LOC_SOURCE.splitlines()
    for path in [("plain",), ("dq",), ("sq",), ("lit",), ("strip",), ("nested", "when")]:
        value = doc.data[path[0]] if len(path) == 1 else doc.data[path[0]][path[1]]
        for offset, char in enumerate(value):
            if char == "\n":
                continue
            loc = doc.text_loc(path, offset)
            assert lines[loc.line - 1][loc.column - 1] == char, (path, offset)


def test_text_loc_in_folded_block() -> None:
    doc, _ = load_yaml("when: >\n  score >= 60 and\n  role === 1\n", "f.yaml")
    assert doc.data["when"] == "score >= 60 and role === 1\n"
    offset = doc.data["when"].index("===")
    assert doc.text_loc(("when",), offset) == Loc("f.yaml", 3, 8)


def test_text_loc_of_non_string_is_the_value() -> None:
    doc, _ = load_yaml("a: 12\n", "f.yaml")
    assert doc.text_loc(("a",), 1) == Loc("f.yaml", 1, 4)


# ---------------------------------------------------------------------------------------------------
# properties

YAMLISH = st.text(alphabet=list(":-[]{}#&*!|>'\"\n ,?%@`~\tab01"), max_size=80)


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(max_size=80), YAMLISH))
def test_arbitrary_text_never_raises_and_is_located(text: str) -> None:
    doc, problems = load_yaml(text, "f.yaml")
    assert doc.file == "f.yaml"
    for p in problems:
        assert p.file == "f.yaml" and p.line >= 1 and p.column >= 1
        assert p.severity == "error" and p.code and p.message
    if any(p.code == "yaml-syntax" for p in problems):
        assert doc.data is None


_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20))
_DATA = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(_DATA)
def test_quoted_dump_round_trips(data) -> None:
    """Every scalar double-quoted (with its tag where it is not a string): no YAML 1.1/1.2 ambiguity."""
    text = yaml.safe_dump(data, default_style='"', allow_unicode=True)
    doc, problems = load_yaml(text, "f.yaml")
    assert problems == []
    assert doc.data == data


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz_ ", min_size=1, max_size=10).filter(
    lambda s: s == s.strip() and s.lower() not in {"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
_PLAIN = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), _WORD)
_PLAIN_DATA = st.recursive(_PLAIN, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(_WORD, inner, max_size=4)), max_leaves=20)


@settings(max_examples=150, deadline=None)
@given(_PLAIN_DATA, st.booleans())
def test_plain_dump_round_trips_with_positions(data, flow: bool) -> None:
    """Plain (block or flow) style, with words YAML 1.1 and 1.2 read alike; every path has a position."""
    text = yaml.safe_dump(data, allow_unicode=True, default_flow_style=flow)
    doc, problems = load_yaml(text, "f.yaml")
    assert problems == []
    assert doc.data == data
    lines = text.splitlines()

    def walk(value, path):
        line, col = doc.value_pos[path]
        assert 1 <= line <= max(1, len(lines)) and col >= 1
        if isinstance(value, dict):
            for k, v in value.items():
                assert (path + (k,)) in doc.key_pos
                kl, kc = doc.key_pos[path + (k,)]
                assert lines[kl - 1][kc - 1:].startswith(k[:1])
                walk(v, path + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(v, path + (i,))

    walk(data, ())
