"""The compiled rule set: first-match routing indexed on `match` fields, variant choice, and explanations.

Rules are grouped by the set of fields their `match` names; each group is a hash index from the tuple
of those fields' values to the group's rules in evaluation order. An outcome's candidates are the
union of one lookup per group, tried in evaluation order (only `when` is evaluated per rule). A
decision cache keyed on the values of every field any `match` names makes the common case one tuple
and one dict lookup, whatever the number of rules.
"""
from __future__ import annotations

import hashlib
import heapq
import itertools
from collections import defaultdict
from typing import Any, Callable, Mapping, Sequence

from .model import Rule, RuleSet

_MISSING = None
CACHE_LIMIT = 200_000


class _Unmatchable:
    """Stands for a list or mapping where a match field expects a scalar: equal to nothing."""

    __slots__ = ()


def _norm(value: Any) -> Any:
    if value is True or value is False:
        return ("\0bool", value)  # so that `true` never equals 1
    if isinstance(value, (list, dict)):
        return _Unmatchable()
    return value


def _getter_source(path: str) -> str:
    parts = path.split(".")
    expr = f"o.get({parts[0]!r})"
    for part in parts[1:]:
        expr = f"_sub({expr}, {part!r})"
    return f"_norm({expr})"


def _sub(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


def compile_extractor(paths: Sequence[str]) -> Callable[[Mapping], tuple]:
    """A function returning the tuple of the outcome's values at `paths` (normalised), built once."""
    body = ", ".join(_getter_source(p) for p in paths)
    src = f"def extract(o):\n    return ({body}{',' if len(paths) == 1 else ''})\n"
    scope: dict = {"_norm": _norm, "_sub": _sub}
    exec(compile(src, "<herald-router>", "exec"), scope)  # noqa: S102 - generated from field names only
    return scope["extract"]


class Router:
    """First-match routing over a RuleSet (priority, then file, then position)."""

    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset
        self.rules: tuple = ruleset.rules
        fields = sorted({path for rule in self.rules for path, _ in rule.match})
        self.fields = tuple(fields)
        self._extract = compile_extractor(fields) if fields else (lambda o: ())
        pos = {f: i for i, f in enumerate(fields)}
        groups: dict = defaultdict(lambda: defaultdict(list))
        for idx, rule in enumerate(self.rules):
            keys = tuple(sorted(path for path, _ in rule.match))
            value_lists = [[_norm(v) for v in dict(rule.match)[k]] for k in keys]
            for combo in itertools.product(*value_lists):
                groups[keys][combo].append(idx)
        # (positions of the group's fields in the extracted tuple, index)
        self._groups = [(tuple(pos[k] for k in keys), dict(index)) for keys, index in groups.items()]
        self._cache: dict = {}

    def candidates(self, key: tuple) -> tuple:
        """Indices of the rules whose `match` accepts the extracted `key`, in evaluation order."""
        lists = []
        for positions, index in self._groups:
            try:
                found = index.get(tuple(key[p] for p in positions))
            except TypeError:
                found = None
            if found:
                lists.append(found)
        if not lists:
            return ()
        if len(lists) == 1:
            merged = lists[0]
        else:
            merged = list(heapq.merge(*lists))
        out = []
        for idx in merged:  # stop after the first rule without `when`: nothing after it can win
            out.append(idx)
            if self.rules[idx].predicate is None:
                break
        return tuple(out)

    def route(self, outcome: Mapping) -> Rule | None:
        """The first rule that matches `outcome`, or None."""
        key = self._extract(outcome)
        try:
            cands = self._cache.get(key)
        except TypeError:
            cands = None
            key = None
        if cands is None:
            cands = self.candidates(key if key is not None else self._extract(outcome))
            if key is not None:
                if len(self._cache) >= CACHE_LIMIT:
                    self._cache.clear()
                self._cache[key] = cands
        rules = self.rules
        for idx in cands:
            rule = rules[idx]
            pred = rule.predicate
            if pred is None or pred(outcome):
                return rule
        return None

    def explain(self, outcome: Mapping) -> list[tuple[Rule, str | None]]:
        """Every rule in order until the winner, each with the first condition that failed (None: it matched)."""
        out = []
        for rule in self.rules:
            reason = why_not(rule, outcome)
            out.append((rule, reason))
            if reason is None:
                break
        return out


def lookup(outcome: Mapping, path: str) -> Any:
    value: Any = outcome
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def why_not(rule: Rule, outcome: Mapping) -> str | None:
    """The first condition of `rule` that `outcome` fails, in words; None when the rule matches."""
    for path, values in rule.match:
        got = lookup(outcome, path)
        if isinstance(got, (list, dict)) or _norm(got) not in [_norm(v) for v in values]:
            wanted = " or ".join(_show(v) for v in values)
            return f"{path}: wanted {wanted}, got {_show(got)}"
    if rule.predicate is not None and not rule.predicate(outcome):
        from .dsl.when import parse_when

        expr, _ = parse_when(rule.when or "")
        detail = expr.explain(outcome) if expr is not None else None
        return f"when: {detail or rule.when + ' was false'}"
    return None


def choose_variant(rule: Rule, outcome_id: str) -> str:
    """The template for this outcome: deterministic from the outcome id, by the variants' weights."""
    if not rule.variants:
        return rule.template
    digest = hashlib.sha256(f"{rule.id}\0{outcome_id}".encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64 * sum(v.weight for v in rule.variants)
    acc = 0.0
    for variant in rule.variants:
        acc += variant.weight
        if point < acc:
            return variant.template
    return rule.variants[-1].template
