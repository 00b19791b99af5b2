"""The dispatcher: fallback on permanent failure, retries with backoff, give-up after max_attempts, escalation."""
from __future__ import annotations

import random
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from loopback import Serving
from daemon_support import ScriptedTransport, make_deployment, outbox, outcome, post, wait_for
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE
from engine.config.settings import DispatchSettings


def notification(d, nid: str) -> dict:
    return httpx.get(d.url + "/v1/notifications/" + nid.replace("#", "%23")).json()


@pytest.fixture
def refusing_hook():
    """A loopback webhook receiver that answers 400 to everything."""
    hits = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            hits.append(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            self.send_response(400)
            self.end_headers()
            self.wfile.write(b'{"error": "no such candidate"}')

        def log_message(self, *args):
            pass

    with Serving(Handler) as server:
        yield server.url + "/hook", hits


@pytest.mark.slow
def test_permanent_failure_falls_back_to_the_next_channel(tmp_path, daemons, refusing_hook):
    url, hits = refusing_hook
    rules = "version: 1\nrules:\n  - id: hooked\n    match: {decision: reject}\n    template: any/generic\n" \
            "    channels: [webhook, sms]\n    locale: en\n    timezone: UTC\n"
    root = make_deployment(tmp_path, rules=rules, channels=f"  webhook: {{transport: webhook, url: '{url}'}}\n"
                                                            "  sms: {transport: outbox}")
    d = daemons(root)
    assert post(d.url, outcome("fb-1")).json()["items"][0]["notification"] == "fb-1#1"
    wait_for(lambda: notification(d, "fb-1#1")["state"] == "delivered")
    n = notification(d, "fb-1#1")
    assert [(a["channel"], a["status"], a["code"]) for a in n["attempts"]] == [("webhook", "permanent", "400"),
                                                                             ("sms", "accepted", None)]
    assert "escalated" in [e["kind"] for e in n["events"]] and len(hits) == 1
    assert [(m["channel"], m["to"]) for m in outbox(root)] == [("sms", "+8613800000000")]


@pytest.mark.slow
def test_recoverable_errors_are_retried_with_backoff(deploy, daemons):
    d = daemons(deploy, time_scale=600.0)  # backoff_base 30s: 0.05 real seconds
    flaky = ScriptedTransport("flaky", RECOVERABLE, RECOVERABLE, ACCEPTED)
    d.runtime.state.transports.put("email", flaky)
    post(d.url, outcome("rt-1"))
    wait_for(lambda: notification(d, "rt-1#1")["state"] == "delivered")
    n = notification(d, "rt-1#1")
    assert [(a["channel"], a["status"], a["attempt_key"]) for a in n["attempts"]] == [
        ("email", "recoverable", "rt-1#1:0:1"), ("email", "recoverable", "rt-1#1:0:2"),
        ("email", "accepted", "rt-1#1:0:3")]
    assert [e.meta["attempt"] for e in flaky.sent] == [1, 2, 3]
    gaps = [b.meta["called_at"] - a.meta["called_at"] for a, b in zip(flaky.sent, flaky.sent[1:], strict=False)]
    assert all(g >= 1.0 for g in gaps)  # at least a (clock) second of backoff between tries
    assert outbox(deploy) == []  # the outbox channel was never needed


@pytest.mark.slow
def test_retries_give_up_after_max_attempts_then_next_channel(deploy, daemons):
    d = daemons(deploy, time_scale=600.0)
    d.runtime.state.transports.put("email", ScriptedTransport("down", RECOVERABLE))
    post(d.url, outcome("rt-2"))
    wait_for(lambda: notification(d, "rt-2#1")["state"] == "delivered")
    n = notification(d, "rt-2#1")
    assert [(a["channel"], a["status"]) for a in n["attempts"]] == [("email", "recoverable")] * 3 + [("sms", "accepted")]
    assert "gave up after 3 attempts" in next(e for e in n["events"] if e["kind"] == "escalated")["detail"]["reason"]


@pytest.mark.slow
def test_failed_when_no_channel_is_left(deploy, daemons):
    d = daemons(deploy)
    d.runtime.state.transports.put("email", ScriptedTransport("no", PERMANENT))
    d.runtime.state.transports.put("sms", ScriptedTransport("no", PERMANENT))
    post(d.url, outcome("pf-1"))
    wait_for(lambda: notification(d, "pf-1#1")["state"] == "failed")
    assert [e["kind"] for e in notification(d, "pf-1#1")["events"]][-1] == "failed"
    assert 'herald_sends_total{channel="sms",result="permanent"} 1.0' in httpx.get(d.url + "/metrics").text


@pytest.mark.slow
def test_escalation_when_nothing_is_heard_in_time(deploy, daemons):
    d = daemons(deploy, time_scale=3600.0)  # escalate_after 1h: one real second
    quiet = ScriptedTransport("quiet", ACCEPTED, receipts=True)  # accepted, but no delivery receipt ever comes
    d.runtime.state.transports.put("email", quiet)
    post(d.url, outcome("esc-1", decision="offer"))
    wait_for(lambda: [m for m in outbox(deploy) if m["notification"] == "esc-1#1"], timeout=15)
    n = notification(d, "esc-1#1")
    assert [(a["channel"], a["status"]) for a in n["attempts"]] == [("email", "accepted"), ("sms", "accepted")]
    kinds = [e["kind"] for e in n["events"]]
    assert kinds[:3] == ["queued", "sent", "escalated"] and kinds.count("sent") == 2
    assert len(quiet.sent) == 1 and n["channel"] == "sms"


def test_backoff_is_exponential_with_full_jitter_and_capped():
    s = DispatchSettings(backoff_base=30, backoff_max=3600)
    rng = random.Random(7)
    for tries, cap in ((1, 30), (2, 60), (3, 120), (8, 3600), (80, 3600)):
        draws = [s.backoff(tries, rng) for _ in range(200)]
        assert all(1.0 <= x <= cap for x in draws) and max(draws) > cap * 0.8
    assert DispatchSettings.parse({"backoff_base": "1m", "backoff_max": "2h", "max_attempts": 7}).backoff_max == 7200


@pytest.mark.slow
def test_no_escalation_on_a_channel_that_cannot_report_delivery(deploy, daemons):
    """Outbox/SMTP/webhook never send receipts: acceptance counts as delivery, even after a crash between the two."""
    import time

    from engine.config.deployment import load_deployment
    from engine.intake.batch import intake
    from engine.pipeline import Pipeline
    from engine.store import SQLiteStore

    with SQLiteStore(deploy / "herald.db") as s:  # a run killed between mark_sent and the assumed receipt
        intake([outcome("ne-1", decision="offer")], Pipeline(load_deployment([str(deploy)])), s, "cli")
        [n] = s.claim_due(time.time(), 10, "dead", 60)
        a = s.begin_attempt(n.id, n.channel, "outbox")
        s.mark_sent(n.id, provider_id="ne-1_1_0_1.json", attempt_id=a.id)
        assert s.get_notification("ne-1#1").notification.escalate_at is not None
    d = daemons(deploy, time_scale=3600.0)  # escalate_after 1h = 1 s
    wait_for(lambda: notification(d, "ne-1#1")["state"] == "delivered", timeout=15)
    time.sleep(0.3)
    n = notification(d, "ne-1#1")
    assert [a["channel"] for a in n["attempts"]] == ["email"] and "escalated" not in [e["kind"] for e in n["events"]]
    assert [e["detail"].get("assumed") for e in n["events"] if e["kind"] == "delivered"] == [True]


def test_intake_wakes_the_dispatcher_only_for_notifications_due_before_its_next_poll(deploy, daemons):
    """A wake costs every worker a round of write transactions queued behind intake's commits: a notification
    due later than the next poll is found by that poll, one due sooner is sent at once."""
    d = daemons(deploy)
    wakes: list[int] = []
    d.runtime.on_work(lambda: wakes.append(1))
    later = post(d.url, outcome("w-1", decision="hold"))  # the `later` rule: 1 hour from now
    assert later.json()["items"][0]["status"] == "matched" and wakes == []
    now = post(d.url, outcome("w-2"))  # the `now` rule: due at once
    assert now.json()["items"][0]["status"] == "matched" and wakes == [1]
    wait_for(lambda: any(m["notification"] == "w-2#1" for m in outbox(deploy)))
