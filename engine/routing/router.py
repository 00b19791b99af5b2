"""The compiled rule set: first-match routing indexed on `match` fields, variant choice, and explanations.

Rules are grouped by the set of fields their `match` names; each group is a hash index from the tuple
of those fields' values to the group's rules in evaluation order. An outcome's candidates are the
union of one lookup per group, tried in evaluation order (only `when` is evaluated per rule). A
decision cache keyed on the values of every field any `match` names makes the common case one tuple
and one dict lookup, whatever the number of rules.
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import operator
from collections import defaultdict
from typing import Any
from collections.abc import Callable, Mapping, Sequence

from engine.model import Rule, RuleSet

_MISSING = None
CACHE_LIMIT = 200_000  # decision-cache entries before it is cleared (0: no caching)


class _Unmatchable:
    """Stands for a list or mapping where a match field expects a scalar: equal to nothing."""

    __slots__ = ()


def match_value(value: Any) -> Any:
    """A value as `match` compares it: booleans apart from numbers, lists and mappings equal to nothing."""
    if value is True or value is False:
        return ("\0bool", value)  # so that `true` never equals 1
    if isinstance(value, (list, dict)):
        return _Unmatchable()
    return value


def _sub(value: Any, key: str) -> Any:
    return value.get(key) if isinstance(value, dict) else None


_NO_MATCH = ()  # cached: no rule can match this key


def _raw_ok(key: tuple) -> bool:
    """A raw key may be cached as-is only when every value is text or null: then equal keys are
    exactly equal values (no `true == 1`, no unhashable lists)."""
    return all(not (v is not None and v.__class__ is not str) for v in key)


def _route_source(fields: Sequence[str]) -> str:
    """Python source of a route function specialised to the rule set's match fields.

    Each parent mapping (candidate, attributes, ...) is fetched once; the tuple of raw values is the
    decision-cache key; a cached entry is the winning rule itself when no `when` stands before it.
    """
    parents: dict = {}
    lines = ["def route(o):"]
    values = []
    for path in fields:
        parts = path.split(".")
        if len(parts) == 1:
            values.append(f"o.get({parts[0]!r})")
            continue
        parent = ".".join(parts[:-1])
        if parent not in parents:
            var = f"p{len(parents)}"
            parents[parent] = var
            src = f"o.get({parts[0]!r})"  # o is a dict (top-level fields are read with o.get too)
            for part in parts[1:-1]:
                src = f"_sub({src}, {part!r})"
            lines.append(f"    {var} = {src}")
            lines.append(f"    {var} = {var} if {var}.__class__ is dict else _EMPTY")
        values.append(f"{parents[parent]}.get({parts[-1]!r})")
    lines.append(f"    k = ({', '.join(values)}{',' if len(values) == 1 else ''})")
    lines += [
        "    try:",
        "        r = cache_get(k, _MISS)",
        "    except TypeError:  # a list or mapping among the values: never cached",
        "        return slow(o, k)",
        "    if r is _MISS:",
        "        return slow(o, k)",
        "    if r.__class__ is not tuple:",
        "        return r",
        "    for rule in r:",
        "        pred = rule.predicate",
        "        if pred is None or pred(o):",
        "            return rule",
        "    return None",
    ]
    return "\n".join(lines) + "\n"


def _compile_lookup(groups: Sequence[tuple]) -> Any:
    """A function giving, for a key of match values, the non-empty hit lists of every group (one dict
    lookup per group, generated; a group of catch-alls is a constant)."""
    scope: dict = {}
    lines = ["def lookup(k):", "    found = []"]
    for i, (_, index, positions) in enumerate(groups):
        if not positions:
            if index.get(()):
                scope[f"C{i}"] = index[()]
                lines.append(f"    found.append(C{i})")
            continue
        scope[f"I{i}"] = index.get
        key = "(" + ", ".join(f"k[{p}]" for p in positions) + ("," if len(positions) == 1 else "") + ")"
        lines += [f"    h = I{i}({key})", "    if h:", "        found.append(h)"]
    lines.append("    return found")
    exec(compile("\n".join(lines) + "\n", "<herald-router-lookup>", "exec"), scope)  # noqa: S102 - positions only
    return scope["lookup"]


def _pick_none(key: tuple) -> tuple:
    return ()


def _pick_one(position: int, key: tuple) -> tuple:
    return (key[position],)


class Router:
    """First-match routing over a RuleSet (priority, then file, then position)."""

    def __init__(self, ruleset: RuleSet):
        self.ruleset = ruleset
        self.rules: tuple = ruleset.rules
        fields = sorted({path for rule in self.rules for path, _ in rule.match})
        self.fields = tuple(fields)
        pos = {f: i for i, f in enumerate(fields)}
        groups: dict = defaultdict(lambda: defaultdict(list))
        for idx, rule in enumerate(self.rules):
            keys = tuple(sorted(path for path, _ in rule.match))
            value_lists = [[match_value(v) for v in dict(rule.match)[k]] for k in keys]
            for combo in itertools.product(*value_lists):
                groups[keys][combo].append(idx)
        # (a function picking the group's fields out of the extracted tuple, index)
        self._groups = []
        for keys, index in groups.items():
            positions = [pos[k] for k in keys]
            picker: Callable[[tuple], tuple]
            if not positions:
                picker = _pick_none
            elif len(positions) == 1:
                picker = functools.partial(_pick_one, positions[0])
            else:
                picker = operator.itemgetter(*positions)
            self._groups.append((picker, {k: self._upto_sure(v) for k, v in index.items()}, tuple(positions)))
        self._lookup = _compile_lookup(self._groups)
        self._cache: dict = {}
        scope = {"_sub": _sub, "_EMPTY": {}, "_MISS": object(), "cache_get": self._cache.get,
                 "slow": self._route_slow}
        exec(compile(_route_source(fields), "<herald-router>", "exec"), scope)  # noqa: S102 - field names only
        self.route = scope["route"]

    def _upto_sure(self, indices: list) -> tuple:
        """A group's rule indices up to the first rule without `when`: it matches whenever the group's
        key does, so no later rule of the list can ever come first (and merging stays short)."""
        for n, idx in enumerate(indices):
            if self.rules[idx].predicate is None:
                return tuple(indices[:n + 1])
        return tuple(indices)

    def candidates(self, key: tuple) -> tuple:
        """Indices of the rules whose `match` accepts `key` (match values of self.fields), in evaluation order."""
        try:
            found = self._lookup(key)
        except TypeError:  # an unhashable value: group by group, that group matching nothing
            found = []
            for picker, index, _ in self._groups:
                try:
                    hit = index.get(picker(key))
                except TypeError:
                    hit = None
                if hit:
                    found.append(hit)
        if not found:
            return ()
        merged = found[0] if len(found) == 1 else sorted(itertools.chain.from_iterable(found))
        out = []
        for idx in merged:  # stop after the first rule without `when`: nothing after it can win
            out.append(idx)
            if self.rules[idx].predicate is None:
                break
        return tuple(out)

    def _route_slow(self, outcome: Mapping, raw_key: tuple) -> Rule | None:
        """A decision-cache miss: find the candidates, cache them when the key allows, evaluate."""
        plain = _raw_ok(raw_key)  # text and nulls are their own match values
        cands = self.candidates(raw_key if plain else tuple(map(match_value, raw_key)))
        rules = tuple(self.rules[i] for i in cands)
        if CACHE_LIMIT and plain:
            if len(self._cache) >= CACHE_LIMIT:
                self._cache.clear()
            if not rules:
                self._cache[raw_key] = _NO_MATCH
            elif rules[0].predicate is None:
                self._cache[raw_key] = rules[0]
            else:
                self._cache[raw_key] = rules
        for rule in rules:
            if rule.predicate is None or rule.predicate(outcome):
                return rule
        return None

    def route(self, outcome: Mapping) -> Rule | None:  # replaced per instance by the generated function
        """The first rule that matches `outcome`, or None."""
        raise NotImplementedError

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
        if isinstance(got, (list, dict)) or match_value(got) not in [match_value(v) for v in values]:
            wanted = " or ".join(_show(v) for v in values)
            return f"{path}: wanted {wanted}, got {_show(got)}"
    if rule.predicate is not None and not rule.predicate(outcome):
        from engine.rules.when import parse_when

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
