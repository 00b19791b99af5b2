"""What /healthz and /metrics say about this replica on its store: its id, whether the store answers, whether it is
the leader (runs the lease sweep, escalations and receipt polling), and lease counts."""
from __future__ import annotations

from typing import Any
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric


def store_health(runtime: Any, dispatcher: Any) -> dict[str, Any]:
    """{backend, reachable, leader, leases: {mine, in_flight, sending, expired}, error}; never raises."""
    store = runtime.store
    backend = "postgresql" if getattr(store, "url", None) else "sqlite"
    owners = dispatcher.owners if dispatcher is not None else []
    try:
        counts = store.lease_counts(owners, runtime.now())
    except Exception as e:  # noqa: BLE001 - unreachable or broken: reported, not raised
        return {"backend": backend, "reachable": False, "leader": False, "leases": None,
                "error": f"{type(e).__name__}: {e}"[:300]}
    in_flight = len(dispatcher.sender.in_flight()) if dispatcher is not None else 0
    leader = dispatcher.leader() if dispatcher is not None else False
    return {"backend": backend, "reachable": True, "leader": leader,
            "leases": {**counts, "in_flight": in_flight}, "error": None}


class ReplicaCollector:
    """herald_replica (info: its id), herald_replica_leader, herald_leases (mine, in_flight, sending, expired) and
    herald_store_reachable, read when scraped: each replica's /metrics speaks for itself."""

    def __init__(self, runtime: Any, dispatcher: Any):
        self.rt, self.dispatcher = runtime, dispatcher

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("herald_replica", "This replica's id (host:pid:random).")
        info.add_metric([], {"id": self.dispatcher.replica_id})
        yield info
        h = store_health(self.rt, self.dispatcher)
        yield GaugeMetricFamily("herald_store_reachable", "1 when the store answered this scrape.",
                                value=int(h["reachable"]))
        yield GaugeMetricFamily("herald_replica_leader", "1 while this replica runs the periodic work (lease "
                                "sweep, escalations, receipt polling).", value=int(h["leader"]))
        leases = GaugeMetricFamily("herald_leases", "Claimed notifications: mine (this replica's), in_flight "
                                   "(its sends under way), sending (any replica's), expired (waiting to be "
                                   "taken back).", labels=["kind"])
        for kind, n in (h["leases"] or {}).items():
            leases.add_metric([kind], n)
        yield leases
        hints = getattr(self.dispatcher, "_wakeups", None)
        yield GaugeMetricFamily("herald_wakeup_hints", "Wake-up hints (PostgreSQL NOTIFY) this replica received "
                                "since it started; polling finds the work without them.",
                                value=hints.received if hints is not None else 0)
