"""Routing by bitsets: an outcome's candidate rules as the AND of one bitmask per `match` field.

For a rule set without a complete index (engine.routing.router), bit i of a mask stands for rule i in
evaluation order. For each field, a dict gives for each value some rule names there the rules whose
`match` accepts that value for that field, together with every rule that does not name the field; any
other value gets the rules that do not name the field. The AND of an outcome's masks, one per field, is
exactly the set of rules whose `match` accepts the outcome, so the compiled entry (engine.routing.entries)
is kept by that mask: the few thousand candidate sets a rule set meets, not the tens of thousands of
distinct combinations of values a decision cache has to learn one by one (each a miss: a lookup per
group of match fields, a key stored). The masks are as long as the rule set: the router uses them up to
BITSET_RULES rules.

Values are compared as `match` compares them (engine.routing.router.match_value): `true` is not 1, a list
or mapping equals nothing; a value that cannot be hashed takes the slow path, which gives its field the
rules that do not name it.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from engine.model import Rule

_MISS: Any = object()  # no entry kept for the mask yet
BITSET_RULES = 2048  # the most rules routed by bitsets (the masks' length: each AND and hash reads all of it)


def field_masks(rules: Sequence[Rule], fields: Sequence[str],
                match_value: Callable[[Any], Any]) -> list[tuple[dict[Any, int], int, bool]]:
    """For each field: {match value: mask of the rules accepting it there, plus those not naming the
    field}, the mask of the rules not naming the field, and whether every value is text or null (then an
    outcome's raw value is looked up as it is: no other value equals a text or null)."""
    at = {path: n for n, path in enumerate(fields)}
    named: list[list[int]] = [[] for _ in fields]
    accepting: list[dict[Any, list[int]]] = [{} for _ in fields]
    for i, rule in enumerate(rules):  # one pass: positions first, each mask made once from them
        for path, values in rule.match:
            n = at[path]
            named[n].append(i)
            for v in values:
                accepting[n].setdefault(match_value(v), []).append(i)
    everything = (1 << len(rules)) - 1
    out = []
    for n in range(len(fields)):
        rest = everything & ~_mask(named[n], len(rules))
        plain = all(k is None or k.__class__ is str for k in accepting[n])
        out.append(({k: _mask(ix, len(rules)) | rest for k, ix in accepting[n].items()}, rest, plain))
    return out


def _mask(positions: Sequence[int], size: int) -> int:
    """The int whose bits `positions` are set (built in a bytearray: no int made per bit)."""
    buf = bytearray(size // 8 + 1)
    for i in positions:
        buf[i >> 3] |= 1 << (i & 7)
    return int.from_bytes(buf, "little")


def mask_finder(head: Sequence[str], values: Sequence[str], masks: Sequence[tuple[dict, int, bool]],
                known: Callable[[int, Any], Any], miss: Callable[[int], Any], slow: Callable[[tuple], Any],
                helpers: Mapping[str, Any]) -> Callable[[Mapping], Any]:
    """A function giving an outcome's entry: `head` (lines of Python reading parent mappings into
    variables) and `values` (an expression per field reading its raw value, see router._field_reads) give the
    fields' values; their masks are ANDed and the mask's entry is `known(mask, _MISS)`, else `miss(mask)`.
    `slow(values)` answers when a value cannot be hashed. `helpers`: the functions `head` calls (`_sub`) and
    `_mv`, match_value, for the fields whose values are not all text or null."""
    scope: dict[str, Any] = {**helpers, "_EMPTY": {}, "known": known, "miss": miss, "slow": slow, "_MISS": _MISS}
    terms = []
    for i, (src, (by, rest, plain)) in enumerate(zip(values, masks, strict=True)):
        scope[f"M{i}"], scope[f"D{i}"] = by.get, rest
        terms.append(f"M{i}({src}, D{i})" if plain else f"M{i}(_mv({src}), D{i})")
    lines = ["def find(o):", *head,
             "    try:",
             f"        m = {' & '.join(terms)}",
             "    except TypeError:",  # a list or mapping where a text is expected: field by field
             f"        return slow(({', '.join(values)},))",
             "    e = known(m, _MISS)",
             "    return miss(m) if e is _MISS else e"]
    exec(compile("\n".join(lines) + "\n", "<herald-router-masks>", "exec"), scope)  # noqa: S102 - field names only
    return scope["find"]


def slow_mask(masks: Sequence[tuple[dict, int, bool]], values: tuple, match_value: Callable[[Any], Any]) -> int:
    """The AND of the masks of `values` (raw, one per field), a value that cannot be hashed matching no
    rule that names its field."""
    m = -1
    for (by, rest, _), v in zip(masks, values, strict=True):
        try:
            m &= by.get(match_value(v), rest)
        except TypeError:
            m &= rest
    return m


def first_candidates(mask: int, rules: Sequence[Rule]) -> tuple[int, ...]:
    """The rule positions set in `mask`, in order, up to the first rule without `when` (it always wins)."""
    found = []
    while mask:
        low = mask & -mask
        i = low.bit_length() - 1
        found.append(i)
        if rules[i].predicate is None:
            break
        mask ^= low
    return tuple(found)

