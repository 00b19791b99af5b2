"""The receipts poller: which attempts it asks about, recording once, read vs delivered, undelivered, a failing provider."""
from __future__ import annotations

import pytest

import httpx

from daemon_support import make_deployment, outcome, post, wait_for
from engine.channels.base import ACCEPTED, Receipt, SendResult
from engine.daemon.receipts import RECEIPT_DAYS
from engine.config.settings import DispatchSettings


class PollingTransport:
    """Accepts everything; answers poll_receipts from `answers` (provider id -> event) and records what it was asked."""

    def __init__(self, name: str = "polling", raises: bool = False):
        self.name = name
        self.raises = raises
        self.sent: list = []
        self.asked: list[list[str]] = []
        self.answers: dict[str, str] = {}

    def send(self, envelope):
        self.sent.append(envelope)
        return SendResult(ACCEPTED, provider_id=f"p-{envelope.notification_id}")

    def check(self):
        return []

    def poll_receipts(self, provider_ids):
        self.asked.append(sorted(provider_ids))
        if self.raises:
            raise RuntimeError("provider down")
        return [Receipt(pid, self.answers[pid], at="2026-11-25T10:00:00+08:00") for pid in provider_ids
                if pid in self.answers]


# dispatch settings whose receipts poller thread never gets to a round during a test (its first is 1000h away)
NO_BACKGROUND_RECEIPTS = "{max_attempts: 3, backoff_base: 30s, poll_interval: 1s, receipt_interval: 1000h}"


def notification(d, nid: str) -> dict:
    return httpx.get(d.url + "/v1/notifications/" + nid.replace("#", "%23"), timeout=10).json()


def kinds(n: dict) -> list[str]:
    return [e["kind"] for e in n["events"]]


def test_receipt_interval_setting():
    assert DispatchSettings().receipt_interval == 60.0
    assert DispatchSettings.parse({"receipt_interval": "5m"}).receipt_interval == 300.0


@pytest.mark.slow
def test_poller_asks_for_waiting_attempts_and_records_each_receipt_once(tmp_path, daemons):
    d = daemons(make_deployment(tmp_path, dispatch=NO_BACKGROUND_RECEIPTS))  # the test polls, by hand
    polling = PollingTransport()
    d.runtime.state.transports.put("email", polling)
    post(d.url, [outcome("pa"), outcome("pb")])
    wait_for(lambda: all(notification(d, f"{o}#1")["state"] == "sent" for o in ("pa", "pb")))
    poller = d.dispatcher.receipts
    assert poller.poll_once() == 0 and polling.asked == [["p-pa#1", "p-pb#1"]]

    polling.answers = {"p-pa#1": "delivered"}
    assert poller.poll_once() == 1
    n = notification(d, "pa#1")
    assert n["state"] == "delivered"
    [ev] = [e for e in n["events"] if e["kind"] == "delivered"]
    assert ev["detail"]["reported_at"] == "2026-11-25T10:00:00+08:00" and ev["detail"]["provider_id"] == "p-pa#1"
    assert poller.poll_once() == 0 and polling.asked[-1] == ["p-pb#1"]  # pa is final: not asked again

    polling.answers = {"p-pb#1": "undelivered"}
    poller.poll_once()
    poller.poll_once()  # the same answer twice (e.g. a push and a poll): one event
    wait_for(lambda: notification(d, "pb#1")["state"] == "delivered")  # moved on to sms (outbox) at once
    n = notification(d, "pb#1")
    assert kinds(n).count("undelivered") == 1 and n["channel"] == "sms"
    assert [(a["channel"], a["status"]) for a in n["attempts"]] == [("email", "accepted"), ("sms", "accepted")]


@pytest.mark.slow
def test_a_read_receipt_is_awaited_on_work_notices(tmp_path, daemons):
    # The test drives the poller by hand (poll_once) and counts the rounds: the daemon's own poller thread must
    # not poll meanwhile (a clock 60 times fast made its 60 s interval one real second, and a loaded machine
    # let it ask between the test's rounds), and the real clock keeps escalate_after (1h) out of reach.
    d = daemons(make_deployment(tmp_path, dispatch=NO_BACKGROUND_RECEIPTS))
    notice = PollingTransport("dingtalk-work-notice")  # READ_RECEIPTS: only a read stops escalation
    d.runtime.state.transports.put("email", notice)
    post(d.url, outcome("rr", decision="offer"))
    wait_for(lambda: notification(d, "rr#1")["state"] == "sent")
    store, poller = d.runtime.store, d.dispatcher.receipts
    notice.answers = {"p-rr#1": "delivered"}
    poller.poll_once()
    row = store.get_notification("rr#1").notification
    assert row.state == "delivered" and row.escalate_at is not None  # delivered, not read: escalation still due
    notice.answers = {"p-rr#1": "read"}
    poller.poll_once()  # still asked: delivered is not final while a read is awaited
    row = store.get_notification("rr#1").notification
    assert notice.asked[-1] == ["p-rr#1"] and row.state == "read" and row.escalate_at is None
    assert store.due_escalations(d.runtime.now() + 10 * 86400) == []  # never escalated, however late
    assert poller.poll_once() == 0 and len(notice.asked) == 2  # read is final: not asked again
    n = notification(d, "rr#1")
    assert "escalated" not in kinds(n) and n["channel"] == "email"


@pytest.mark.slow
def test_a_failing_provider_does_not_stop_the_others(tmp_path, daemons):
    rules = ("version: 1\nrules:\n  - id: mail\n    match: {decision: reject}\n    template: any/generic\n"
             "    channels: [email]\n    locale: en\n    timezone: UTC\n"
             "  - id: ding\n    match: {decision: pass}\n    template: any/generic\n"
             "    channels: [dingtalk]\n    locale: en\n    timezone: UTC\n")
    d = daemons(make_deployment(tmp_path, rules=rules, dispatch=NO_BACKGROUND_RECEIPTS))  # the test polls, by hand
    broken, fine = PollingTransport("broken", raises=True), PollingTransport("fine")
    d.runtime.state.transports.put("email", broken)
    d.runtime.state.transports.put("dingtalk", fine)
    post(d.url, [outcome("fa"), outcome("fb", decision="pass",
                                        candidate={"name": "Bo", "dingtalk_userid": "u-bo"})])
    wait_for(lambda: all(notification(d, f"{o}#1")["state"] == "sent" for o in ("fa", "fb")))
    fine.answers = {"p-fb#1": "delivered"}
    assert d.dispatcher.receipts.poll_once() == 1
    assert broken.asked == [["p-fa#1"]] and notification(d, "fb#1")["state"] == "delivered"


@pytest.mark.slow
def test_awaiting_receipts_window_and_channels(deploy, daemons):
    d = daemons(deploy)
    polling = PollingTransport()
    d.runtime.state.transports.put("email", polling)
    post(d.url, outcome("w1"))
    wait_for(lambda: notification(d, "w1#1")["state"] == "sent")
    store, now = d.runtime.store, d.runtime.now()
    assert store.awaiting_receipts(now - 60) == [("p-w1#1", "email")]
    assert store.awaiting_receipts(now - 60, ["email"]) == [("p-w1#1", "email")]
    assert store.awaiting_receipts(now - 60, ["sms"]) == [] and store.awaiting_receipts(now - 60, []) == []
    assert store.awaiting_receipts(now + 60) == []  # sent before the window
    assert RECEIPT_DAYS >= 1


def test_a_channel_poll_interval_overrides_receipt_interval():
    """dingtalk's `poll_interval: 1h` (a channel setting) is kept, while other channels follow receipt_interval."""
    from types import SimpleNamespace

    from engine.config.settings import ChannelConfig
    from engine.daemon.receipts import ReceiptPoller

    now = [1000.0]
    transports = {"dingtalk": PollingTransport("dingtalk-work-notice"), "sms": PollingTransport("aliyun-sms")}
    config = SimpleNamespace(channels={"dingtalk": ChannelConfig("dingtalk", "dingtalk-work-notice",
                                                                 {"poll_interval": "1h"}),
                                       "sms": ChannelConfig("sms", "aliyun-sms", {})})
    store = SimpleNamespace(awaiting_receipts=lambda since, channels, limit: [(f"p-{c}", c) for c in channels],
                            record_receipt=lambda *a, **k: None)
    rt = SimpleNamespace(state=SimpleNamespace(deployment=SimpleNamespace(config=config),
                                               transports=SimpleNamespace(get=lambda n: (transports[n], None))),
                         store=store, now=lambda: now[0], clock=SimpleNamespace(real=lambda s: s / 60))
    poller = ReceiptPoller(rt, 60.0)
    assert poller.interval_for("dingtalk") == 3600 and poller.interval_for("sms") == 60
    assert poller._wait() == 1.0  # 60 clock seconds at x60
    poller.poll_once(due_only=True)
    for _ in range(3):
        now[0] += 60
        poller.poll_once(due_only=True)
    assert len(transports["dingtalk"].asked) == 1 and len(transports["sms"].asked) == 4
    now[0] += 3600
    poller.poll_once(due_only=True)
    assert len(transports["dingtalk"].asked) == 2
    poller.poll_once()  # not due_only: every channel (what tests and a forced round use)
    assert len(transports["dingtalk"].asked) == 3
