"""Tests for the Aliyun SMS transport, its signer, push parsers and parameter checks, against a loopback fake."""
from __future__ import annotations

import json
import logging

import pytest
from hypothesis import given, strategies as st

from fake_aliyun import FakeAliyunSms, reference_signature
from loopback import FakeClock

from engine.channels.aliyun_sms import (
    CODES,
    PUSH_ACK,
    SETTINGS,
    AliyunSmsTransport,
    canonical_query,
    check_sms_params,
    classify_code,
    make_provider_id,
    normalize_phone,
    parse_provider_id,
    parse_sms_report,
    parse_sms_up,
    percent_encode,
    sign,
    string_to_sign,
)
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope

SECRET = "aliyun-s3cret-key"
T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC = 2023-11-15 06:13:20 Beijing


Clock = FakeClock


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fake(clock: Clock):
    with FakeAliyunSms(access_key_secret=SECRET, clock=clock) as server:
        yield server


def make(fake: FakeAliyunSms, clock: Clock | None = None, **overrides) -> AliyunSmsTransport:
    settings = {"access_key_id": fake.access_key_id, "access_key_secret": SECRET, "sign_name": fake.sign_name,
                "template_code": "SMS_100001", "endpoint": fake.url, "timeout": 5}
    settings.update(overrides)
    return AliyunSmsTransport("sms", settings, clock=clock or Clock())


def env(to: str = "+86 138-0013-8000", params: dict | None = None, key: str = "attempt-1") -> Envelope:
    if params is None:
        params = {"template_param": {"name": "张三", "job": "后端工程师"}}
    return Envelope(notification_id="n1", attempt_key=key, channel="sms", to=to, body="(rendered elsewhere)",
                    params=params)


# -- signature ------------------------------------------------------------------------------------
SMS_VECTOR = {  # Aliyun "HTTP协议及签名" example for SendSms
    "AccessKeyId": "testId", "Action": "SendSms", "Format": "XML", "OutId": "123", "PhoneNumbers": "15300000001",
    "RegionId": "cn-hangzhou", "SignName": "阿里云短信测试专用", "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "45e25e9b-0a6f-4070-8c85-2956eda1b466", "SignatureVersion": "1.0",
    "TemplateCode": "SMS_71390007", "TemplateParam": '{"customer":"test"}', "Timestamp": "2017-07-12T02:42:19Z",
    "Version": "2017-05-25",
}
SMS_STRING_TO_SIGN = (
    "GET&%2F&AccessKeyId%3DtestId%26Action%3DSendSms%26Format%3DXML%26OutId%3D123%26PhoneNumbers%3D15300000001"
    "%26RegionId%3Dcn-hangzhou%26SignName%3D%25E9%2598%25BF%25E9%2587%258C%25E4%25BA%2591%25E7%259F%25AD%25E4"
    "%25BF%25A1%25E6%25B5%258B%25E8%25AF%2595%25E4%25B8%2593%25E7%2594%25A8%26SignatureMethod%3DHMAC-SHA1"
    "%26SignatureNonce%3D45e25e9b-0a6f-4070-8c85-2956eda1b466%26SignatureVersion%3D1.0%26TemplateCode%3DSMS_71390007"
    "%26TemplateParam%3D%257B%2522customer%2522%253A%2522test%2522%257D%26Timestamp%3D2017-07-12T02%253A42%253A19Z"
    "%26Version%3D2017-05-25"
)


def test_documented_sendsms_vector() -> None:
    assert string_to_sign(SMS_VECTOR, "GET") == SMS_STRING_TO_SIGN
    assert sign(SMS_VECTOR, "testSecret") == "zJDF+Lrzhj/ThnlvIToysFRq6t4="


def test_documented_describe_regions_vector() -> None:
    params = {"TimeStamp": "2016-02-23T12:46:24Z", "Format": "XML", "AccessKeyId": "testid",
              "Action": "DescribeRegions", "SignatureMethod": "HMAC-SHA1",
              "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf", "Version": "2014-05-26",
              "SignatureVersion": "1.0"}
    assert sign(params, "testsecret") == "CT9X0VtwR86fNWSnsc6v8YGOjuE="


def test_hand_computed_post_vector() -> None:
    # computed by hand with `printf 'POST&%2F&A%3D1%26B%3D%25E4%25BD%25A0%2520%252A~' | openssl sha1 -hmac 'k&' -binary | base64`
    assert string_to_sign({"B": "你 *~", "A": "1"}, "POST") == "POST&%2F&A%3D1%26B%3D%25E4%25BD%25A0%2520%252A~"
    assert sign({"B": "你 *~", "A": "1"}, "k", "POST") == HAND_POST_SIGNATURE


HAND_POST_SIGNATURE = "mNDDG3wW3y51/PayXZqM21Lw20E="  # from openssl, see above


@pytest.mark.parametrize("raw,encoded", [
    (" ", "%20"), ("*", "%2A"), ("~", "~"), ("+", "%2B"), ("/", "%2F"), (":", "%3A"), ("=", "%3D"), ("&", "%26"),
    ("中", "%E4%B8%AD"), ("a-b_c.d", "a-b_c.d"), ('{"a":1}', "%7B%22a%22%3A1%7D"), ("%", "%25"),
])
def test_percent_encoding_table(raw: str, encoded: str) -> None:
    assert percent_encode(raw) == encoded


@given(st.dictionaries(st.text(min_size=1, max_size=8), st.text(max_size=20), max_size=6), st.sampled_from(["GET", "POST"]))
def test_signer_agrees_with_independent_reference(params: dict, method: str) -> None:
    assert sign(params, "sekret", method) == reference_signature(params, "sekret", method)


def test_canonical_query_excludes_signature_and_sorts() -> None:
    assert canonical_query({"b": "2", "a": "1", "Signature": "x"}) == "a=1&b=2"


# -- settings -------------------------------------------------------------------------------------
def test_settings_table() -> None:
    assert SETTINGS["access_key_secret"][:2] == (True, True)
    assert {k for k, (req, _, _) in SETTINGS.items() if req} == {"access_key_id", "access_key_secret", "sign_name"}


@pytest.mark.parametrize("missing", ["access_key_id", "access_key_secret", "sign_name"])
def test_missing_setting_is_named(missing: str) -> None:
    settings = {"access_key_id": "id", "access_key_secret": SECRET, "sign_name": "s"}
    del settings[missing]
    with pytest.raises(ValueError, match=missing) as info:
        AliyunSmsTransport("sms", settings)
    assert SECRET not in str(info.value)


def test_bad_endpoint_and_timeout() -> None:
    base = {"access_key_id": "id", "access_key_secret": SECRET, "sign_name": "s"}
    with pytest.raises(ValueError, match="endpoint"):
        AliyunSmsTransport("sms", {**base, "endpoint": "ftp://x"})
    for url in ("https://", "https://dysmsapi.aliyuncs.com:port", "https://x.example/?a=1"):  # the shared URL check
        with pytest.raises(ValueError, match="'endpoint' must be an http:// or https:// URL with a host"):
            AliyunSmsTransport("sms", {**base, "endpoint": url})
    with pytest.raises(ValueError, match="timeout"):
        AliyunSmsTransport("sms", {**base, "timeout": -1})


# -- sending --------------------------------------------------------------------------------------
def test_send_success_with_bizid(fake: FakeAliyunSms, clock: Clock) -> None:
    t = make(fake, clock)
    r = t.send(env())
    assert r.status == ACCEPTED and r.ok
    msg = fake.messages[0]
    assert r.provider_id == make_provider_id(msg["biz_id"], "13800138000", "20231115")
    assert parse_provider_id(r.provider_id) == (msg["biz_id"], "13800138000", "20231115")
    assert msg["phone"] == "13800138000" and msg["params"] == {"name": "张三", "job": "后端工程师"}
    assert msg["out_id"] == "attempt-1" and msg["template"] == "SMS_100001"
    sent = fake.requests[-1]
    assert sent["Format"] == "JSON" and sent["RegionId"] == "cn-hangzhou" and sent["Timestamp"] == "2023-11-14T22:13:20Z"
    assert json.loads(sent["TemplateParam"]) == {"name": "张三", "job": "后端工程师"}


def test_envelope_template_overrides_default(fake: FakeAliyunSms) -> None:
    t = make(fake)
    assert t.send(env(params={"template_code": "SMS_100002"})).ok
    assert fake.messages[0]["template"] == "SMS_100002" and "TemplateParam" not in fake.requests[-1]


def test_nonces_are_unique(fake: FakeAliyunSms, clock: Clock) -> None:
    t = make(fake, clock)
    for i in range(5):
        clock.now += 120
        assert t.send(env(key=f"k{i}")).ok
    assert len({r["SignatureNonce"] for r in fake.requests}) == 5


def test_wrong_secret_is_permanent_not_accepted(fake: FakeAliyunSms) -> None:
    t = make(fake, access_key_secret="wrong-secret-123")
    r = t.send(env())
    assert r.status == PERMANENT and not r.ok and r.code == "SignatureDoesNotMatch"
    assert "wrong-secret-123" not in r.error and fake.messages == []
    assert t.check() and "wrong-secret-123" not in t.check()[0]


def test_unknown_access_key_id(fake: FakeAliyunSms) -> None:
    r = make(fake, access_key_id="LTAI-nobody").send(env())
    assert r.status == PERMANENT and r.code == "InvalidAccessKeyId.NotFound"


def test_clock_skew_is_permanent(fake: FakeAliyunSms) -> None:
    r = make(fake, Clock(T0 + 3600)).send(env())
    assert r.status == PERMANENT and r.code == "InvalidTimeStamp.Expired" and "clock" in r.error


@pytest.mark.parametrize("params,code", [
    ({"template_param": {"name": "张三"}}, "isv.TEMPLATE_MISSING_PARAMETERS"),
    ({"template_code": "SMS_999"}, "isv.SMS_TEMPLATE_ILLEGAL"),
    ({"template_param": {"name": "张" * 40, "job": "x"}}, "isv.PARAM_LENGTH_LIMIT"),
])
def test_template_errors_are_permanent(fake: FakeAliyunSms, params: dict, code: str) -> None:
    r = make(fake).send(env(params=params))
    assert (r.status, r.code) == (PERMANENT, code) and fake.messages == []


def test_bad_sign_name(fake: FakeAliyunSms) -> None:
    r = make(fake, sign_name="别的签名").send(env())
    assert (r.status, r.code) == (PERMANENT, "isv.SMS_SIGNATURE_ILLEGAL")


def test_illegal_phone_from_provider(fake: FakeAliyunSms) -> None:
    r = make(fake).send(env(to="+1 23"))  # passes local shape checks? no: too short
    assert r.status == PERMANENT and r.code == "bad-address" and fake.requests == []
    r = make(fake).send(env(to="1000000"))  # 7 digits, locally plausible international, refused by the fake
    assert (r.status, r.code) == (PERMANENT, "isv.MOBILE_NUMBER_ILLEGAL")


def test_per_number_rate_limit_is_recoverable(fake: FakeAliyunSms, clock: Clock) -> None:
    t = make(fake, clock)
    assert t.send(env()).ok
    r = t.send(env(key="attempt-2"))
    assert r.status == RECOVERABLE and r.code == "isv.BUSINESS_LIMIT_CONTROL" and r.retry_after == 60.0
    clock.now += 61
    assert t.send(env(key="attempt-2")).ok


@pytest.mark.parametrize("message,status,retry", [
    ("触发分钟级流控Permits:1", RECOVERABLE, 60.0),
    ("触发小时级流控Permits:5", RECOVERABLE, 3600.0),
    ("触发天级流控Permits:10", PERMANENT, None),
    ("Delivery frequency exceeds the day limit", PERMANENT, None),
    ("something new", RECOVERABLE, 60.0),
])
def test_business_limit_windows(message: str, status: str, retry) -> None:
    got = classify_code("isv.BUSINESS_LIMIT_CONTROL", message)
    assert got[:2] == (status, retry)


@pytest.mark.parametrize("code,status", [(c, s) for c, (s, _, _) in sorted(CODES.items()) if c != "OK"])
def test_every_code_through_the_wire(fake: FakeAliyunSms, code: str, status: str) -> None:
    fake.fail_next("SendSms", code, "fake message", http_status=400 if code[0].isupper() else 200)
    r = make(fake).send(env())
    assert (r.status, r.code) == (status, code) and not r.ok
    if status == RECOVERABLE:
        assert r.retry_after and r.retry_after > 0


def test_classification_table_rows() -> None:
    assert classify_code("OK")[0] == ACCEPTED
    assert classify_code("isv.SOMETHING_NEW")[0] == PERMANENT
    assert classify_code("Throttling.Whatever")[0] == RECOVERABLE
    for code in ("isp.RAM_PERMISSION_DENY", "isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT",
                 "isv.TEMPLATE_MISSING_PARAMETERS", "isv.INVALID_PARAMETERS", "isv.SMS_TEMPLATE_ILLEGAL",
                 "isv.SMS_SIGNATURE_ILLEGAL", "isv.AMOUNT_NOT_ENOUGH", "isv.OUT_OF_SERVICE", "isv.DENY_IP_RANGE",
                 "isv.BLACK_KEY_CONTROL_LIMIT", "isv.PARAM_LENGTH_LIMIT", "isv.SMS_CONTENT_ILLEGAL",
                 "SignatureDoesNotMatch", "InvalidAccessKeyId.NotFound", "InvalidTimeStamp.Expired"):
        assert classify_code(code)[0] == PERMANENT, code
    for code in ("Throttling.User", "isp.SYSTEM_ERROR", "SignatureNonceUsed"):
        assert classify_code(code)[0] == RECOVERABLE, code


def test_http_5xx_and_unreachable_are_recoverable(fake: FakeAliyunSms) -> None:
    fake.fail_next("SendSms", "InternalError", "boom", http_status=500)
    assert make(fake).send(env()).status == RECOVERABLE
    fake.fail_next("SendSms", "isv.BRAND_NEW", "boom", http_status=503)
    assert make(fake).send(env()).status == RECOVERABLE
    r = make(fake, endpoint="http://127.0.0.1:9").send(env())
    assert r.status == RECOVERABLE and r.code == "connection"  # nothing reached Aliyun: not an unanswered send


def test_local_refusals(fake: FakeAliyunSms) -> None:
    t = make(fake, template_code="")
    assert t.send(env(params={"template_param": {"name": "x", "job": "y"}})).code == "no-template"
    assert make(fake).send(env(params={"template_param": "not json"})).code == "bad-param"
    assert make(fake).send(env(params={"template_param": ["a"]})).code == "bad-param"
    assert fake.requests == []


def test_template_param_given_as_json_string(fake: FakeAliyunSms) -> None:
    assert make(fake).send(env(params={"template_param": '{"name":"李四","job":"测试"}'})).ok


@pytest.mark.parametrize("raw,expected", [
    ("+8613800138000", "13800138000"), ("13800138000", "13800138000"), ("+86 138 0013 8000", "13800138000"),
    ("008613800138000", "13800138000"), ("8613800138000", "13800138000"), ("+852 9123 4567", "85291234567"),
    ("+1 (415) 555-0123", "14155550123"), ("0044 20 7946 0958", "442079460958"), ("+86123", None),
    ("alice@example.com", None), ("", None), ("+", None),
])
def test_phone_normalization(raw: str, expected) -> None:
    assert normalize_phone(raw) == expected


# -- check ----------------------------------------------------------------------------------------
def test_check_sends_nothing(fake: FakeAliyunSms) -> None:
    t = make(fake)
    assert t.check() == []
    assert fake.messages == [] and [r["Action"] for r in fake.requests] == ["QuerySendDetails"]


def test_check_reports_ram_denial(fake: FakeAliyunSms) -> None:
    fake.fail_next("QuerySendDetails", "isp.RAM_PERMISSION_DENY", "RAM permission denied")
    problems = make(fake).check()
    assert len(problems) == 1 and "RAM" in problems[0]


# -- receipts -------------------------------------------------------------------------------------
def test_poll_receipts_via_query_send_details(fake: FakeAliyunSms, clock: Clock) -> None:
    t = make(fake, clock)
    a = t.send(env()).provider_id
    clock.now += 61
    b = t.send(env(key="attempt-2")).provider_id
    clock.now += 61
    c = t.send(env(key="attempt-3")).provider_id
    biz = [m["biz_id"] for m in fake.messages]
    fake.set_status(biz[0], 3, "DELIVERED")
    fake.set_status(biz[1], 2, "MK:0001")
    receipts = {r.provider_id: r for r in t.poll_receipts([a, b, c, "junk"])}
    assert receipts[a].event == "delivered" and receipts[a].at == "2023-11-15T06:13:20+08:00"
    assert receipts[a].detail["out_id"] == "attempt-1"
    assert receipts[b].event == "undelivered" and receipts[b].detail["err_code"] == "MK:0001"
    assert c not in receipts  # SendStatus 1: still waiting


def test_poll_looks_at_the_next_day_too(fake: FakeAliyunSms, clock: Clock) -> None:
    t = make(fake, clock)
    pid = t.send(env()).provider_id
    biz, phone, _ = parse_provider_id(pid)
    fake.set_status(biz, 3)
    shifted = make_provider_id(biz, phone, "20231114")  # recorded a day early (send crossed midnight)
    assert [r.event for r in t.poll_receipts([shifted])] == ["delivered"]


def test_poll_survives_errors(fake: FakeAliyunSms) -> None:
    t = make(fake)
    pid = t.send(env()).provider_id
    fake.fail_next("QuerySendDetails", "isp.SYSTEM_ERROR")
    assert t.poll_receipts([pid]) == []


# -- pushes ---------------------------------------------------------------------------------------
def test_parse_sms_report_matches_provider_id(fake: FakeAliyunSms) -> None:
    pid = make(fake).send(env()).provider_id
    biz = fake.messages[0]["biz_id"]
    report = [
        {"phone_number": "13800138000", "send_time": "2023-11-15 06:13:20", "report_time": "2023-11-15 06:13:25",
         "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1", "biz_id": biz,
         "out_id": "attempt-1"},
        {"phone_number": "13900139000", "send_time": "2023-11-15 06:14:00", "report_time": "2023-11-15 06:14:09",
         "success": False, "err_code": "MK:0001", "err_msg": "空号", "sms_size": "1", "biz_id": "777^0",
         "out_id": "attempt-9"},
        {"nonsense": True}, "not a dict",
    ]
    receipts = parse_sms_report(report)
    assert [r.event for r in receipts] == ["delivered", "undelivered"]
    assert receipts[0].provider_id == pid and receipts[0].at == "2023-11-15T06:13:25+08:00"
    assert receipts[0].detail["out_id"] == "attempt-1" and receipts[0].detail["biz_id"] == biz
    assert receipts[1].provider_id == "777^0:13900139000:20231115" and receipts[1].detail["err_code"] == "MK:0001"
    assert parse_sms_report({"not": "a list"}) == []  # type: ignore[arg-type]


def test_parse_sms_up() -> None:
    body = [
        {"phone_number": "13800138000", "send_time": "2023-11-15 09:00:00", "content": "收到，谢谢",
         "sign_name": "面试通知", "dest_code": "1234", "sequence_id": 1234567890},
        {"phone_number": "13800138001", "send_time": "20231115090100", "content": "TD", "dest_code": "1",
         "sequence_id": "42"},
        {"content": "no phone"},
    ]
    replies = parse_sms_up(body)
    assert replies == [
        {"phone": "13800138000", "content": "收到，谢谢", "at": "2023-11-15T09:00:00+08:00", "sign_name": "面试通知",
         "dest_code": "1234", "sequence_id": 1234567890},
        {"phone": "13800138001", "content": "TD", "at": "2023-11-15T09:01:00+08:00", "sign_name": None,
         "dest_code": "1", "sequence_id": "42"},
    ]


def test_push_ack() -> None:
    assert PUSH_ACK["code"] == 0 and isinstance(PUSH_ACK["code"], int)
    assert json.loads(json.dumps(PUSH_ACK, ensure_ascii=False)) == PUSH_ACK


# -- check_sms_params -----------------------------------------------------------------------------
def test_check_sms_params_accepts_normal_values() -> None:
    assert check_sms_params({"name": "张三", "job": "后端工程师", "date_1": "2024-05-06", "n": 3}) == []


@pytest.mark.parametrize("params,fragment", [
    ({"name": "张" * 36}, "36 characters"),
    ({"link": "https://example.com/x"}, "link"),
    ({"link": "www.example.cn"}, "link"),
    ({"contact": "请联系13800138000"}, "mobile"),
    ({"contact": "加微信 123456789"}, "QQ/WeChat"),
    ({"name": "【公司】"}, "【】"),
    ({"name": "  "}, "empty"),
    ({"bad-name": "x"}, "letters"),
    ({"123": "x"}, "letters"),
    ({"nested": {"a": 1}}, "plain value"),
])
def test_check_sms_params_problems(params: dict, fragment: str) -> None:
    problems = check_sms_params(params)
    assert problems and fragment in problems[0]


def test_check_sms_params_boundary() -> None:
    assert check_sms_params({"name": "x" * 35}) == []


# -- secrets --------------------------------------------------------------------------------------
def test_no_secret_in_errors_reprs_or_logs(fake: FakeAliyunSms, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    t = make(fake)
    fake.fail_next("SendSms", "isv.INVALID_PARAMETERS", f"echo {SECRET}")  # a hostile echo
    r = t.send(env())
    bad = make(fake, access_key_secret="other-secret-xyz")
    r2 = bad.send(env())
    texts = [r.error, repr(r), r2.error, repr(r2), repr(t), repr(bad), caplog.text, *bad.check(), *t.check()]
    for text in texts:
        assert SECRET not in text and "other-secret-xyz" not in text



def test_secret_is_held_as_a_secret_and_unknown_settings_are_refused(fake: FakeAliyunSms) -> None:
    """The shared settings reader: the AccessKey secret never sits in the object as plain text; a misspelt setting
    is named rather than ignored; the receipt poller's poll_interval is a known setting."""
    t = make(fake, poll_interval="5m")
    assert SECRET not in repr(vars(t))
    with pytest.raises(ValueError, match=r"unknown setting.*'sign_nmae'") as info:
        make(fake, sign_nmae="x")
    assert SECRET not in str(info.value) and "aliyun-sms" in str(info.value)


def test_fake_refuses_a_replayed_request(fake: FakeAliyunSms) -> None:
    import httpx

    t = make(fake)
    assert t.send(env()).ok
    sent = dict(fake.requests[-1])
    body = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sent.items())
    answer = httpx.post(fake.url + "/", content=body, headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 400 and answer.json()["Code"] == "SignatureNonceUsed"
    assert len(fake.messages) == 1


def test_missing_phone_numbers_is_permanent(fake: FakeAliyunSms) -> None:
    _, failure = make(fake)._call("SendSms", {"SignName": fake.sign_name, "TemplateCode": "SMS_100002"})
    assert failure is not None and (failure.status, failure.code) == (PERMANENT, "MissingPhoneNumbers")


def test_out_id_is_cut_to_256(fake: FakeAliyunSms) -> None:
    assert make(fake).send(env(key="k" * 300)).ok
    assert fake.messages[0]["out_id"] == "k" * 256


# -- SendSms is not idempotent: an unanswered attempt is looked up before any resend -------------------------


def unanswered(key: str, age: float = 120.0, sent_at: float = T0) -> dict:
    import datetime as dt

    return {"unanswered": [{"attempt_key": key, "age": age,
                            "sent_at": dt.datetime.fromtimestamp(sent_at, dt.UTC).isoformat()}]}


def test_timed_out_send_that_went_out_is_not_sent_again(fake: FakeAliyunSms, clock: Clock) -> None:
    t = make(fake, clock, timeout=0.3)
    fake.answer_late("SendSms", 1.0)
    first = t.send(env(key="n1:0:1"))
    assert first.status == RECOVERABLE and first.code == "timeout"
    assert len(fake.messages) == 1  # Aliyun sent it; herald did not hear so
    clock.now += 120
    second = t.send(Envelope(**{**env(key="n1:0:2").__dict__, "meta": unanswered("n1:0:1")}))
    assert second.status == ACCEPTED, second
    assert len(fake.messages) == 1  # one SMS for the candidate, one charge
    assert second.provider_id == make_provider_id("out=n1:0:1", "13800138000", "20231115")
    fake.set_status(fake.messages[0]["biz_id"], 3)
    [receipt] = t.poll_receipts([second.provider_id])
    assert receipt.event == "delivered" and receipt.provider_id == second.provider_id


def test_unanswered_send_with_no_record_is_sent(fake: FakeAliyunSms, clock: Clock) -> None:
    t = make(fake, clock)
    result = t.send(Envelope(**{**env(key="n1:0:2").__dict__, "meta": unanswered("n1:0:1")}))
    assert result.ok and len(fake.messages) == 1 and fake.messages[0]["out_id"] == "n1:0:2"
    queries = [r for r in fake.requests if r["Action"] == "QuerySendDetails"]
    assert queries and all(q["PhoneNumber"] == "13800138000" and "BizId" not in q for q in queries)


def test_unanswered_lookup_waits_and_never_sends_blind(fake: FakeAliyunSms, clock: Clock) -> None:
    t = make(fake, clock)
    young = t.send(Envelope(**{**env(key="n1:0:2").__dict__, "meta": unanswered("n1:0:1", age=5)}))
    assert young.status == RECOVERABLE and young.code == "lookup-pending" and young.retry_after == 25
    fake.fail_next("QuerySendDetails", "isp.SYSTEM_ERROR")
    failed = t.send(Envelope(**{**env(key="n1:0:3").__dict__, "meta": unanswered("n1:0:1")}))
    assert failed.status == RECOVERABLE and "could not be looked up" in failed.error
    assert fake.messages == []


def test_lookup_pages_through_a_busy_day(fake: FakeAliyunSms, clock: Clock) -> None:
    fake.per_minute = 1000
    t = make(fake, clock)
    for i in range(60):
        assert t.send(env(key=f"other:{i}")).ok
    fake.answer_late("SendSms", 0.0)
    assert t.send(env(key="n1:0:1")).ok
    found = t.send(Envelope(**{**env(key="n1:0:2").__dict__, "meta": unanswered("n1:0:1")}))
    assert found.provider_id.startswith("out=n1:0:1:") and len(fake.messages) == 61
