"""A worker's batch of claims: each send's result (its 'sent' with its assumed delivery) is recorded in the
transaction that begins the next row's attempt, so a batch of ten costs twelve commits (the claim, ten, the last
result), not three per send; and every claim of the batch is kept alive by the heartbeat until its result is
recorded, not only the one being sent (a claim waiting behind slow sends keeps its lease)."""
from __future__ import annotations

import threading

import pytest

from daemon_support import make_deployment, outbox, outcome
from store_support import statements_run

from engine.channels.base import ACCEPTED, Envelope, SendResult
from engine.config.deployment import load_deployment
from engine.daemon.dispatch import Dispatcher
from engine.daemon.runtime import Runtime
from engine.schedule.clock import Clock
from engine.store import open_store

NOW = 1_790_000_000.0


class Frozen(Clock):
    def now(self) -> float:
        return NOW


def _runtime(tmp_path, dispatch: str, clock: Clock | None = None):
    root = make_deployment(tmp_path, dispatch=dispatch)
    store = open_store(tmp_path / "herald.db")
    return root, store, Runtime(load_deployment([str(root)]), store, clock or Frozen())


def test_a_batch_of_ten_sends_commits_once_per_send_not_three_times(tmp_path, monkeypatch):
    root, store, rt = _runtime(tmp_path, "{workers: 1}")
    try:
        rt.intake([outcome(f"b-{i}") for i in range(10)], "test")
        commits = []
        real = store._write

        def counted():
            if getattr(store, "_batched", lambda: None)() is None:  # a transaction of its own (inside a batch: part of the batch's)
                commits.append(1)
            return real()

        monkeypatch.setattr(store, "_write", counted)
        assert Dispatcher(rt).tick("w:0", housekeeping=False) == 10
        assert len(commits) == 12, commits  # the claim; attempt 1; result 1 + attempt 2; ...; result 10
        assert len(outbox(root)) == 10
        for i in range(10):
            d = store.get_notification(f"b-{i}#1")
            assert d.notification.state == "delivered"  # sent, then assumed delivered (outbox: no receipts)
            assert [e.kind for e in d.events] == ["queued", "sent", "delivered"]
            assert [a.status for a in d.attempts] == [ACCEPTED]
    finally:
        store.close()


class Slow:
    """A transport that takes `seconds` (real time) per send and accepts everything."""

    name = "slow"

    def __init__(self, seconds: float):
        self.seconds, self.sent = seconds, []

    def send(self, env: Envelope) -> SendResult:
        threading.Event().wait(self.seconds)
        self.sent.append(env.notification_id)
        return SendResult(ACCEPTED, provider_id=env.attempt_key)


def test_claims_waiting_in_a_batch_are_heartbeated_and_never_taken_back(tmp_path):
    # lease 1 s, four sends of 0.6 s in one batch: the last claims wait 1.8 s for their turn, past the lease
    _root, store, rt = _runtime(tmp_path, "{workers: 1, lease: 1s, poll_interval: 0.05s}", Clock(start=NOW))
    try:
        rt.intake([outcome(f"w-{i}") for i in range(4)], "test")
        slow = Slow(0.6)
        rt.state.transports.put("email", slow)
        d = Dispatcher(rt)
        beat = threading.Thread(target=d._heartbeat, daemon=True)
        beat.start()
        taken: list[int] = []
        sweeping = threading.Event()

        def sweeper() -> None:  # another replica's leader taking back expired leases, the clock moving on
            while not sweeping.wait(0.05):
                taken.append(store.release_expired_leases(rt.now()))

        worker = threading.Thread(target=lambda: d.tick("w:0", housekeeping=False))
        sweep = threading.Thread(target=sweeper, daemon=True)
        worker.start()
        sweep.start()
        worker.join(30)
        sweeping.set()
        sweep.join(5)
        d._beat_stop.set()
        beat.join(5)
        assert slow.sent == [f"w-{i}#1" for i in range(4)]
        assert sum(taken) == 0, taken  # no claim ran out while it waited its turn
        for i in range(4):
            n = store.get_notification(f"w-{i}#1").notification
            assert (n.state, n.claims) == ("delivered", 1)  # sent once, under its first claim (assumed delivered)
    finally:
        store.close()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_send_costs_six_statements_on_either_backend(tmp_path, request, backend):
    # every statement is a round trip on PostgreSQL: a batch of ten sends (on a transport without receipts, so
    # each is assumed delivered) issues the claim, the outcomes and the suppressions of the batch, then per send:
    # the outcome re-check, the claim's update and the attempt's INSERT (begin_attempt), the attempt finished,
    # the notification sent and delivered in one UPDATE, and its 'sent' and 'delivered' events in one INSERT
    target = str(tmp_path / "herald.db") if backend == "sqlite" else request.getfixturevalue("pg").create_database()
    root = make_deployment(tmp_path, dispatch="{workers: 1}")
    store = open_store(target)
    rt = Runtime(load_deployment([str(root)]), store, Frozen())
    try:
        rt.intake([outcome(f"s-{i}") for i in range(10)], "test")
        with statements_run(store) as statements:
            assert Dispatcher(rt).tick("w:0", housekeeping=False) == 10
        assert len(outbox(root)) == 10
        assert len(statements) <= 3 + 10 * 6, "\n".join(statements)
        for i in range(10):
            d = store.get_notification(f"s-{i}#1")
            assert d.notification.state == "delivered"
            assert [e.kind for e in d.events] == ["queued", "sent", "delivered"]
            assert [(a.status, a.attempt_key) for a in d.attempts] == [(ACCEPTED, f"s-{i}#1:0:1")]
            assert d.notification.attempt_count == 1
    finally:
        store.close()
