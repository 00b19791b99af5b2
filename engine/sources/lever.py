"""Lever webhooks (https://hire.lever.co/developer/documentation#webhooks), completed through Lever's API.

Signature: the body's `signature` is the hex HMAC-SHA256, with the webhook's signature token (the
source's `secret`), of the body's `token` followed by its `triggeredAt` (as Lever documents it). The
delivery's `id` is the dedup key. Lever's events carry ids only, so the opportunity (candidate name, e-mail,
phone), the stage and the archive reason are fetched with the configured `api_key` (HTTP basic, key as the
user name) from `api_url` (default https://api.lever.co/v1), each look-up retried with exponential backoff.
When Lever still does not answer, the event is kept as `pending` and completed by `herald sources
resubmit` later. Events:

- `candidateStageChange` -> pass (to `stage.text`, through `map.stage`);
- `candidateArchiveChange` with `toArchived` -> reject (`archive_reason.text` for `map.reason`); without
  (un-archived) -> the outcome is withdrawn;
- `candidateHired` -> offer; every other event -> ignored.

Map paths start at {opportunity, stage, archive_reason, event}: `opportunity.name`, `stage.text`.
"""
from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import httpx

from engine.sources.base import BaseKind, EventError, SourceEvent, SourceRequest, hmac_hex, load_json, obj, same_hex, text
from engine.sources.lookup import TIMEOUT_S, Retry, retrying

if TYPE_CHECKING:
    from engine.sources.config import SourceConfig

API_URL = "https://api.lever.co/v1"


def sign(secret: str, token: str, triggered_at: Any) -> str:
    """The body's `signature` Lever computes."""
    return hmac_hex(secret, f"{token}{triggered_at}".encode())


def _first(items: Any) -> str | None:
    if isinstance(items, list):
        for item in items:
            value = text(item.get("value")) if isinstance(item, dict) else text(item)
            if value:
                return value
    return None


class Lever(BaseKind):
    name = "lever"

    def __init__(self, sleep: Callable[[float], None] = time.sleep) -> None:
        self.sleep = sleep

    def verify(self, request: SourceRequest, source: SourceConfig) -> bool:
        try:
            body = load_json(request.body)
        except EventError:
            return False
        if not isinstance(body, dict):
            return False
        token, at = text(body.get("token")), text(body.get("triggeredAt"))
        if token is None or at is None:
            return False
        return same_hex(text(body.get("signature")), hmac_hex(source.secret, f"{token}{at}".encode()))

    def parse(self, request: SourceRequest, source: SourceConfig) -> SourceEvent:
        body = obj(load_json(request.body), "the body")
        event_id, action = text(body.get("id")), text(body.get("event"))
        if event_id is None or action is None:
            raise EventError("id and event are required")
        data = body.get("data")
        if action not in ("candidateStageChange", "candidateArchiveChange", "candidateHired"):
            return SourceEvent(event_id, action, data=data, ignore=f"lever {action} makes no outcome")
        data = obj(data, "data")
        opp_id = text(data.get("opportunityId"))
        shell = SourceEvent(event_id, action, opp_id)
        if opp_id is None:
            raise EventError("data.opportunityId is missing")
        if action == "candidateArchiveChange" and not data.get("toArchived"):
            return SourceEvent(event_id, action, opp_id, data, withdraw=True)
        with httpx.Client(base_url=str(source.settings.get("api_url") or API_URL).rstrip("/"), timeout=TIMEOUT_S,
                          auth=(str(source.settings.get("api_key") or ""), "")) as client:
            opp = self._get(client, f"/opportunities/{opp_id}", shell)
            root: dict = {"event": body, "opportunity": opp, "stage": None, "archive_reason": None}
            stage_id = text(data.get("toStageId")) or text(opp.get("stage"))
            if stage_id:
                root["stage"] = self._get(client, f"/stages/{stage_id}", shell)
            archived = data.get("toArchived")
            reason_id = text(archived.get("reason")) if isinstance(archived, dict) else None
            if reason_id:
                root["archive_reason"] = self._get(client, f"/archive_reasons/{reason_id}", shell)
        decision = {"candidateStageChange": "pass", "candidateArchiveChange": "reject", "candidateHired": "offer"}
        base = {"decision": decision[action], "candidate.name": text(opp.get("name")),
                "candidate.email": _first(opp.get("emails")), "candidate.phone": _first(opp.get("phones")),
                "candidate.id": text(opp.get("contact"))}
        return SourceEvent(event_id, action, opp_id, root, base)

    def _get(self, client: httpx.Client, path: str, shell: SourceEvent) -> dict:
        """GET `path` -> its `data` object, retried with backoff on network errors, 429 and 5xx."""
        what = f"Lever {path.split('/')[1]} look-up"

        def once() -> dict:
            r = client.get(path)
            if r.status_code == 429 or r.status_code >= 500:
                raise Retry(f"HTTP {r.status_code}")
            if r.status_code != 200:
                raise EventError(f"{what}: HTTP {r.status_code}")
            try:
                return obj(r.json().get("data"), f"Lever's answer to {path.split('/')[1]}")
            except (ValueError, AttributeError):
                raise EventError(f"{what}: not JSON") from None

        return retrying(once, what, shell, self.sleep)


KIND = Lever()
