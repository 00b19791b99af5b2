"""HR alerts: batched to one robot message per interval, the four kinds raised by the daemon, failures contained."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from daemon_support import ScriptedTransport, make_deployment, outcome, post, wait_for
from engine.config.settings import AlertSettings
from engine.daemon.alerts import Alerter, alert_message
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE
from engine.channels.dingtalk_robot import DingTalkRobotTransport
from engine.config.settings import load_config
from engine.daemon.reload import reload
from fake_robot import FakeRobot

ROBOT_TOKEN = "robot-token-0123456789"
ROBOT_SECRET = "SECrobot0123456789abcdef"


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def robot():
    with FakeRobot(access_token=ROBOT_TOKEN, secret=ROBOT_SECRET) as r:
        yield r


def robot_transport(robot: FakeRobot) -> DingTalkRobotTransport:
    return DingTalkRobotTransport("hr", {"access_token": ROBOT_TOKEN, "secret": ROBOT_SECRET,
                                         "base_url": robot.base_url, "timeout": 5})


def alerter(transport, clock=None, mobiles=("13800000000",), gather=2.0) -> Alerter:
    settings = AlertSettings("hr", tuple(mobiles), 60.0)
    return Alerter(lambda: settings, lambda name: (transport, None), gather=gather, clock=clock or Clock())


def test_alerts_are_batched_into_one_message_per_interval(robot):
    clock = Clock()
    a = alerter(robot_transport(robot), clock)
    a.add("unmatched", "outcome o-1 waits for a person: no rule matched")
    a.add("failed", "o-2#1 failed on every channel (sms, email)")
    a.add("late", "o-3#1 sent 2h00m after its deadline")
    assert a.flush() is None and robot.received == []  # gathering
    clock.t += 2.0
    assert a.flush().status == ACCEPTED
    [msg] = robot.received
    text = msg["markdown"]["text"]
    assert msg["markdown"]["title"] == "herald: 3 alerts"
    assert "o-1" in text and "o-2#1" in text and "o-3#1" in text and "@13800000000" in text
    assert "**waiting unmatched**" in text and "**failed on every channel**" in text and "**sent late**" in text
    assert msg["at"]["atMobiles"] == ["13800000000"]
    a.add("reload", "reload refused: 1 error")
    a.add("unmatched", "outcome o-4 waits")
    clock.t += 30.0
    assert a.flush() is None  # within the interval of the last message
    clock.t += 30.0
    assert a.flush().ok and len(robot.received) == 2
    assert "o-4" in robot.received[1]["markdown"]["text"] and "o-1" not in robot.received[1]["markdown"]["text"]


def test_the_thread_sends_a_burst_as_one_message(robot):
    a = alerter(robot_transport(robot), clock=time.monotonic, gather=0.3)
    a.start()
    try:
        for i in range(5):
            a.add("unmatched", f"outcome burst-{i} waits")
        wait_for(lambda: robot.received, timeout=5)
        time.sleep(0.5)
        a.add("late", "n#1 late")  # within the interval: held back
        time.sleep(0.5)
        assert len(robot.received) == 1
        assert all(f"burst-{i}" in robot.received[0]["markdown"]["text"] for i in range(5))
    finally:
        a.stop()
    assert len(robot.received) == 2 and "n#1 late" in robot.received[1]["markdown"]["text"]  # flushed at stop


def test_alert_failures_are_contained():
    clock = Clock()

    class Raising:
        name = "boom"

        def send(self, envelope):
            raise RuntimeError("robot exploded")

    a = alerter(Raising(), clock, gather=0.0)
    a.add("failed", "x#1 failed")
    result = a.flush()
    assert result.status == RECOVERABLE and "RuntimeError" in result.error
    clock.t += 61
    refusing = ScriptedTransport("robot", PERMANENT)
    b = Alerter(lambda: AlertSettings("hr"), lambda name: (refusing, None), gather=0.0, clock=clock)
    b.add("failed", "y#1 failed")
    assert b.flush().status == PERMANENT and b.flush(force=True) is None  # dropped, not retried forever
    nowhere = Alerter(lambda: AlertSettings(None), lambda name: (None, "no"), gather=0.0, clock=clock)
    nowhere.add("failed", "z#1")  # no alerts channel configured: a no-op
    assert nowhere.due_at() is None
    missing = Alerter(lambda: AlertSettings("gone"), lambda name: (None, "channel 'gone' is not configured"),
                      gather=0.0, clock=clock)
    missing.add("late", "w#1")
    assert missing.flush().status == "permanent"


def test_message_lists_at_most_some_lines():
    subject, body = alert_message([("late", f"n{i}") for i in range(30)], more=12)
    assert subject == "herald: 42 alerts" and "and 12 more" in body and body.count("\n- ") == 31


RULES = """version: 1
rules:
  - id: now
    match: {decision: reject}
    template: any/generic
    channels: [email, sms]
    locale: en
    timezone: UTC
  - id: promptly
    match: {decision: offer}
    template: any/generic
    channels: [email]
    locale: en
    timezone: UTC
    timing: {delay: 0s, deadline: 24h}
"""


def alert_deployment(root: Path, robot: FakeRobot) -> Path:
    chans = ("  email: {transport: outbox}\n  sms: {transport: outbox}\n"
             f'  hr: {{transport: dingtalk-robot, access_token: "${{T_ROBOT_TOKEN}}", secret: "${{T_ROBOT_SECRET}}", '
             f'base_url: "{robot.base_url}"}}')
    make_deployment(root, rules=RULES, channels=chans)
    with open(root / "herald.yaml", "a") as f:
        f.write('alerts: {channel: hr, at_mobiles: ["13800000000"], interval: 1m}\n')
    return root


@pytest.fixture
def robot_env(monkeypatch):
    monkeypatch.setenv("T_ROBOT_TOKEN", ROBOT_TOKEN)
    monkeypatch.setenv("T_ROBOT_SECRET", ROBOT_SECRET)


@pytest.mark.slow
def test_the_daemon_alerts_unmatched_failed_late_and_reload(tmp_path, robot, robot_env, daemons):
    root = alert_deployment(tmp_path, robot)
    d = daemons(root)
    d.runtime.alerts.gather = 3.0  # the four alerts below come within it: one message
    d.runtime.state.transports.put("email", ScriptedTransport("no", PERMANENT))
    d.runtime.state.transports.put("sms", ScriptedTransport("no", PERMANENT))
    items = [outcome("al-unmatched-1", decision="pass"), outcome("al-unmatched-2", decision="hold"),
             outcome("al-failed")]
    statuses = post(d.url, items).json()["items"]
    assert [s["status"] for s in statuses] == ["unmatched", "unmatched", "matched"]
    (root / "rules" / "20-broken.yaml").write_text("version: 1\nrules: [{id: x}]\n")
    assert reload(d.runtime, "test") is False
    wait_for(lambda: robot.received, timeout=10)
    time.sleep(0.5)
    [msg] = robot.received
    text = msg["markdown"]["text"]
    for needle in ("al-unmatched-1", "al-unmatched-2", "al-failed#1 failed on every channel", "**reload refused**"):
        assert needle in text, text
    assert msg["markdown"]["title"] == "herald: 4 alerts"
    assert msg["at"]["atMobiles"] == ["13800000000"]


@pytest.mark.slow
def test_a_late_send_is_alerted(tmp_path, robot, robot_env, daemons):
    d = daemons(alert_deployment(tmp_path, robot))
    d.runtime.alerts.gather = 0.2
    post(d.url, outcome("late-1", decision="offer", occurred_at="2026-01-01T09:00:00+08:00"))
    wait_for(lambda: robot.received, timeout=10)
    text = robot.received[0]["markdown"]["text"]
    assert "**sent late**" in text and "late-1#1 (promptly) sent on email" in text and "after its deadline" in text


@pytest.mark.slow
def test_an_alert_failure_never_breaks_intake(tmp_path, robot_env, daemons, caplog):
    with FakeRobot(access_token=ROBOT_TOKEN, secret=ROBOT_SECRET) as dead:
        root = alert_deployment(tmp_path, dead)
    d = daemons(root)  # the robot's port is closed now: every alert fails
    d.runtime.alerts.gather = 0.1
    r = post(d.url, [outcome("af-1", decision="pass"), outcome("af-2")])
    assert r.status_code == 202 and [i["status"] for i in r.json()["items"]] == ["unmatched", "matched"]
    wait_for(lambda: "alerts: hr refused" in caplog.text, timeout=10)
    wait_for(lambda: d.runtime.store.get_notification("af-2#1").notification.state == "delivered")
    assert d.runtime.store.get_outcome("af-1").status == "unmatched"


def test_alerts_channel_must_exist(tmp_path, run_cli):
    (tmp_path / "rules").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "herald.yaml").write_text("channels:\n  hr-robot: {transport: outbox}\n"
                                          "alerts:\n  channel: hr-robt\n")
    _cfg, diags = load_config(tmp_path / "herald.yaml")
    [d] = [x for x in diags if x.code == "unknown-channel"]
    assert d.is_error and d.line == 4 and 'did you mean "hr-robot"' in d.message
    result = run_cli(["validate"], cwd=tmp_path)
    assert result.exit_code != 0 and "unknown-channel" in result.output + result.stderr


@pytest.mark.slow
def test_an_approved_outcome_that_matches_nothing_is_alerted_once(tmp_path, robot, robot_env, daemons):
    d = daemons(alert_deployment(tmp_path, robot))
    d.runtime.alerts.gather = 0.3
    post(d.url, outcome("held-1", decision="pass", approved=False))
    for _ in range(2):  # approving again changes nothing, and alerts nothing
        d.runtime.approve("held-1")
    wait_for(lambda: robot.received, timeout=10)
    time.sleep(0.5)
    [msg] = robot.received
    assert msg["markdown"]["text"].count("held-1") == 1 and "was approved but waits" in msg["markdown"]["text"]


def test_an_alerts_channel_that_needs_a_recipient_is_warned_about(tmp_path):
    (tmp_path / "herald.yaml").write_text("channels:\n  mail: {transport: smtp, from: hr@example.com}\n"
                                          "alerts: {channel: mail}\n")
    _cfg, diags = load_config(tmp_path / "herald.yaml")
    [d] = [x for x in diags if x.code == "alert-channel"]
    assert not d.is_error and d.line == 3 and "smtp" in d.message


def test_alerts_wait_out_the_robots_ten_minute_penalty():
    """A 130101 blocks the robot for 10 minutes: the alerter holds its lines that long instead of retrying each
    minute, and the next message, once it goes, carries them all."""
    clock = Clock()
    with FakeRobot(access_token=ROBOT_TOKEN, secret=ROBOT_SECRET, per_minute=1, clock=lambda: clock.t) as robot:
        t = robot_transport(robot)
        t.clock = lambda: clock.t
        a = alerter(t, clock, gather=0.0)
        a.add("late", "a#1 late")
        assert a.flush().ok
        clock.t += 60
        a.add("late", "b#1 late")
        robot.forced.append((200, {"errcode": 130101, "errmsg": "send too fast, exceed 20 times per minute"}))
        assert a.flush().code == "130101"
        for _ in range(9):
            clock.t += 60
            assert a.flush() is None  # held: no attempt into the penalty
        assert len(robot.requests) == 2
        clock.t += 61
        assert a.flush().ok and "b#1" in robot.received[-1]["markdown"]["text"]


def test_alerts_go_by_e_mail_to_each_recipient(tmp_path):
    """Alerts on any channel with recipients: e-mail (real SMTP, aiosmtpd) to the Berlin team, one message each."""
    import socket

    from aiosmtpd.controller import Controller
    from engine.channels.smtp import SMTPTransport

    got: list[tuple[list[str], bytes]] = []

    class Recorder:
        async def handle_DATA(self, server, session, envelope):
            got.append((list(envelope.rcpt_tos), envelope.original_content or envelope.content))
            return "250 2.0.0 OK"

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Recorder(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        smtp = SMTPTransport("email", {"host": "127.0.0.1", "port": port, "from": "herald <herald@example.com>"})
        settings = AlertSettings(channel="email", to=("hr-berlin@example.com", "ops@example.com"), interval=0)
        clock = Clock()
        alerter = Alerter(lambda: settings, lambda name: (smtp, None), gather=0, clock=clock)
        alerter.add("failed", "ats-1#1 failed on every channel")
        result = alerter.flush()
        assert result is not None and result.ok, result
        assert sorted(rcpt for rcpts, _ in got for rcpt in rcpts) == ["hr-berlin@example.com", "ops@example.com"]
        assert all(b"ats-1#1 failed on every channel" in body and b"herald: 1 alert" in body for _, body in got)
    finally:
        controller.stop()


def test_an_alert_channel_that_needs_recipients_warns_without_to(tmp_path):
    cfg = tmp_path / "herald.yaml"
    cfg.write_text("channels:\n  email: {transport: smtp, host: 127.0.0.1, port: 25, from: hr@example.com}\n"
                   "alerts: {channel: email}\n")
    _config, diags = load_config(str(cfg))
    assert any(d.code == "alert-channel" and "alerts.to" in d.message for d in diags)
    cfg.write_text("channels:\n  email: {transport: smtp, host: 127.0.0.1, port: 25, from: hr@example.com}\n"
                   "alerts: {channel: email, to: [hr-berlin@example.com]}\n")
    config, diags = load_config(str(cfg))
    assert not [d for d in diags if d.code == "alert-channel"] and config.alerts.to == ("hr-berlin@example.com",)
