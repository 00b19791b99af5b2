"""The report's statistics: exact percentiles, and comparing variants with a two-proportion z-test.

Percentiles: the median is the middle value (the mean of the two middle ones for an even count); p90 is the
nearest-rank value, the ceil(0.9 n)-th smallest. Both are exact, whatever the size.

Variants: for one rule and one metric (opened % or replied %, over sent), each pair of variants is compared with
a two-sided two-proportion z-test (pooled standard error). Below a minimum sample (MIN_SENT sent per variant,
or an expected count under MIN_EXPECTED for successes or failures in either variant, where the normal
approximation does not hold) the verdict is "not enough data yet", never a p-value. With more than two
variants, the significance level is divided by the number of pairs (Bonferroni).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import combinations
from collections.abc import Sequence

MIN_SENT = 30
MIN_EXPECTED = 5.0
ALPHA = 0.05
NOT_ENOUGH = "not enough data yet"


def median(sorted_values: Sequence[float]) -> float | None:
    n = len(sorted_values)
    if n == 0:
        return None
    mid = n // 2
    return float(sorted_values[mid]) if n % 2 else (sorted_values[mid - 1] + sorted_values[mid]) / 2.0


def nearest_rank(sorted_values: Sequence[float], p: float) -> float | None:
    """The ceil(p n)-th smallest value (p in (0, 1])."""
    n = len(sorted_values)
    if n == 0:
        return None
    k = max(1, math.ceil(round(p * n, 9)))
    return float(sorted_values[min(k, n) - 1])


def rate(part: int, whole: int) -> float | None:
    return None if not whole else part / whole


@dataclass(frozen=True)
class ZTest:
    """The result of comparing two proportions x1/n1 and x2/n2."""

    z: float
    p_value: float
    p1: float
    p2: float


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> ZTest:
    """Two-sided two-proportion z-test with the pooled proportion; n1, n2 > 0."""
    p1, p2 = x1 / n1, x2 / n2
    pooled = (x1 + x2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return ZTest(0.0, 1.0, p1, p2)
    z = (p1 - p2) / se
    return ZTest(z, math.erfc(abs(z) / math.sqrt(2)), p1, p2)


def enough_data(x1: int, n1: int, x2: int, n2: int) -> str | None:
    """None when the sample supports a test; else why not (for the report)."""
    if min(n1, n2) < MIN_SENT:
        return f"needs at least {MIN_SENT} sent per variant (has {n1} and {n2})"
    pooled = (x1 + x2) / (n1 + n2)
    expected = min(n * q for n in (n1, n2) for q in (pooled, 1 - pooled))
    if expected < MIN_EXPECTED:
        return f"an expected count is {expected:.1f}, under {MIN_EXPECTED:g}: wait for more messages"
    return None


@dataclass(frozen=True)
class Comparison:
    """Variant a against variant b of one rule on one metric."""

    rule_id: str | None
    metric: str  # opened | replied
    a: str
    b: str
    sent_a: int
    hits_a: int
    sent_b: int
    hits_b: int
    z: float | None
    p_value: float | None
    alpha: float
    significant: bool
    verdict: str

    def as_dict(self) -> dict:
        return {"rule": self.rule_id, "metric": self.metric, "a": self.a, "b": self.b,
                "a_sent": self.sent_a, "a_hits": self.hits_a, "a_rate": rate(self.hits_a, self.sent_a),
                "b_sent": self.sent_b, "b_hits": self.hits_b, "b_rate": rate(self.hits_b, self.sent_b),
                "z": self.z, "p_value": self.p_value, "alpha": self.alpha, "significant": self.significant,
                "verdict": self.verdict}


def compare_variants(rule_id: str | None, metric: str, variants: Sequence[tuple[str, int, int]],
                     alpha: float = ALPHA) -> list[Comparison]:
    """Every pair of (variant, sent, hits); Bonferroni-corrected alpha over the pairs."""
    pairs = list(combinations(sorted(variants), 2))
    level = alpha / max(len(pairs), 1)
    out = []
    for (a, na, xa), (b, nb, xb) in pairs:
        why = enough_data(xa, na, xb, nb)
        if why is not None:
            out.append(Comparison(rule_id, metric, a, b, na, xa, nb, xb, None, None, level, False,
                                  f"{NOT_ENOUGH} ({why})"))
            continue
        t = two_proportion_z(xa, na, xb, nb)
        if t.p_value < level:
            hi, _lo = (a, b) if t.p1 > t.p2 else (b, a)
            verdict = f"{hi} has the higher {metric} rate (p = {t.p_value:.2g} < {level:.2g})"
        else:
            verdict = f"no significant difference (p = {t.p_value:.2g})"
        out.append(Comparison(rule_id, metric, a, b, na, xa, nb, xb, t.z, t.p_value, level, t.p_value < level,
                              verdict))
    return out
