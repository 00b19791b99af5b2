"""Greenhouse Recruiting webhooks (https://developers.greenhouse.io/webhooks.html).

Signature: `Signature: sha256 <hex>` (algorithm, a space, the hex HMAC-SHA256 of the raw body with the
webhook's secret key). Each delivery carries a `Greenhouse-Event-ID` header: the dedup key (a body hash when
it is absent). Actions:

- `reject_candidate` -> reject; `rejection_reason.name` is what `map.reason` usually reads;
- `unreject_candidate` -> the outcome of the application is withdrawn;
- `candidate_stage_change` -> pass (to the new stage: `map.stage` from `application.current_stage.name`);
- `offer_created` -> offer; its payload names the application only, so the candidate is taken from the
  application's earlier outcome (unmapped when herald has none);
- `ping` and every other action -> ignored (200).

Candidate name, e-mail and phone come from `application.candidate` (first e-mail and phone listed).
Map paths start at the body's `payload` (`application.current_stage.name`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.sources.base import (BaseKind, SourceEvent, SourceRequest, action_body, body_hash, hmac_hex, obj,
                                 prefixed_digest, text)

if TYPE_CHECKING:
    from engine.sources.config import SourceConfig

DECISIONS = {"reject_candidate": "reject", "candidate_stage_change": "pass", "offer_created": "offer"}


def sign(secret: str, body: bytes) -> str:
    """The Signature header value Greenhouse sends for `body`."""
    return f"sha256 {hmac_hex(secret, body)}"


def _first_value(items: Any) -> str | None:
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and text(item.get("value")):
                return text(item.get("value"))
    return None


def candidate_fields(candidate: Any) -> dict:
    """candidate.name / email / phone / id from a Greenhouse candidate object."""
    if not isinstance(candidate, dict):
        return {}
    name = " ".join(p for p in (text(candidate.get("first_name")), text(candidate.get("last_name"))) if p)
    return {"candidate.name": name or None, "candidate.email": _first_value(candidate.get("email_addresses")),
            "candidate.phone": _first_value(candidate.get("phone_numbers")),
            "candidate.id": text(candidate.get("id"))}


class Greenhouse(BaseKind):
    name = "greenhouse"

    def verify(self, request: SourceRequest, source: SourceConfig) -> bool:
        return prefixed_digest(request.header("Signature"), " ", source.secret, request.body)

    def parse(self, request: SourceRequest, source: SourceConfig) -> SourceEvent:
        body, action = action_body(request)
        payload = body.get("payload")
        event_id = text(request.header("Greenhouse-Event-ID")) or body_hash(request)
        if action not in DECISIONS and action != "unreject_candidate":
            return SourceEvent(event_id, action, data=payload, ignore=f"greenhouse {action} makes no outcome")
        payload = obj(payload, "payload")
        if action == "offer_created":
            return SourceEvent(event_id, action, text(payload.get("application_id")), payload,
                               {"decision": "offer"}, needs_previous=True)
        app = obj(payload.get("application"), "payload.application")
        base: dict = {"decision": DECISIONS.get(action)}
        at = text(app.get("rejected_at")) if action == "reject_candidate" else None
        base["occurred_at"] = at or text(app.get("last_activity_at"))
        base.update(candidate_fields(app.get("candidate")))
        return SourceEvent(event_id, action, text(app.get("id")), payload, base,
                           withdraw=action == "unreject_candidate")


KIND = Greenhouse()
