"""Ashby webhooks (https://developers.ashbyhq.com/docs/setting-up-webhooks).

Signature: `Ashby-Signature: sha256=<hex>` (HMAC-SHA256 of the raw body with the webhook's secret token).
`webhookActionId` is the same on retries and on the related webhooks one change fires (a stage change also
sends applicationUpdate), so it is the dedup key: the second of the pair is a `duplicate`.
Actions `candidateStageChange`, `applicationUpdate` (and `candidateHire`): the application's state decides

- status `Archived` (or a stage in the Archived group) -> reject; `archiveReason.text` is what `map.reason`
  usually reads;
- status `Hired`, or a stage in the Offer or Hired group -> offer;
- an Active stage -> pass (to `currentInterviewStage.title`, through `map.stage`);
- Lead (not yet in process), `ping` and every other action -> ignored.

Candidate name, e-mail and phone come from `application.candidate` (`primaryEmailAddress.value`,
`primaryPhoneNumber.value`). Map paths start at the body's `data` (`application.job.title`).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.sources.base import (BaseKind, SourceEvent, SourceRequest, action_body, body_hash, hmac_hex, obj,
                                 prefixed_digest, text)
from engine.sources.paths import get_path

if TYPE_CHECKING:
    from engine.sources.config import SourceConfig

ACTIONS = ("candidateStageChange", "applicationUpdate", "candidateHire")


def sign(secret: str, body: bytes) -> str:
    """The Ashby-Signature header value for `body`."""
    return f"sha256={hmac_hex(secret, body)}"


def decision(app: dict) -> str | None:
    """reject / offer / pass from an Ashby application, None for a lead."""
    status = text(app.get("status"))
    group = text(get_path(app, ("currentInterviewStage", "interviewStageGroup", "type")))
    group = group or text(get_path(app, ("currentInterviewStage", "type")))
    if status == "Archived" or group == "Archived":
        return "reject"
    if status == "Hired" or group in ("Offer", "Hired"):
        return "offer"
    if status == "Lead" or group == "PreApplication":
        return None
    return "pass"


def candidate_fields(candidate: Any) -> dict:
    if not isinstance(candidate, dict):
        return {}
    return {"candidate.name": text(candidate.get("name")),
            "candidate.email": text(get_path(candidate, ("primaryEmailAddress", "value"))),
            "candidate.phone": text(get_path(candidate, ("primaryPhoneNumber", "value"))),
            "candidate.id": text(candidate.get("id"))}


class Ashby(BaseKind):
    name = "ashby"

    def verify(self, request: SourceRequest, source: SourceConfig) -> bool:
        return prefixed_digest(request.header("Ashby-Signature"), "=", source.secret, request.body)

    def parse(self, request: SourceRequest, source: SourceConfig) -> SourceEvent:
        body, action = action_body(request)
        event_id = text(body.get("webhookActionId")) or body_hash(request)
        data = body.get("data")
        if action not in ACTIONS:
            return SourceEvent(event_id, action, data=data, ignore=f"ashby {action} makes no outcome")
        app = obj(obj(data, "data").get("application"), "data.application")
        verdict = decision(app)
        if verdict is None:
            return SourceEvent(event_id, action, text(app.get("id")), data,
                               ignore="ashby lead: not in an interview process yet")
        base = {"decision": verdict, "occurred_at": text(app.get("updatedAt"))}
        base.update(candidate_fields(app.get("candidate")))
        return SourceEvent(event_id, action, text(app.get("id")), data, base)


KIND = Ashby()
