"""The providers' official SDKs as an independent oracle for herald's requests and for the loopback fakes.

A fake written from the same reading as the client cannot catch the mistakes they share. Here the SDKs (test-only
dependencies: alibabacloud-dysmsapi20170525, dingtalkchatbot) talk to the fakes: the fakes must accept what the SDK
sends and answer what the SDK parses; and herald's requests must sign, and place their parameters, as the SDK does.

Aliyun: the SDK's RPC client (signature_algorithm "v2": HMAC-SHA1, the RPC signature herald implements; the SDK's
default is the newer ACS3 header signature, which herald does not use). DingTalk robot: DingtalkChatbot's signed
webhook URL and markdown body. No maintained SDK covers the work-notice oapi (asyncsend_v2/getsendresult): the fake
cites the documents beside the code instead (tests/channels/fake_dingtalk.py).
"""
from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qsl, urlsplit

import pytest
from alibabacloud_dysmsapi20170525 import models as dysms
from alibabacloud_dysmsapi20170525.client import Client as DysmsClient
from alibabacloud_tea_openapi.utils import Utils as AliyunUtils
from alibabacloud_tea_openapi.utils_models import Config as AliyunConfig
from dingtalkchatbot.chatbot import DingtalkChatbot
from fake_aliyun import FakeAliyunSms
from fake_robot import FakeRobot

from engine.channels.aliyun_sms import AliyunSmsTransport, sign
from engine.channels.base import Envelope
from engine.channels.dingtalk_robot import DingTalkRobotTransport
from engine.channels.ratelimit import LocalRateLimiter

ALIYUN_ID, ALIYUN_SECRET = "LTAI-test-id", "aliyun-s3cret-key"
PARAM = {"name": "张三", "job": "后端工程师"}


def sdk_client(fake: FakeAliyunSms) -> DysmsClient:
    host = urlsplit(fake.url).netloc
    return DysmsClient(AliyunConfig(access_key_id=ALIYUN_ID, access_key_secret=ALIYUN_SECRET, endpoint=host,
                                    protocol="HTTP", signature_algorithm="v2", region_id="cn-hangzhou"))


@pytest.fixture
def fake():
    with FakeAliyunSms(access_key_id=ALIYUN_ID, access_key_secret=ALIYUN_SECRET) as server:
        yield server


def test_fake_accepts_the_sdks_sendsms_and_the_sdk_parses_the_answers(fake: FakeAliyunSms) -> None:
    client = sdk_client(fake)
    sent = client.send_sms(dysms.SendSmsRequest(phone_numbers="13800138000", sign_name=fake.sign_name,
                                                template_code="SMS_100001", out_id="n1:0:1",
                                                template_param=json.dumps(PARAM, ensure_ascii=False)))
    assert sent.status_code == 200 and sent.body.code == "OK" and sent.body.biz_id
    assert fake.messages[0]["params"] == PARAM and fake.messages[0]["out_id"] == "n1:0:1"
    day = dt.datetime.fromtimestamp(fake.messages[0]["at"], dt.timezone(dt.timedelta(hours=8))).strftime("%Y%m%d")
    fake.set_status(sent.body.biz_id, 3)
    found = client.query_send_details(dysms.QuerySendDetailsRequest(phone_number="13800138000", send_date=day,
                                                                    page_size=10, current_page=1))
    [row] = found.body.sms_send_detail_dtos.sms_send_detail_dto
    assert (row.out_id, row.send_status, row.phone_num) == ("n1:0:1", 3, "13800138000")


def test_fake_answers_errors_the_sdk_reads(fake: FakeAliyunSms) -> None:
    from alibabacloud_tea_openapi.exceptions import ClientException

    fake.fail_next("SendSms", "isv.BUSINESS_LIMIT_CONTROL", "触发分钟级流控Permits:1")
    answer = sdk_client(fake).send_sms(dysms.SendSmsRequest(phone_numbers="13800138000", sign_name=fake.sign_name,
                                                            template_code="SMS_100002"))
    assert answer.body.code == "isv.BUSINESS_LIMIT_CONTROL"  # business errors: HTTP 200 with a Code
    bad = DysmsClient(AliyunConfig(access_key_id=ALIYUN_ID, access_key_secret="wrong-secret",
                                   endpoint=urlsplit(fake.url).netloc, protocol="HTTP", signature_algorithm="v2"))
    with pytest.raises(ClientException) as refused:
        bad.send_sms(dysms.SendSmsRequest(phone_numbers="13800138000", sign_name=fake.sign_name,
                                          template_code="SMS_100002"))
    assert refused.value.code == "SignatureDoesNotMatch"


def test_herald_signs_as_the_sdk_does(fake: FakeAliyunSms) -> None:
    """The SDK's own signer, given every parameter herald sent (URL query and form body together), computes
    herald's Signature: the canonical string-to-sign is the SDK's."""
    t = AliyunSmsTransport("sms", {"access_key_id": ALIYUN_ID, "access_key_secret": ALIYUN_SECRET,
                                   "sign_name": fake.sign_name, "template_code": "SMS_100001", "endpoint": fake.url})
    assert t.send(Envelope(notification_id="n1", attempt_key="n1:0:1", channel="sms", to="13800138000", body="",
                           params={"template_param": PARAM})).ok
    raw = fake.raw[-1]
    signed = {**{k: v for k, v in raw["query"].items() if k != "Signature"}, **raw["form"]}
    assert AliyunUtils.get_rpcsignature(signed, "POST", ALIYUN_SECRET) == raw["query"]["Signature"]
    assert sign(signed, ALIYUN_SECRET, "POST") == raw["query"]["Signature"]


def test_herald_places_parameters_as_the_sdks_rpc_client(fake: FakeAliyunSms) -> None:
    """Common parameters and Signature in the URL query, as the SDK's do_rpcrequest puts them; the action's own
    parameters in the signed form body (the SDK's place for body parameters), so no candidate data is in a URL."""
    sdk_client(fake).send_sms(dysms.SendSmsRequest(phone_numbers="13800138000", sign_name=fake.sign_name,
                                                   template_code="SMS_100002"))
    sdk_query = set(fake.raw[-1]["query"])
    t = AliyunSmsTransport("sms", {"access_key_id": ALIYUN_ID, "access_key_secret": ALIYUN_SECRET,
                                   "sign_name": fake.sign_name, "template_code": "SMS_100001", "endpoint": fake.url})
    assert t.send(Envelope(notification_id="n1", attempt_key="n1:0:2", channel="sms", to="13900139000", body="",
                           params={"template_param": PARAM})).ok
    herald = fake.raw[-1]
    common = {"AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce", "SignatureVersion",
              "Timestamp", "Version", "Signature"}
    assert common <= sdk_query and common <= set(herald["query"])
    assert set(herald["query"]) - common <= {"RegionId"}
    assert set(herald["form"]) == {"PhoneNumbers", "SignName", "TemplateCode", "TemplateParam", "OutId"}
    assert json.loads(herald["form"]["TemplateParam"]) == PARAM


# -- DingTalk robot ---------------------------------------------------------------------------------------

ROBOT_TOKEN, ROBOT_SECRET = "tok-fake-0123456789", "SECfake0123456789abcdef"


def test_fake_robot_accepts_dingtalkchatbot(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeRobot(access_token=ROBOT_TOKEN, secret=ROBOT_SECRET) as robot:
        bot = DingtalkChatbot(f"{robot.url}/robot/send?access_token={ROBOT_TOKEN}", secret=ROBOT_SECRET)
        answer = bot.send_markdown(title="herald: 1 alert", text="#### herald\n- **late**: x", at_mobiles=["13800000000"])
    assert answer == {"errcode": 0, "errmsg": "ok"}
    [body] = robot.received
    assert body["msgtype"] == "markdown" and body["at"]["atMobiles"] == ["13800000000"]


def test_herald_robot_request_matches_dingtalkchatbots() -> None:
    """Same signature and URL encoding of it (DingtalkChatbot: quote_plus of the base64), same body shape."""
    with FakeRobot(access_token=ROBOT_TOKEN, secret=ROBOT_SECRET) as robot:
        bot = DingtalkChatbot(f"{robot.url}/robot/send?access_token={ROBOT_TOKEN}", secret=ROBOT_SECRET)
        sdk_query = dict(parse_qsl(urlsplit(bot.webhook).query))
        t = DingTalkRobotTransport("hr", {"access_token": ROBOT_TOKEN, "secret": ROBOT_SECRET, "base_url": robot.url},
                                   limiter=LocalRateLimiter(19, 60.0))
        herald_url = t.signed_url(int(sdk_query["timestamp"]))
        assert dict(parse_qsl(urlsplit(herald_url).query)) == sdk_query
        assert urlsplit(herald_url).query == urlsplit(bot.webhook).query  # byte for byte, encoding included
        bot.send_markdown(title="候选人 张伟", text="## 张伟\n\n- 决定: reject", at_mobiles=["13800000000"])
        assert t.send(Envelope(notification_id="n", attempt_key="k", channel="hr", to="", subject="候选人 张伟",
                               body="## 张伟\n\n- 决定: reject", meta={"at_mobiles": ["13800000000"]})).ok
        sdk_body, herald_body = robot.received
    assert herald_body["msgtype"] == sdk_body["msgtype"] == "markdown"
    assert herald_body["markdown"]["title"] == sdk_body["markdown"]["title"]
    for body in (herald_body, sdk_body):  # both append the mention DingTalk needs in the text (a line apart)
        assert body["markdown"]["text"].rstrip().endswith("@13800000000")
        assert body["markdown"]["text"].startswith("## 张伟\n\n- 决定: reject\n")
    assert herald_body["at"]["atMobiles"] == sdk_body["at"]["atMobiles"]
