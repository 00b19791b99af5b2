"""The report's count of values outside the vocabulary: how many outcomes carried values the rule set's
`vocabulary:` does not list (typos in the ATS data, e.g. role robotic_engineer), per rule and field, with the
values seen. The gate marks each outcome at intake (engine/rules/vocabulary.py `Vocabulary.marks`, kept in
outcomes.outside_vocabulary); engine/report/queries.py reads the marks; this module counts them (pure)."""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

NOT_ROUTED = "(not routed)"  # the label of outcomes without a notification (unmatched, held)
UNKNOWN_KEY = "(unknown key)"  # the values cell of an attribute key outside the vocabulary


@dataclass(frozen=True)
class FieldCount:
    """One rule's outcomes with a value of one field outside the vocabulary, and the values seen (most first)."""

    rule_id: str | None  # None: the outcome has no notification (unmatched, held)
    field: str
    outcomes: int
    values: tuple[tuple[str, int], ...] = ()  # empty for an attribute key outside the vocabulary

    @property
    def label(self) -> str:
        return self.rule_id or NOT_ROUTED

    def values_text(self, most: int = 5) -> str:
        """The values for people: `robotic_engineer ×2, bakend ×1`, the first `most` and how many more."""
        if not self.values:
            return UNKNOWN_KEY
        shown = ", ".join(f"{v} ×{n}" for v, n in self.values[:most])
        more = len(self.values) - most
        return shown + (f" and {more} more" if more > 0 else "")

    def as_dict(self) -> dict:
        return {"rule": self.rule_id, "field": self.field, "outcomes": self.outcomes, "values": dict(self.values)}


@dataclass(frozen=True)
class OutsideVocabulary:
    """Outcomes with values outside the vocabulary: how many, and the counts per rule and field."""

    outcomes: int = 0
    counts: tuple[FieldCount, ...] = field(default=())

    def as_dict(self) -> dict:
        return {"outcomes": self.outcomes, "by_rule_and_field": [c.as_dict() for c in self.counts]}


def count(rows: Iterable[tuple[str | None, str]] | None) -> OutsideVocabulary | None:
    """The counts from the store's (rule, marks as JSON) rows; None when the report cannot count them (a channel
    filter). Ordered by rule (not routed last), then field, in byte order; values most frequent first."""
    if rows is None:
        return None
    outcomes = 0
    seen: dict[tuple[str | None, str], Counter] = defaultdict(Counter)
    per: Counter = Counter()
    for rule, marks in rows:
        found = json.loads(marks)
        if not isinstance(found, dict) or not found:
            continue
        outcomes += 1
        for path, value in found.items():
            per[(rule, path)] += 1
            if value is not None:
                seen[(rule, path)][str(value)] += 1
    keys = sorted(per, key=lambda k: (k[0] is None, (k[0] or "").encode(), k[1].encode()))
    return OutsideVocabulary(outcomes, tuple(
        FieldCount(rule, path, per[(rule, path)],
                   tuple(sorted(seen[(rule, path)].items(), key=lambda kv: (-kv[1], kv[0].encode()))))
        for rule, path in keys))


__all__ = ["FieldCount", "OutsideVocabulary", "count"]
