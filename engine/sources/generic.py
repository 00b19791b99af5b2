"""Any JSON webhook: an HMAC-SHA256 header you name, and a `map:` for every outcome field.

`signature_header` carries the hex HMAC-SHA256 of the raw body (bare, or `sha256=<hex>`); `application_id`
is the path of the application's id (outcomes are `<source>:<id>`); `event_id`, the path of the delivery's
unique id (the dedup key; without it an identical body twice is the duplicate). `map.decision` and
`map.candidate.name` are required; every other field is whatever `map:` names. Paths start at the body.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from engine.sources.base import BaseKind, SourceEvent, SourceRequest, body_hash, hmac_hex, load_json, same_hex, text
from engine.sources.paths import get_path

if TYPE_CHECKING:
    from engine.sources.config import SourceConfig


def sign(secret: str, body: bytes) -> str:
    return f"sha256={hmac_hex(secret, body)}"


class Generic(BaseKind):
    name = "generic"

    def verify(self, request: SourceRequest, source: SourceConfig) -> bool:
        header = str(source.settings.get("signature_header") or "")
        given = (request.header(header) or "").strip() if header else ""
        if given.lower().startswith("sha256="):
            given = given[7:]
        return bool(given) and same_hex(given, hmac_hex(source.secret, request.body))

    def parse(self, request: SourceRequest, source: SourceConfig) -> SourceEvent:
        body = load_json(request.body)
        id_path = source.setting_path("event_id")
        event_id = text(get_path(body, id_path)) if id_path else None
        app_path = source.setting_path("application_id")
        app_id = text(get_path(body, app_path)) if app_path else None
        return SourceEvent(event_id or body_hash(request), "event", app_id, body, {})


KIND = Generic()
