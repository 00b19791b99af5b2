"""Checks across rules: duplicate ids, and rules made unreachable by an earlier catch-all."""
from __future__ import annotations

from collections import defaultdict

from ..errors import Diagnostic, Loc
from ..model import Rule


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
        if mine is None or not set(_norm(v) for v in mine) <= set(_norm(v) for v in values):
            return False
    return True


def _norm(v):
    return (type(v) is bool, v)  # True and 1 are different values here


def unreachable(active: list[Rule]) -> list[Diagnostic]:
    """Warn on each rule whose `match` an earlier rule without `when` covers: it can never be chosen.

    Earlier `when`-less rules are grouped by their set of match keys and indexed by one (key, value)
    pair, so a large rule set is checked in close to linear time.
    """
    groups: dict = defaultdict(lambda: defaultdict(list))  # keyset -> (key, value) -> [rule]
    catch_all: Rule | None = None
    out = []
    for rule in active:  # evaluation order
        b = dict(rule.match)
        shadow = catch_all
        if shadow is None:
            for keyset, index in groups.items():
                if not keyset <= b.keys():
                    continue
                if not keyset:
                    continue
                probe = min(keyset)
                for value in b[probe]:
                    for a in index.get((probe, _norm(value)), ()):
                        if _covers(a, b):
                            shadow = a
                            break
                    if shadow:
                        break
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
                keyset = frozenset(b)
                probe = min(keyset)
                for value in b[probe]:
                    groups[keyset][(probe, _norm(value))].append(rule)
    return out


def cross_rule_checks(all_rules: list[Rule], active: list[Rule]) -> list[Diagnostic]:
    """Duplicate ids over every rule (disabled ones too); reachability over the active ones in order."""
    return duplicate_ids(all_rules) + unreachable(active)
