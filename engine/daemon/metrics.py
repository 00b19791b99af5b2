"""Prometheus metrics of one daemon: intake, sends, dispatch lag, reloads, and the store's counts at scrape time."""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, generate_latest
from prometheus_client.core import GaugeMetricFamily

from engine.store import Store

if TYPE_CHECKING:
    from engine.intake.batch import ItemStatus

INTAKE_STATUSES = ("matched", "unmatched", "held", "duplicate", "invalid")
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)


class _StoreCollector:
    """Reads the store when scraped: notifications by state, outcomes by status, dead letters."""

    def __init__(self, store: Callable[[], Store]):
        self._store = store

    def collect(self) -> Iterator[GaugeMetricFamily]:
        store = self._store()
        notes = GaugeMetricFamily("herald_notifications", "Notifications in the store, by state.", labels=["state"])
        for state, n in store.notification_counts_by_state().items():
            notes.add_metric([state], n)
        yield notes
        outcomes = GaugeMetricFamily("herald_outcomes_stored", "Outcomes in the store, by status (active ones) "
                                     "or state (withdrawn, superseded).", labels=["status"])
        for status, n in sorted(store.outcome_counts().items()):
            outcomes.add_metric([str(status)], n)
        yield outcomes
        yield GaugeMetricFamily("herald_dead_letters", "Refused inputs kept for inspection.",
                                value=store.dead_letter_count())


class Metrics:
    """Every metric of one daemon, in its own registry (so tests can run several daemons in one process)."""

    def __init__(self, store: Callable[[], Store] | None = None):
        r = self.registry = CollectorRegistry()
        self.outcomes = Counter("herald_outcomes", "Outcomes received, by intake status.", ["status"], registry=r)
        for s in INTAKE_STATUSES:
            self.outcomes.labels(s)
        self.sends = Counter("herald_sends", "Transport calls and skipped channels, by channel and result "
                             "(accepted, recoverable, permanent, no_address, cancelled).", ["channel", "result"],
                             registry=r)
        self.escalations = Counter("herald_escalations", "Moves to the next channel: fallback after a permanent "
                                   "failure or escalation when no delivery came in time.", ["reason"], registry=r)
        self.possible_duplicates = Counter("herald_possible_duplicates", "Sends of this replica that the provider "
                                           "accepted after its lease ran out while another claim held the "
                                           "notification: the message may have gone out twice (same Idempotency-"
                                           "Key), recorded as a 'possible_duplicate' event.", registry=r)
        self.lag = Histogram("herald_dispatch_lag_seconds", "Real seconds from a message's due time to its "
                             "transport call.", buckets=LAG_BUCKETS, registry=r)
        self.source_events = Counter("herald_source_events", "ATS webhook deliveries, by source and what they "
                                     "became (unauthorized, duplicate, unmapped, ignored, withdrawn, or the "
                                     "intake status).", ["source", "status"], registry=r)
        self.reloads = Counter("herald_ruleset_reloads", "Rule-set reloads, by result.", ["result"], registry=r)
        for s in ("success", "failure"):
            self.reloads.labels(s)
        self.reload_failed = Gauge("herald_ruleset_reload_failed", "1 when the last reload failed and the "
                                   "previous rule set is still in use, else 0.", registry=r)
        self.ruleset = Info("herald_ruleset", "The rule-set version in use.", registry=r)
        self.watcher_alive = Gauge("herald_reload_watcher_alive", "1 while the file watcher behind hot reload "
                                   "runs (or none is configured), 0 when it died.", registry=r)
        self.watcher_alive.set(1)
        self.reload_stuck = Gauge("herald_reload_stuck", "Reloads given up on (server.reload_timeout) that "
                                  "are still running.", registry=r)
        if store is not None:
            r.register(_StoreCollector(store))
            from engine.tracking.routes import ReportCollector

            r.register(ReportCollector(store))  # per-rule delivered / opened / replied rates, satisfaction

    def intake(self, statuses: Iterable[ItemStatus]) -> None:
        for s in statuses:
            self.outcomes.labels(s.status).inc()

    def set_ruleset(self, version: str, rules: int) -> None:
        self.ruleset.info({"version": version, "rules": str(rules)})

    def render(self) -> bytes:
        return generate_latest(self.registry)
