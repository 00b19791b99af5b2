"""The desk's actions on the queue and on sending: cancel, reschedule or send now one notification, pause and
resume sending (every channel or one; intake and planning go on, the store keeps the pause so every replica's
dispatcher honours it), mark a reply handled, and resubmit a corrected dead letter through the intake gate.
Each one that changed something is appended to the audit log; a refused one raises ActionError (404 unknown,
409 wrong state, 422 bad input) and changes nothing."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from engine.desk.actions import UNKNOWN_ACTOR, ActionError, iso
from engine.desk.planning import window_opening
from engine.intake.batch import ItemStatus
from engine.intake.decode import Item, split_body
from engine.intake.gate import INVALID, judge
from engine.pipeline import Pipeline
from engine.store import ALL_CHANNELS, AttemptRow, EventRow, NotificationRow, PauseRow, ReplyRow, Store

MAX_AHEAD = 366 * 86400.0  # a reschedule goes at most a year ahead
OVERRIDE = "override_window"  # a send_now event's detail: the operator sent it inside a closed send window


@dataclass(frozen=True)
class QueueResult:
    """A notification after an action: its state, channel and when it goes out next; after "send now" in a
    closed send window, until when the window is closed and whether the operator overrode it."""

    id: str
    outcome_id: str
    state: str
    channel: str
    next_attempt_at: str | None
    window_closed_until: str | None = None
    override_window: bool = False

    @classmethod
    def of(cls, n: NotificationRow, window_closed_until: float | None = None,
           override_window: bool = False) -> QueueResult:
        t = n.next_attempt_at
        return cls(n.id, n.outcome_id, n.state, n.channel, iso(t) if t is not None else None,
                   iso(window_closed_until) if window_closed_until is not None else None, override_window)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def _log(store: Store, action: str, actor: str | None, now: float, reason: str | None = None, **kw: Any) -> None:
    store.record_action(action, actor or UNKNOWN_ACTOR, at=now, reason=reason, **kw)


def _scheduled(store: Store, notification_id: str, doing: str) -> NotificationRow:
    detail = store.get_notification(notification_id)
    if detail is None:
        raise ActionError(404, f"no notification {notification_id!r}")
    n = detail.notification
    if n.state != "scheduled":
        raise ActionError(409, f"cannot {doing} notification {notification_id!r}: it is {n.state}", state=n.state)
    return n


def _current(store: Store, notification_id: str, **extra: Any) -> QueueResult:
    detail = store.get_notification(notification_id)
    assert detail is not None
    return QueueResult.of(detail.notification, **extra)


def cancel(store: Store, notification_id: str, now: float, actor: str | None = None,
           reason: str | None = None) -> QueueResult:
    """Stops a scheduled notification: it is never sent (409 once claimed, sent or ended)."""
    n = _scheduled(store, notification_id, "cancel")
    if not store.cancel(notification_id, at=now, reason=f"cancelled by {actor or UNKNOWN_ACTOR}"
                                                       + (f": {reason}" if reason else "")):
        raise ActionError(409, f"cannot cancel notification {notification_id!r}: it was claimed meanwhile")
    _log(store, "cancel", actor, now, reason, outcome_id=n.outcome_id, notification_id=n.id)
    return _current(store, notification_id)


def reschedule(store: Store, notification_id: str, when: float, now: float, actor: str | None = None,
               reason: str | None = None) -> QueueResult:
    """Moves a scheduled notification's next attempt to `when` (at most a year ahead; a past time means now).
    The rule's send window still applies when it falls due."""
    if when > now + MAX_AHEAD:
        raise ActionError(422, "at: at most a year ahead", field="at")
    n = _scheduled(store, notification_id, "reschedule")
    when = max(when, now)
    if not store.reschedule(notification_id, when, at=now, reason=reason):
        raise ActionError(409, f"cannot reschedule notification {notification_id!r}: it was claimed meanwhile")
    _log(store, "reschedule", actor, now, reason, outcome_id=n.outcome_id, notification_id=n.id,
         detail={"from": iso(n.next_attempt_at) if n.next_attempt_at is not None else None, "to": iso(when)})
    return _current(store, notification_id)


def send_now(store: Store, notification_id: str, now: float, actor: str | None = None,
             reason: str | None = None, *, pipeline: Pipeline | None = None,
             override_window: bool = False) -> QueueResult:
    """Makes a scheduled notification due now (the dispatcher takes it at once, unless its channel is paused).

    With `pipeline`, the send window of the notification's rule is asked first (for this candidate: their time
    zone and holidays): when it is closed now, the notification goes at the window's opening instead, and the
    answer says until when it is closed (`window_closed_until`) — unless the operator overrides the window
    (`override_window`), which makes it due now and lets the dispatcher send it inside the closed window; the
    override is recorded in the notification's event and the audit log."""
    n = _scheduled(store, notification_id, "send now")
    closed_until = None
    if pipeline is not None:
        row = store.get_outcome(n.outcome_id)
        opens = window_opening(pipeline, n.rule_id, row.data() if row is not None else {}, now)
        closed_until = opens if opens > now else None
    override = bool(override_window and closed_until is not None)
    when = closed_until if closed_until is not None and not override else now
    detail: dict[str, Any] = {"window_closed_until": closed_until} if closed_until is not None else {}
    if override:
        detail[OVERRIDE] = True
    if not store.reschedule(notification_id, when, at=now, reason=reason, kind="send_now", detail=detail):
        raise ActionError(409, f"cannot send notification {notification_id!r} now: it was claimed meanwhile")
    _log(store, "send_now", actor, now, reason, outcome_id=n.outcome_id, notification_id=n.id,
         detail={"window_closed_until": iso(closed_until), OVERRIDE: override} if closed_until else None)
    return _current(store, notification_id, window_closed_until=closed_until, override_window=override)


def window_overridden(events: Sequence[EventRow], attempts: Sequence[AttemptRow] = ()) -> bool:
    """Whether a notification's last "send now" or reschedule (its `events`, oldest first) was an operator's
    send now that overrode a closed window, not yet spent: the dispatcher then sends it inside the window. The
    override covers the send it was asked for: once an attempt started after it (`attempts`), a retry or a
    fallback keeps the window again (it went at 18:00 after downtime, a day after the operator's override)."""
    for e in reversed(events):
        if e.kind in ("send_now", "rescheduled"):
            return bool(e.detail and e.detail.get(OVERRIDE)) and not any(a.started_at >= e.at for a in attempts)
    return False


def pause(store: Store, now: float, channel: str | None = None, actor: str | None = None,
          reason: str | None = None, channels: Sequence[str] | None = None) -> list[PauseRow]:
    """Pauses sending on `channel` (None: every channel); intake goes on. Idempotent: pausing again keeps the
    first pause (and records nothing). `channels`, when given, are the configured ones (404 for another)."""
    _known(channel, channels)
    if store.pause_sending(channel, actor or UNKNOWN_ACTOR, reason, at=now):
        _log(store, "pause", actor, now, reason, target=channel or ALL_CHANNELS)
    return store.pauses()


def resume(store: Store, now: float, channel: str | None = None, actor: str | None = None,
           reason: str | None = None) -> list[PauseRow]:
    """Lifts the pause of `channel` (None: the pause of every channel; a channel's own pause stays)."""
    if store.resume_sending(channel):
        _log(store, "resume", actor, now, reason, target=channel or ALL_CHANNELS)
    return store.pauses()


def _known(channel: str | None, channels: Sequence[str] | None) -> None:
    if channel is not None and channels is not None and channel not in channels:
        raise ActionError(404, f"no channel {channel!r} (configured: {', '.join(channels)})")


def handle_reply(store: Store, reply_id: int, now: float, actor: str | None = None,
                 reason: str | None = None) -> ReplyRow:
    """Marks a candidate's reply handled (its time to answer ends now); handling it again changes nothing."""
    reply = store.get_reply(reply_id)
    if reply is None:
        raise ActionError(404, f"no reply {reply_id}")
    if store.mark_reply_handled(reply_id, at=now):
        outcome = (store.get_notification(reply.notification_id) if reply.notification_id else None)
        _log(store, "handle_reply", actor, now, reason, target=f"reply {reply_id}",
             notification_id=reply.notification_id,
             outcome_id=outcome.notification.outcome_id if outcome else None)
    got = store.get_reply(reply_id)
    assert got is not None
    return got


def resubmit(store: Store, dead_letter_id: int, body: bytes, now: float,
             intake: Callable[[list[Item], str], list[ItemStatus]], actor: str | None = None,
             reason: str | None = None) -> ItemStatus:
    """Takes a corrected body for a dead letter through the same gate as intake (one outcome). Refused with
    422 and the located error when it is still invalid (no new dead letter is kept); else the item's status
    (matched, held, unmatched, duplicate, amended), and the dead letter is marked resolved as that outcome."""
    dead = store.get_dead_letter(dead_letter_id)
    if dead is None:
        raise ActionError(404, f"no dead letter {dead_letter_id}")
    if dead.resolved_at is not None:
        raise ActionError(409, f"dead letter {dead_letter_id} was already resubmitted as {dead.resolved_as!r}")
    items, is_list, error = split_body(body)
    if error is None and (is_list or len(items) != 1):
        error = "give one outcome (a JSON object), not a list"
    if error is None:
        verdict = judge(items[0])
        if verdict.status == INVALID:
            raise ActionError(422, verdict.error or "invalid outcome", field=verdict.field or "")
    if error is not None:
        raise ActionError(422, error, field="")
    status = intake(items, "resubmit")[0]
    if status.status == INVALID:  # judged valid above; the gate is the same, so this is not expected
        raise ActionError(422, status.error or "invalid outcome", field=status.field or "")
    store.resolve_dead_letter(dead_letter_id, str(status.id), at=now)
    _log(store, "resubmit", actor, now, reason, outcome_id=status.id, notification_id=status.notification,
         target=f"dead letter {dead_letter_id}", detail={"status": status.status})
    return status
