"""Moka (MokaHR) pushes (https://www.mokahr.com/docs/api/, "webhooks 的安全保障").

Signature: `?sign=<hex>` in the URL, the HMAC-SHA256 of the body with the signing key (Moka signs
`JSON.stringify(body)`: the raw body, or its compact re-serialisation when a proxy re-indented it).
The application is `data.applicationId`; candidate name, e-mail and phone come from `data.name`,
`data.email`, `data.phone`. An archived application (`data.archived: true`) -> reject, its archive reason
(`archiveReasons`) kept in `attributes.archive_reason` and usually mapped with `map.reason`; otherwise ->
pass (`map.stage` from the stage field your push carries; `map.decision` can say otherwise). Moka sends no
delivery id: an identical body twice is the duplicate. Map paths start at `data`.
"""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

from engine.sources.base import BaseKind, SourceEvent, SourceRequest, body_hash, hmac_hex, load_json, obj, same_hex, text

if TYPE_CHECKING:
    from engine.sources.config import SourceConfig


def sign(secret: str, body: bytes) -> str:
    """The `sign` query parameter Moka adds for `body`."""
    return hmac_hex(secret, body)


class Moka(BaseKind):
    name = "moka"

    def verify(self, request: SourceRequest, source: SourceConfig) -> bool:
        given = request.query.get("sign")
        if not given:
            return False
        if same_hex(given, hmac_hex(source.secret, request.body)):
            return True
        try:  # JSON.stringify of the body as Moka serialised it: compact, non-ASCII as is
            compact = json.dumps(json.loads(request.body), ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        except (ValueError, RecursionError, UnicodeDecodeError):
            return False
        return compact != request.body and same_hex(given, hmac_hex(source.secret, compact))

    def parse(self, request: SourceRequest, source: SourceConfig) -> SourceEvent:
        body = obj(load_json(request.body), "the body")
        data = obj(body.get("data", body), "data")
        event_id = body_hash(request)
        archived = data.get("archived") is True
        action = "archived" if archived else (text(body.get("event")) or "updated")
        base = {"decision": "reject" if archived else "pass",
                "occurred_at": text(data.get("archivedAt")) if archived else None,
                "candidate.name": text(data.get("name")), "candidate.email": text(data.get("email")),
                "candidate.phone": text(data.get("phone")), "candidate.id": text(data.get("candidateId")),
                "attributes.archive_reason": text(data.get("archiveReasons")) if archived else None}
        return SourceEvent(event_id, action, text(data.get("applicationId")), data, base)


KIND = Moka()
