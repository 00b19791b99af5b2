"""What goes into the store and what comes out of it, for every backend: the intake inputs (Accepted,
PlannedNotification) and the frozen row dataclasses callers see (never a driver's row object).

Times: every instant is stored as epoch seconds (UTC) and every row returns floats. Methods take an
`Instant`: a float (epoch seconds) or an aware datetime; a naive datetime is refused (`epoch`). `utc()`
turns a stored float back into an aware datetime.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta, UTC
from typing import Any, overload
from collections.abc import Mapping

from engine.model import Message, Plan
from engine.store.errors import StoreError

Instant = float | int | datetime
NOTIFICATION_STATES = ("scheduled", "sending", "sent", "delivered", "read", "failed", "cancelled", "expired",
                       "suppressed")


def epoch(t: Instant) -> float:
    """Epoch seconds from a float or an aware datetime."""
    if isinstance(t, datetime):
        if t.tzinfo is None or t.utcoffset() is None:
            raise StoreError(f"naive datetime {t.isoformat()}: give a time zone")
        return t.timestamp()
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return float(t)
    raise StoreError(f"not a time: {t!r}")


@overload
def utc(ts: float) -> datetime: ...
@overload
def utc(ts: None) -> None: ...
@overload
def utc(ts: float | None) -> datetime | None: ...
def utc(ts: float | None) -> datetime | None:
    """An aware UTC datetime from stored epoch seconds."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


# ---------------------------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class PlannedNotification:
    """What to send for one outcome: rule, template, channel order, rendered messages, schedule."""

    channels: tuple
    messages: tuple  # (Message or mapping with Message's fields, ...): one per channel
    send_at: Instant
    rule: str | None = None
    ruleset_version: str | None = None
    template: str | None = None
    variant: str | None = None
    locale: str | None = None
    deadline_at: Instant | None = None
    escalate_after: float | timedelta | None = None  # seconds, or a timedelta
    late: bool = False  # already past its deadline when planned

    @classmethod
    def from_plan(cls, plan: Plan, escalate_after: float | timedelta | None = None) -> PlannedNotification:
        """From a matched Plan; escalate_after defaults to the gap between send_at and the plan's first escalation."""
        if not plan.channels or plan.send_at is None:
            raise StoreError(f"plan for {plan.outcome_id!r} has no channel or no send_at: nothing to schedule")
        if escalate_after is None and plan.escalations:
            escalate_after = plan.escalations[0] - plan.send_at
        return cls(channels=tuple(plan.channels), messages=tuple(plan.messages), send_at=plan.send_at,
                   rule=plan.rule, ruleset_version=plan.rule_version, template=plan.template, variant=plan.variant,
                   locale=plan.locale, deadline_at=plan.deadline_at, escalate_after=escalate_after, late=plan.late)


@dataclass(frozen=True)
class Accepted:
    """One outcome that passed the gate: its id, the body as received, routing fields, status, optional plan."""

    id: str
    raw: str  # the JSON body exactly as received
    status: str = "matched"  # matched | unmatched | held | ...
    approved: bool = True
    decision: str | None = None
    stage: str | None = None
    role: str | None = None
    reason: str | None = None
    occurred_at: Instant | None = None
    source: str | None = None  # http | file | cli
    notification: PlannedNotification | None = None
    # the values outside the rule set's vocabulary (engine.rules.vocabulary.Vocabulary.marks): field path ->
    # the value as text, or None for an attribute key outside it; None when all are inside (or none is declared)
    outside_vocabulary: Mapping[str, str | None] | None = None

    @classmethod
    def from_plan(cls, raw: str, plan: Plan, source: str | None = None,
                  escalate_after: float | timedelta | None = None) -> Accepted:
        """From the pipeline's Plan for this outcome (its `outcome` mapping gives the routing fields)."""
        o = dict(plan.outcome or {})
        occurred = o.get("occurred_at")
        if isinstance(occurred, str):
            try:
                occurred = datetime.fromisoformat(occurred.replace("Z", "+00:00"))
                occurred = occurred if occurred.tzinfo else None
            except ValueError:
                occurred = None
        note = None
        if plan.status == "matched" and plan.channels and plan.send_at is not None:
            note = PlannedNotification.from_plan(plan, escalate_after)
        return cls(id=str(plan.outcome_id), raw=raw, status=plan.status, approved=o.get("approved", True) is not False,
                   decision=o.get("decision"), stage=o.get("stage"), role=o.get("role"), reason=o.get("reason"),
                   occurred_at=occurred if isinstance(occurred, datetime) else None, source=source,
                   notification=note)


# ------------------------------------------------------------------------------------------------ rows

@dataclass(frozen=True)
class OutcomeRow:
    """An outcome as stored (raw is the latest body as received; rev counts amendments from 1)."""

    id: str
    raw: str
    rev: int
    received_at: float
    occurred_at: float | None
    decision: str | None
    stage: str | None
    role: str | None
    reason: str | None
    approved: bool
    approved_at: float | None
    state: str  # active | withdrawn | superseded
    status: str
    source: str | None
    handled_by: str | None
    handled_at: float | None
    updated_at: float
    outside_vocabulary: Mapping[str, str | None] | None = None  # as Accepted.outside_vocabulary, of this revision

    def data(self) -> Any:
        """The body, parsed."""
        return json.loads(self.raw)


@dataclass(frozen=True)
class OutcomeChange:
    """One entry of an outcome's append-only history."""

    id: int
    outcome_id: str
    kind: str  # received | approved | withdrawn | superseded | amended | routed
    at: float
    body: str | None
    detail: Mapping[str, Any] | None


@dataclass(frozen=True)
class NotificationRow:
    """A notification: its plan, where it is in the channel order, its schedule and state."""

    id: str
    outcome_id: str
    outcome_rev: int
    rule_id: str | None
    ruleset_version: str | None
    variant: str | None
    template: str | None
    locale: str | None
    channels: tuple
    channel_index: int
    channel: str  # channels[channel_index]
    messages: tuple  # (Message, ...)
    send_at: float
    deadline_at: float | None
    escalate_after_s: float | None
    escalate_at: float | None
    await_read: bool
    next_attempt_at: float | None
    attempt_count: int  # attempts started on the current channel
    state: str
    lease_owner: str | None
    lease_until: float | None
    late: bool
    sent_at: float | None
    delivered_at: float | None
    read_at: float | None
    last_error: str | None
    created_at: float
    updated_at: float
    claims: int = 0  # how many times it was claimed: a lease is (lease_owner, lease_until, claims)

    @property
    def has_next_channel(self) -> bool:
        return self.channel_index + 1 < len(self.channels)

    def message(self, channel: str | None = None) -> Message | None:
        """The rendered message for `channel` (default: the current one)."""
        want = channel or self.channel
        return next((m for m in self.messages if m.channel == want), None)


@dataclass(frozen=True)
class AttemptRow:
    """One try of one channel; attempt_key is the idempotency key handed to the provider."""

    id: int
    notification_id: str
    channel: str
    channel_index: int
    transport: str
    attempt_key: str
    provider_id: str | None
    status: str  # pending | accepted | recoverable | permanent
    error: str | None
    code: str | None
    started_at: float
    finished_at: float | None
    template_hash: str | None = None  # sha256 of the template file the message was rendered from (None: no file)


@dataclass(frozen=True)
class EventRow:
    """Something that happened to a notification, with the rule fields copied for reporting."""

    id: int
    notification_id: str | None
    outcome_id: str | None
    kind: str
    channel: str | None
    at: float
    detail: Mapping[str, Any] | None
    rule_id: str | None
    ruleset_version: str | None
    template: str | None
    variant: str | None


@dataclass(frozen=True)
class NotificationDetail:
    """A notification with its attempts and events, oldest first."""

    notification: NotificationRow
    attempts: tuple  # (AttemptRow, ...)
    events: tuple  # (EventRow, ...)


@dataclass(frozen=True)
class RulesetRow:
    """A rule-set version that was loaded (ok) or refused (ok False, with its errors)."""

    version: str
    files: Mapping[str, str]
    loaded_at: float
    last_loaded_at: float
    ok: bool
    errors: tuple


@dataclass(frozen=True)
class DeadLetterRow:
    """A refused input, its raw body byte-exact."""

    id: int
    received_at: float
    source: str
    reason: str
    field: str | None
    raw: bytes
    remote: str | None
    resolved_at: float | None = None  # when it was resubmitted and taken
    resolved_as: str | None = None  # the outcome id it was taken as

    @property
    def text(self) -> str:
        """The body as text; bytes that are not UTF-8 become U+FFFD."""
        return self.raw.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ReplyRow:
    """A candidate's reply to a notification."""

    id: int
    notification_id: str | None
    channel: str | None
    at: float
    content: str
    handled_at: float | None


@dataclass(frozen=True)
class EventCount:
    """How many events of one kind one rule (version, template, variant, channel) produced."""

    rule_id: str | None
    ruleset_version: str | None
    template: str | None
    variant: str | None
    channel: str | None
    kind: str
    count: int
