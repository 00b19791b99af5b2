"""Routing by bitsets (engine.routing.bitsets): the same rule as the plain first-match loop for any values
(true and 1, NaN, infinities, huge integers, lists and mappings, missing parents), one compiled entry per
candidate set, the cache's limit, and the choice between bitsets and the decision cache."""
from __future__ import annotations

import math
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import engine.routing.router as router_module
from engine.model import Rule, RuleSet, Timing
from engine.routing.bitsets import first_candidates
from engine.routing.router import Router, why_not

NAN = math.nan  # one NaN object: equal to itself by identity, as a dict and a list both find it
FIELDS = ("decision", "stage", "attributes.flag", "candidate.locale")
RULE_VALUES = ["reject", "pass", "a", None, True, False, 1, 0, 1.0, 2**70, -2**70, math.inf, -math.inf, NAN, "1"]
OUTCOME_VALUES = [*RULE_VALUES, 1.5, float("nan"), -0.0, 2**70 + 1, "", [1], {"a": 1}, ["reject"], "absent"]


def _rule(i: int, match: dict, pred=None) -> Rule:
    return Rule(id=f"r{i}", template="t", channels=("email",), timing=Timing(timedelta(0)),
                match=tuple((k, tuple(v)) for k, v in match.items()), when="x" if pred else None,
                predicate=pred, order=i)


def plain(rules, outcome):
    """The first rule whose every condition holds, as Router.explain words them (match_value's equality)."""
    return next((rule for rule in rules if why_not(rule, outcome) is None), None)


def _put(outcome: dict, path: str, value) -> None:
    if value == "absent" and value.__class__ is str:
        return
    *parents, last = path.split(".")
    node = outcome
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


match_st = st.dictionaries(st.sampled_from(FIELDS), st.lists(st.sampled_from(RULE_VALUES), min_size=1, max_size=3),
                           max_size=3)
rules_st = st.lists(st.tuples(match_st, st.sampled_from([None, "score", "stage"])), min_size=2, max_size=14)
PREDICATES = {None: None, "score": lambda o: (o.get("score") or 0) >= 60, "stage": lambda o: o.get("stage") == "a"}


@st.composite
def outcome_st(draw):
    out: dict = {"score": draw(st.sampled_from([0, 70]))}
    for path in FIELDS:
        _put(out, path, draw(st.sampled_from(OUTCOME_VALUES)))
    if draw(st.integers(0, 5)) == 0:
        out[draw(st.sampled_from(["candidate", "attributes"]))] = draw(st.sampled_from(["text", [1], None]))
    return out


@settings(max_examples=300, deadline=None)
@given(rules_st, st.lists(outcome_st(), min_size=1, max_size=20))
def test_bitsets_agree_with_the_plain_loop(spec, outcomes):
    rules = tuple(_rule(i, m, PREDICATES[p]) for i, (m, p) in enumerate(spec))
    ruleset = RuleSet(rules, {}, "v")
    routers = [Router(ruleset, bitsets=True), Router(ruleset, cache_limit=0, bitsets=True),
               Router(ruleset, cache_limit=1, bitsets=True), Router(ruleset, bitsets=False)]
    for o in outcomes + outcomes:  # the second pass: entries kept by candidate set
        want = plain(rules, o)
        for r in routers:
            assert r.route(o) is want, (r.bitsets, r.complete, o)


def test_values_compare_as_match_compares_them():
    rules = (_rule(0, {"attributes.flag": [1], "decision": ["x"]}), _rule(1, {"attributes.flag": [True]}),
             _rule(2, {"attributes.flag": [2**70]}), _rule(3, {"attributes.flag": [NAN]}),
             _rule(4, {"stage": ["a"]}), _rule(5, {}))
    router = Router(RuleSet(rules, {}, "v"))
    assert router.bitsets and not router.complete
    cases = [(True, 1), (1, 5), ({"decision": "x", "flag": 1.0}, 0), (2**70, 2), (float(2**70), 2), (2**70 + 1, 5),
             (NAN, 3), (float("nan"), 5), ([1], 5), ({"a": 1}, 5), (False, 5), (0, 5)]
    for _ in range(2):
        for value, want in cases:
            o = {"attributes": {"flag": value}} if not isinstance(value, dict) or "flag" not in value else \
                {"decision": value["decision"], "attributes": {"flag": value["flag"]}}
            assert router.route(o).id == f"r{want}", value
        assert router.route({"attributes": [1], "stage": "a"}).id == "r4"  # a parent that is not a mapping
        assert router.route({"stage": ["a"]}).id == "r5"  # a list where a text is expected: the slow path


def test_one_entry_per_candidate_set():
    rules = (_rule(0, {"decision": ["reject"]}, PREDICATES["score"]), _rule(1, {"stage": ["a"]}, PREDICATES["stage"]),
             _rule(2, {"decision": ["reject"], "candidate.locale": ["en"]}), _rule(3, {}))
    router = Router(RuleSet(rules, {}, "v"))
    assert router.bitsets
    for i in range(50):  # fifty combinations of values, two candidate sets
        for stage in ("a", "b"):
            o = {"decision": "reject", "stage": stage, "attributes": {"flag": f"f{i}"}, "candidate": {"locale": f"l{i}"},
                 "score": 10}
            assert router.route(o) is plain(rules, o)
    assert len(router._by_mask) == 2
    assert router._entries == {}  # no decision cache


def test_the_entries_by_candidate_set_are_cleared_at_their_limit():
    rules = tuple(_rule(i, {"stage": [f"s{i}"]}) for i in range(10)) + (_rule(10, {"decision": ["x"]}),)
    router = Router(RuleSet(rules, {}, "v"), cache_limit=3)
    for i in range(10):
        assert router.route({"stage": f"s{i}"}).id == f"r{i}"
        assert len(router._by_mask) <= 3
    none = Router(RuleSet(rules, {}, "v"), cache_limit=0)
    assert none.route({"stage": "s4"}).id == "r4" and none._by_mask == {}


def test_first_candidates_stop_at_the_first_rule_without_when():
    rules = (_rule(0, {}, PREDICATES["score"]), _rule(1, {}), _rule(2, {}, PREDICATES["score"]), _rule(3, {}))
    assert first_candidates(0b1111, rules) == (0, 1)
    assert first_candidates(0b1100, rules) == (2, 3)
    assert first_candidates(0b0101, rules) == (0, 2)
    assert first_candidates(0, rules) == ()


def test_bitsets_up_to_their_limit_of_rules(monkeypatch):
    rules = (_rule(0, {"decision": ["reject"]}), _rule(1, {"stage": ["a"]}), _rule(2, {}))
    assert Router(RuleSet(rules, {}, "v")).bitsets
    monkeypatch.setattr(router_module, "BITSET_RULES", 2)
    big = Router(RuleSet(rules, {}, "v"))
    assert not big.bitsets and big.route({"stage": "a"}).id == "r1"  # the decision cache
    assert Router(RuleSet(rules, {}, "v"), bitsets=True).bitsets
    single = Router(RuleSet((_rule(0, {"stage": ["a"]}),), {}, "v"))
    assert single.complete and not single.bitsets


@pytest.mark.parametrize("value", [math.inf, -math.inf, 2**200, -0.0, True])
def test_numbers_in_rules_and_outcomes(value):
    rules = (_rule(0, {"attributes.flag": [value]}), _rule(1, {"stage": ["a"]}))
    router = Router(RuleSet(rules, {}, "v"))
    assert router.bitsets
    for got in (value, float(value) if not isinstance(value, bool) else 1, "1", None):
        o = {"attributes": {"flag": got}}
        assert router.route(o) is plain(rules, o)
