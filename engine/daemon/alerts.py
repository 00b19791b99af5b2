"""HR alerts: short markdown messages to one configured channel (a DingTalk group robot, or any channel with
recipients, e.g. e-mail to a team), batched.

    alerts:
      channel: hr-robot          # a configured channel, e.g. `transport: dingtalk-robot`
      at_mobiles: ["13800000000"]  # optional: people the robot @-mentions
      interval: 1m               # optional: at least this long (real time) between two messages

    alerts: {channel: email, to: [hr-berlin@example.com]}   # smtp, sms...: one message to each recipient

The daemon raises an alert when an outcome waits unmatched, a notification failed on every channel, a
notification went out after its deadline, or a reload was refused. Replicas sharing a PostgreSQL store put their
lines in the store's queue (Store.alert_queue()) and only the leader reads and posts them, so HR hears from one
replica, paced once; a line leaves the queue only once its message was posted (or refused for good), so a leader
that dies holding lines leaves them to the next one. Alerts from any thread are collected and
posted by the Alerter's own thread: the first one after a quiet spell waits a few seconds (`gather`) so a
burst goes as one message, and two messages are at least `interval` apart (a robot takes 20 a minute). A
failed post is logged, never raised; a recoverable failure keeps the lines for the next message, which waits
at least the failure's retry_after (a robot blocked for 10 minutes after errcode 130101 is not tried meanwhile).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any
from collections.abc import Callable

from engine.channels.base import RECOVERABLE, Envelope, SendResult
from engine.config.settings import AlertSettings

log = logging.getLogger("herald.alerts")

TITLES = {"unmatched": "waiting unmatched", "failed": "failed on every channel", "late": "sent late",
          "reload": "reload refused", "template": "template over its render budget"}
MAX_LINES = 30       # lines listed in one message; the rest are counted
MAX_PENDING = 500    # lines kept while the channel cannot take them
MAX_LINE = 300       # characters of one line
QUEUE_POLL = 1.0     # seconds between two looks at the store's queue (replicas: the leader posts every line)


def alert_message(lines: list[tuple[str, str]], more: int = 0) -> tuple[str, str]:
    """(subject, markdown body) listing (kind, text) alert lines, oldest first."""
    count = len(lines) + more
    subject = f"herald: {count} alert{'s' if count != 1 else ''}"
    body = [f"#### {subject}", ""]
    for kind, text in lines:
        body.append(f"- **{TITLES.get(kind, kind)}**: {text}")
    if more:
        body.append(f"- ... and {more} more (see the daemon's log)")
    return subject, "\n".join(body) + "\n"


class Alerter:
    """Collects alert lines from any thread and posts them in batches from its own thread; never raises."""

    def __init__(self, settings: Callable[[], AlertSettings], transport: Callable[[str], tuple[Any, str | None]],
                 *, gather: float | None = None, clock: Callable[[], float] = time.monotonic,
                 queue: Any = None, leader: Callable[[], bool] = lambda: True,
                 wall: Callable[[], float] = time.time):
        self._settings = settings
        self._transport = transport
        # replicas sharing a store: lines go to the store's queue (any replica); the leader reads and posts them,
        # then deletes them
        self._queue = queue
        self._leader = leader
        self._wall = wall
        self.gather = gather  # seconds the first alert after a quiet spell waits for others; None: interval / 10, <= 5
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: list[tuple[str, str, int | None]] = []  # (kind, line, its id in the store's queue or None)
        self._finished: set[int] = set()  # queue ids posted (or refused for good) whose delete has not gone through
        self._dropped = 0
        self._first_at: float | None = None
        self._last_sent: float | None = None
        self._hold_until: float | None = None  # a channel's retry_after (a robot's 10-minute penalty)
        self._stop = False
        self._thread: threading.Thread | None = None
        self.sent = 0  # messages posted (for tests and the log)

    def _current(self) -> AlertSettings:
        try:
            return self._settings()
        except Exception:  # a settings bug must not break the caller
            log.exception("alert settings")
            return AlertSettings()

    def add(self, kind: str, text: str) -> None:
        """Queues one alert line (no-op when no alert channel is configured). Safe from any thread; never raises."""
        try:
            if not self._current().channel:
                return
            line = " ".join(str(text).split())
            line = line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."
            if self._queue is not None:  # posted by the leader, whichever replica raised it
                try:
                    self._queue.put(kind, line, self._wall())
                except Exception as e:  # noqa: BLE001 - the store is down: the line stays in this log only
                    log.error("alert not queued for the leader (%s): %s: %s", e, kind, line)
                with self._cond:
                    self._cond.notify_all()
                return
            with self._cond:
                if len(self._pending) >= MAX_PENDING:
                    self._dropped += 1
                    return
                if not self._pending:
                    self._first_at = self._clock()
                self._pending.append((kind, line, None))
                self._cond.notify_all()
        except Exception:
            log.exception("alert not queued")

    # -- the thread

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="herald-alerts", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stops the thread, posting what is pending first (best effort)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        if self._pending:
            self.flush(force=True)
        self._finish()

    def due_at(self) -> float | None:
        """When the pending lines may go (monotonic seconds), or None when nothing is pending."""
        with self._cond:
            if not self._pending:
                return None
            interval = self._current().interval
            gather = self.gather if self.gather is not None else min(5.0, interval / 10)
            due = (self._first_at or self._clock()) + gather
            if self._last_sent is not None:
                due = max(due, self._last_sent + interval)
            if self._hold_until is not None:
                due = max(due, self._hold_until)
            return due

    def _pull(self) -> None:
        """The leader reads the lines every replica queued in the store into its own pending ones (others: none;
        a replica no longer leader lets go of the lines it read, which stay in the queue for the next leader)."""
        if self._queue is None:
            return
        try:
            if not self._leader():
                with self._cond:  # not (or no longer) the leader: what it read stays in the queue for the next one
                    self._pending, self._first_at = [], None
                    self._finished.clear()
                return
            self._finish()
            with self._cond:
                room = MAX_PENDING - len(self._pending)
                held = {qid for _, _, qid in self._pending if qid is not None} | self._finished
            lines = self._queue.peek(room, held)
        except Exception as e:  # noqa: BLE001 - the store is busy or gone: the lines wait there
            log.warning("alerts: queued lines not read: %s", e)
            return
        if lines:
            with self._cond:
                if not self._pending:
                    self._first_at = self._clock()
                self._pending.extend((kind, line, qid) for qid, kind, line in lines)

    def _finish(self) -> None:
        """Deletes from the store's queue the lines whose message went (or was refused for good); a delete that
        fails is tried again on the next look (meanwhile they are not read again)."""
        with self._cond:
            ids = set(self._finished)
        if not ids or self._queue is None:
            return
        try:
            self._queue.done(ids)
        except Exception as e:  # noqa: BLE001 - the store is busy or gone: tried again next time
            log.warning("alerts: posted lines not yet removed from the queue: %s", e)
            return
        with self._cond:
            self._finished -= ids

    def _run(self) -> None:
        while True:
            self._pull()
            with self._cond:
                if not self._pending and not self._stop:
                    # a shared queue is looked at again after QUEUE_POLL (another replica's lines wake no one here)
                    self._cond.wait(QUEUE_POLL if self._queue is not None else None)
                    continue
                if self._stop:
                    return
            due = self.due_at()
            wait = (due - self._clock()) if due is not None else 0.0
            if wait > 0:
                with self._cond:
                    self._cond.wait(wait)  # woken early by stop() or a new line: the loop looks again
                continue
            self.flush()

    def flush(self, force: bool = False) -> SendResult | None:
        """Posts the pending lines as one message if one may go now (or `force`); the result, or None if none went."""
        try:
            if not force:
                due = self.due_at()
                if due is None or due > self._clock():
                    return None
            with self._cond:
                lines, more = self._pending[:MAX_LINES], len(self._pending) - MAX_LINES + self._dropped
                if not lines:
                    return None
                taken, self._pending, self._dropped = list(self._pending), [], 0
                self._first_at = None
                self._last_sent = self._clock()
            result = self._post([(kind, line) for kind, line, _ in lines], max(more, 0))
            if result is not None and result.status == RECOVERABLE:
                with self._cond:  # try again with the next message, not before the channel said it may
                    self._pending = (taken + self._pending)[:MAX_PENDING]
                    self._first_at = self._first_at or self._clock()
                    self._hold_until = self._clock() + result.retry_after if result.retry_after else None
            else:  # posted, or refused for good (logged): out of the store's queue
                with self._cond:
                    self._finished.update(qid for _, _, qid in taken if qid is not None)
                self._finish()
            return result
        except Exception:  # an alert must never break intake or dispatch
            log.exception("alert not sent")
            return None

    def _post(self, lines: list[tuple[str, str]], more: int) -> SendResult | None:
        settings = self._current()
        if not settings.channel:
            return None
        transport, why = self._transport(settings.channel)
        if transport is None:
            log.error("alerts: channel %s cannot send: %s (%d alert(s) not sent)", settings.channel, why,
                      len(lines) + more)
            return SendResult("permanent", error=why)
        subject, body = alert_message(lines, more)
        results = [self._send_one(transport, settings, to, subject, body) for to in settings.to or ("",)]
        # a recoverable failure keeps the lines for the next message (to every recipient); else the first refusal
        result = next((r for r in results if r.status == RECOVERABLE), None) or next(
            (r for r in results if not r.ok), results[-1])
        if result.ok:
            self.sent += 1
            log.info("alerts: posted %d alert(s) to %s", len(lines) + more, settings.channel)
        else:
            log.error("alerts: %s refused %d alert(s) (%s): %s", settings.channel, len(lines) + more,
                      result.status, result.error)
        return result

    def _send_one(self, transport: Any, settings: AlertSettings, to: str, subject: str, body: str) -> SendResult:
        """One alert message to one recipient ("" for a channel without recipients: a group robot, a webhook)."""
        env = Envelope(notification_id="herald-alerts", attempt_key=f"herald-alert-{uuid.uuid4().hex[:16]}",
                       channel=settings.channel or "", to=to, body=body, subject=subject,
                       meta={"at_mobiles": list(settings.at_mobiles)} if settings.at_mobiles else {})
        try:
            result: SendResult = transport.send(env)
        except Exception as e:
            log.exception("alerts: transport %s raised", getattr(transport, "name", "?"))
            return SendResult(RECOVERABLE, error=f"transport raised {type(e).__name__}")
        if not result.ok and to:
            log.error("alerts: %s refused the alert for a recipient (%s)", settings.channel, result.status)
        return result
