"""One delivery from an ATS, end to end: verify, parse, deduplicate, map, then herald's normal intake.

`receive()` is what `POST /v1/sources/NAME` runs (the daemon passes its own intake and withdraw, so a
source outcome is routed, held, counted, alerted on and sent exactly like one posted to /v1/outcomes):

- a bad or missing signature -> 401, nothing stored;
- a signed body that is not the provider's event -> 422, kept as a dead letter;
- a delivery seen before (same source and event id) -> 200 `duplicate`, nothing changes;
- an event type that makes no outcome -> 200 `ignored`;
- a withdrawal (the ATS un-rejected) -> the outcome `<source>:<application id>` is withdrawn;
- an event that cannot be mapped -> 202 `unmapped`, kept with its raw body for a person;
- otherwise the outcome goes through intake and the answer carries its status (matched, held, ...).

Every verified delivery is recorded under its event id when it is acted on: one that becomes an outcome in
the outcome's own transaction (`intake(items, origin, delivery)`: no commit of its own), the others after acting,
so a delivery retried after a crash in between is taken in again (intake is idempotent on the outcome id)
rather than lost.
`preview()` is `herald sources test`: the same parse and map, planned by the pipeline, nothing stored.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Mapping

from engine.sources.base import (IGNORED, OUTCOME, UNMAPPED, WITHDRAW, DetailsUnavailable, EventError, Mapped,
                                 SourceEvent, SourceRequest)
from engine.sources.config import SourceConfig
from engine.store import SourceDelivery

if TYPE_CHECKING:
    from engine.model import Plan
    from engine.pipeline import Pipeline
    from engine.sources.base import Kind
    from engine.store import SourceEventRow, Store

Withdraw = Callable[[str, str], Any]  # withdraw(outcome_id, reason): the daemon's, or the CLI's

log = logging.getLogger("herald.sources")

UNAUTHORIZED = "unauthorized"
INVALID = "invalid"
DUPLICATE = "duplicate"
WITHDRAWN = "withdrawn"
PENDING = "pending"  # details could not be fetched yet: kept, completed by resubmit


@dataclass(frozen=True)
class Received:
    """The answer to one delivery: HTTP code, what it became, and the outcome it is about."""

    code: int
    status: str
    outcome_id: str | None = None
    event_id: str | None = None
    error: str | None = None
    field: str | None = None
    notification: str | None = None
    rule: str | None = None
    reply: Any = None  # a body the provider expects instead (a URL challenge)

    def as_dict(self) -> dict:
        if self.reply is not None:
            return self.reply
        out: dict = {"status": self.status}
        for k in ("outcome_id", "event_id", "error", "field", "notification", "rule"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out


def _kind(source: SourceConfig) -> Kind:
    from engine.sources import kind

    return kind(source.kind)


def parse_event(source: SourceConfig, request: SourceRequest) -> SourceEvent:
    """The kind's parse step; anything unexpected from a signed body is an EventError, never a crash."""
    try:
        return _kind(source).parse(request, source)
    except EventError:
        raise
    except Exception as e:  # noqa: BLE001 - a signed but odd body must get a 4xx, not a 5xx
        log.warning("source %s: event not understood: %s: %s", source.name, type(e).__name__, e)
        raise EventError(f"event not understood: {type(e).__name__}") from None


def receive(source: SourceConfig, request: SourceRequest, *, store: Store, intake: Callable[..., list],
            withdraw: Withdraw, now: float | None = None) -> Received:
    """Takes one delivery of `source` (see the module docstring); `intake(items, origin, delivery)` stores
    the outcome and keeps `delivery` in the same transaction."""
    kind = _kind(source)
    if not kind.verify(request, source):
        return Received(401, UNAUTHORIZED, error="the signature is missing or does not match the secret")
    origin = f"source:{source.name}"
    try:
        event = parse_event(source, request)
    except DetailsUnavailable as e:
        return _pending(store, source, request, e, now)
    except EventError as e:
        store.dead_letter(origin, str(e), "", request.body)
        return Received(422, INVALID, error=str(e))
    if event.reply is not None:
        return Received(200, "challenge", reply=event.reply)
    seen = store.source_event(source.name, event.event_id)
    if seen is not None:
        return Received(200, DUPLICATE, seen.outcome_id, event.event_id)
    previous = _previous(store, source, event)
    mapped = kind.map(event, source, previous)
    if mapped.status == OUTCOME:  # the delivery is kept in the outcome's transaction
        delivery = SourceDelivery(source.name, event.event_id, request.body, action=event.action,
                                  outcome_id=mapped.outcome_id)
        return _act(source, event, mapped, _taking(intake, origin, delivery), withdraw)
    result = _act(source, event, mapped, _taking(intake, origin), withdraw)
    store.record_source_event(source.name, event.event_id, result.status, request.body, action=event.action,
                              outcome_id=result.outcome_id, error=result.error if result.status == UNMAPPED else None,
                              field=result.field if result.status == UNMAPPED else None, at=now)
    return result


def _pending(store: Store, source: SourceConfig, request: SourceRequest, e: DetailsUnavailable,
             now: float | None) -> Received:
    """A verified event whose details the provider did not give yet: kept (once) for `herald sources resubmit`."""
    seen = store.source_event(source.name, e.event_id)
    if seen is not None:
        return Received(200, DUPLICATE, seen.outcome_id, e.event_id)
    oid = f"{source.name}:{e.application_id}" if e.application_id else None
    store.record_source_event(source.name, e.event_id, PENDING, request.body, action=e.action, outcome_id=oid,
                              error=str(e), at=now)
    return Received(202, PENDING, oid, e.event_id, str(e))


def _previous(store: Store, source: SourceConfig, event: SourceEvent) -> Mapping[str, Any] | None:
    if not event.needs_previous or not event.application_id:
        return None
    row = store.get_outcome(f"{source.name}:{event.application_id}")
    return row.data() if row is not None else None


def _taking(intake: Callable[..., list], origin: str, *extra: Any) -> Callable[[list], list]:
    """`intake` bound to one origin (and a delivery to keep in the outcome's transaction)."""
    return lambda items: intake(items, origin, *extra)


def _act(source: SourceConfig, event: SourceEvent, mapped: Mapped, take: Callable[[list], list],
         withdraw: Withdraw) -> Received:
    eid = event.event_id
    if mapped.status == IGNORED:
        return Received(200, IGNORED, event_id=eid, error=mapped.error)
    if mapped.status == UNMAPPED:
        return Received(202, UNMAPPED, mapped.outcome_id, eid, mapped.error, mapped.field)
    if mapped.status == WITHDRAW:
        from engine.desk.actions import ActionError

        assert mapped.outcome_id is not None  # map_event names the outcome of every withdrawal
        try:
            withdraw(mapped.outcome_id, mapped.error or "withdrawn in the ATS")
        except ActionError as e:
            return Received(200, IGNORED, mapped.outcome_id, eid, f"nothing to withdraw: {e}")
        return Received(200, WITHDRAWN, mapped.outcome_id, eid)
    assert mapped.status == OUTCOME
    status = take([dict(mapped.record or {})])[0]
    return Received(202, status.status, status.id or mapped.outcome_id, eid, status.error, status.field,
                    status.notification, status.rule)


@dataclass(frozen=True)
class Preview:
    """What an event would become: the event as parsed, its mapping, and the plan (no store involved)."""

    event: SourceEvent | None
    mapped: Mapped | None
    plan: Plan | None = None
    error: str | None = None


def preview(source: SourceConfig, body: bytes, pipeline: Pipeline | None = None, headers: Mapping[str, str] | None = None) -> Preview:
    """Parse and map `body` as `source` would (signature not checked); plan the outcome with `pipeline`."""
    request = SourceRequest(body, {k.lower(): v for k, v in (headers or {}).items()})
    try:
        event = parse_event(source, request)
    except EventError as e:
        return Preview(None, None, error=str(e))
    if event.reply is not None:
        return Preview(event, None, error="a URL challenge: answered, no outcome")
    mapped = _kind(source).map(event, source, None)
    plan = None
    if mapped.status == OUTCOME and pipeline is not None:
        plan = pipeline.plan(dict(mapped.record or {}))
    return Preview(event, mapped, plan)


def resubmit(store: Store, sources: Mapping[str, SourceConfig], *, intake: Callable[[list, str], list],
             withdraw: Withdraw, source: str | None = None, limit: int = 1000,
             now: float | None = None) -> list[tuple[SourceEventRow, Received]]:
    """Maps every unmapped or pending event again with the current `map:` and takes in those that map now.

    The bodies were verified when they arrived. An event still unmapped stays in the list; one whose source
    is no longer configured is left alone. Returns (stored row, what it became) per event tried.
    """
    out = []
    for row in store.unmapped_source_events(limit, source):
        cfg = sources.get(row.source)
        if cfg is None:
            continue
        try:
            event = parse_event(cfg, SourceRequest(row.raw))
        except DetailsUnavailable as e:
            out.append((row, Received(202, PENDING, row.outcome_id, row.event_id, str(e))))
            continue
        except EventError as e:
            out.append((row, Received(422, INVALID, row.outcome_id, row.event_id, str(e))))
            continue
        mapped = _kind(cfg).map(event, cfg, _previous(store, cfg, event))
        result = _act(cfg, event, mapped, _taking(intake, f"source:{cfg.name}"), withdraw)
        result = Received(result.code, result.status, result.outcome_id, row.event_id, result.error, result.field,
                          result.notification, result.rule)
        if result.status not in (UNMAPPED, PENDING):
            store.resolve_source_event(row.id, result.status, result.outcome_id, at=now)
        out.append((row, result))
    return out
