"""Aliyun SMS push endpoints: the path token per channel, 404 without a hint, idempotent reports, undelivered, replies."""
from __future__ import annotations

import httpx
import pytest

from daemon_support import make_deployment, outcome, post, wait_for
from engine.channels.aliyun_sms import make_provider_id
from engine.channels.base import ACCEPTED, SendResult
from engine.config.settings import load_config
from engine.daemon.push import MAX_PUSH_BODY, push_channel

TOKEN_1 = "push-one-0123456789abcdef"
TOKEN_2 = "push-two-0123456789abcdef"
HEADER = ("{# herald: decisions=[reject, pass, offer, hold] sms_code=SMS_100001 "
          "sms_params={name: candidate.name, job: position.title} #}")
ACK = {"code": 0, "msg": "接收成功"}


def aliyun(name: str, token: str | None) -> str:
    push = f', push_token: "{token}"' if token else ""
    return (f'  {name}: {{transport: aliyun-sms, access_key_id: LTAI-x, access_key_secret: "${{T_SMS_SECRET}}", '
            f'sign_name: 面试通知, endpoint: "http://127.0.0.1:9"{push}}}')


class SmsLike:
    """Stands in for the aliyun-sms transport: records envelopes, answers BizId-style provider ids."""

    name = "aliyun-sms"

    def __init__(self):
        self.sent: list = []

    def send(self, envelope):
        self.sent.append(envelope)
        return SendResult(ACCEPTED, provider_id=make_provider_id(f"BIZ{len(self.sent)}", "13800000000", "20261125"))

    def check(self):
        return []

    def poll_receipts(self, provider_ids):
        return []


@pytest.fixture
def sms_daemon(tmp_path, daemons, monkeypatch):
    monkeypatch.setenv("T_SMS_SECRET", "sms-secret-value")
    monkeypatch.setenv("T_PUSH_1", TOKEN_1)
    rules = ("version: 1\nrules:\n  - id: r\n    match: {decision: reject}\n    template: any/generic\n"
             "    channels: [sms, email]\n    locale: en\n    timezone: UTC\n")
    chans = "\n".join([aliyun("sms", "${T_PUSH_1}"), aliyun("sms2", TOKEN_2), aliyun("sms3", None),
                       aliyun("short", "short-token"), "  email: {transport: outbox}"])
    root = make_deployment(tmp_path, rules=rules, channels=chans)
    tpl = root / "templates" / "any" / "generic.j2"
    tpl.write_text("\n".join([HEADER, *tpl.read_text().splitlines()[1:]]) + "\n")
    d = daemons(root)
    sms = SmsLike()
    d.runtime.state.transports.put("sms", sms)
    return d, sms


def notification(d, nid: str) -> dict:
    return httpx.get(d.url + "/v1/notifications/" + nid.replace("#", "%23"), timeout=10).json()


def kinds(d, nid: str) -> list[str]:
    return [e["kind"] for e in notification(d, nid)["events"]]


def report(biz: str, success: bool = True, out_id: str | None = None) -> list[dict]:
    item = {"phone_number": "13800000000", "send_time": "2026-11-25 10:00:00", "report_time": "2026-11-25 10:00:07",
            "success": success, "err_code": "DELIVERED" if success else "MK:0005", "err_msg": "状态报告",
            "sms_size": "1", "biz_id": biz}
    if out_id:
        item["out_id"] = out_id
    return [item]


def push(d, token: str, kind: str, body) -> httpx.Response:
    url = f"{d.url}/v1/push/aliyun-sms/{token}/{kind}"
    if isinstance(body, bytes):
        return httpx.post(url, content=body, timeout=10)
    return httpx.post(url, json=body, timeout=10)


def sent(d, oid: str, position: str = "Data Engineer") -> None:
    post(d.url, outcome(oid, position={"title": position}))
    wait_for(lambda: notification(d, f"{oid}#1")["state"] == "sent")


@pytest.mark.slow
def test_the_sms_envelope_carries_template_code_and_params(sms_daemon):
    d, sms = sms_daemon
    sent(d, "env-1")
    [env] = sms.sent
    assert dict(env.params) == {"template_code": "SMS_100001",
                                "template_param": {"name": "Ann", "job": "Data Engineer"}}


@pytest.mark.slow
def test_token_picks_the_channel_and_a_wrong_one_is_404(sms_daemon):
    d, _sms = sms_daemon
    sent(d, "tok-1")
    unknown = httpx.get(d.url + "/v1/push/aliyun-sms", timeout=10)
    for token in ("nope", "short-token", TOKEN_1 + "x", TOKEN_1.upper(), "%00"):
        for kind in ("report", "up"):
            r = push(d, token, kind, report("BIZ1"))
            assert r.status_code == 404 and r.json() == unknown.json()
    r = push(d, TOKEN_2, "report", report("BIZ1"))  # sms2's token: the attempt was on sms, so it is not sms2's
    assert r.status_code == 200 and r.json() == ACK
    assert notification(d, "tok-1#1")["state"] == "sent" and "delivered" not in kinds(d, "tok-1#1")
    channels = d.runtime.state.deployment.config.channels
    assert push_channel(channels, TOKEN_1) == "sms" and push_channel(channels, TOKEN_2) == "sms2"
    assert push_channel(channels, "short-token") is None and push_channel(channels, "") is None


@pytest.mark.slow
def test_reports_are_idempotent_and_matched_by_provider_id_or_out_id(sms_daemon):
    d, _sms = sms_daemon
    sent(d, "idem-1")
    sent(d, "idem-2")
    for _ in range(3):
        assert push(d, TOKEN_1, "report", report("BIZ1")).json() == ACK  # by BizId:phone:date
    assert notification(d, "idem-1#1")["state"] == "delivered" and kinds(d, "idem-1#1").count("delivered") == 1
    key = notification(d, "idem-2#1")["attempts"][0]["attempt_key"]
    wrong_date = report("BIZ2", out_id=key)
    wrong_date[0]["send_time"] = "2026-11-26 00:00:01"  # crossed midnight: only the out_id still matches
    assert push(d, TOKEN_1, "report", wrong_date).json() == ACK
    assert notification(d, "idem-2#1")["state"] == "delivered"
    assert push(d, TOKEN_1, "report", report("BIZ-unknown")).json() == ACK  # unknown: acknowledged, nothing stored


@pytest.mark.slow
def test_an_undelivered_report_moves_to_the_next_channel(sms_daemon):
    d, _sms = sms_daemon
    sent(d, "und-1")
    assert push(d, TOKEN_1, "report", report("BIZ1", success=False)).json() == ACK
    wait_for(lambda: notification(d, "und-1#1")["state"] == "delivered")
    n = notification(d, "und-1#1")
    assert n["channel"] == "email" and [a["channel"] for a in n["attempts"]] == ["sms", "email"]
    [und] = [e for e in n["events"] if e["kind"] == "undelivered"]
    assert und["detail"]["err_code"] == "MK:0005"


@pytest.mark.slow
def test_replies_are_attributed_by_phone_or_kept_for_hr(sms_daemon):
    d, _sms = sms_daemon
    sent(d, "up-1")
    body = [{"phone_number": "13800000000", "send_time": "2026-11-25 11:00:00", "content": "好的", "sign_name": "面试通知",
             "dest_code": "01", "sequence_id": 1},
            {"phone_number": "13911112222", "send_time": "2026-11-25 11:00:00", "content": "who is this?",
             "dest_code": "01", "sequence_id": 2}]
    assert push(d, TOKEN_1, "up", body).json() == ACK
    replies = {r.content: r for r in d.runtime.store.replies()}
    assert replies["好的"].notification_id == "up-1#1" and replies["好的"].channel == "sms"
    assert replies["who is this?"].notification_id is None
    assert "replied" in kinds(d, "up-1#1")


@pytest.mark.slow
def test_bad_bodies(sms_daemon):
    d, _sms = sms_daemon
    assert push(d, TOKEN_1, "report", b"{]").status_code == 400
    assert push(d, TOKEN_1, "up", {"not": "a list"}).status_code == 400
    assert push(d, TOKEN_1, "report", b"[" + b" " * MAX_PUSH_BODY + b"]").status_code == 413
    assert push(d, TOKEN_1, "report", []).json() == ACK


def test_a_short_push_token_is_warned_about(tmp_path, monkeypatch):
    monkeypatch.setenv("T_SMS_SECRET", "x-secret-value")
    (tmp_path / "herald.yaml").write_text("channels:\n" + aliyun("sms", "short-token") + "\n")
    _cfg, diags = load_config(tmp_path / "herald.yaml")
    [weak] = [d for d in diags if d.code == "weak-secret"]
    assert weak.line == 2 and "push_token" in weak.message and "short-token" not in weak.message
