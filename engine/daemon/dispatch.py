"""The dispatcher: worker threads that sleep until work is due, claim it, send it, and escalate what went unheard;
the receipts poller (engine/daemon/receipts.py) starts and stops with it."""
from __future__ import annotations

import logging
import os
import socket
import threading
from typing import TYPE_CHECKING

from engine.store import StoreError, StoreUnavailable
from engine.daemon.receipts import ReceiptPoller
from engine.daemon.send import DispatchSettings, Sender

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
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.receipts = ReceiptPoller(runtime, self.settings.receipt_interval)
        runtime.on_work(self.wake)

    @property
    def lease(self) -> float:
        """The claim lease in clock seconds (settings.lease is real seconds)."""
        return self.rt.clock.virtual(self.settings.lease)

    def start(self) -> None:
        for i, ev in enumerate(self._events):
            t = threading.Thread(target=self._run, args=(i, ev), name=f"herald-dispatch-{i}", daemon=True)
            t.start()
            self._threads.append(t)
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
        self.receipts.stop(timeout)
        return not any(t.is_alive() for t in self._threads)

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
                busy = self.tick(owner, housekeeping=index == 0)
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
        rows = store.claim_due(now, self.settings.batch, owner, self.lease)
        for i, n in enumerate(rows):
            if self._stop.is_set():
                # not started: left 'sending'; Daemon.stop() gives them back once every worker has stopped
                log.info("stopping: %d claimed notification(s) not started", len(rows) - i)
                break
            self.sender.process(n)
            done += 1
        return done
