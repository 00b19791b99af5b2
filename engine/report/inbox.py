"""The replies inbox behind `herald replies`: candidates' replies with the message they answer; marking them handled."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any



@dataclass(frozen=True)
class InboxItem:
    """One reply and what it answers (None fields: the reply matched no notification)."""

    reply_id: int
    at: float
    content: str
    channel: str | None
    handled_at: float | None
    notification_id: str | None
    outcome_id: str | None
    rule_id: str | None
    variant: str | None
    sent_channel: str | None
    sent_at: float | None
    first_line: str | None

    def as_dict(self) -> dict:
        def iso(t: float | None) -> str | None:
            return None if t is None else datetime.fromtimestamp(t).astimezone().isoformat(timespec="seconds")

        return {"reply": self.reply_id, "at": iso(self.at), "channel": self.channel, "content": self.content,
                "handled_at": iso(self.handled_at), "notification": self.notification_id,
                "outcome": self.outcome_id, "rule": self.rule_id, "variant": self.variant,
                "sent_channel": self.sent_channel, "sent_at": iso(self.sent_at), "message": self.first_line}


def first_line(text: str | None, limit: int = 80) -> str | None:
    for line in (text or "").splitlines():
        line = line.strip().lstrip("#>*- ").strip()
        if line:
            return line if len(line) <= limit else line[:limit - 1] + "…"
    return None


def inbox(store: Any, show_all: bool = False, limit: int = 100) -> list[InboxItem]:
    """Replies not handled yet (all with show_all), oldest first, each with the message it answers."""
    out = []
    for r in store.replies(unhandled=not show_all, limit=limit):
        detail = store.get_notification(r.notification_id) if r.notification_id else None
        n = detail.notification if detail else None
        msg, sent_channel, sent_at = None, None, None
        if detail is not None and n is not None:
            sends = [e for e in detail.events if e.kind == "sent" and e.at <= r.at] or \
                    [e for e in detail.events if e.kind == "sent"]
            last = sends[-1] if sends else None
            sent_channel = (last.channel if last else None) or n.channel
            sent_at = last.at if last else n.sent_at
            m = n.message(r.channel) if r.channel in n.channels else None
            m = m or n.message(sent_channel) or (n.messages[0] if n.messages else None)
            msg = first_line(m.body) if m else None
        out.append(InboxItem(r.id, r.at, r.content, r.channel, r.handled_at, r.notification_id,
                             n.outcome_id if n else None, n.rule_id if n else None, n.variant if n else None,
                             sent_channel, sent_at, msg))
    return out
