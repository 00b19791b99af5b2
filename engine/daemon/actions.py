"""What people do to stored outcomes: approve, withdraw, re-route the unmatched, route one by hand (HTTP and CLI)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.intake.batch import planned
from engine.pipeline import Pipeline
from engine.store import OutcomeRow, Store, StoreError, utc
from engine.daemon.planning import find_rule, pinned


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


def _who(reason: str | None, actor: str | None) -> dict:
    """What the history keeps of an action: its reason and its actor."""
    return {"reason": reason, "actor": actor}


def _already_sent(store: Store, outcome_id: str, rev: int) -> list[dict]:
    """The notifications of the outcome's current revision that went out: notification, channel, sent_at."""
    return [{"notification": n.id, "channel": n.channel, "sent_at": utc(n.sent_at).isoformat()}
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
                              "send_at": utc(note.send_at).isoformat() if note else None}
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
    if row.state != "active" or row.status != "held":
        return _result(store, outcome_id)
    return _schedule(store, pipeline, outcome_id, now)


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
    return _result(store, outcome_id, cancelled=cancelled)


def retry_unmatched(store: Store, pipeline: Pipeline, now: float, limit: int = 1000) -> list[ActionResult]:
    """Routes every outcome waiting for a person again with the current rules; those still unmatched stay."""
    return [_schedule(store, pipeline, row.id, now) for row in store.unmatched(limit)]


def route_by_hand(store: Store, pipeline: Pipeline, outcome_id: str, rule_id: str, now: float,
                  by: str | None = None) -> ActionResult:
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
    return _result(store, outcome_id)


def _rev(pipeline: Pipeline, row: OutcomeRow) -> dict:
    """The outcome revision, for pipelines that sign links per notification (`<id>#<rev>`)."""
    from engine.daemon.planning import ClockedPipeline

    return {"rev": row.rev} if isinstance(pipeline, ClockedPipeline) else {}
