"""Builders shared by the store tests: a fixed instant, a planned notification, an accepted outcome; and a
counter of the SQL statements a store runs."""
from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

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


@contextlib.contextmanager
def statements_run(store: Any) -> Iterator[list[str]]:
    """The SQL text of each statement `store` runs inside the block (either backend: every statement goes
    through its _q, _x, _xm or _all; one that calls another, as _all calls _q, counts once)."""
    seen: list[str] = []
    depth = [0]
    names = ("_q", "_x", "_xm", "_all")
    for name in names:
        real = getattr(store, name)

        def counted(*args: Any, _real: Any = real, **kw: Any) -> Any:
            if not depth[0]:
                seen.append(args[1] if len(args) > 1 and isinstance(args[1], str) else args[0])
            depth[0] += 1
            try:
                return _real(*args, **kw)
            finally:
                depth[0] -= 1

        setattr(store, name, counted)
    try:
        yield seen
    finally:
        for name in names:
            delattr(store, name)  # the instance attributes go: the class's methods answer again
