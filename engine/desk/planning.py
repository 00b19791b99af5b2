"""Pipelines for the daemon and the desk: one that reads the daemon's Clock, and one pinned to a rule (routing by
hand); and `window_opening`, when a notification's send window lets it go (the dispatcher and "send now" ask)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from collections.abc import Callable, Mapping

from engine.schedule.clock import Clock
from engine.schedule.timing import for_candidate, next_open
from engine.model import Rule
from engine.pipeline import Pipeline, Plan, timezone_for
from engine.routing.router import choose_variant


@dataclass
class ClockedPipeline(Pipeline):
    """The shared Pipeline, with `now` from the daemon's Clock (real or scaled time)."""

    source: Clock | None = None
    links_for: Callable[[str], Mapping | None] | None = None  # notification id -> signed tracking links

    def clock(self) -> datetime:
        if self.now is not None or self.source is None:
            return super().clock()
        return self.source.now_dt()

    def plan(self, outcome: Mapping, approved_at: datetime | None = None, status: str = "matched",
             links: Mapping | None = None, previous: Mapping | None = None, rev: int | None = None) -> Plan:
        """The shared plan, with the links (rating, unsubscribe) signed for notification `<id>#<rev>` (an
        amendment's revision follows the one it amends)."""
        if rev is None:
            rev = (previous.get("rev") or 0) + 1 if previous else 1
        if links is None and self.links_for is not None:
            links = self.links_for(f"{outcome.get('id')}#{rev}")
        return super().plan(outcome, approved_at=approved_at, status=status, links=links, previous=previous)


@dataclass
class PinnedPipeline(ClockedPipeline):
    """Routes every outcome to one rule, chosen by a person: its template, channels and timing apply."""

    rule: Rule | None = None

    def route(self, outcome: Mapping) -> tuple[Rule | None, str | None]:
        if self.rule is None:
            return super().route(outcome)
        return self.rule, choose_variant(self.rule, str(outcome.get("id", "")))


def find_rule(pipeline: Pipeline, rule_id: str) -> Rule | None:
    """The active rule `rule_id` of the pipeline's rule set."""
    return next((r for r in pipeline.deployment.ruleset_in_use.rules if r.id == rule_id), None)


def pinned(pipeline: Pipeline, rule: Rule) -> PinnedPipeline:
    """A pipeline over the same deployment and clock that sends everything through `rule`."""
    source = pipeline.source if isinstance(pipeline, ClockedPipeline) else None
    return PinnedPipeline(pipeline.deployment, now=pipeline.now, render_channels="all", extras=pipeline.extras,
                          source=source, links_for=getattr(pipeline, "links_for", None), rule=rule)


def window_opening(pipeline: Pipeline, rule_id: str | None, outcome: Mapping, t: float) -> float:
    """`t` moved into the send window of rule `rule_id` (as the rule stands now in the pipeline's rule set), judged
    for this candidate (their time zone, their country's holidays); `t` itself when the window is open then, or
    the rule has no window (or is gone), or the window does not open within the horizon."""
    rule = find_rule(pipeline, rule_id) if rule_id else None
    window = pipeline.windows.get(rule.timing.window) if rule is not None and rule.timing.window else None
    if rule is None or window is None:
        return t
    opened = next_open(datetime.fromtimestamp(t, UTC), for_candidate(window, outcome), timezone_for(rule, outcome))
    return opened.timestamp() if opened is not None else t
