"""Compiled entries: interval tables for numeric `when` ranges, shared entries, the complete index; every
trick checked against the plain first-match loop on random rule sets and outcomes."""
from __future__ import annotations

import math
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.model import Rule, RuleSet, Timing
from engine.routing.entries import Chain, Compiler, Ranges, Span, compile_entry
from engine.routing.router import Router
from engine.rules.when import compile_when
from routing_oracle import naive

MATCH_VALUES = {"role": ["backend", "sales", None], "stage": ["a", "b"], "attributes.source": ["web", "ref", 1, True]}
BOUNDS = [-1e999, -5, 0, 0.5, 10, 10.0, 59.9, 60, 100, 1e999]


def _rule(i: int, match: dict, when: str | None, priority: int = 0) -> Rule:
    return Rule(id=f"r{i}", template="t", channels=("email",), timing=Timing(timedelta(0)),
                match=tuple((k, tuple(v)) for k, v in match.items()), when=when,
                predicate=compile_when(when) if when else None, priority=priority, order=i)


# ---------------------------------------------------------------- strategies

def _comparison(field: str, op: str, bound: float, flipped: bool) -> str:
    lit = "1e999" if bound == math.inf else "-1e999" if bound == -math.inf else repr(bound)
    if flipped:
        op = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}[op]
        return f"{lit} {op} {field}"
    return f"{field} {op} {lit}"


comparison_st = st.builds(_comparison, st.sampled_from(["score", "attributes.level"]),
                          st.sampled_from(["<", "<=", ">", ">=", "=="]), st.sampled_from(BOUNDS), st.booleans())


@st.composite
def when_st(draw):
    kind = draw(st.sampled_from(["none", "range", "range", "range2", "other"]))
    if kind == "none":
        return None
    if kind == "other":  # not a range: kept as a predicate in a Chain
        return draw(st.sampled_from(['stage == "a"', "score >= 60 or score < 10", "score > level",
                                     "attributes.level >= 5 and score < 50", "score != 10"]))
    first = draw(comparison_st)
    if kind == "range":
        return first
    field = first.split()[0] if first.split()[0] in ("score", "attributes.level") else first.split()[-1]
    second = draw(st.builds(_comparison, st.just(field), st.sampled_from(["<", "<=", ">", ">="]),
                            st.sampled_from(BOUNDS), st.booleans()))
    return f"{first} and {second}"


match_st = st.dictionaries(st.sampled_from(sorted(MATCH_VALUES)),
                           st.lists(st.integers(0, 3), min_size=1, max_size=2), max_size=2).map(
    lambda d: {k: list(dict.fromkeys(MATCH_VALUES[k][n % len(MATCH_VALUES[k])] for n in v)) for k, v in d.items()})
rule_spec_st = st.tuples(match_st, when_st(), st.integers(-1, 1))
NUMBERS = [-math.inf, -5, -4.5, 0, 0.0, 0.25, 0.5, 5, 10, 10.0, 10.5, 59.9, 60, 60.0, 99, 100, 100.5, math.inf,
           math.nan, 10**400, True, False, None, "60", [60], "absent"]


@st.composite
def outcome_st(draw):
    out: dict = {}
    for path, values in MATCH_VALUES.items():
        v = draw(st.sampled_from([*values, "other", ["backend"], "absent"]))
        if v == "absent":
            continue
        if "." in path:
            out.setdefault("attributes", {})["source"] = v
        else:
            out[path] = v
    score = draw(st.sampled_from(NUMBERS) | st.floats(-10, 110))
    if score != "absent":
        out["score"] = score
    level = draw(st.sampled_from(NUMBERS))
    if level != "absent":
        out.setdefault("attributes", {})["level"] = level
    if draw(st.booleans()) and "attributes" in out:
        out["attributes"] = "not a mapping"
    return out


def _router(spec):
    rules = [_rule(i, m, w, prio) for i, (m, w, prio) in enumerate(spec)]
    ordered = tuple(sorted(rules, key=lambda r: (-r.priority, r.order)))
    return ordered, Router(RuleSet(ordered, {}, "v"))


# ---------------------------------------------------------------- the oracle

@settings(max_examples=300, deadline=None)
@given(st.lists(rule_spec_st, max_size=14), st.lists(outcome_st(), min_size=1, max_size=25))
def test_router_agrees_with_the_naive_loop(spec, outcomes):
    ordered, router = _router(spec)
    uncached = Router(router.ruleset, cache_limit=0)
    for o in outcomes + outcomes:  # the second pass is served by the decision cache, if any
        want = naive(ordered, o)
        assert router.route(o) is want
        assert uncached.route(o) is want


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["backend", "sales"]), when_st(), st.integers(-1, 1)), max_size=20),
       st.booleans(), st.lists(outcome_st(), min_size=1, max_size=25))
def test_complete_index_agrees_with_the_naive_loop(spec, catch_all, outcomes):
    """One set of match fields (plus catch-alls): the complete index, ranges merged with the catch-alls."""
    full = [({"role": [role]}, when, prio) for role, when, prio in spec]
    if catch_all:
        full.append(({}, None, -1))
    ordered, router = _router(full)
    assert router.complete
    for o in outcomes:
        assert router.route(o) is naive(ordered, o)


# ---------------------------------------------------------------- the compiled shapes

def test_a_run_of_ranges_is_one_interval_table():
    rules = [_rule(i, {}, f"score >= {lo} and score < {hi}") for i, (lo, hi) in enumerate([(0, 50), (40, 60), (60, 61)])]
    rules.append(_rule(3, {}, None))
    entry = compile_entry(rules)
    assert isinstance(entry, Ranges)
    assert entry.bounds == (0, 40, 50, 60, 61)
    assert entry.points is None  # every bound wins what the gap to its right wins: one bisect_right
    for x, want in [(-1, 3), (0, 0), (45, 0), (50, 1), (59.99, 1), (60, 2), (60.5, 2), (61, 3), (math.nan, 3),
                    ("45", 3), (True, 3), (None, 3)]:
        assert entry.step({"score": x}) is rules[want], x


def test_one_band_is_two_comparisons():
    rules = (_rule(0, {}, "score >= 60 and score < 80"), _rule(1, {}, None))
    entry = compile_entry(rules)
    assert isinstance(entry, Span) and entry.miss is rules[1]
    router = Router(RuleSet(rules, {}, "v"))
    for x, want in [(59.9, 1), (60, 0), (79.9, 0), (80, 1), (math.nan, 1), (True, 1), ("70", 1), (None, 1)]:
        assert router.route({"score": x}) is rules[want], x
    one = compile_entry([_rule(0, {}, "score > 60 and score < 80")])
    assert isinstance(one, Chain)  # one range of another shape: its predicate


def test_mixed_bounds_keep_their_points():
    rules = [_rule(0, {}, "score > 10 and score <= 20"), _rule(1, {}, "score == 10"), _rule(2, {}, "score >= 20")]
    entry = compile_entry(rules)
    assert isinstance(entry, Ranges) and entry.points is not None
    for x, want in [(9, None), (10, 1), (10.0, 1), (15, 0), (20, 0), (20.5, 2), (math.inf, 2)]:
        assert entry.step({"score": x}) is (rules[want] if want is not None else None), x


def test_other_whens_stay_in_order_between_tables():
    rules = [_rule(0, {}, "score >= 90"), _rule(1, {}, "score < 10"), _rule(2, {}, 'stage == "a"'),
             _rule(3, {}, "attributes.level < 3"), _rule(4, {}, "attributes.level >= 3")]
    entry = compile_entry(rules)
    assert isinstance(entry, Ranges)
    chain = entry.miss
    assert isinstance(chain, Chain) and chain.rules == (rules[2],)
    assert isinstance(chain.rest, Ranges)
    router = Router(RuleSet(tuple(rules), {}, "v"))
    for o in [{"score": 95, "stage": "a"}, {"score": 5, "stage": "a"}, {"score": 50, "stage": "a"},
              {"attributes": {"level": 1}}, {"attributes": {"level": 7}}, {"attributes": "x"}, {}]:
        assert router.route(o) is naive(rules, o), o


def test_equal_candidate_lists_share_one_entry():
    rules = tuple(_rule(i, {"role": [role]}, "score >= 60") for i, role in enumerate(["backend", "sales"])) + (
        _rule(2, {}, "score >= 30 and score < 60"), _rule(3, {}, None))
    router = Router(RuleSet(rules, {}, "v"))
    backend, sales = router._entries[("backend",)], router._entries[("sales",)]
    assert backend is not sales and backend.miss is sales.miss  # the catch-alls' table, compiled once


def test_a_complete_index_learns_nothing_at_run_time():
    rules = (_rule(0, {"role": ["backend"], "stage": ["a"]}, "score >= 60"), _rule(1, {}, None))
    router = Router(RuleSet(rules, {}, "v"))
    assert router.complete
    before = dict(router._entries)
    for i in range(100):
        assert router.route({"role": f"role{i}", "stage": "a", "score": 70}).id == "r1"
    assert router.route({"role": ["backend"], "stage": "a", "score": 70}).id == "r1"
    assert router.route({"role": "backend", "stage": "a", "score": 70}).id == "r0"
    assert router._entries == before


def test_the_memo_of_compiled_lists_is_bounded():
    rules = [_rule(i, {}, "score >= 60") for i in range(4)]
    compiler = Compiler(rules, limit=2)
    for indices in [(0,), (1,), (2,), (3,), (0, 1)]:
        assert isinstance(compiler.entry(indices), (Chain, Ranges))
        assert len(compiler.memo) <= 2
    assert compiler.entry((0, 1)) is compiler.entry((0, 1))


# ---------------------------------------------------------------- flat tables (a complete index of tables on one field)

band_st = st.tuples(st.sampled_from(["-5", "0", "0.5", "10", "59.9", "60"]),
                    st.sampled_from(["0.5", "10", "60", "60.0", "100", "1e999"]))
flat_when_st = st.one_of(st.none(), band_st.map(lambda b: f"score >= {b[0]} and score < {b[1]}"),
                         st.sampled_from(["score >= 60", "score < 10", "score > 10", "score <= 60"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["backend", "sales", "ops"]), flat_when_st, st.integers(-1, 1)),
                min_size=1, max_size=20),
       st.one_of(st.none(), flat_when_st), st.lists(outcome_st(), min_size=1, max_size=25))
def test_flat_tables_agree_with_the_naive_loop(spec, catch_all, outcomes):
    """Ranges on `score` only, each run ending in a rule or nothing: every entry is laid out as one flat
    table, looked up and bisected by the generated find, for known keys and the default alike."""
    full = [({"role": [role]}, when, prio) for role, when, prio in spec]
    if catch_all is not None:
        full.append(({}, catch_all, -2))
    ordered, router = _router(full)
    assert router.complete
    entries = (router._default, *router._entries.values())
    tables = [e for e in entries if isinstance(e, (Span, Ranges))]
    if tables and not any(isinstance(e, Chain) or (isinstance(e, Ranges) and e.points) for e in entries):
        assert router.table == "score"  # (one range of another shape alone is a Chain: walked)
    for o in outcomes + [{"role": "backend", "score": s} for s in NUMBERS if s != "absent"]:
        assert router.route(o) is naive(ordered, o), o


def test_bands_under_a_catch_all_are_flat_tables():
    rules = (_rule(0, {"role": ["backend"]}, "score >= 60 and score < 80"),
             _rule(1, {"role": ["backend"]}, "score >= 70 and score < 90"),
             _rule(2, {"role": ["sales"]}, "score >= 10 and score < 20"), _rule(3, {}, None))
    router = Router(RuleSet(rules, {}, "v"))
    assert router.table == "score"
    want = {("backend", 65): 0, ("backend", 85): 1, ("backend", 95): 3, ("sales", 10): 2, ("sales", 20): 3,
            ("ops", 15): 3, ("backend", math.nan): 3, ("backend", True): 3, ("backend", "70"): 3}
    for (role, score), i in want.items():
        assert router.route({"role": role, "score": score}) is rules[i], (role, score)
    assert router.route({"role": ["backend"], "score": 65}) is rules[3]  # unhashable: the default, walked


def test_flat_tables_only_where_every_entry_is_one_table_on_one_field():
    def table(*whens):
        rules = tuple(_rule(i, {"role": [role]}, w) for i, (role, w) in enumerate(whens)) + (_rule(99, {}, None),)
        return Router(RuleSet(rules, {}, "v")).table
    assert table(("backend", "score >= 60")) == "score"
    assert table(("backend", "score >= 60"), ("sales", 'stage == "a"')) is None  # a Chain
    assert table(("backend", "score >= 60"), ("sales", "attributes.level >= 3")) is None  # a nested field
    assert table(("backend", "score >= 60"), ("sales", "level >= 3")) is None  # two fields
    assert table(("backend", "score > 10 and score <= 20"), ("backend", "score == 10")) is None  # exact points
    assert table(("backend", "score >= 60"), ("backend", "level >= 3")) is None  # a table after a table
    assert table(("backend", None)) is None  # nothing to bisect: the entries are rules
