"""Who did an action, and why: the actor (the authenticated identity, else X-Herald-Actor, else how the caller
came in) and the reason (the `reason` query parameter or JSON body field), both checked and bounded."""
from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

ACTOR_HEADER = "X-Herald-Actor"
MAX_ACTOR = 100
MAX_REASON = 1000


class BadAction(ValueError):
    """A reason or actor that cannot be stored; `field` names it."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


def _clean(value: str, field: str, limit: int, lines: bool) -> str:
    text = value.strip()
    if len(text) > limit:
        raise BadAction(field, f"{field}: at most {limit} characters")
    allowed = "\n\t" if lines else ""
    if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in text):
        raise BadAction(field, f"{field}: control characters are not allowed")
    return text


def actor_of(headers: Mapping[str, str], auth: Any, identity: str | None = None) -> str:
    """The authenticated identity when there is one; else the X-Herald-Actor header (for a shared token); else
    how the caller came in ("bearer token", "signed request", "anonymous (loopback)")."""
    if identity:
        return identity
    given = headers.get(ACTOR_HEADER.lower())
    if given is not None and given.strip():
        return _clean(given, ACTOR_HEADER, MAX_ACTOR, lines=False)
    if not getattr(auth, "enabled", False):
        return "anonymous (loopback)"
    return "bearer token" if headers.get("authorization", "").lower().startswith("bearer ") else "signed request"


def reason_of(query: str | None, body: bytes) -> str | None:
    """The reason: the query parameter, else a JSON object body's "reason"; None when neither is given."""
    value: Any = query
    if value is None and body.strip():
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict):
            value = data.get("reason")
            if value is not None and not isinstance(value, str):
                raise BadAction("reason", "reason: must be text")
    if value is None or not value.strip():
        return None
    return _clean(value, "reason", MAX_REASON, lines=True)
