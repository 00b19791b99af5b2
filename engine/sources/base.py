"""The interface every kind implements, the values passed between its steps, and the mapping shared by all kinds.

A kind is three steps over one webhook delivery:

- `verify(request, source) -> bool`: the provider's signature over the raw body (False: 401, nothing stored);
- `parse(request, source) -> SourceEvent`: the delivery's id (the dedup key), the application it is about,
  what the ATS did (decision, withdrawal, or nothing herald cares about) and the fields it knows itself
  (candidate name, e-mail, phone); EventError when a signed body is not the provider's JSON;
- `map(event, source, previous) -> Mapped`: the outcome `<source>:<application id>` built from the event's
  own fields and the source's `map:` (a value with no mapping makes the event `unmapped`, field named).
"""
from __future__ import annotations

import copy
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol
from collections.abc import Mapping

from engine.sources.paths import MISSING, format_path, get_path

if TYPE_CHECKING:
    from engine.sources.config import SourceConfig

OUTCOME = "outcome"    # an outcome to take in
WITHDRAW = "withdraw"  # the ATS took its decision back: withdraw the outcome
UNMAPPED = "unmapped"  # kept with the raw event for a person (a value without mapping, a field missing)
IGNORED = "ignored"    # an event type that makes no outcome (a ping, a profile edit)


class EventError(ValueError):
    """A signed body that is not the provider's event (not JSON, fields of the wrong type)."""


class DetailsUnavailable(EventError):
    """The provider's API did not answer a detail look-up after every retry: the event is kept as pending."""

    def __init__(self, message: str, event_id: str, application_id: str | None, action: str):
        super().__init__(message)
        self.event_id, self.application_id, self.action = event_id, application_id, action


@dataclass(frozen=True)
class SourceRequest:
    """One delivery as received: the raw body, headers (names lower-cased), query parameters, and when it arrived
    (herald's clock, Unix seconds: the window of signatures that carry a timestamp; None -> the wall clock)."""

    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    query: Mapping[str, str] = field(default_factory=dict)
    received_at: float | None = None

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


@dataclass(frozen=True)
class SourceEvent:
    """What one delivery says, in the provider's terms; `data` is what `map:` paths start from."""

    event_id: str
    action: str
    application_id: str | None = None
    data: Any = None
    base: Mapping[str, Any] = field(default_factory=dict)  # outcome fields the kind fills itself
    withdraw: bool = False        # the ATS took its decision back
    ignore: str | None = None     # why this event makes no outcome
    needs_previous: bool = False  # ids only: the candidate comes from the application's earlier outcome
    reply: Any = None             # a body the provider expects back instead of a status (URL challenges)


@dataclass(frozen=True)
class Mapped:
    """What an event becomes: an outcome record, a withdrawal, unmapped (why, which field) or ignored."""

    status: str
    outcome_id: str | None = None
    record: Mapping[str, Any] | None = None
    error: str | None = None
    field: str | None = None


class Kind(Protocol):
    name: str

    def verify(self, request: SourceRequest, source: SourceConfig) -> bool: ...

    def parse(self, request: SourceRequest, source: SourceConfig) -> SourceEvent: ...

    def map(self, event: SourceEvent, source: SourceConfig, previous: Mapping[str, Any] | None = None) -> Mapped: ...


# ------------------------------------------------------------------------------------------- helpers

def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def same_hex(given: str | None, expected: str) -> bool:
    """Constant-time comparison of a hex digest from a header (case-insensitive) with the expected one."""
    if not isinstance(given, str) or len(given) > 256:
        return False
    return hmac.compare_digest(given.strip().lower().encode("ascii", "replace"), expected.encode("ascii"))


def prefixed_digest(value: str | None, separator: str, secret: str, body: bytes) -> bool:
    """A `sha256<separator><hex>` header value (Greenhouse: a space, Ashby: '=') matches the body's HMAC-SHA256."""
    algo, _, digest = (value or "").strip().partition(separator)
    return algo.lower() == "sha256" and same_hex(digest, hmac_hex(secret, body))


def body_hash(request: SourceRequest) -> str:
    """The dedup key of a delivery without an id of its own: the SHA-256 of its body."""
    return hashlib.sha256(request.body).hexdigest()


def action_body(request: SourceRequest, key: str = "action") -> tuple[dict, str]:
    """The body as a JSON object and its event type under `key` (EventError when either is missing)."""
    body = obj(load_json(request.body), "the body")
    action = text(body.get(key))
    if action is None:
        raise EventError(f"{key} is missing")
    return body, action


def load_json(body: bytes) -> Any:
    """The body as JSON (EventError when it is not UTF-8 JSON); NaN and Infinity are refused."""
    try:
        return json.loads(body.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise EventError(f"not JSON: {e}") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def text(value: Any) -> str | None:
    """A provider's scalar as text (ids are often numbers), None when absent or not a scalar."""
    if isinstance(value, bool) or value is None or value is MISSING:
        return None
    if isinstance(value, (int, float, str)):
        out = str(value).strip()
        return out or None
    return None


def obj(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise EventError(f"{where} must be a JSON object")
    return value


# ------------------------------------------------------------------------------------------- mapping

def _set(record: dict, dotted: str, value: Any) -> None:
    node = record
    parts = dotted.split(".")
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = node[part] = {}
        node = nxt
    node[parts[-1]] = value


def _key(raw: Any) -> str | None:
    """A raw value as a `values:` key: strings as they are, numbers and booleans as YAML writes them."""
    if isinstance(raw, bool):
        return "true" if raw else "false"
    if isinstance(raw, (int, float, str)):
        return str(raw)
    return None


def map_event(event: SourceEvent, source: SourceConfig, previous: Mapping[str, Any] | None = None) -> Mapped:
    """The common `map` step: the kind's own fields, then the source's `map:`, then herald's id and approval."""
    from engine.intake.gate import INVALID, check_record

    if event.ignore:
        return Mapped(IGNORED, error=event.ignore)
    if not event.application_id:
        return Mapped(UNMAPPED, error="the event names no application", field="id")
    oid = f"{source.name}:{event.application_id}"
    if event.withdraw:
        return Mapped(WITHDRAW, oid, error=f"{source.kind} {event.action}")
    record: dict = {}
    if event.needs_previous:
        if previous is None:
            return Mapped(UNMAPPED, oid, error=f"{event.action} carries ids only and herald has no earlier outcome "
                                               f"for application {event.application_id} to take the candidate from",
                          field="candidate")
        record = {k: copy.deepcopy(v) for k, v in previous.items() if k not in ("id", "approved")}
    for dotted, value in event.base.items():
        if value is not None and (dotted != "occurred_at" or _instant(value)):
            _set(record, dotted, value)
    for fm in source.maps:
        raw = get_path(event.data, fm.path) if fm.path else MISSING
        if raw is MISSING or raw is None or (isinstance(raw, str) and not raw.strip()):  # "" is no value (Feishu)
            if fm.has_default and fm.default is not None:  # `default: null` leaves the field out
                _set(record, fm.field, fm.default)
            continue
        if fm.values is None:
            if isinstance(raw, (dict, list)):
                return Mapped(UNMAPPED, oid, error=f"{fm.field}: {format_path(fm.path)} is an "
                                                   f"{'object' if isinstance(raw, dict) else 'array'}, not a value",
                              field=fm.field)
            _set(record, fm.field, raw)
            continue
        key = _key(raw)
        if key is not None and key in fm.values:
            _set(record, fm.field, fm.values[key])
        elif fm.has_default:
            if fm.default is not None:
                _set(record, fm.field, fm.default)
        else:
            shown = json.dumps(raw, ensure_ascii=False)
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            return Mapped(UNMAPPED, oid, error=f"{fm.field}: no mapping for {shown} ({format_path(fm.path)})",
                          field=fm.field)
    record["id"] = oid
    if source.approve == "manual":
        record["approved"] = False
    checked = check_record(record)
    if checked.status == INVALID:
        return Mapped(UNMAPPED, oid, record, error=checked.error, field=checked.field)
    return Mapped(OUTCOME, oid, record)


def _instant(value: Any) -> bool:
    """An ATS time herald can keep as occurred_at (RFC 3339 with an offset); others are left out."""
    from engine.schedule.timing import parse_instant

    return isinstance(value, str) and parse_instant(value) is not None


class BaseKind:
    """Shared by the kinds: the common map step."""

    name = "base"

    def map(self, event: SourceEvent, source: SourceConfig, previous: Mapping[str, Any] | None = None) -> Mapped:
        return map_event(event, source, previous)
