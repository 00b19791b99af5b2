"""The HTTP API's documents: response models, the outcome request schema, and store rows turned into JSON."""
from __future__ import annotations

import dataclasses
import json
import typing
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any, Literal
from collections.abc import Sequence

from pydantic import BaseModel, create_model

from engine.intake.batch import ItemStatus
from engine.rules.schemas import schema
from engine.store import NotificationDetail, NotificationRow, OutcomeChange, OutcomeRow
from engine.desk.actions import ActionResult

MAX_ITEMS = 1000           # outcomes in one POST
MAX_BODY = 8 * 1024 * 1024  # bytes in one POST


def model_of(cls: type, name: str, doc: str, **types: Any) -> type[BaseModel]:
    """The response model of a result dataclass: the same fields, types and defaults, declared once
    (`types` narrows a field's type for the API document, e.g. a Literal of the statuses)."""
    hints = typing.get_type_hints(cls)
    fields: dict[str, Any] = {f.name: (types.get(f.name, hints[f.name]),
                                       ... if f.default is dataclasses.MISSING else f.default)
                              for f in dataclasses.fields(cls)}
    model = create_model(name, __doc__=doc, **fields)
    model.__module__ = __name__
    return model


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat()


if TYPE_CHECKING:  # a model made at import time is no type to mypy: it checks its uses as a plain BaseModel
    ItemResult = BaseModel
else:
    ItemResult = model_of(ItemStatus, "ItemResult", "What became of one posted outcome.",
                          status=Literal["matched", "unmatched", "held", "duplicate", "amended", "invalid"])


class IntakeResponse(BaseModel):
    """One entry per posted outcome, in order, and how many got each status."""

    items: list[ItemResult]
    counts: dict[str, int]


class SentOut(BaseModel):
    notification: str
    channel: str
    sent_at: str


class Problem(BaseModel):
    """An error: what went wrong, the field at fault for a schema error, and the dead letter that keeps the body."""

    error: str
    field: str | None = None
    dead_letter: int | None = None
    sent: list[SentOut] | None = None  # a 409 for an outcome already sent: what went out, and when


ActionOut = model_of(ActionResult, "ActionOut", "An outcome after approve or withdraw.")


class AttemptOut(BaseModel):
    id: int
    channel: str
    channel_index: int
    transport: str
    attempt_key: str
    provider_id: str | None
    status: str
    error: str | None
    code: str | None
    started_at: str | None
    finished_at: str | None
    template_hash: str | None = None  # sha256 of the template file the message was rendered from


class EventOut(BaseModel):
    id: int
    kind: str
    channel: str | None
    at: str | None
    detail: dict[str, Any] | None


class MessageOut(BaseModel):
    channel: str
    subject: str | None
    body: str
    html: str | None


class NotificationOut(BaseModel):
    """A notification with its plan, state, attempts and events."""

    id: str
    outcome: str
    outcome_rev: int
    rule: str | None
    ruleset_version: str | None
    template: str | None
    variant: str | None
    locale: str | None
    channels: list[str]
    channel_index: int
    channel: str
    state: str
    send_at: str | None
    next_attempt_at: str | None  # when a scheduled notification goes out next (after a retry, fallback or a window)
    deadline_at: str | None
    late: bool
    sent_at: str | None
    delivered_at: str | None
    read_at: str | None
    last_error: str | None
    messages: list[MessageOut]
    attempts: list[AttemptOut]
    events: list[EventOut]


class ChangeOut(BaseModel):
    """One entry of an outcome's history; `received` and `amended` carry that revision's body."""

    kind: str
    at: str | None
    detail: dict[str, Any] | None
    body: Any = None


class OutcomeOut(BaseModel):
    """An outcome as stored: body as received, status, state, history and notifications."""

    id: str
    rev: int
    status: str
    state: str
    approved: bool
    received_at: str | None
    approved_at: str | None
    source: str | None
    body: Any
    history: list[ChangeOut]
    notifications: list[str]


class Leases(BaseModel):
    mine: int  # notifications claimed by this replica now
    in_flight: int  # of those, sends under way (their leases kept alive by the heartbeat)
    sending: int  # claimed by any replica
    expired: int  # claims whose lease ran out, waiting for the leader to take them back


class StoreHealth(BaseModel):
    backend: Literal["sqlite", "postgresql"]
    reachable: bool
    leader: bool  # this replica runs the periodic work (lease sweep, escalations, receipt polling)
    leases: Leases | None = None  # None when the store cannot be reached
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    ruleset: str
    reload_failed: bool
    reload_stuck: bool = False  # a reload given up on (server.reload_timeout) is still running
    watcher: Literal["ok", "dead", "off"] = "off"  # the file watcher behind hot reload
    now: str
    time_scale: float
    auth: bool
    replica: str | None = None  # this daemon's replica id (host:pid:random): its workers' lease owners start with it
    store: StoreHealth | None = None


def notification_doc(d: NotificationDetail) -> dict:
    n = d.notification
    return {
        "id": n.id, "outcome": n.outcome_id, "outcome_rev": n.outcome_rev, "rule": n.rule_id,
        "ruleset_version": n.ruleset_version, "template": n.template, "variant": n.variant, "locale": n.locale,
        "channels": list(n.channels), "channel_index": n.channel_index, "channel": n.channel, "state": n.state,
        "send_at": iso(n.send_at), "next_attempt_at": iso(n.next_attempt_at) if n.state == "scheduled" else None,
        "deadline_at": iso(n.deadline_at), "late": n.late, "sent_at": iso(n.sent_at),
        "delivered_at": iso(n.delivered_at), "read_at": iso(n.read_at), "last_error": n.last_error,
        "messages": [{"channel": m.channel, "subject": m.subject, "body": m.body, "html": m.html} for m in n.messages],
        "attempts": [{"id": a.id, "channel": a.channel, "channel_index": a.channel_index, "transport": a.transport,
                      "attempt_key": a.attempt_key, "provider_id": a.provider_id, "status": a.status,
                      "error": a.error, "code": a.code, "started_at": iso(a.started_at),
                      "finished_at": iso(a.finished_at), "template_hash": a.template_hash} for a in d.attempts],
        "events": [{"id": e.id, "kind": e.kind, "channel": e.channel, "at": iso(e.at),
                    "detail": dict(e.detail) if isinstance(e.detail, dict) else None} for e in d.events],
    }


def outcome_doc(row: OutcomeRow, history: Sequence[OutcomeChange], notifications: Sequence[NotificationRow]) -> dict:
    return {"id": row.id, "rev": row.rev, "status": row.status, "state": row.state, "approved": row.approved,
            "received_at": iso(row.received_at), "approved_at": iso(row.approved_at), "source": row.source,
            "body": row.data(), "notifications": [n.id for n in notifications],
            "history": [{"kind": c.kind, "at": iso(c.at),
                         "detail": dict(c.detail) if isinstance(c.detail, dict) else None,
                         "body": _body(c.body)} for c in history]}


def _body(raw: str | None) -> Any:
    """A revision's body as stored, parsed (None when the change has none)."""
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def outcome_request_schema() -> tuple[dict, dict]:
    """(the Outcome component, the request body): one outcome object, or a list of up to MAX_ITEMS."""
    component = {k: v for k, v in schema("outcome").items() if k not in ("$schema", "$id")}
    ref = {"$ref": "#/components/schemas/Outcome"}
    each = {"anyOf": [ref, {}], "description": "An Outcome. A list is judged item by item, so an item that is not "
            "a valid outcome does not refuse the list: it gets status invalid (with the field) and a dead letter."}
    body = {"required": True, "description": "One outcome (an invalid one is refused with 422), or a list of up to "
            f"{MAX_ITEMS} outcomes (202; valid items stored, invalid ones reported in their entry).",
            "content": {"application/json": {"schema": {"oneOf": [
                ref, {"type": "array", "items": each, "maxItems": MAX_ITEMS}]}}}}
    return component, body
