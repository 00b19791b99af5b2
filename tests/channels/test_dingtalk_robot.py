"""Tests for the dingtalk-robot transport against a fake robot server on loopback."""
from __future__ import annotations

import json
import logging
import socket
import time

import httpx
import pytest

from fake_robot import FakeRobot

from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope
from engine.channels.dingtalk_robot import (
    ERRCODES, ROBOT_LIMIT, SETTINGS, THROTTLE_PENALTY, DingTalkRobotTransport, classify_errcode)
from engine.channels.ratelimit import LocalRateLimiter, limit_key
from engine.channels.signing import dingtalk_sign

TOKEN = "tok-fake-0123456789"
SECRET = "SECfake0123456789abcdef"


def envelope(n: int = 1, **kw) -> Envelope:
    base = {"notification_id": f"n{n}", "attempt_key": f"n{n}:hr-alerts:1", "channel": "hr-alerts", "to": "",
                "subject": "候选人 张伟 已拒绝 offer", "body": "## 张伟\n\n- 岗位: 后端工程师\n- 决定: reject"}
    base.update(kw)
    return Envelope(**base)


@pytest.fixture
def robot():
    with FakeRobot(access_token=TOKEN, secret=SECRET) as r:
        yield r


def transport(robot: FakeRobot, limiter: LocalRateLimiter | None = None, **settings) -> DingTalkRobotTransport:
    """A transport with its own limiter (the process-wide one would carry sends over from other tests)."""
    cfg = {"access_token": TOKEN, "secret": SECRET, "base_url": robot.base_url, "timeout": 5}
    cfg.update(settings)
    return DingTalkRobotTransport("hr-alerts", cfg, limiter=limiter or LocalRateLimiter(ROBOT_LIMIT, 60.0))


def all_text(result) -> str:
    return " ".join(str(x) for x in (result.error, result.code, result.provider_id, repr(result)))


def test_success_posts_markdown(robot):
    t = transport(robot)
    result = t.send(envelope())
    assert result.status == ACCEPTED and result.ok
    assert result.provider_id == "n1:hr-alerts:1"  # robots return no id: the attempt key stands in
    (msg,) = robot.received
    assert msg["msgtype"] == "markdown"
    assert msg["markdown"]["title"] == "候选人 张伟 已拒绝 offer"
    assert msg["markdown"]["text"].startswith("## 张伟")
    assert "at" not in msg


def test_title_falls_back_to_first_line(robot):
    transport(robot).send(envelope(subject=None, body="\n# 面试结果汇总\n\n三人通过"))
    assert robot.received[0]["markdown"]["title"] == "面试结果汇总"


def test_at_mobiles_added(robot):
    transport(robot).send(envelope(meta={"at_mobiles": ["13800000000", "13900000000"]},
                                   body="请 @13800000000 跟进"))
    msg = robot.received[0]
    assert msg["at"] == {"atMobiles": ["13800000000", "13900000000"], "atUserIds": [], "isAtAll": False}
    text = msg["markdown"]["text"]
    assert text.count("@13800000000") == 1 and text.rstrip().endswith("@13900000000")


def test_wrong_secret_is_permanent_not_accepted(robot):
    result = transport(robot, secret="SECwrong-secret-value").send(envelope())
    assert result.status == PERMANENT and not result.ok
    assert result.code == "config"
    assert "sign not match" in result.error
    assert robot.received == []


def test_missing_secret_when_robot_signs(robot):
    result = transport(robot, secret=None).send(envelope())
    assert result.status == PERMANENT and result.code == "config"
    assert "timestamp" not in robot.requests[0]["query"]


def test_wrong_token_is_permanent(robot):
    result = transport(robot, access_token="tok-unknown-999").send(envelope())
    assert result.status == PERMANENT and result.code == "300001"
    assert "token is not exist" in result.error


def test_expired_timestamp(robot):
    t = transport(robot)
    t.clock = lambda: time.time() - 2 * 3600  # our clock two hours slow: DingTalk refuses
    result = t.send(envelope())
    assert result.status == PERMANENT and result.code == "config" and not result.ok
    assert robot.received == []


def test_timestamp_within_the_hour_is_fine(robot):
    t = transport(robot)
    t.clock = lambda: time.time() - 50 * 60
    assert t.send(envelope()).ok


def test_throttle_is_recoverable_with_the_ten_minute_penalty():
    now = [1_700_000_000.0]
    with FakeRobot(access_token=TOKEN, secret=SECRET, per_minute=3, clock=lambda: now[0]) as robot:
        t = transport(robot)  # herald paces at 19 a minute; this robot takes 3 (another sender shares it, say)
        t.clock = lambda: now[0]
        results = [t.send(envelope(i)) for i in range(5)]
        assert [r.status for r in results] == [ACCEPTED] * 3 + [RECOVERABLE] * 2
        assert results[3].code == "130101" and "send too fast" in results[3].error
        assert results[3].retry_after == THROTTLE_PENALTY == 600
        assert results[4].code == "paced" and results[4].retry_after == pytest.approx(600)
        assert len(robot.requests) == 4  # the fifth was not sent into the penalty
        now[0] += 61
        paced = t.send(envelope(6))
        assert paced.code == "paced" and paced.retry_after == pytest.approx(539) and len(robot.requests) == 4
        now[0] += 540
        assert t.send(envelope(7)).ok
    assert len(robot.received) == 4


def test_fake_robot_blocks_for_ten_minutes_after_130101():
    now = [1_700_000_000.0]
    with FakeRobot(access_token=TOKEN, secret=SECRET, per_minute=1, clock=lambda: now[0]) as robot:
        t = transport(robot)
        t.clock = lambda: now[0]

        def post() -> int:  # straight to the robot, past herald's limiter
            body = json.dumps(t.message(envelope())).encode()
            return httpx.post(t.signed_url(), content=body, headers={"Content-Type": "application/json"}).json()["errcode"]

        assert post() == 0
        assert post() == 130101
        now[0] += 61  # a sliding window alone would take it again now; DingTalk's penalty does not
        assert post() == 130101
        now[0] += 540
        assert post() == 0


def test_robot_paced_below_twenty_a_minute_across_transports():
    """Alerts of every kind and notifications on the robot, through two transports (two channels, or a reload):
    one limit per robot, and DingTalk never sees a 21st message nor answers 130101."""
    now = [1_700_000_000.0]
    shared = LocalRateLimiter(ROBOT_LIMIT, 60.0)
    with FakeRobot(access_token=TOKEN, secret=SECRET, clock=lambda: now[0]) as robot:
        a, b = transport(robot, limiter=shared), transport(robot, limiter=shared)
        a.clock = b.clock = lambda: now[0]
        results = []
        for i in range(30):
            results.append((a if i % 2 else b).send(envelope(i)))
            now[0] += 1
        assert sum(r.ok for r in results) == ROBOT_LIMIT == 19
        assert {r.code for r in results if not r.ok} == {"paced"}
        assert all(0 < r.retry_after <= 60 for r in results if not r.ok)
        assert all(req["answer"][1]["errcode"] == 0 for req in robot.requests)
        now[0] += 60
        assert a.send(envelope(99)).ok


def test_limit_key_names_the_robot_not_its_token():
    key = limit_key("dingtalk-robot", TOKEN)
    assert TOKEN not in key and key.startswith("dingtalk-robot:")
    t1 = DingTalkRobotTransport("a", {"access_token": TOKEN})
    t2 = DingTalkRobotTransport("b", {"access_token": TOKEN, "secret": SECRET})
    assert t1.limit_key == t2.limit_key == key
    assert t1.limiter is t2.limiter  # the process-wide limiter unless one is given


def _sign_with(chars: str) -> int:
    """A millisecond timestamp near now whose sign contains every char in `chars`."""
    ts = int(time.time() * 1000)
    for i in range(20000):
        s = dingtalk_sign(SECRET, ts + i)
        if all(c in s for c in chars):
            return ts + i
    raise AssertionError("no such timestamp")


@pytest.mark.parametrize("chars", ["+", "/", "+/"])
def test_sign_is_url_encoded(robot, chars):
    ts = _sign_with(chars)
    t = transport(robot)
    t.clock = lambda: ts / 1000
    assert t.send(envelope()).ok  # the fake decodes '+' as a space: an unencoded sign would not match
    qs = robot.requests[-1]["query_string"]
    sign_param = next(p for p in qs.split("&") if p.startswith("sign="))
    assert "+" not in sign_param and "/" not in sign_param
    assert sign_param.endswith("%3D")  # base64 of 32 bytes ends with one '='
    if "+" in chars:
        assert "%2B" in sign_param
    if "/" in chars:
        assert "%2F" in sign_param


def test_signed_url_shape():
    t = DingTalkRobotTransport("c", {"access_token": TOKEN, "secret": SECRET})
    url = t.signed_url(1577836800000)
    assert url.startswith("https://oapi.dingtalk.com/robot/send?access_token=" + TOKEN + "&timestamp=1577836800000&sign=")


# every errcode the transport knows, with its expected classification
ERRCODE_TABLE = [
    (310000, "sign not match", PERMANENT, "config", None),
    (310000, "keywords not in content", PERMANENT, "config", None),
    (310000, "ip X.X.X.X not in whitelist", PERMANENT, "config", None),
    (300001, "token is not exist", PERMANENT, "300001", None),
    (300005, "token is not exist", PERMANENT, "300005", None),
    (400101, "access_token invalid", PERMANENT, "400101", None),
    (400102, "robot stopped", PERMANENT, "400102", None),
    (400105, "robot invalid", PERMANENT, "400105", None),
    (410100, "robot disabled", PERMANENT, "410100", None),
    (130101, "send too fast, exceed 20 times per minute", RECOVERABLE, "130101", 600.0),
    (-1, "系统繁忙", RECOVERABLE, "-1", None),
    (999999, "something new", PERMANENT, "999999", None),
    (40035, "缺少参数 json", PERMANENT, "40035", None),
]


@pytest.mark.parametrize("errcode,errmsg,status,code,retry", ERRCODE_TABLE)
def test_errcode_table(errcode, errmsg, status, code, retry):
    r = classify_errcode(errcode, errmsg)
    assert (r.status, r.code, r.retry_after) == (status, code, retry)
    assert errmsg.split(",")[0] in r.error


def test_table_covers_every_known_errcode():
    assert {row[0] for row in ERRCODE_TABLE} >= set(ERRCODES)


def test_send_too_fast_text_with_other_code_is_recoverable():
    r = classify_errcode(130102, "send too fast")
    assert r.status == RECOVERABLE and r.retry_after == 600


def test_errcode_zero_is_accepted():
    assert classify_errcode(0, "ok") is None


@pytest.mark.parametrize("errcode,errmsg,status,code,retry", ERRCODE_TABLE)
def test_errcode_table_end_to_end(robot, errcode, errmsg, status, code, retry):
    robot.forced.append((200, {"errcode": errcode, "errmsg": errmsg}))
    r = transport(robot).send(envelope())
    assert (r.status, r.code, r.retry_after) == (status, code, retry)
    assert not r.ok


@pytest.mark.parametrize("http_status,body,status", [
    (500, b"oops", RECOVERABLE), (502, b"", RECOVERABLE), (503, b"{}", RECOVERABLE), (429, b"", RECOVERABLE),
    (404, b"not here", PERMANENT), (403, b"", PERMANENT),
    (200, b"<html>gateway</html>", RECOVERABLE), (200, b'{"errmsg":"no code"}', RECOVERABLE),
    (200, b'{"errcode":"0","errmsg":"ok"}', ACCEPTED),
])
def test_http_level_answers(robot, http_status, body, status):
    robot.forced.append((http_status, body))
    assert transport(robot).send(envelope()).status == status


def test_timeout_is_recoverable():
    with FakeRobot(access_token=TOKEN, secret=SECRET, delay=1.5) as robot:
        r = transport(robot, timeout=0.3).send(envelope())
    assert r.status == RECOVERABLE and r.code == "timeout"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_is_recoverable():
    t = DingTalkRobotTransport("c", {"access_token": TOKEN, "secret": SECRET,
                                     "base_url": f"http://127.0.0.1:{_free_port()}", "timeout": 2})
    r = t.send(envelope())
    assert r.status == RECOVERABLE and r.code == "connection"
    assert TOKEN not in all_text(r) and SECRET not in all_text(r)


def test_check_does_not_post(robot):
    t = transport(robot)
    assert t.check() == []
    assert robot.requests == []
    assert t.check(send_test=True) == []
    assert len(robot.received) == 1 and "herald check" in robot.received[0]["markdown"]["text"]


def test_check_send_test_reports_refusal(robot):
    problems = transport(robot, secret="SECwrong-secret-value").check(send_test=True)
    assert len(problems) == 1 and "not accepted" in problems[0]
    assert "SECwrong-secret-value" not in problems[0]


def test_check_unreachable():
    t = DingTalkRobotTransport("c", {"access_token": TOKEN, "base_url": f"http://127.0.0.1:{_free_port()}",
                                     "timeout": 2})
    (problem,) = t.check()
    assert "ConnectError" in problem and TOKEN not in problem


@pytest.mark.parametrize("settings,fragment", [
    ({}, "'access_token' is required"),
    ({"access_token": "https://oapi.dingtalk.com/robot/send?access_token=" + TOKEN}, "whole webhook URL"),
    ({"access_token": TOKEN, "base_url": "ftp://x"}, "'base_url'"),
    ({"access_token": TOKEN, "timeout": "soon"}, "'timeout' must be a number"),
    ({"access_token": TOKEN, "secret": 12345}, "'secret' must be a string"),
    ({"access_token": TOKEN, "sekret": SECRET}, "unknown setting"),
])
def test_settings_validation(settings, fragment):
    with pytest.raises(ValueError) as info:
        DingTalkRobotTransport("hr-alerts", settings)
    message = str(info.value)
    assert fragment in message and "hr-alerts" in message
    assert TOKEN not in message and SECRET not in message


def test_settings_table_shape():
    assert SETTINGS["access_token"] == (True, True, SETTINGS["access_token"][2])
    assert SETTINGS["secret"][1] is True
    assert all(len(v) == 3 and isinstance(v[2], str) for v in SETTINGS.values())


def test_no_secret_anywhere(robot):
    """Token, signing secret and sign never show in repr, errors or codes, whatever happens."""
    t = transport(robot)
    assert TOKEN not in repr(t) and SECRET not in repr(t) and SECRET not in str(vars(t))
    assert TOKEN not in str(vars(t))
    # the provider echoing our secrets back in errmsg must not leak them
    robot.forced.append((200, {"errcode": 310000, "errmsg": f"sign not match for {TOKEN} / {SECRET}"}))
    robot.forced.append((500, b"x"))
    results = [t.send(envelope()) for _ in range(2)]
    results.append(transport(robot, secret="SECother-secret-xyz").send(envelope()))
    results.append(transport(robot, access_token="tok-other-token-xyz").send(envelope()))
    for r in results:
        text = all_text(r)
        assert not r.ok
        for secret in (TOKEN, SECRET, "SECother-secret-xyz", "tok-other-token-xyz"):
            assert secret not in text
        for req in robot.requests:
            sign = req["query"].get("sign")
            if sign:
                assert sign not in text


def test_no_token_or_sign_in_httpx_request_log(robot, caplog):
    """httpx logs each request's URL at INFO; the robot's URL carries access_token and sign (replayable for an hour)."""
    caplog.set_level(logging.DEBUG, logger="httpx")  # `herald serve` in an earlier test set httpx to WARNING
    assert transport(robot).send(envelope()).ok
    (req,) = robot.requests
    assert "HTTP Request" in caplog.text and "access_token=***" in caplog.text and "sign=***" in caplog.text
    assert TOKEN not in caplog.text and req["query"]["sign"] not in caplog.text


def test_body_is_utf8_json(robot):
    transport(robot).send(envelope())
    raw = robot.requests[0]["raw"]
    assert "张伟".encode() in raw
    assert json.loads(raw)["markdown"]["title"].startswith("候选人")
