"""Helpers for the report and tracking tests: a store with the tracking migration, and notifications driven
through the store's own API (accept_outcomes, claim_due, begin_attempt, mark_sent, record_receipt, add_event,
add_reply), so the report is checked against events written exactly as the daemon writes them."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.store import migrations_tracking
from engine.channels.base import ACCEPTED, PERMANENT, SendResult
from engine.store.migrations import MIGRATIONS, Migration
from engine.model import Message
from engine.store import Accepted, PlannedNotification, SQLiteStore
from engine.store import open_store as open_any_store
from engine.store.postgres import is_url

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
DAY = 86400.0
FAR = T0 + 3650 * DAY  # send_at of notifications that are never claimed


def tracking_migrations() -> tuple:
    """herald's migrations plus the tracking one (unless the lead has registered it already)."""
    if any(m.name == migrations_tracking.NAME for m in MIGRATIONS):
        return MIGRATIONS
    return MIGRATIONS + (Migration(MIGRATIONS[-1].version + 1, migrations_tracking.NAME, migrations_tracking.apply),)


def open_store(path: Path | str, tracking: bool = True) -> Any:
    """A SQLite store at `path`, or the PostgreSQL store a postgresql:// URL names (its report facts always on)."""
    if is_url(str(path)):
        return open_any_store(str(path))
    return SQLiteStore(path, migrations=tracking_migrations() if tracking else MIGRATIONS)


class Builder:
    """Drives notifications through the store the way the dispatcher does; every time is explicit."""

    def __init__(self, store: Any):
        self.store = store
        self.provider: dict[str, str] = {}
        self.attempt: dict[str, int] = {}

    def outcome(self, oid: str, rule: str, *, occurred: float, version: str = "v1", variant: str | None = None,
                channels: tuple = ("email",), role: str = "backend", stage: str = "first_round",
                deadline: float | None = None, locale: str = "zh-CN", send_at: float | None = None,
                phone: str | None = None, email: str | None = None) -> str:
        msgs = tuple(Message(c, f"{oid} 您好,感谢参加面试。\n第二行", subject="面试结果" if c == "email" else None)
                     for c in channels)
        note = PlannedNotification(channels=channels, messages=msgs, send_at=FAR if send_at is None else send_at,
                                   rule=rule, ruleset_version=version, template=variant or f"reject/{rule}",
                                   variant=variant, locale=locale, deadline_at=deadline)
        cand = {"name": "张伟", "locale": locale}
        if phone:
            cand["phone"] = phone
        if email:
            cand["email"] = email
        raw = json.dumps({"id": oid, "decision": "reject", "stage": stage, "role": role, "candidate": cand},
                         ensure_ascii=False)
        got = self.store.accept_outcomes([Accepted(id=oid, raw=raw, decision="reject", stage=stage, role=role,
                                                   occurred_at=occurred, notification=note)], at=occurred + 5)
        assert got == ["accepted"], got
        return f"{oid}#1"

    def claim(self, nid: str, at: float) -> None:
        """Makes `nid` (alone) due and claims it: scheduled -> sending."""
        with self.store._write() as conn:  # either backend's plumbing: SQL in SQLite's dialect
            self.store._x(conn, "UPDATE notifications SET next_attempt_at = ? WHERE id = ?", (at, nid))
        rows = self.store.claim_due(at, 1000, "test", 600)
        assert [r.id for r in rows] == [nid], rows

    def send(self, nid: str, at: float, channel: str | None = None) -> str:
        """Claims, begins an attempt and marks it sent; returns the provider id."""
        self.claim(nid, at)
        n = self.store.get_notification(nid).notification
        a = self.store.begin_attempt(nid, channel or n.channel, "outbox", at=at)
        pid = f"p-{nid}-{n.channel_index}"
        assert self.store.mark_sent(nid, at=at, attempt_id=a.id, result=SendResult(ACCEPTED, provider_id=pid))
        self.provider[nid] = pid
        return pid

    def fail_channel(self, nid: str, at: float, error: str) -> None:
        """A permanent failure on the current channel: falls back to the next one."""
        self.claim(nid, at)
        n = self.store.get_notification(nid).notification
        a = self.store.begin_attempt(nid, n.channel, "outbox", at=at)
        assert self.store.advance_channel(nid, n.channel_index + 1, at, error, attempt_id=a.id,
                                          result=SendResult(PERMANENT, error=error), at=at)

    def fail(self, nid: str, at: float, reason: str) -> None:
        """A permanent failure on the last channel: the notification fails."""
        self.claim(nid, at)
        n = self.store.get_notification(nid).notification
        a = self.store.begin_attempt(nid, n.channel, "outbox", at=at)
        assert self.store.mark_failed(nid, reason, at=at, attempt_id=a.id)

    def receipt(self, nid: str, kind: str, at: float, **detail) -> None:
        assert self.store.record_receipt(self.provider[nid], kind, at=at, detail=detail or None) == nid

    def event(self, nid: str, kind: str, at: float, detail: dict | None = None) -> bool:
        return self.store.add_event(nid, kind, at=at, detail=detail, dedupe_key=f"{kind}:{nid}")

    def reply(self, nid: str | None, at: float, handled_after: float | None = None, text: str = "谢谢,请问…") -> int:
        rid = self.store.add_reply(nid, text, at=at, channel="email")
        if handled_after is not None:
            assert self.store.mark_reply_handled(rid, at=at + handled_after)
        return rid


def build_scenario(path: Path | str) -> Path | str:
    """Eight notifications of two rules (tech in versions v1 and v2, other), two handled replies, one waiting,
    one reply that matches nothing, one unmatched outcome."""
    with open_store(path) as store:
        b = Builder(store)
        dl = 7200.0
        n1 = b.outcome("tech-1", "tech", occurred=T0, deadline=T0 + dl)
        n2 = b.outcome("tech-2", "tech", occurred=T0 + 100, deadline=T0 + 100 + dl)
        n3 = b.outcome("tech-3", "tech", occurred=T0 + 200, deadline=T0 + 200 + dl)
        b.outcome("tech-4", "tech", occurred=T0 + 300, deadline=T0 + 300 + dl)  # matched, never sent
        n5 = b.outcome("tech-5", "tech", occurred=T0 + 400, channels=("email", "sms"), deadline=T0 + 400 + dl)
        n6 = b.outcome("tech-6", "tech", occurred=T0 + 500, deadline=T0 + 500 + dl)
        n7 = b.outcome("tech-7", "tech", occurred=T0 + DAY, version="v2", channels=("dingtalk",), role="frontend",
                       stage="second_round", locale="en")
        n8 = b.outcome("other-1", "other", occurred=T0 + 2 * DAY, role="frontend")
        # n1: delivered after 3700 s, opened, clicked, rated 5, a reply handled after 30 minutes
        b.send(n1, T0 + 3600)
        b.receipt(n1, "delivered", T0 + 3700)
        assert b.event(n1, "opened", T0 + 4000)
        assert not b.event(n1, "opened", T0 + 4050)  # a second open of the same notification counts once
        assert b.event(n1, "clicked", T0 + 4100)
        assert b.event(n1, "rated", T0 + 4200, {"score": 5, "comment": "清楚"})
        b.reply(n1, T0 + 5000, handled_after=1800)
        # n2: sent 3 h after the outcome, past its 2 h deadline; no receipts (delivery assumed at sending)
        b.send(n2, T0 + 100 + 10800)
        b.receipt(n2, "delivered", T0 + 100 + 10800, assumed=True)
        assert b.event(n2, "opened", T0 + 11000)
        assert b.event(n2, "rated", T0 + 11100, {"score": 3})
        # n3: sent, never delivered; two replies, one handled after 10 minutes, one waiting
        b.send(n3, T0 + 2000)
        b.reply(n3, T0 + 3000)
        b.reply(n3, T0 + 3500, handled_after=600)
        # n5: e-mail fails for good, falls back to SMS, delivered 960 s after the outcome
        b.fail_channel(n5, T0 + 1000, "email: 550 mailbox unavailable")
        b.send(n5, T0 + 1300)
        b.receipt(n5, "delivered", T0 + 1360)
        # n6: fails on its only channel
        b.fail(n6, T0 + 900, "email: 550 mailbox unavailable")
        # n7 (rule version v2, DingTalk): read 1500 s after the outcome (a read is a delivery and an open)
        b.send(n7, T0 + DAY + 1200)
        b.receipt(n7, "read", T0 + DAY + 1500)
        # n8 (rule other): undelivered on its last channel -> failed
        b.send(n8, T0 + 2 * DAY + 600)
        b.receipt(n8, "undelivered", T0 + 2 * DAY + 700)
        b.reply(None, T0 + 3 * DAY)  # matches no notification
        store.accept_outcomes([Accepted(id="lost-1", raw='{"id": "lost-1"}', status="unmatched", role="qa",
                                        occurred_at=T0)], at=T0)
    return path


def build_variants(path: Path | str) -> Path | str:
    """Two rules with two variants each: "ab" (40 sent each, 30 against 10 opened: significant) and "small"
    (10 sent each: below the minimum sample)."""
    with open_store(path) as store:
        b = Builder(store)
        plan = [("ab", "warm", 40, 30, 4), ("ab", "brief", 40, 10, 4), ("small", "x", 10, 9, 0),
                ("small", "y", 10, 1, 0)]
        i = 0
        for rule, variant, sent, opened, replied in plan:
            for k in range(sent):
                i += 1
                nid = b.outcome(f"{rule}-{variant}-{k}", rule, occurred=T0 + i, variant=variant)
                b.send(nid, T0 + i + 60)
                if k < opened:
                    b.event(nid, "opened", T0 + i + 120)
                if k < replied:
                    b.reply(nid, T0 + i + 180)
    return path
