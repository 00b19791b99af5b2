"""What people do at the desk (HTTP API, CLI, console): approve, withdraw, re-route the unmatched, route one by
hand; cancel, reschedule or send now a queued notification; resubmit a corrected dead letter through the intake
gate; pause and resume sending; mark a reply handled. Every action that changed something is appended to the
audit log (who, when, what, why), which a candidate's history shows; a refused one raises ActionError and
changes nothing. Credentials never reach the log: the actor is a name or how the caller came in."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine.intake.batch import planned
from engine.pipeline import Pipeline
from engine.store import OutcomeRow, Store, StoreError, utc
from engine.desk.planning import ClockedPipeline, find_rule, pinned

UNKNOWN_ACTOR = "unknown"


@dataclass(frozen=True)
class ActionResult:
    """An outcome after an action: its status and state, and the notification queued for it, if any."""

    id: str
    status: str
    state: str
    approved: bool
    notification: str | None = None
    send_at: str | None = None
    rule: str | None = None
    error: str | None = None
    cancelled: int | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


class ActionError(Exception):
    """An action that cannot be done; `code` is an HTTP-like status (404 unknown, 409 conflicting state);
    `detail` adds facts to the answer (e.g. `sent`: what already went out, and when)."""

    def __init__(self, code: int, message: str, **detail: object):
        super().__init__(message)
        self.code = code
        self.detail = detail


def iso(ts: float) -> str:
    """Stored epoch seconds as an ISO 8601 UTC time."""
    return datetime.fromtimestamp(ts, UTC).isoformat()


def _audit(store: Store, action: str, actor: str | None, now: float, reason: str | None, *,
           outcome_id: str | None = None, notification_id: str | None = None, target: str | None = None,
           detail: Mapping[str, Any] | None = None) -> None:
    store.record_action(action, actor or UNKNOWN_ACTOR, at=now, outcome_id=outcome_id,
                        notification_id=notification_id, target=target, reason=reason, detail=detail)


def _who(reason: str | None, actor: str | None) -> dict:
    """What the history keeps of an action: its reason and its actor."""
    return {"reason": reason, "actor": actor}


def _already_sent(store: Store, outcome_id: str, rev: int) -> list[dict]:
    """The notifications of the outcome's current revision that went out: notification, channel, sent_at."""
    return [{"notification": n.id, "channel": n.channel, "sent_at": iso(n.sent_at)}
            for n in store.notifications_for(outcome_id) if n.outcome_rev == rev and n.sent_at is not None]


def _refuse_sent(sent: list[dict], outcome_id: str, doing: str) -> None:
    if sent:
        what = "; ".join(f"{s['notification']} on {s['channel']} at {s['sent_at']}" for s in sent)
        raise ActionError(409, f"cannot {doing} outcome {outcome_id!r}: already sent ({what}); nothing was changed",
                          sent=sent)


def _result(store: Store, outcome_id: str, **extra: Any) -> ActionResult:
    row = store.get_outcome(outcome_id)
    if row is None:
        raise ActionError(404, f"no outcome {outcome_id!r}")
    current = [n for n in store.notifications_for(outcome_id) if n.outcome_rev == row.rev]
    note = current[-1] if current else None
    fields: dict[str, Any] = {"notification": note.id if note else None, "rule": note.rule_id if note else None,
                              "send_at": iso(note.send_at) if note else None}
    fields.update({k: v for k, v in extra.items() if v is not None})
    return ActionResult(row.id, row.status, row.state, row.approved, **fields)


def _schedule(store: Store, pipeline: Pipeline, outcome_id: str, now: float, handled_by: str | None = None
              ) -> ActionResult:
    """Plans the outcome as it stands now and queues its notification, or marks it unmatched."""
    row = store.get_outcome(outcome_id)
    if row is None:
        raise ActionError(404, f"no outcome {outcome_id!r}")
    approved_at = utc(row.approved_at) if row.approved_at is not None else None
    plan = pipeline.plan(row.data(), approved_at=approved_at, **_rev(pipeline, row))
    note = planned(plan)
    if note is None:
        store.set_status(outcome_id, "unmatched", at=now)
        why = plan.error or ("no rule matches" if plan.rule is None else "no send time")
        return _result(store, outcome_id, error=why)
    store.add_notification(outcome_id, note, at=now, status="matched", handled_by=handled_by)
    return _result(store, outcome_id)


def approve(store: Store, pipeline: Pipeline, outcome_id: str, now: float, reason: str | None = None,
            actor: str | None = None) -> ActionResult:
    """Releases a held outcome and schedules it (approving again before anything is sent changes nothing).

    409 for a withdrawn or superseded outcome, and for one whose message was already sent."""
    row = store.get_outcome(outcome_id)
    if row is None:
        raise ActionError(404, f"no outcome {outcome_id!r}")
    if row.state != "active":
        raise ActionError(409, f"cannot approve outcome {outcome_id!r}: it is {row.state}")
    _refuse_sent(_already_sent(store, outcome_id, row.rev), outcome_id, "approve")
    row = store.approve(outcome_id, at=now, detail=_who(reason, actor))
    if row is None:
        raise ActionError(404, f"no outcome {outcome_id!r}")
    result = _result(store, outcome_id) if row.state != "active" or row.status != "held" else _schedule(store, pipeline, outcome_id, now)
    _audit(store, "approve", actor, now, reason, outcome_id=outcome_id, notification_id=result.notification,
           detail=result.as_dict())
    return result


def withdraw(store: Store, outcome_id: str, now: float, reason: str | None = None,
             actor: str | None = None) -> ActionResult:
    """The decision changed: the outcome is withdrawn and its queued notifications cancelled, never sent.

    409, changing nothing, when a message for it was already sent (the answer lists what and when)."""
    row = store.get_outcome(outcome_id)
    if row is None:
        raise ActionError(404, f"no outcome {outcome_id!r}")
    if row.state == "active":
        _refuse_sent(_already_sent(store, outcome_id, row.rev), outcome_id, "withdraw")
    cancelled = store.withdraw(outcome_id, at=now, reason=reason, actor=actor)
    if cancelled is None:
        raise ActionError(404, f"no outcome {outcome_id!r}")
    result = _result(store, outcome_id, cancelled=cancelled)
    _audit(store, "withdraw", actor, now, reason, outcome_id=outcome_id, detail=result.as_dict())
    return result


def retry_unmatched(store: Store, pipeline: Pipeline, now: float, limit: int = 1000,
                    actor: str | None = None) -> list[ActionResult]:
    """Routes every outcome waiting for a person again with the current rules; those still unmatched stay."""
    results = [_schedule(store, pipeline, row.id, now) for row in store.unmatched(limit)]
    for r in results:
        if r.notification:
            _audit(store, "route", actor, now, None, outcome_id=r.id, notification_id=r.notification,
                   detail={"rule": r.rule, "how": "current rules"})
    return results


def route_by_hand(store: Store, pipeline: Pipeline, outcome_id: str, rule_id: str, now: float,
                  by: str | None = None, reason: str | None = None) -> ActionResult:
    """Plans one outcome with the rule a person chose (its template, channels and timing) and queues it."""
    row = store.get_outcome(outcome_id)
    if row is None:
        raise ActionError(404, f"no outcome {outcome_id!r}")
    if row.state != "active":
        raise ActionError(409, f"outcome {outcome_id!r} is {row.state}")
    if not row.approved:
        raise ActionError(409, f"outcome {outcome_id!r} is held: approve it first")
    if any(n.outcome_rev == row.rev for n in store.notifications_for(outcome_id)):
        raise ActionError(409, f"outcome {outcome_id!r} already has a notification")
    rule = find_rule(pipeline, rule_id)
    if rule is None:
        raise ActionError(404, f"no rule {rule_id!r} in rule set {pipeline.deployment.ruleset_in_use.version}")
    plan = pinned(pipeline, rule).plan(row.data(), approved_at=utc(row.approved_at) if row.approved_at else None,
                                       **_rev(pipeline, row))
    note = planned(plan)
    if note is None:
        raise ActionError(409, f"rule {rule_id} cannot send it: {plan.error or 'no send time'}")
    try:
        store.add_notification(outcome_id, note, at=now, status="matched", handled_by=by or "cli")
    except StoreError as e:
        raise ActionError(409, str(e)) from e
    result = _result(store, outcome_id)
    _audit(store, "route", by or "cli", now, reason, outcome_id=outcome_id, notification_id=result.notification,
           detail={"rule": rule_id, "how": "by hand", "send_at": result.send_at})
    return result


def _rev(pipeline: Pipeline, row: OutcomeRow) -> dict:
    """The outcome revision, for pipelines that sign links per notification (`<id>#<rev>`)."""
    return {"rev": row.rev} if isinstance(pipeline, ClockedPipeline) else {}
