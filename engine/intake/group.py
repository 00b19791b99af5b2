"""Group commit for single-item intakes arriving at once (single POSTs to /v1/outcomes, ATS webhooks: one item a request).

Each request still answers only once its item is durable, but requests that arrive while a commit is under
way do not each wait for a commit of their own: the first caller becomes the leader and stores everything
waiting in ONE `intake` batch (one transaction, one fsync), then answers every caller of the group. A
store error reaches every caller of the group, as it would have reached each alone. Within a group the
batch intake's own rules hold (a repeated outcome id is a duplicate or an amendment, in arrival order).

Callers answered together come back together (a client posting one event after another): when fewer are
waiting than the last group held, the leader waits for the others, at most as long as the last commit took
(and MAX_WAIT_S), rather than committing alone and leaving them to the next commit; otherwise the groups of
a few steady clients settle into 1, 3, 1, 3 ... and every item waits for two commits. A wait that ends with
fewer items sets the expectation to what came, so sporadic callers stop waiting.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Sequence

MAX_GROUP = 64
MAX_WAIT_S = 0.02  # the longest a leader waits for the callers of the last group


@dataclass
class _Slot:
    item: Any
    delivery: Any
    result: Any = None
    error: BaseException | None = None
    done: bool = False
    ready: threading.Event = field(default_factory=threading.Event)


class GroupCommit:
    """`submit(item, delivery)` -> the item's status; `run(items, deliveries)` stores a group (one transaction)."""

    def __init__(self, run: Callable[[list, list], Sequence[Any]], max_group: int = MAX_GROUP,
                 max_wait: float = MAX_WAIT_S):
        self._run, self._max, self._max_wait = run, max_group, max_wait
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._queue: list[_Slot] = []
        self._busy = False
        self._expected = 1  # how many items the last group held
        self._last_s = 0.0  # how long the last group took to store

    def submit(self, item: Any, delivery: Any = None) -> Any:
        slot = _Slot(item, delivery)
        with self._lock:
            self._queue.append(slot)
            lead = not self._busy
            self._busy = True
            self._arrived.notify()
        if not lead:
            slot.ready.wait()
            if slot.done:
                return self._answer(slot)
        while True:  # leading: store what is waiting, group by group, until our own slot is done
            with self._lock:
                self._await_group()
                group, self._queue = self._queue[:self._max], self._queue[self._max:]
                if not group:
                    self._busy = False
                    return self._answer(slot)
                self._expected = len(group)
            started = time.monotonic()
            try:
                results = list(self._run([s.item for s in group], [s.delivery for s in group]))
                error: BaseException | None = None
            except BaseException as e:  # noqa: BLE001 - every caller of the group gets it
                results, error = [None] * len(group), e
            self._last_s = time.monotonic() - started
            for s, r in zip(group, results, strict=True):
                s.result, s.error, s.done = r, error, True
                if s is not slot:
                    s.ready.set()
            if slot.done:
                with self._lock:
                    if self._queue:  # hand the lead to the next waiter, which stores the rest
                        nxt = self._queue[0]
                        nxt.ready.set()
                    else:
                        self._busy = False
                return self._answer(slot)

    def _await_group(self) -> None:
        """(Lock held.) Waits, at most as long as the last group took and max_wait, until as many items are
        queued as the last group held."""
        if not self._queue or len(self._queue) >= min(self._expected, self._max):
            return
        deadline = time.monotonic() + min(self._last_s, self._max_wait)
        while len(self._queue) < min(self._expected, self._max):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._arrived.wait(left)

    @staticmethod
    def _answer(slot: _Slot) -> Any:
        if slot.error is not None:
            raise slot.error
        return slot.result
