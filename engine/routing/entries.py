"""Compiled index entries: a list of candidate rules turned into the cheapest object that gives its first match.

A candidate list (rules in evaluation order, as an index entry holds them) becomes:

- a `Rule`: the first candidate has no `when`, so it always wins;
- None: no candidate at all;
- `Ranges`: a run of candidates whose `when` is a numeric range on one field (`score >= 60 and score < 80`,
  see `engine.rules.when.FieldRange`), compiled into a sorted interval table: one bisect finds the first
  rule of the run whose range holds the value, whatever the length of the run (`Span`: a run of one
  `lo <= x < hi`, two comparisons; a run of one range of another shape stays a `Chain`);
- `Chain`: candidates with any other `when`, tried in order.

Where every entry of a complete index ends within one table on the same top-level field (a Rule, None, a
Span or a Ranges whose every outcome is a rule or None), `flat_table` lays each out as one tuple, bisected
in place by the router's generated `find` (see `flat_table`).

Each `Ranges`, `Span` or `Chain` knows what comes after it (`miss`, `rest`); Router.route loops until it
has a rule or None, testing a Span's band, a Chain's rules and a table on a top-level field itself (one
call less, measured) and asking a table on a nested field's `step(outcome)` for the winning rule, None, or
the entry to go on with. Equal candidate lists compile to one shared object (`Compiler` memoises them).
"""
from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from itertools import pairwise
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.model import Rule
from engine.rules.when import FieldRange, field_range

_UNSEEN: Any = object()


def _always(_outcome: Mapping[str, Any]) -> bool:
    return True


class Ranges:
    """A run of rules with ranges on one field: sorted bounds, the winner of each gap and of each bound."""

    __slots__ = ("bounds", "gaps", "miss", "name", "parts", "points", "search")

    def __init__(self, run: Sequence[tuple[Rule, FieldRange]], rest: Entry):
        path = run[0][1].path
        self.parts = tuple(path.split("."))
        self.name = self.parts[0] if len(self.parts) == 1 else None  # a top-level field: read inline

        def winner(holds: Any) -> Any:  # where no range of the run holds, what comes after the run decides
            return next((rule for rule, rng in run if holds(rng)), rest)

        values: list = sorted({v for _, rng in run for v in (rng.lo, rng.hi) if v is not None})
        # Between and around the bounds, each gap is an open interval: a range holds on all of it or on
        # none of it, for no bound lies inside. Gap i lies between values[i - 1] and values[i].
        edges = [None, *values, None]
        gaps = [winner(lambda r, a=a, b=b: (r.lo is None or (a is not None and r.lo <= a))
                       and (r.hi is None or (b is not None and r.hi >= b)))
                for a, b in pairwise(edges)]
        at = [winner(lambda r, v=v: r.contains(v)) for v in values]
        # bisect_right finds the gap right of a bound for the bound itself: right when every bound wins
        # what the gap to its right wins (the usual `lo <= x < hi`); bisect_left likewise to the left.
        if all(at[i] is gaps[i + 1] for i in range(len(values))):
            self.search, self.points = bisect_right, None
        elif all(at[i] is gaps[i] for i in range(len(values))):
            self.search, self.points = bisect_left, None
        else:
            self.search, self.points = bisect_right, dict(zip(values, at, strict=True))
        self.bounds = tuple(values)  # tuples: their items sit in the object itself, one memory read fewer
        self.gaps = tuple(gaps)
        self.miss = rest  # the value is not a number (or NaN): no range holds

    def step(self, outcome: Mapping) -> Entry:
        """The rule of the run that wins for `outcome`, else what comes after the run."""
        if self.name is not None:
            x: Any = outcome.get(self.name)
        else:  # a nested field, read as the compiled `when` reads it
            parts = self.parts
            x = outcome.get(parts[0])
            for part in parts[1:]:
                x = x.get(part) if isinstance(x, dict) else None
        cls = x.__class__
        if (cls is int or cls is float) and x == x:
            points = self.points
            if points is not None and x in points:
                return points[x]
            return self.gaps[self.search(self.bounds, x)]
        return self.miss


class Span:
    """One rule whose `when` is `lo <= field < hi` on a top-level field (the usual band, both bounds numbers):
    two comparisons, made by Router.route (the field a number, else `miss`; NaN is in no band)."""

    __slots__ = ("hi", "lo", "miss", "name", "rule")

    def __init__(self, rule: Rule, rng: FieldRange, rest: Entry):
        self.name = rng.path
        self.lo: float = rng.lo if rng.lo is not None else -math.inf  # Span.fits: both are numbers
        self.hi: float = rng.hi if rng.hi is not None else math.inf
        self.rule, self.miss = rule, rest

    @staticmethod
    def fits(rng: FieldRange) -> bool:
        """Is `rng` a band [lo, hi) on a top-level field?"""
        return (rng.lo is not None and rng.hi is not None and rng.lo_closed and not rng.hi_closed
                and "." not in rng.path)


class Chain:
    """Rules with a `when` of any kind, tried in order (by Router.route: the first `rule` and its predicate
    `holds` in slots of their own, the most common chain being one rule long; then `more`, (rule, predicate)
    pairs); then `rest`."""

    __slots__ = ("holds", "more", "rest", "rule", "rules")

    def __init__(self, rules: Sequence[Rule], rest: Entry):
        self.rules = tuple(rules)
        tests: tuple[tuple[Rule, Callable[[Mapping[str, Any]], bool]], ...] = tuple(
            (rule, rule.predicate or _always) for rule in rules)  # no predicate: the rule's `when` is always true
        (self.rule, self.holds), self.more = tests[0], tests[1:]
        self.rest = rest


Entry = Rule | Ranges | Span | Chain | None


def compile_entry(rules: Sequence[Rule]) -> Entry:
    """The entry for candidates `rules` (evaluation order): the first rule without `when` ends the list."""
    if not rules or rules[0].predicate is None:  # the common cases, on every decision-cache miss
        return rules[0] if rules else None
    steps: list = []  # Rule (no when: final), ("chain", [rules]), ("ranges", [(rule, range)])
    for rule in rules:
        if rule.predicate is None:
            steps.append(rule)
            break
        rng = field_range(rule.predicate)
        last = steps[-1] if steps else None
        if rng is not None:
            if last is not None and last[0] == "ranges" and last[1][0][1].path == rng.path:
                last[1].append((rule, rng))
            else:
                steps.append(("ranges", [(rule, rng)]))
        elif last is not None and last[0] == "chain":
            last[1].append(rule)
        else:
            steps.append(("chain", [rule]))
    entry: Entry = None
    for step in reversed(steps):
        if step.__class__ is not tuple:
            entry = step
        elif step[0] == "ranges" and len(step[1]) > 1:
            entry = Ranges(step[1], entry)
        elif step[0] == "ranges" and Span.fits(step[1][0][1]):
            rule, rng = step[1][0]
            entry = Span(rule, rng, entry)
        elif step[0] == "ranges":  # one range of another shape: its compiled predicate is as quick (measured)
            entry = Chain([step[1][0][0]], entry)
        else:
            entry = Chain(step[1], entry)
    return entry


def _final(entry: Entry) -> bool:
    return entry is None or entry.__class__ is Rule


def _as_table(entry: Entry) -> Entry:
    """`entry`, or for a Chain of one range on a top-level field (`score >= 60`), the same as a Ranges."""
    if entry.__class__ is Chain and not entry.more:
        rng = field_range(entry.rule.predicate)
        if rng is not None and "." not in rng.path:
            return Ranges([(entry.rule, rng)], entry.rest)
    return entry


def table_field(entry: Entry) -> str | bool | None:
    """The top-level field `entry` reads when `flat_table` can lay it out: None for a Rule or None (no field),
    False when it cannot (a Chain of anything but one range, a nested field, exact points, or anything but a
    rule or None after it)."""
    if _final(entry):
        return None
    entry = _as_table(entry)
    if entry.__class__ is Span:
        return entry.name if _final(entry.miss) else False
    if (entry.__class__ is Ranges and entry.name is not None and entry.points is None and _final(entry.miss)
            and all(_final(g) for g in entry.gaps)):
        return entry.name
    return False


def flat_table(entry: Entry) -> tuple:
    """`entry` (one `table_field` accepts) as one tuple `(search, miss, n, bounds..., gaps...)`, n = 3 +
    len(bounds): for a number x (not NaN) of its field the answer is `t[search(t, x, 3, n) + n - 3]`, else
    `miss`. One object per outcome instead of an entry, its bounds and its gaps (three cache lines where
    thousands of entries do not fit the CPU's cache); a Rule or None is a table with no bounds."""
    if _final(entry):
        return (bisect_right, entry, 3, entry)
    entry = _as_table(entry)
    if entry.__class__ is Span:
        return (bisect_right, entry.miss, 5, entry.lo, entry.hi, entry.miss, entry.rule, entry.miss)
    assert entry.__class__ is Ranges
    return (entry.search, entry.miss, 3 + len(entry.bounds), *entry.bounds, *entry.gaps)


class Compiler:
    """Compiles candidate lists, giving equal lists (by rule position) one shared entry; the memo is
    cleared when it holds `limit` lists (only sharing is lost)."""

    def __init__(self, rules: Sequence[Rule], limit: int = 200_000):
        self.rules = rules
        self.limit = limit
        self.memo: dict[tuple, Entry] = {}

    def entry(self, indices: tuple) -> Entry:
        found = self.memo.get(indices, _UNSEEN)
        if found is _UNSEEN:
            if len(self.memo) >= self.limit:
                self.memo.clear()
            found = self.memo[indices] = compile_entry([self.rules[i] for i in indices])
        return found
