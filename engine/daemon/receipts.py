"""The receipts poller: a thread that asks pollable transports for receipts of recent sends, and records them.

Every `dispatch.receipt_interval` (clock seconds, default 60; a channel's own `poll_interval` setting wins for that
channel; at least RECEIPT_MIN_WAIT real seconds), for each configured channel whose transport has
`poll_receipts(provider_ids)` (dingtalk-work-notice: getsendresult; aliyun-sms: QuerySendDetails), it lists the
accepted attempts of the last RECEIPT_DAYS days still waiting for a receipt (notification 'sent', or 'delivered'
while a read is awaited) and records what the provider answers.
A receipt is recorded once per (provider id, kind), whether it came by polling or by a push; the store then
moves the notification on: delivered / read stop escalation (a DingTalk work notice waits for the read), and
undelivered makes the next channel due now (or fails the notification on its last channel).
"""
from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterable

from engine.channels.base import Receipt

if TYPE_CHECKING:  # the runtime imports this module
    from engine.daemon.runtime import Runtime

log = logging.getLogger("herald.receipts")

RECEIPT_DAYS = 7          # how far back attempts are still polled
RECEIPT_BATCH = 500       # provider ids asked for per round, all channels together
RECEIPT_MIN_WAIT = 0.05   # real seconds between rounds, however fast the clock runs


def receipt_key(provider_id: str, kind: str) -> str:
    """The dedupe key of a receipt: one event per provider id and kind, however often it is reported."""
    return f"receipt:{provider_id}:{kind}"


def record_receipts(runtime: Runtime, channel: str, receipts: Iterable[Receipt]) -> list[str | None]:
    """Records each receipt at the daemon's time (the provider's time stays in the detail); the notification ids
    (None: unknown provider id). A notification that fails because its last channel was undelivered is alerted."""
    store, out = runtime.store, []
    for r in receipts:
        detail = dict(r.detail or {})
        if r.at:
            detail.setdefault("reported_at", r.at)
        nid = store.record_receipt(r.provider_id, r.event, at=runtime.now(), detail=detail, channel=channel,
                                   dedupe_key=receipt_key(r.provider_id, r.event))
        out.append(nid)
        if nid is None:
            log.info("receipt %s for unknown provider id %s on %s", r.event, r.provider_id, channel)
            continue
        log.info("receipt %-11s %s on %s", r.event, nid, channel)
        if r.event == "undelivered":
            row = store.get_notification(nid)
            if row is not None and row.notification.state == "failed":
                runtime.alert("failed", f"{nid} failed on every channel ({', '.join(row.notification.channels)}); "
                                        f"last: {channel}: reported undelivered")
    return out


class ReceiptPoller:
    """One thread over one Runtime; `poll_once()` does one round (tests call it directly)."""

    def __init__(self, runtime: Runtime, interval: float, leader: Callable[[], bool] | None = None):
        self.rt = runtime
        self.interval = interval  # clock seconds
        self.leader = leader  # of replicas sharing a store, only the leader polls (None: always this one)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, float] = {}  # channel -> clock time of its last round

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="herald-receipts", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.wait(self._wait()):
            try:
                if self.leader is None or self.leader():
                    self.poll_once(due_only=True)
            except Exception:  # the store busy, a transport bug: try again next round
                log.exception("receipt polling")

    def interval_for(self, channel: str) -> float:
        """Clock seconds between two rounds on `channel`: its `poll_interval` setting, else receipt_interval."""
        from engine.schedule.timing import parse_duration

        ch = self.rt.state.deployment.config.channels.get(channel)
        d = parse_duration((ch.settings if ch is not None else {}).get("poll_interval"))
        return d.total_seconds() if d is not None and d.total_seconds() > 0 else self.interval

    def _wait(self) -> float:
        """Real seconds until the next round: the shortest interval of the configured channels."""
        try:
            shortest = min([self.interval, *(self.interval_for(c) for c in self.rt.state.deployment.config.channels)])
        except Exception:  # noqa: BLE001 - a channel whose settings cannot be read waits the default interval
            shortest = self.interval
        return max(self.rt.clock.real(shortest), RECEIPT_MIN_WAIT)

    def pollers(self) -> dict[str, Any]:
        """Channel name -> transport, for the configured channels whose transport can be polled."""
        state = self.rt.state
        out = {}
        for name in state.deployment.config.channels:
            transport, _ = state.transports.get(name)
            if transport is not None and callable(getattr(transport, "poll_receipts", None)):
                out[name] = transport
        return out

    def poll_once(self, due_only: bool = False) -> int:
        """One round over every pollable channel (due_only: those whose interval has passed since their last round);
        returns how many receipts were recorded (duplicates included)."""
        pollers = self.pollers()
        now = self.rt.now()
        if due_only:
            pollers = {c: t for c, t in pollers.items()
                       if now - self._last.get(c, float("-inf")) >= self.interval_for(c) * 0.999}
        if not pollers:
            return 0
        for c in pollers:
            self._last[c] = now
        since = self.rt.now() - RECEIPT_DAYS * 86400
        waiting: dict[str, list[str]] = {}
        for pid, channel in self.rt.store.awaiting_receipts(since, list(pollers), RECEIPT_BATCH):
            waiting.setdefault(channel, []).append(pid)
        count = 0
        for channel, pids in waiting.items():
            if self._stop.is_set():
                break
            try:
                receipts = list(pollers[channel].poll_receipts(pids))
            except Exception:  # one provider's trouble must not stop the others
                log.exception("polling receipts on %s", channel)
                continue
            count += len(record_receipts(self.rt, channel, receipts))
        return count
