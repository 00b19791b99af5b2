"""The compiled rule set: first-match routing indexed on `match` fields, variant choice, and explanations.

Rules are grouped by the set of fields their `match` names; each group is a hash index from the tuple
of those fields' values to the group's rules in evaluation order. A candidate list is compiled once
into an entry (engine.routing.entries): the rule itself when it has no `when`, an interval table for
runs of numeric ranges on one field, else the rules with a `when` in order.

When one group holds every rule that names a field (the others are catch-alls), the index is complete:
each key maps to its compiled entry with the catch-alls merged in, a missing key to the catch-alls'
entry, so routing is one tuple, one dict lookup and at most one bisect, with nothing learnt at run
time; when every entry is then one table on the same field, each is laid out as one flat tuple that the
generated lookup bisects itself (entries.flat_table). Otherwise, up to BITSET_RULES rules, an outcome's
candidates are the AND of one bitmask per match field (engine.routing.bitsets) and the compiled entry is kept
by that candidate set: nothing is learnt per combination of values. Beyond that (the masks grow with the
rule set), an outcome's candidates are the union of one lookup per group, and a decision cache, keyed
on the values of every field any `match` names, keeps the compiled entry for each key met. On a miss of
that cache, the group lookups are first dispatched on the field that spares the most of them
(with `decision` pinned by every rule, only the groups holding the outcome's decision are looked up),
and the compiled entry is kept by the combination of group hits, which far fewer keys than the cache
holds share (merging and compiling run once for each).
"""
from __future__ import annotations

import hashlib
import itertools
from sys import intern
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.model import Rule, RuleSet
from engine.routing.bitsets import BITSET_RULES, field_masks, first_candidates, mask_finder, slow_mask
from engine.routing.entries import Chain, Compiler, Entry, Span, flat_table, table_field

CACHE_LIMIT = 200_000  # decision-cache entries before it is cleared (0: no caching)
_MISS: Any = object()  # not in the decision cache yet


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


def _raw_ok(key: tuple) -> bool:
    """A raw key may be looked up as-is only when every value is text or null: then equal keys are
    exactly equal values (no `true == 1`, no unhashable lists)."""
    for v in key:  # noqa: SIM110 - a loop: all() over a generator costs twice as much on every cache miss (measured)
        if v is not None and v.__class__ is not str:
            return False
    return True


def _field_reads(fields: Sequence[str]) -> tuple[list[str], list[str]]:
    """Python source reading `fields` from an outcome `o`: lines fetching each parent mapping (candidate,
    attributes) once into a variable (a parent that is not a mapping reads as empty; needs `_sub` and
    `_EMPTY`), and an expression per field giving its raw value."""
    parents: dict = {}
    lines: list[str] = []
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
            src = f"o.get({parts[0]!r})"
            for part in parts[1:-1]:
                src = f"_sub({src}, {part!r})"
            lines.append(f"    {var} = {src}")
            lines.append(f"    {var} = {var} if {var}.__class__ is dict else _EMPTY")
        values.append(f"{parents[parent]}.get({parts[-1]!r})")
    return lines, values


def _finder(fields: Sequence[str], get: Callable, default: Any, miss: Callable,
            table: str | None = None) -> Callable[[Mapping], Any]:
    """A function giving an outcome's entry: it reads the raw values of `fields` into a key (each parent
    mapping such as candidate or attributes fetched once; a parent that is not a mapping reads as
    empty), then looks the key up with `get` (default: `default`); `miss(key)` answers a key `get`
    cannot hash (a list or mapping among the values) or does not hold (`default` is _MISS). With
    `table` (a top-level field), `get` gives `flat_table`s and the function gives the rule (or None) the
    table holds for the outcome's value of that field: lookup and table in one call, every key alike."""
    head, values = _field_reads(fields)
    lines = ["def find(o):", *head]
    lines += [f"    k = ({', '.join(values)}{',' if len(values) == 1 else ''})",
              "    try:",
              "        entry = get(k, default)",
              "    except TypeError:",
              "        return miss(k)"]
    if table is not None:  # a flat table (engine.routing.entries.flat_table), bisected in place
        lines += ["    n = entry[2]",
                  "    if n == 3:",  # no bounds: a rule (or None), the field not read
                  "        return entry[1]",
                  f"    x = o.get({table!r})",
                  "    if (x.__class__ is float or x.__class__ is int) and x == x:",
                  "        return entry[entry[0](entry, x, 3, n) + n - 3]",
                  "    return entry[1]"]
    elif default is _MISS:
        lines.append("    return miss(k) if entry is default else entry")
    else:
        lines.append("    return entry")
    scope: dict = {"_sub": _sub, "_EMPTY": {}, "get": get, "default": default, "miss": miss}
    exec(compile("\n".join(lines) + "\n", "<herald-router-find>", "exec"), scope)  # noqa: S102 - field names only
    return scope["find"]


def _compile_lookup(groups: Sequence[tuple]) -> Callable[[tuple], list]:
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


def _dispatching_lookup(groups: Sequence[tuple], width: int) -> Callable[[tuple], list]:
    """`_compile_lookup(groups)`, but first dispatched on the value of the one key position that spares
    the most group lookups: for each value, only the groups holding a key with that value there (and the
    groups that do not name that field) are looked up; every other group could only miss. Without such
    a position (fewer than two groups name a field), the plain lookup."""
    best: tuple | None = None  # (expected lookups, position)
    for p in range(width):
        naming = [g for g in groups if p in g[2]]
        if len(naming) < 2:
            continue
        values: dict = defaultdict(int)
        for _, index, positions in naming:
            at = positions.index(p)
            for v in {key[at] for key in index}:
                values[v] += 1
        cost = len(groups) - len(naming) + sum(values.values()) / (len(values) + 1)  # one more: other values
        if best is None or cost < best[0]:
            best = (cost, p)
    if best is None or best[0] > len(groups) - 1:
        return _compile_lookup(groups)
    p = best[1]
    rest = [g for g in groups if p not in g[2]]
    by_value: dict = defaultdict(list)
    for group in groups:
        if p in group[2]:
            at = group[2].index(p)
            for v in {key[at] for key in group[1]}:
                by_value[v].append(group)
    other = _compile_lookup(rest)
    branch = {v: _compile_lookup(naming + rest) for v, naming in by_value.items()}
    get = branch.get

    def lookup(k: tuple) -> list:
        return get(k[p], other)(k)  # an unhashable value raises TypeError, as the plain lookup does
    return lookup


def _picker(positions: Sequence[int]) -> Callable[[tuple], tuple]:
    return lambda key: tuple(key[p] for p in positions)


class Router:
    """First-match routing over a RuleSet (priority, then file, then position).

    `cache_limit` bounds the decision cache, or with bitsets the entries kept by candidate set (entries before
    it is cleared; 0: no cache); a complete index has no cache to bound. `bitsets`: route an incomplete index
    by bitsets (engine.routing.bitsets) rather than through the decision cache; None: up to BITSET_RULES rules.
    """

    def __init__(self, ruleset: RuleSet, cache_limit: int | None = None, bitsets: bool | None = None):
        self.ruleset = ruleset
        self.rules: tuple = ruleset.rules
        self.cache_limit = CACHE_LIMIT if cache_limit is None else cache_limit
        fields = sorted({path for rule in self.rules for path, _ in rule.match})
        self.fields = tuple(fields)
        pos = {f: i for i, f in enumerate(fields)}
        groups: dict = defaultdict(lambda: defaultdict(list))
        for idx, rule in enumerate(self.rules):
            keys = tuple(sorted(path for path, _ in rule.match))
            value_lists = [[match_value(v) for v in dict(rule.match)[k]] for k in keys]
            for combo in itertools.product(*value_lists):
                groups[keys][combo].append(idx)
        # (a function picking the group's fields out of the whole key, index, positions in the key)
        self._groups = [(_picker([pos[k] for k in keys]), {k: self._upto_sure(v) for k, v in index.items()},
                         tuple(pos[k] for k in keys)) for keys, index in groups.items()]
        self._lookup: Callable[[tuple], list] | None = None  # made on first use (see _hits): bitsets need none
        self._compiler = Compiler(self.rules)
        self._merged: dict[tuple, Entry] = {}  # compiled entries by combination of group hits (see _entry_of_hits)
        constant = tuple(groups[()][()]) if () in groups else ()
        varying = [index for _, index, positions in self._groups if positions]
        # entries by raw key: the complete index, or the decision cache (filled as keys are met)
        self._entries: dict = {}
        self.complete = len(varying) <= 1 and all(_raw_ok(k) for index in varying for k in index)
        if self.complete:
            self._default: Any = self._compiler.entry(self._upto_sure(list(constant)))
            for key, hits in (varying[0].items() if varying else ()):
                merged = self._upto_sure(sorted(set(hits) | set(constant)))
                key = tuple(intern(v) if v.__class__ is str else v for v in key)  # one copy of each text
                self._entries[key] = self._compiler.entry(merged)
        else:
            self._default = _MISS
        # without a complete index: candidates by bitsets up to BITSET_RULES rules, else the decision cache
        self.bitsets = not self.complete and (len(self.rules) <= BITSET_RULES if bitsets is None else bitsets)
        self.table = self._table_field()
        if self.table is not None:  # every entry one table on the same field: flat tables, see entries.flat_table
            flat: dict[int, tuple] = {}  # by entry: shared entries share their table
            tables = {}
            for key, entry in self._entries.items():
                if id(entry) not in flat:
                    flat[id(entry)] = flat_table(entry)
                tables[key] = flat[id(entry)]
            self._find = _finder(fields, tables.get, flat_table(self._default), self._entry, self.table)
        elif self.bitsets:
            self._masks = field_masks(self.rules, fields, match_value)
            self._by_mask: dict[int, Entry] = {}  # compiled entries by candidate set (see engine.routing.bitsets)
            head, values = _field_reads(fields)
            self._find = mask_finder(head, values, self._masks, self._by_mask.get, self._entry_of_mask,
                                     self._slow_entry, {"_sub": _sub, "_mv": match_value})
        else:
            self._find = _finder(fields, self._entries.get, self._default, self._entry)

    def _entry_of_mask(self, mask: int) -> Entry:
        """The compiled entry for a candidate set met for the first time (kept up to cache_limit sets)."""
        entry = self._compiler.entry(first_candidates(mask, self.rules))
        if self.cache_limit:
            if len(self._by_mask) >= self.cache_limit:
                self._by_mask.clear()
            self._by_mask[mask] = entry
        return entry

    def _slow_entry(self, values: tuple) -> Entry:
        """The entry for raw field values one of which cannot be hashed (a list or mapping)."""
        mask = slow_mask(self._masks, values, match_value)
        entry = self._by_mask.get(mask, _MISS)
        return self._entry_of_mask(mask) if entry is _MISS else entry

    def _table_field(self) -> str | None:
        """The one top-level field every entry of a complete index reads, when each entry (and the default)
        is a table `flat_table` lays out; else None (the entries are walked by `route`)."""
        if not self.complete:
            return None
        read = {table_field(entry) for entry in (self._default, *self._entries.values())}
        read.discard(None)  # a rule or None: no field read
        field = read.pop() if len(read) == 1 else None
        return field if isinstance(field, str) else None  # False: an entry flat_table cannot lay out

    def _upto_sure(self, indices: list) -> tuple:
        """A group's rule indices up to the first rule without `when`: it matches whenever the group's
        key does, so no later rule of the list can ever come first (and merging stays short)."""
        for n, idx in enumerate(indices):
            if self.rules[idx].predicate is None:
                return tuple(indices[:n + 1])
        return tuple(indices)

    def _hits(self, key: tuple) -> list:
        """The non-empty hit lists of the groups whose index holds `key`'s values (match values of self.fields)."""
        if self._lookup is None:
            self._lookup = _dispatching_lookup(self._groups, len(self.fields))
        try:
            return self._lookup(key)
        except TypeError:  # an unhashable value: group by group, that group matching nothing
            found = []
            for picker, index, _ in self._groups:
                try:
                    hit = index.get(picker(key))
                except TypeError:
                    hit = None
                if hit:
                    found.append(hit)
            return found

    def _merge(self, found: Sequence[tuple]) -> tuple:
        if not found:
            return ()
        if len(found) == 1:
            return found[0]  # already cut at its first rule without `when`
        return self._upto_sure(sorted(itertools.chain.from_iterable(found)))

    def candidates(self, key: tuple) -> tuple:
        """Indices of the rules whose `match` accepts `key` (match values of self.fields), in evaluation order."""
        return self._merge(self._hits(key))

    def _entry_of_hits(self, found: list) -> Entry:
        """The compiled entry for one combination of group hits. Many keys meet the same few combinations
        (a miss of the decision cache is mostly a new mix of values, not a new set of candidates), so the
        entry is kept by the combination: merging, sorting and compiling run once for each."""
        combo = tuple(found)  # the hit lists are tuples held by the indexes: hashed by their few indices
        entry = self._merged.get(combo, _MISS)
        if entry is _MISS:
            if len(self._merged) >= self._compiler.limit:
                self._merged.clear()
            entry = self._merged[combo] = self._compiler.entry(self._merge(found))
        return entry

    def route(self, outcome: Mapping) -> Rule | None:
        """The first rule that matches `outcome`, or None."""
        entry = self._find(outcome)  # with flat tables (self.table), already the rule (or None)
        while entry.__class__ is not Rule and entry is not None:
            # Chains and Spans are tried here rather than in a method: one call less (measured)
            if entry.__class__ is Span:
                x = outcome.get(entry.name)
                if (x.__class__ is int or x.__class__ is float) and entry.lo <= x < entry.hi:
                    return entry.rule
                entry = entry.miss
            elif entry.__class__ is Chain:
                if entry.holds(outcome):
                    return entry.rule
                for rule, holds in entry.more:
                    if holds(outcome):
                        return rule
                entry = entry.rest
            elif entry.name is not None:  # an interval table on a top-level field
                x = outcome.get(entry.name)
                if not ((x.__class__ is int or x.__class__ is float) and x == x):
                    entry = entry.miss  # not a number, or NaN: no range holds
                elif entry.points is not None and x in entry.points:
                    entry = entry.points[x]
                else:
                    entry = entry.gaps[entry.search(entry.bounds, x)]
            else:
                entry = entry.step(outcome)  # an interval table on a nested field
        return entry

    def _entry(self, raw_key: tuple) -> Entry:
        """The compiled entry for a key the index does not hold as it is; kept in the decision cache
        when the key allows (a complete index answers every such key with its default)."""
        if self.complete:
            return self._default
        plain = _raw_ok(raw_key)  # text and nulls are their own match values
        entry = self._entry_of_hits(self._hits(raw_key if plain else tuple(map(match_value, raw_key))))
        if plain and self.cache_limit:
            if len(self._entries) >= self.cache_limit:
                self._entries.clear()
            # kept with one shared copy of each text: the cache's keys then hold a few hundred strings, not
            # six per key taken from the outcomes met, and a hit compares against strings the CPU has cached
            self._entries[tuple([v if v is None else intern(v) for v in raw_key])] = entry
        return entry

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
        return f"when: {detail or f'{rule.when} was false'}"
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
