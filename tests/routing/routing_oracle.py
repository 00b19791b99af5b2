"""The oracle the routing tests check the router against: every rule in order, `match` by value and type
(true is not 1, a list or mapping equals nothing, a missing field is null), then `when`."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from engine.model import Rule
from engine.routing.router import lookup


def naive(rules: Sequence[Rule], outcome: Mapping) -> Rule | None:
    """The first rule of `rules` that matches `outcome`, found the plain way."""
    for rule in rules:
        ok = True
        for path, values in rule.match:
            got = lookup(outcome, path)
            if isinstance(got, (list, dict)) or not any((type(got) is type(v) and got == v)
                                                         or (got is None and v is None) for v in values):
                ok = False
                break
        if ok and (rule.predicate is None or rule.predicate(outcome)):
            return rule
    return None
