"""Builders shared by the store tests: a fixed instant, a planned notification, an accepted outcome."""
from __future__ import annotations

import json

from engine.model import Message
from engine.store import Accepted, PlannedNotification

T0 = 1_800_000_000.0  # a fixed "now" for deterministic tests


def plan(send_at: float = T0, channels: tuple = ("dingtalk", "email"), **kw) -> PlannedNotification:
    msgs = tuple(Message(c, f"hello on {c}", subject="s" if c == "email" else None) for c in channels)
    return PlannedNotification(channels=channels, messages=msgs, send_at=send_at, rule=kw.pop("rule", "r1"),
                               ruleset_version=kw.pop("ruleset_version", "v1"), template=kw.pop("template", "t/x"),
                               **kw)


def item(oid: str, *, note: PlannedNotification | None = None, with_plan: bool = True, **kw) -> Accepted:
    raw = kw.pop("raw", json.dumps({"id": oid, "decision": "reject"}, ensure_ascii=False))
    if note is None and with_plan:
        note = plan()
    return Accepted(id=oid, raw=raw, decision="reject", stage="first_round", role="backend",
                    notification=note, **kw)
