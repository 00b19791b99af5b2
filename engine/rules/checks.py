"""Checks across rules: duplicate ids, and rules made unreachable by an earlier catch-all."""
from __future__ import annotations

import itertools
from collections import defaultdict

from engine.errors import Diagnostic, Loc
from engine.model import Rule
from engine.routing.router import match_value


def duplicate_ids(rules: list[Rule]) -> list[Diagnostic]:
    first: dict = {}
    out = []
    for rule in sorted(rules, key=lambda r: r.order):
        if rule.id in first:
            f = first[rule.id]
            out.append(Loc(rule.file, rule.line, rule.column).error(
                "duplicate-rule-id", f'rule id "{rule.id}" is already used at {f.file}:{f.line}'))
        else:
            first[rule.id] = rule
    return out


def _covers(a: Rule, b_match: dict) -> bool:
    """Does every outcome matched by b's `match` also match a's?"""
    for key, values in a.match:
        mine = b_match.get(key)
        if mine is None or not {match_value(v) for v in mine} <= {match_value(v) for v in values}:
            return False
    return True


def unreachable(active: list[Rule]) -> list[Diagnostic]:
    """Warn on each rule whose `match` an earlier rule without `when` covers: it can never be chosen.

    Earlier `when`-less rules are grouped by their set of match keys and indexed under every
    combination of their values. A rule that covers B must accept each of B's combinations, so
    looking up one of them finds every candidate: close to linear time on large rule sets.
    """
    groups: dict = defaultdict(lambda: defaultdict(list))  # keyset -> combination -> [rule]
    catch_all: Rule | None = None
    out = []
    for rule in active:  # evaluation order
        b = dict(rule.match)
        shadow = catch_all
        if shadow is None:
            for keyset, index in groups.items():
                if not set(keyset) <= b.keys():
                    continue
                probe = tuple(match_value(b[k][0]) for k in keyset)
                shadow = next((a for a in index.get(probe, ()) if _covers(a, b)), None)
                if shadow:
                    break
        if shadow is not None:
            out.append(Loc(rule.file, rule.line, rule.column).warning(
                "unreachable-rule",
                f'rule "{rule.id}" can never match: rule "{shadow.id}" ({shadow.file}:{shadow.line}) '
                f'comes first, has no `when`, and matches everything it does'))
        if rule.predicate is None and rule.when is None:
            if not rule.match:
                catch_all = catch_all or rule
            else:
                keyset = tuple(sorted(b))
                for combo in itertools.product(*[[match_value(v) for v in b[k]] for k in keyset]):
                    groups[keyset][combo].append(rule)
    return out


def cross_rule_checks(all_rules: list[Rule], active: list[Rule]) -> list[Diagnostic]:
    """Duplicate ids over every rule (disabled ones too); reachability over the active ones in order."""
    return duplicate_ids(all_rules) + unreachable(active)
