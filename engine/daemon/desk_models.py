"""The desk API's documents (engine/daemon/desk_routes.py): response models for OpenAPI, and the desk's frozen rows
(engine/desk) turned into JSON (times as ISO 8601 UTC; a dead letter's body as text)."""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from engine.daemon.models import (EventOut, MessageOut, NotificationOut, OutcomeOut, iso, model_of, notification_doc,
                                  outcome_doc)
from engine.desk import Candidate, History, QueueResult
from engine.model import Plan
from engine.store import AuditRow, DeadLetterRow, NotificationRow, OutcomeRow, PauseRow, ReplyRow


QueueResultOut = model_of(QueueResult, "QueueResultOut", "A notification after cancel, reschedule or send now.")


class OutcomeSummary(BaseModel):
    """An outcome in a listing: where it stands, its routing fields and the candidate it is about."""

    id: str
    rev: int
    status: str
    state: str
    approved: bool
    decision: str | None
    stage: str | None
    role: str | None
    reason: str | None
    received_at: str | None
    candidate: dict[str, Any] | None


class OutcomePage(BaseModel):
    """One page of outcomes; `next` is the cursor of the following page (null: the last page)."""

    items: list[OutcomeSummary]
    next: str | None


class QueueItem(BaseModel):
    """A notification in the queue: when it goes (or went) out, on which channel, and its state."""

    id: str
    outcome: str
    rule: str | None
    template: str | None
    channels: list[str]
    channel: str
    state: str
    due_at: str | None  # the next attempt of a pending one, else the planned send time
    send_at: str | None
    sent_at: str | None
    late: bool
    last_error: str | None


class QueuePage(BaseModel):
    items: list[QueueItem]
    next: str | None
    paused: list[str]  # channels paused now ('*': every channel)


class DeadLetterOut(BaseModel):
    """A refused input: why, the field at fault, its body as text, and whether it was resubmitted."""

    id: int
    received_at: str | None
    source: str
    reason: str
    field: str | None
    body: str
    remote: str | None
    resolved_at: str | None
    resolved_as: str | None


class DeadLetterPage(BaseModel):
    items: list[DeadLetterOut]
    next: str | None


class CandidateOut(BaseModel):
    outcome_id: str
    name: str | None
    email: str | None
    phone: str | None
    decision: str | None
    stage: str | None
    role: str | None
    status: str
    state: str
    received_at: str | None


class CandidatePage(BaseModel):
    items: list[CandidateOut]
    next: str | None


class ReplyOut(BaseModel):
    id: int
    notification_id: str | None
    channel: str | None
    at: str | None
    content: str
    handled_at: str | None


class ReplyPage(BaseModel):
    items: list[ReplyOut]
    next: str | None


class AuditOut(BaseModel):
    """One audit entry: who did what, when, to which outcome / notification / target, and why."""

    id: int
    at: str | None
    actor: str
    action: str
    outcome_id: str | None
    notification_id: str | None
    target: str | None
    reason: str | None
    detail: dict[str, Any] | None


class AuditPage(BaseModel):
    items: list[AuditOut]
    next: str | None


class HistoryOut(BaseModel):
    """A candidate's outcome with everything that happened to it."""

    outcome: OutcomeOut
    notifications: list[NotificationOut]
    replies: list[ReplyOut]
    ratings: list[EventOut]
    actions: list[AuditOut]


class PauseOut(BaseModel):
    channel: str
    actor: str
    reason: str | None
    at: str | None


class PausesOut(BaseModel):
    """The pauses in force ('*': every channel); sending on a paused channel waits, intake goes on."""

    paused: list[PauseOut]


class PreviewOut(BaseModel):
    """What an outcome would get if it were approved now: rule, channel order, send time and each message."""

    outcome: str | None
    status: str
    rule: str | None
    template: str | None
    channels: list[str]
    send_at: str | None
    messages: list[MessageOut]
    error: str | None


def summary(row: OutcomeRow) -> dict:
    who = Candidate.of(row)
    return {"id": row.id, "rev": row.rev, "status": row.status, "state": row.state, "approved": row.approved,
            "decision": row.decision, "stage": row.stage, "role": row.role, "reason": row.reason,
            "received_at": iso(row.received_at),
            "candidate": {"name": who.name, "email": who.email, "phone": who.phone}}


def queue_item(n: NotificationRow) -> dict:
    pending = n.state in ("scheduled", "sending")
    due = n.next_attempt_at if pending and n.next_attempt_at is not None else n.send_at
    return {"id": n.id, "outcome": n.outcome_id, "rule": n.rule_id, "template": n.template,
            "channels": list(n.channels), "channel": n.channel, "state": n.state, "due_at": iso(due),
            "send_at": iso(n.send_at), "sent_at": iso(n.sent_at), "late": n.late, "last_error": n.last_error}


def dead_letter(d: DeadLetterRow) -> dict:
    return {"id": d.id, "received_at": iso(d.received_at), "source": d.source, "reason": d.reason,
            "field": d.field, "body": d.text, "remote": d.remote, "resolved_at": iso(d.resolved_at),
            "resolved_as": d.resolved_as}


def candidate(c: Candidate) -> dict:
    return {**c.__dict__, "received_at": iso(c.received_at)}


def reply(r: ReplyRow) -> dict:
    return {"id": r.id, "notification_id": r.notification_id, "channel": r.channel, "at": iso(r.at),
            "content": r.content, "handled_at": iso(r.handled_at)}


def audit(a: AuditRow) -> dict:
    return {"id": a.id, "at": iso(a.at), "actor": a.actor, "action": a.action, "outcome_id": a.outcome_id,
            "notification_id": a.notification_id, "target": a.target, "reason": a.reason,
            "detail": dict(a.detail) if isinstance(a.detail, dict) else None}


def pause(p: PauseRow) -> dict:
    return {"channel": p.channel, "actor": p.actor, "reason": p.reason, "at": iso(p.at)}


def history(h: History) -> dict:
    return {"outcome": outcome_doc(h.outcome, h.changes, [d.notification for d in h.notifications]),
            "notifications": [notification_doc(d) for d in h.notifications],
            "replies": [reply(r) for r in h.replies],
            "ratings": [{"id": e.id, "kind": e.kind, "channel": e.channel, "at": iso(e.at),
                         "detail": dict(e.detail) if isinstance(e.detail, dict) else None} for e in h.ratings],
            "actions": [audit(a) for a in h.actions]}


def preview(p: Plan) -> dict:
    return {"outcome": p.outcome_id, "status": p.status, "rule": p.rule, "template": p.template,
            "channels": list(p.channels), "send_at": p.send_at.isoformat() if p.send_at else None,
            "messages": [{"channel": m.channel, "subject": m.subject, "body": m.body, "html": m.html}
                         for m in p.messages], "error": p.error}
