"""Retention: old events of finished notifications are deleted (store.retention.events, e.g. 400d), by `herald db
prune` and, on a schedule, by the daemon: every PRUNE_EVERY real seconds (the first round at start) the replica
that is the leader (of several sharing a PostgreSQL store, one at a time; a lone SQLite daemon always) prunes in
short transactions of PRUNE_BATCH events. What a prune keeps is the store's rule (Store.prune_events)."""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.schedule.timing import parse_duration

if TYPE_CHECKING:  # the runtime imports the dispatcher, which imports this module
    from engine.daemon.runtime import Runtime

log = logging.getLogger("herald.retention")

PRUNE_EVERY = 3600.0   # real seconds between two rounds of the leader's prune
PRUNE_BATCH = 10_000   # events per transaction
MIN_RETENTION = 86400.0  # a retention under a day is refused


def retention_seconds(text: str) -> float | None:
    """store.retention.events (or `--events`) in seconds; None when it is not a duration of at least 1d."""
    age = parse_duration(text)
    return age.total_seconds() if age is not None and age.total_seconds() >= MIN_RETENTION else None


def prune_before(store: Any, cutoff: float, batch: int = PRUNE_BATCH) -> int:
    """Deletes the events a prune may delete older than `cutoff`, batch by batch (each its own short transaction);
    returns how many."""
    total = 0
    while (n := store.prune_events(cutoff, limit=batch)) > 0:
        total += n
        if n < batch:
            break
    return total


class Pruner:
    """The daemon's scheduled prune; `maybe()` is called by the leader's housekeeping, often."""

    def __init__(self, runtime: Runtime, every: float = PRUNE_EVERY,
                 monotonic: Callable[[], float] = time.monotonic):
        self.rt = runtime
        self.every = every
        self._monotonic = monotonic
        self._last: float | None = None
        self.rounds = 0  # rounds run (for tests and logs)

    def maybe(self) -> int:
        """Prunes when a round is due and a retention is configured; returns the events deleted."""
        t = self._monotonic()
        if self._last is not None and t - self._last < self.every:
            return 0
        self._last = t
        text = self.rt.state.deployment.config.event_retention
        if not text:
            return 0
        age = retention_seconds(text)
        if age is None:
            log.warning("store.retention.events %r is not a duration of at least 1d: nothing pruned", text)
            return 0
        n = prune_before(self.rt.store, self.rt.now() - age)
        self.rounds += 1
        if n:
            log.info("pruned %d event(s) older than %s (store.retention.events)", n, text)
        return n
