"""The dispatcher: worker threads that sleep until work is due, claim it, send it, and escalate what went unheard;
a heartbeat thread that keeps the leases of every claim a worker holds alive (its batch, until each result is
recorded); the receipts poller (engine/daemon/receipts.py)
starts and stops with it.

Each dispatcher has a replica id (host:pid:random, new at every start, so a restarted process never passes for
the one before it); its workers claim as "<replica id>:<worker>". Of several replicas sharing a PostgreSQL store,
only the leader (store.is_leader()) takes back expired leases, runs escalations, prunes old events on a schedule
(engine/daemon/retention.py) and polls receipts."""
from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
from typing import TYPE_CHECKING

from engine.store import StoreError, StoreUnavailable
from engine.daemon.health import ReplicaCollector
from engine.daemon.receipts import ReceiptPoller
from engine.daemon.retention import Pruner
from engine.daemon.send import NOT_STARTED, DispatchSettings, Sender

if TYPE_CHECKING:  # the runtime imports this module
    from engine.daemon.runtime import Runtime

log = logging.getLogger("herald.dispatch")


class Dispatcher:
    """`settings.workers` threads over one Runtime; worker 0 also takes back expired leases and runs escalations."""

    def __init__(self, runtime: Runtime, settings: DispatchSettings | None = None):
        self.rt = runtime
        self.settings = settings or runtime.state.deployment.config.dispatch
        self.sender = Sender(runtime, self.settings)
        self._stop = threading.Event()
        self._events = [threading.Event() for _ in range(max(1, self.settings.workers))]
        self._threads: list[threading.Thread] = []
        self.owner = self.replica_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
        self.receipts = ReceiptPoller(runtime, self.settings.receipt_interval, leader=self.leader)
        self.pruner = Pruner(runtime)
        self._beat_stop = threading.Event()
        self._beat: threading.Thread | None = None
        self._wakeups = None
        self.heartbeats = 0  # rounds of the heartbeat that extended at least one lease
        runtime.on_work(self.wake)
        runtime.metrics.registry.register(ReplicaCollector(runtime, self))

    @property
    def owners(self) -> list[str]:
        """The lease owners of this dispatcher's workers."""
        return [f"{self.owner}:{i}" for i in range(len(self._events))]

    def leader(self) -> bool:
        """Whether this replica runs the periodic work now (False when the store cannot say)."""
        return self.rt.leads()

    @property
    def lease(self) -> float:
        """The claim lease in clock seconds (settings.lease is real seconds)."""
        return self.rt.clock.virtual(self.settings.lease)

    def start(self) -> None:
        for i, ev in enumerate(self._events):
            t = threading.Thread(target=self._run, args=(i, ev), name=f"herald-dispatch-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self._wakeups = self.rt.store.wakeups(self.wake)  # hints from other replicas (None: poll only)
        self._beat_stop.clear()
        self._beat = threading.Thread(target=self._heartbeat, name="herald-heartbeat", daemon=True)
        self._beat.start()
        self.receipts.start()

    def wake(self) -> None:
        for ev in self._events:
            ev.set()

    def stop(self, timeout: float = 30.0) -> bool:
        """Lets in-flight sends finish and stops the workers; False if one is still busy after `timeout`."""
        self._stop.set()
        self.wake()
        for t in self._threads:
            t.join(timeout)
        if self._wakeups is not None:
            self._wakeups.stop()
        self._beat_stop.set()
        if self._beat is not None:
            self._beat.join(timeout)
        self.receipts.stop(timeout)
        clean = not any(t.is_alive() for t in self._threads)
        try:  # the claims not started are given back now instead of expiring (a send still running keeps its own)
            given = self.rt.store.release_leases(self.owners, self.rt.now(),
                                                 keep=[nid for nid, _, _ in self.sender.in_flight()])
            if given:
                log.info("stopping: gave back %d claimed notification(s) not sent", given)
        except Exception as e:  # noqa: BLE001 - the store is gone: the leases expire instead
            log.warning("stopping: could not give back claims (they expire after their lease): %s", e)
        return clean

    def _heartbeat(self) -> None:
        """Every third of a lease (real time), extends the lease of each claim held (every row of each worker's
        batch, sent or waiting its turn) to a full lease from now;
        a claim that could not be extended was taken back (its send's result is then recorded as lost). Runs until
        the workers have stopped, so a send finishing during a stop keeps its lease."""
        every = max(self.settings.lease / 3.0, 0.05)
        while not self._beat_stop.wait(every):
            held = self.sender.in_flight()
            if not held:
                continue
            try:
                kept = self.rt.store.extend_leases(held, self.rt.now() + self.lease)
                self.heartbeats += 1
                if kept < len(held):
                    log.warning("heartbeat: %d of %d claim(s) in flight were lost (lease ran out before)",
                                len(held) - kept, len(held))
            except Exception as e:  # noqa: BLE001 - the store busy or gone: try again next beat
                log.warning("heartbeat: leases not extended: %s", e)

    @property
    def alive(self) -> bool:
        """Every worker thread is running (False before start and after stop)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the loop

    def _run(self, index: int, event: threading.Event) -> None:
        owner = f"{self.owner}:{index}"
        while not self._stop.is_set():
            event.clear()  # before looking: a wake-up from now on is not missed
            try:
                busy = self.tick(owner, housekeeping=index == 0 and self.leader())
            except StoreUnavailable as e:
                log.warning("store busy, dispatch waits: %s", e)
                busy = 0
                self._stop.wait(1.0)
            except Exception:  # log and go on; the lease brings the claim back
                log.exception("dispatch worker %s", index)
                busy = 0
                self._stop.wait(1.0)
            if busy or self._stop.is_set():
                continue
            event.wait(self._idle_seconds())

    def _idle_seconds(self) -> float:
        """Real seconds to sleep: until the next due time, at most poll_interval (also catches `herald ingest`)."""
        try:
            due = self.rt.store.next_due_time()
        except StoreError:
            return self.settings.poll_interval
        if due is None:
            return self.settings.poll_interval
        wait = self.rt.clock.real(due - self.rt.now())
        return min(self.settings.poll_interval, max(wait, 0.01))

    def tick(self, owner: str, housekeeping: bool = True) -> int:
        """One round: (leases, escalations,) claim and send a batch; returns how much work was done."""
        store, now = self.rt.store, self.rt.now()
        done = 0
        if housekeeping:
            taken = store.release_expired_leases(now)
            if taken:
                log.warning("took back %d expired claim(s)", taken)
            for n in store.due_escalations(now):
                done += bool(self.sender.escalate(n))
            self.pruner.maybe()  # store.retention.events, on its schedule
        rows = store.claim_due(now, self.settings.batch, owner, self.lease)
        labels = self.sender.process_batch(rows, stopping=self._stop.is_set)
        left = labels.count(NOT_STARTED)
        if left:  # left 'sending'; Daemon.stop() gives them back once every worker has stopped
            log.info("stopping: %d claimed notification(s) not started", left)
        return done + len(rows) - left
