"""Variants of a rule compared with a two-proportion z-test; "not enough data yet" below the minimum sample."""
from __future__ import annotations

import math

import pytest
from report_support import build_variants

from engine.report import build_report, stats


def test_z_test_against_the_formula():
    t = stats.two_proportion_z(30, 40, 10, 40)
    pooled = 40 / 80
    se = math.sqrt(pooled * (1 - pooled) * (1 / 40 + 1 / 40))
    assert t.z == pytest.approx((0.75 - 0.25) / se)
    assert t.p_value == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(t.z / math.sqrt(2)))), rel=1e-6)
    # z = 1.959964 is the two-sided 5% point
    x = stats.two_proportion_z(600, 1000, 556, 1000)
    assert x.p_value == pytest.approx(0.0469, abs=0.002)
    assert stats.two_proportion_z(0, 50, 0, 50).p_value == 1.0  # no variance: no difference


def test_minimum_sample():
    assert "at least 30 sent" in stats.enough_data(5, 29, 5, 100)
    assert "expected count is 1.5" in stats.enough_data(1, 40, 2, 40)  # pooled 3/80: 40 * 0.0375 = 1.5
    assert "expected count" in stats.enough_data(39, 40, 40, 40)  # failures too rare
    assert stats.enough_data(10, 40, 12, 40) is None


def test_percentiles():
    assert stats.median([]) is None and stats.nearest_rank([], 0.9) is None
    assert stats.median([1.0, 2.0, 3.0, 10.0]) == 2.5 and stats.median([5.0]) == 5.0
    assert stats.nearest_rank(list(range(1, 11)), 0.9) == 9 and stats.nearest_rank(list(range(1, 21)), 0.9) == 18
    assert stats.nearest_rank([1.0, 2.0, 3.0], 0.9) == 3.0


def test_bonferroni_over_three_variants():
    cmp = stats.compare_variants("r", "opened", [("a", 100, 50), ("b", 100, 52), ("c", 100, 80)])
    assert [(c.a, c.b) for c in cmp] == [("a", "b"), ("a", "c"), ("b", "c")]
    assert all(c.alpha == pytest.approx(0.05 / 3) for c in cmp)
    assert [c.significant for c in cmp] == [False, True, True]
    assert cmp[1].verdict.startswith("c has the higher opened rate")


@pytest.fixture(scope="module")
def variants_store(tmp_path_factory):
    return build_variants(tmp_path_factory.mktemp("variants") / "herald.db")


def test_a_significant_difference_and_one_below_the_minimum(variants_store):
    rep = build_report(variants_store)
    by = {(c.rule_id, c.metric): c for c in rep.comparisons}
    assert set(by) == {("ab", "opened"), ("ab", "replied"), ("small", "opened"), ("small", "replied")}
    opened = by[("ab", "opened")]
    assert (opened.a, opened.sent_a, opened.hits_a, opened.b, opened.sent_b, opened.hits_b) == \
        ("brief", 40, 10, "warm", 40, 30)
    assert opened.significant and opened.p_value < 1e-4
    assert opened.verdict.startswith("warm has the higher opened rate")
    replied = by[("ab", "replied")]  # 4 of 40 each: expected replies 4 < 5
    assert not replied.significant and replied.p_value is None
    assert replied.verdict.startswith("not enough data yet")
    for metric in ("opened", "replied"):
        small = by[("small", metric)]
        assert small.verdict.startswith("not enough data yet (needs at least 30 sent per variant")
        assert small.p_value is None and not small.significant
    d = rep.as_dict()["variants"]
    assert {(v["rule"], v["metric"], v["significant"]) for v in d} == {
        ("ab", "opened", True), ("ab", "replied", False), ("small", "opened", False), ("small", "replied", False)}
