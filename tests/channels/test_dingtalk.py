"""Tests for the DingTalk work-notification transport against a loopback fake of the API."""
from __future__ import annotations

import logging
import threading

import pytest

from fake_dingtalk import FakeDingTalk
from loopback import FakeClock

from engine.channels import signing
from engine.channels.signing import http_client
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope
from engine.channels.dingtalk import (
    ERRCODES,
    OK,
    SETTINGS,
    TOKEN,
    DingTalkWorkNoticeTransport,
    classify_errcode,
    parse_provider_id,
)

SECRET = "s3cr3t-app-secret"


Clock = FakeClock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock):
    with FakeDingTalk(app_secret=SECRET, clock=clock) as server:
        yield server


def make(fake: FakeDingTalk, clock: Clock | None = None, **overrides) -> DingTalkWorkNoticeTransport:
    settings = {"app_key": fake.app_key, "app_secret": SECRET, "agent_id": str(fake.agent_id),
                "base_url": fake.url, "timeout": 5}
    settings.update(overrides)
    return DingTalkWorkNoticeTransport("dingtalk", settings, clock=clock or Clock())


def env(to: str = "u-alice", body: str = "你好，**结果**已出。", subject: str | None = "面试结果", key: str = "a1") -> Envelope:
    return Envelope(notification_id="n1", attempt_key=key, channel="dingtalk", to=to, body=body, subject=subject)


def test_settings_table_marks_the_secret() -> None:
    assert SETTINGS["app_secret"][:2] == (True, True)
    assert {k for k, (required, _, _) in SETTINGS.items() if required} == {"app_key", "app_secret", "agent_id"}


@pytest.mark.parametrize("missing", ["app_key", "app_secret", "agent_id"])
def test_missing_setting_names_it(missing: str) -> None:
    settings = {"app_key": "k", "app_secret": SECRET, "agent_id": "1"}
    settings[missing] = ""
    with pytest.raises(ValueError, match=missing) as info:
        DingTalkWorkNoticeTransport("dt", settings)
    assert SECRET not in str(info.value)


def test_bad_agent_id_and_timeout_are_rejected() -> None:
    with pytest.raises(ValueError, match="agent_id"):
        DingTalkWorkNoticeTransport("dt", {"app_key": "k", "app_secret": SECRET, "agent_id": "abc"})
    with pytest.raises(ValueError, match="'base_url' must be an http:// or https:// URL with a host"):
        DingTalkWorkNoticeTransport("dt", {"app_key": "k", "app_secret": SECRET, "agent_id": "1", "base_url": "http://"})
    with pytest.raises(ValueError, match="timeout"):
        DingTalkWorkNoticeTransport("dt", {"app_key": "k", "app_secret": SECRET, "agent_id": "1", "timeout": "x"})


def test_send_success_stores_task_and_user(fake: FakeDingTalk, clock: Clock) -> None:
    t = make(fake, clock)
    result = t.send(env())
    assert result.status == ACCEPTED and result.ok
    task = fake.messages[0]["task_id"]
    assert result.provider_id == f"{task}:u-alice"
    assert parse_provider_id(result.provider_id) == (str(task), "u-alice")
    sent = fake.messages[0]
    assert sent["agent_id"] == fake.agent_id
    assert sent["userid_list"] == ["u-alice"]
    assert sent["msg"] == {"msgtype": "markdown", "markdown": {"title": "面试结果", "text": "你好，**结果**已出。"}}


def test_title_falls_back_to_first_line(fake: FakeDingTalk) -> None:
    t = make(fake)
    assert t.send(env(subject=None, body="\n# 您好\n正文")).ok
    assert fake.messages[0]["msg"]["markdown"]["title"] == "您好"


def test_token_is_cached_across_sends_and_threads(fake: FakeDingTalk, clock: Clock) -> None:
    t = make(fake, clock)
    results = []

    def worker(i: int) -> None:
        results.append(t.send(env(body=f"message {i}", key=f"k{i}")))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert all(r.ok for r in results) and len(results) == 8
    assert fake.gettoken_calls == 1


def test_token_refreshed_before_expiry_by_clock(fake: FakeDingTalk, clock: Clock) -> None:
    t = make(fake, clock)
    assert t.send(env(body="one")).ok
    clock.now += 7200 - 299  # within the 5 minute margin
    assert t.send(env(body="two")).ok
    assert fake.gettoken_calls == 2


def test_token_expired_on_server_is_refreshed_transparently(fake: FakeDingTalk, clock: Clock) -> None:
    t = make(fake, clock)
    assert t.send(env(body="one")).ok
    fake.token_ttl = 10  # the server now considers tokens older than 10 s expired (errcode 42001)
    clock.now += 60
    result = t.send(env(body="two"))
    assert result.ok, result
    assert fake.gettoken_calls == 2
    fake.expire_tokens()  # unknown token (errcode 40014)
    assert t.send(env(body="three")).ok
    assert fake.gettoken_calls == 3


def test_token_error_after_refresh_is_recoverable(fake: FakeDingTalk) -> None:
    t = make(fake)
    fake.fail_next("asyncsend_v2", errcode=40014, errmsg="不合法的access_token")
    fake.fail_next("asyncsend_v2", errcode=40014, errmsg="不合法的access_token")
    result = t.send(env())
    assert result.status == RECOVERABLE and result.code == "40014"
    assert fake.messages == []


def test_wrong_secret_is_permanent_and_not_accepted(fake: FakeDingTalk) -> None:
    t = make(fake, app_secret="wrong-secret-value")
    result = t.send(env())
    assert result.status == PERMANENT and not result.ok
    assert result.code == "40089"
    assert "wrong-secret-value" not in (result.error or "")
    assert fake.messages == []
    problems = t.check()
    assert problems and "app_key/app_secret" in problems[0]
    assert "wrong-secret-value" not in problems[0]


def test_same_content_twice_a_day_is_permanent_143106(clock: Clock) -> None:
    with FakeDingTalk(app_secret=SECRET, clock=clock, same_content_mode="error") as fake:
        t = make(fake)
        assert t.send(env()).ok
        again = t.send(env(key="a2"))
        assert again.status == PERMANENT and again.code == "143106"
        assert "once a day" in again.error
        assert len(fake.messages) == 1


def test_same_content_next_day_is_accepted(fake: FakeDingTalk, clock: Clock) -> None:
    t = make(fake, clock)
    assert t.send(env()).ok
    clock.now += 86400
    assert t.send(env(key="a2")).ok


def test_rate_limit_is_recoverable_with_retry_after(fake: FakeDingTalk) -> None:
    t = make(fake)
    fake.fail_next("asyncsend_v2", errcode=90018, errmsg="too many requests")
    result = t.send(env())
    assert result.status == RECOVERABLE and result.code == "90018" and result.retry_after == 1.0
    fake.fail_next("asyncsend_v2", errcode=143103, errmsg="QPM 超限")
    result = t.send(env())
    assert result.status == RECOVERABLE and result.retry_after == 60.0


def test_http_failures(fake: FakeDingTalk) -> None:
    t = make(fake)
    fake.fail_next("asyncsend_v2", http_status=502, errmsg="bad gateway")
    assert t.send(env()).status == RECOVERABLE
    fake.fail_next("asyncsend_v2", http_status=200, html=True)
    r = t.send(env())
    assert r.status == RECOVERABLE and r.code == "throttled" and r.retry_after == 300
    fake.fail_next("asyncsend_v2", http_status=200, status=1111, wait=5, punish="deny")
    assert t.send(env()).code == "throttled"
    fake.fail_next("asyncsend_v2", http_status=429)
    assert t.send(env()).status == RECOVERABLE
    assert fake.messages == []


def test_timeout_and_unreachable_are_recoverable(fake: FakeDingTalk) -> None:
    t = make(fake, base_url="http://127.0.0.1:9")  # discard port: connection refused
    r = t.send(env())
    assert r.status == RECOVERABLE and r.code == "connection"  # nothing reached DingTalk
    assert SECRET not in r.error
    assert t.check()


def test_agent_not_authorised_is_permanent(fake: FakeDingTalk) -> None:
    t = make(fake, agent_id="999")
    r = t.send(env())
    assert r.status == PERMANENT and "not authorised" in r.error and r.code == "88"


def test_bad_address_is_permanent_without_calling(fake: FakeDingTalk) -> None:
    t = make(fake)
    assert t.send(env(to="a,b")).status == PERMANENT
    assert t.send(env(to="  ")).status == PERMANENT
    assert fake.requests == []


def test_check_messages_nobody(fake: FakeDingTalk) -> None:
    t = make(fake)
    assert t.check() == []
    assert fake.messages == [] and fake.tasks == {}
    assert all(path == "/gettoken" for _, path in fake.requests)


def test_receipts_read_unread_and_failures(fake: FakeDingTalk) -> None:
    fake.users |= {"u-carol", "u-dave"}
    t = make(fake)
    ids = [t.send(env(to=u)).provider_id for u in ("u-alice", "u-bob", "u-carol", "u-dave")]
    ghost = t.send(env(to="u-ghost")).provider_id  # DingTalk accepts it and lists it as invalid
    tasks = [parse_provider_id(i)[0] for i in ids]
    fake.set_state(tasks[0], "u-alice", "read")
    fake.set_state(tasks[2], "u-carol", "failed")
    fake.set_state(tasks[3], "u-dave", "sending")  # not in any list yet: no receipt
    receipts = {r.provider_id: r for r in t.poll_receipts(ids + [ghost, "garbage"])}
    assert receipts[ids[0]].event == "read"
    assert receipts[ids[1]].event == "delivered"
    assert receipts[ids[2]].event == "undelivered" and receipts[ids[2]].detail["list"] == "failed_user_id_list"
    assert ids[3] not in receipts
    assert receipts[ghost].event == "undelivered" and receipts[ghost].detail["list"] == "invalid_user_id_list"


def test_forbidden_same_content_path_gives_undelivered_receipt(clock: Clock) -> None:
    with FakeDingTalk(app_secret=SECRET, clock=clock) as fake:  # the documented path is the default
        t = make(fake, clock)
        first = t.send(env())
        second = t.send(env(key="a2"))
        assert first.ok and second.ok  # documented behaviour: the API says ok, the receipts say forbidden
        receipts = {r.provider_id: r for r in t.poll_receipts([first.provider_id, second.provider_id])}
        assert receipts[first.provider_id].event == "delivered"
        forbidden = receipts[second.provider_id]
        assert forbidden.event == "undelivered" and forbidden.detail["list"] == "forbidden_user_id_list"
        assert forbidden.detail["forbidden"] == [{"code": "143106", "count": 1, "userid": "u-alice"}]


def test_receipt_poll_survives_provider_errors(fake: FakeDingTalk) -> None:
    t = make(fake)
    pid = t.send(env()).provider_id
    fake.fail_next("getsendresult", errcode=-1, errmsg="系统繁忙")
    assert t.poll_receipts([pid]) == []
    assert [r.event for r in t.poll_receipts([pid])] == ["delivered"]


# -- the classification table, every row --------------------------------------------------------
EXPECTED = {
    0: OK, -1: RECOVERABLE, 40014: TOKEN, 42001: TOKEN, 40001: TOKEN, 88: TOKEN,
    40089: PERMANENT, 40096: PERMANENT, 90002: RECOVERABLE, 90005: RECOVERABLE, 90006: RECOVERABLE,
    90018: RECOVERABLE, 90019: RECOVERABLE, 90020: PERMANENT, 143103: RECOVERABLE, 143104: RECOVERABLE,
    143106: PERMANENT, 40003: PERMANENT, 33012: PERMANENT, 40035: PERMANENT, 40056: PERMANENT,
    60011: PERMANENT, 60020: PERMANENT, 404: PERMANENT,
}


def test_table_is_fully_covered() -> None:
    assert set(EXPECTED) == set(ERRCODES)


@pytest.mark.parametrize("code,kind", sorted(EXPECTED.items()))
def test_classification_table(code: int, kind: str) -> None:
    got, retry, note = classify_errcode(code)
    assert got == kind and note
    if kind == RECOVERABLE:
        assert retry and retry > 0


@pytest.mark.parametrize("sub_code,sub_msg,kind", [
    ("60011", "没有调用该接口的权限", PERMANENT),
    ("40014", "不合法的access_token", TOKEN),
    ("isv.invalid-token", "invalid token", TOKEN),
    ("isv.whatever", "参数错误", PERMANENT),
    (None, "", TOKEN),
])
def test_errcode_88_is_read_through_sub_code(sub_code, sub_msg, kind) -> None:
    assert classify_errcode(88, sub_code, sub_msg)[0] == kind


def test_unknown_code_is_permanent() -> None:
    assert classify_errcode(123456)[0] == PERMANENT


@pytest.mark.parametrize("code", sorted(c for c in EXPECTED if c not in (0,)))
def test_every_code_through_the_wire(fake: FakeDingTalk, code: int) -> None:
    t = make(fake)
    fake.fail_next("asyncsend_v2", errcode=code, errmsg=f"fake error {code}")
    if EXPECTED[code] == TOKEN:  # refreshed once, then retried against the healthy fake: accepted
        assert t.send(env()).ok
        return
    r = t.send(env(key=str(code)))
    assert r.status == EXPECTED[code] and r.code == str(code) and not r.ok


# -- secrets ------------------------------------------------------------------------------------
def test_no_secret_or_token_in_errors_reprs_or_logs(fake: FakeDingTalk, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="httpx")  # `herald serve` in an earlier test set httpx to WARNING
    t = make(fake)
    assert t.send(env()).ok
    token = t._token
    assert token and token in fake.tokens
    fake.fail_next("asyncsend_v2", errcode=40035, errmsg=f"echo {SECRET} {token}")  # a hostile echo
    r = t.send(env(key="x"))
    bad = make(fake, app_secret="other-secret-xyz")
    r2 = bad.send(env())
    texts = [r.error or "", repr(r), r2.error or "", repr(r2), repr(t), repr(bad), caplog.text, *bad.check()]
    for text in texts:
        assert SECRET not in text and token not in text and "other-secret-xyz" not in text
    assert "appsecret=***" in caplog.text  # httpx's own request line, masked
    assert "access_token=***" in caplog.text


def test_redactor_is_installed_once() -> None:
    http_client(1.0).close()
    http_client(1.0).close()
    assert logging.getLogger("httpx").filters.count(signing.QUERY_REDACTOR) == 1


def test_secret_is_held_as_a_secret_and_unknown_settings_are_refused(fake: FakeDingTalk) -> None:
    t = make(fake, poll_interval="5m")
    assert t.send(env()).ok
    assert SECRET not in repr(vars(t))
    with pytest.raises(ValueError, match=r"unknown setting.*'app_secert'") as info:
        make(fake, app_secert=SECRET)
    assert SECRET not in str(info.value) and "dingtalk-work-notice" in str(info.value)


# -- a duplicate-content verdict after an unanswered attempt: that attempt arrived --------------------------


def after_unanswered(key: str, earlier: str) -> Envelope:
    e = env(key=key)
    return Envelope(**{**e.__dict__, "meta": {"unanswered": [{"attempt_key": earlier, "age": 60.0}]}})


def test_timed_out_notice_that_arrived_is_delivered_not_undelivered(clock: Clock) -> None:
    with FakeDingTalk(app_secret=SECRET, clock=clock) as fake:
        t = make(fake, clock, timeout=0.3)
        fake.answer_late("asyncsend_v2", 1.0)
        first = t.send(env(key="n1:0:1"))
        assert first.status == RECOVERABLE and first.code == "timeout"
        assert len(fake.messages) == 1  # it reached the user
        second = t.send(after_unanswered("n1:0:2", "n1:0:1"))
        assert second.ok and second.provider_id.startswith("retry/")
        [receipt] = t.poll_receipts([second.provider_id])
    assert receipt.event == "delivered" and receipt.detail["by_earlier_attempt"] is True
    assert receipt.detail["list"] == "forbidden_user_id_list"


def test_send_time_143106_after_an_unanswered_attempt_is_accepted(clock: Clock) -> None:
    with FakeDingTalk(app_secret=SECRET, clock=clock, same_content_mode="error") as fake:
        t = make(fake, clock)
        assert t.send(env(key="n1:0:1")).ok
        again = t.send(after_unanswered("n1:0:2", "n1:0:1"))
        assert again.ok and again.provider_id == "retry/dup:u-alice"
        [receipt] = t.poll_receipts([again.provider_id])
    assert receipt.event == "delivered" and receipt.detail["by_earlier_attempt"] is True


def test_daily_cap_on_a_retry_stays_undelivered(fake: FakeDingTalk) -> None:
    t = make(fake)
    pid = t.send(after_unanswered("n1:0:2", "n1:0:1")).provider_id
    task, user = parse_provider_id(pid)
    fake.set_state(task, user, "forbidden")
    fake.forbidden_code = "143105"
    [receipt] = t.poll_receipts([pid])
    assert receipt.event == "undelivered"



def test_msg_over_2048_bytes_is_refused_on_both_sides(fake: FakeDingTalk) -> None:
    import httpx

    t = make(fake)
    long_body = "面试结果" * 200  # 2,400 bytes of UTF-8 before the JSON around it
    result = t.send(env(body=long_body))
    assert result.status == PERMANENT and result.code == "too-long" and "2048" in result.error
    assert fake.messages == [] and not any(p.endswith("asyncsend_v2") for _, p in fake.requests)
    assert t.send(env(body="面试结果" * 150)).ok  # 1,800 bytes fit
    token = httpx.get(f"{fake.url}/gettoken", params={"appkey": fake.app_key, "appsecret": SECRET}).json()
    big = {"agent_id": fake.agent_id, "userid_list": "u-bob",
           "msg": {"msgtype": "markdown", "markdown": {"title": "t", "text": long_body}}}
    answer = httpx.post(f"{fake.url}/topapi/message/corpconversation/asyncsend_v2",
                        params={"access_token": token["access_token"]}, json=big).json()
    assert answer["errcode"] == 40035 and len(fake.messages) == 1
