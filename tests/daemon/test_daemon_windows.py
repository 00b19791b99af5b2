"""Windows always hold: a message that fell due while the daemon was down waits for the window to open again."""
from __future__ import annotations

from datetime import datetime
from http.server import BaseHTTPRequestHandler

import httpx

from daemon_support import make_deployment, outbox, outcome, post, wait_for
from loopback import Serving


RULES = """version: 1
windows:
  office: {days: [mon, tue, wed, thu, fri], hours: "09:00-17:00"}
defaults:
  locale: en
  timezone: UTC
  channels: [email, sms]
rules:
  - id: office-only
    match: {decision: reject}
    template: any/generic
    timing: {delay: 30m, window: office, deadline: 1h, escalate_after: 2h}
"""


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def detail(d, nid: str) -> dict:
    return httpx.get(d.url + "/v1/notifications/" + nid.replace("#", "%23"), timeout=10).json()


def test_overdue_message_waits_for_the_window_after_downtime(tmp_path, daemons):
    root = make_deployment(tmp_path, rules=RULES)
    # Monday 7 December 2026, 16:20 UTC: due at 16:50, inside the window; the daemon stops before then
    first = daemons(root, start_at=at("2026-12-07T16:20:00+00:00"))
    got = post(first.url, outcome("w-1", occurred_at="2026-12-07T16:20:00Z")).json()["items"][0]
    assert got["notification"] == "w-1#1"
    assert detail(first, "w-1#1")["send_at"].startswith("2026-12-07T16:50:00")
    first.shutdown()

    # restarted at 17:15, after the window closed: the overdue message is not sent, it moves to Tuesday 09:00
    second = daemons(root, start_at=at("2026-12-07T17:15:00+00:00"))
    wait_for(lambda: any(e["kind"] == "deferred" for e in detail(second, "w-1#1")["events"]))
    n = detail(second, "w-1#1")
    assert n["state"] == "scheduled" and n["attempts"] == [] and outbox(root) == []
    assert n["next_attempt_at"].startswith("2026-12-08T09:00:00")
    assert n["late"] is True and "late" in [e["kind"] for e in n["events"]]  # the deadline was 17:20
    second.shutdown()
    assert outbox(root) == []

    # restarted just before the window opens: sent at the opening, not before
    third = daemons(root, start_at=at("2026-12-08T08:59:58+00:00"))
    wait_for(lambda: detail(third, "w-1#1")["state"] in ("sent", "delivered"), timeout=20)
    n = detail(third, "w-1#1")
    sent = [e for e in n["events"] if e["kind"] == "sent"]
    assert len(sent) == 1 and sent[0]["at"] >= "2026-12-08T09:00:00"
    assert len(outbox(root)) == 1


def test_send_now_in_a_closed_window_waits_unless_the_operator_overrides(tmp_path, daemons):
    """Monday 20:00 UTC, the office window is closed: "send now" keeps the window (the message goes at Tuesday
    09:00, and the answer says so); with override_window the dispatcher sends it now, and the audit log says who."""
    root = make_deployment(tmp_path, rules=RULES.replace("delay: 30m", "delay: 0s"))
    d = daemons(root, start_at=at("2026-12-07T20:00:00+00:00"))
    for oid in ("sn-1", "sn-2"):
        assert post(d.url, outcome(oid, occurred_at="2026-12-07T20:00:00Z")).json()["items"][0]["notification"]
    actor = {"X-Herald-Actor": "hr-li"}
    kept = httpx.post(d.url + "/v1/notifications/sn-1%231/send-now", headers=actor, timeout=10).json()
    assert kept["window_closed_until"].startswith("2026-12-08T09:00:00") and kept["override_window"] is False
    assert kept["next_attempt_at"].startswith("2026-12-08T09:00:00")
    forced = httpx.post(d.url + "/v1/notifications/sn-2%231/send-now", params={"override_window": "true",
                        "reason": "the candidate asked"}, headers=actor, timeout=10).json()
    assert forced["override_window"] is True and forced["window_closed_until"].startswith("2026-12-08T09:00:00")
    wait_for(lambda: detail(d, "sn-2#1")["state"] in ("sent", "delivered"), timeout=20)
    assert [m["notification"] for m in outbox(root)] == ["sn-2#1"]  # sn-1 still waits for the window
    n = detail(d, "sn-1#1")
    assert n["state"] == "scheduled" and n["next_attempt_at"].startswith("2026-12-08T09:00:00")
    audit = d.runtime.store.audit_for("sn-2")
    assert [(a.action, a.actor, a.detail["override_window"]) for a in audit] == [("send_now", "hr-li", True)]


def test_an_override_covers_the_send_it_was_for_not_a_retry_after_downtime(tmp_path, daemons):
    """Monday 20:00 UTC, window closed: the operator's send now with override_window goes at once, the webhook
    answers 503, and the retry is placed at Tuesday 09:00. The daemon is down all Tuesday's window and comes back
    at 18:00: the overdue retry waits for Wednesday 09:00; the override was spent on the send it was asked for."""
    posts: list[int] = []

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            posts.append(503 if not posts else 200)
            self.send_response(posts[-1])
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"id": "hook-1"}')

        def log_message(self, *args):
            pass

    with Serving(Hook) as hook:
        rules = RULES.replace("delay: 30m", "delay: 0s").replace("channels: [email, sms]", "channels: [webhook]")
        root = make_deployment(tmp_path, rules=rules, channels=f"  webhook: {{transport: webhook, url: '{hook.url}/h'}}")
        first = daemons(root, start_at=at("2026-12-07T20:00:00+00:00"))
        assert post(first.url, outcome("ov-1", occurred_at="2026-12-07T20:00:00Z")).json()["items"][0]["notification"]
        forced = httpx.post(first.url + "/v1/notifications/ov-1%231/send-now", params={"override_window": "true"},
                            timeout=10).json()
        assert forced["override_window"] is True
        wait_for(lambda: detail(first, "ov-1#1")["attempts"] and detail(first, "ov-1#1")["state"] == "scheduled")
        n = detail(first, "ov-1#1")
        assert posts == [503] and n["next_attempt_at"].startswith("2026-12-08T09:00:00"), n
        first.shutdown()

        second = daemons(root, start_at=at("2026-12-08T18:00:00+00:00"))
        wait_for(lambda: any(e["kind"] == "deferred" for e in detail(second, "ov-1#1")["events"])
                 or len(posts) > 1, timeout=20)
        n = detail(second, "ov-1#1")
        assert posts == [503], n  # not sent at 18:00
        assert n["state"] == "scheduled" and n["next_attempt_at"].startswith("2026-12-09T09:00:00"), n
