"""Group commit for single-item intakes arriving at once (single POSTs to /v1/outcomes, ATS webhooks: one item a request).

Each request still answers only once its item is durable, but requests that arrive while a commit is under
way do not each wait for a commit of their own: the first caller becomes the leader and stores everything
waiting in ONE `intake` batch (one transaction, one fsync), then answers every caller of the group. A
store error reaches every caller of the group, as it would have reached each alone. Within a group the
batch intake's own rules hold (a repeated outcome id is a duplicate or an amendment, in arrival order).
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable, Sequence

MAX_GROUP = 64


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

    def __init__(self, run: Callable[[list, list], Sequence[Any]], max_group: int = MAX_GROUP):
        self._run, self._max = run, max_group
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._busy = False

    def submit(self, item: Any, delivery: Any = None) -> Any:
        slot = _Slot(item, delivery)
        with self._lock:
            self._queue.append(slot)
            lead = not self._busy
            self._busy = True
        if not lead:
            slot.ready.wait()
            if slot.done:
                return self._answer(slot)
        while True:  # leading: store what is waiting, group by group, until our own slot is done
            with self._lock:
                group, self._queue = self._queue[:self._max], self._queue[self._max:]
                if not group:
                    self._busy = False
                    return self._answer(slot)
            try:
                results = list(self._run([s.item for s in group], [s.delivery for s in group]))
                error: BaseException | None = None
            except BaseException as e:  # noqa: BLE001 - every caller of the group gets it
                results, error = [None] * len(group), e
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

    @staticmethod
    def _answer(slot: _Slot) -> Any:
        if slot.error is not None:
            raise slot.error
        return slot.result
