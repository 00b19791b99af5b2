"""Aliyun SMS transport (Dysmsapi 2017-05-25): signed SendSms, QuerySendDetails receipts, push parsers, param checks.

Provider facts this module relies on (checked with the search tool unless marked otherwise):

* RPC signature (help.aliyun.com "签名机制", SMS "HTTP协议及签名"): sort all parameters except Signature,
  percent-encode names and values as RFC 3986 with UTF-8 (A-Z a-z 0-9 - _ . ~ unescaped, space -> %20,
  '*' -> %2A), join ``k=v`` with '&'; StringToSign = METHOD + '&' + percentEncode('/') + '&' +
  percentEncode(canonical query); Signature = base64(HMAC-SHA1(AccessKeySecret + '&', StringToSign)).
  Verified against two published vectors (DescribeRegions with ``testsecret`` -> CT9X0VtwR86fNWSnsc6v8YGOjuE=,
  SendSms with ``testSecret`` -> zJDF+Lrzhj/ThnlvIToysFRq6t4=). GET and POST sign the same way except for
  METHOD. Requests are placed as the official SDK's RPC client places them (alibabacloud-tea-openapi
  ``do_rpcrequest``): common parameters and Signature in the URL query, the action's parameters in the
  form body (``application/x-www-form-urlencoded``), the signature over the union. (dysmsapi20170525 4.x
  declares SendSms's own parameters as query parameters; herald keeps them in the signed body, the SDK's
  place for body parameters, so candidate data never sits in a URL or in httpx's log line.
  tests/channels/test_sdk_oracle.py runs the SDK against the fake and checks herald's signature against it.)
* Common parameters: Format=JSON, Version=2017-05-25, AccessKeyId, SignatureMethod=HMAC-SHA1,
  Timestamp (UTC, ``YYYY-MM-DDThh:mm:ssZ``), SignatureVersion=1.0, SignatureNonce (unique), Action, RegionId.
* SendSms: PhoneNumbers (mainland: 11 digits without +86; international: country code + number, no '+'),
  SignName, TemplateCode, TemplateParam (a JSON string), OutId. Answer
  ``{"Code":"OK","Message":"OK","BizId":"..","RequestId":".."}``. Errors carry Code/Message/RequestId, with
  HTTP 200 for business errors and 4xx for request errors. OutId is echoed in receipts; Aliyun does NOT
  de-duplicate on it, so a retry after a lost answer can send twice (the attempt key still lets receipts
  be matched). OutId is truncated to 256 characters.
* Error codes (help.aliyun.com "API错误码" and the Alibaba Cloud SMS error list): isv.BUSINESS_LIMIT_CONTROL
  is the per-number flow control; its Message says which window tripped ("触发分钟级流控Permits:1",
  "触发小时级流控", "触发天级流控Permits:10"). Decision: minute -> RECOVERABLE after 60 s, hour -> after 3600 s,
  day -> PERMANENT (waiting until tomorrow defeats a timely result; the dispatcher moves to the next channel),
  unknown window -> RECOVERABLE after 60 s. isv.DAY_LIMIT_CONTROL / isv.MONTH_LIMIT_CONTROL are the
  account-wide caps set in the console: PERMANENT. isp.RAM_PERMISSION_DENY: PERMANENT.
  InvalidTimeStamp.Expired (the RPC signature docs: a request's Timestamp is valid for 31 minutes): the
  local clock is wrong and every message will fail until it is fixed -> PERMANENT.
  SignatureNonceUsed: each request gets a fresh nonce, so a plain retry fixes it -> RECOVERABLE.
  Throttling*, isp.SYSTEM_ERROR, isp.GATEWAY_ERROR, ServiceUnavailable, HTTP 5xx, timeouts: RECOVERABLE.
  Everything else known, and anything unknown: PERMANENT.
* QuerySendDetails (PhoneNumber, BizId, SendDate yyyyMMdd within 30 days, PageSize 1..50, CurrentPage) answers
  ``SmsSendDetailDTOs.SmsSendDetailDTO[]`` with SendStatus 1 waiting / 2 failed (ErrCode) / 3 delivered,
  SendDate and ReceiveDate as ``YYYY-MM-DD hh:mm:ss`` Beijing time.
* SmsReport push: a JSON array of {phone_number, send_time, report_time, success, err_code, err_msg, sms_size,
  biz_id, out_id}; SmsUp push: a JSON array of {phone_number, send_time, content, sign_name (optional),
  dest_code, sequence_id}. The receiver must answer HTTP 200 with ``{"code":0,"msg":"接收成功"}`` (Aliyun checks
  only that code is a number; non-200 or a timeout makes it retry after 1, 5, 10 minutes). ``PUSH_ACK`` is
  that body.
* TemplateParam variables: a third-party validator encoding Aliyun's notification-variable rules caps
  ``others`` and ``other_number2`` at 35 characters and forbids URLs, QQ/WeChat ids and phone numbers in
  free-text variables; Aliyun's docs forbid 【】 in template text and empty variable values. The official
  per-attribute table itself was not found by the search tool, so ``check_sms_params`` applies the 35-character
  cap to every variable (the attribute a template registered is unknown to herald).

* SendSms is not idempotent ("SendSms接口是非幂等的"; Aliyun's SMS FAQ advises checking the send record with
  QuerySendDetails before retrying a call that timed out). So a send whose envelope lists earlier attempts that
  got no answer (``meta["unanswered"]``, filled by the dispatcher from attempts ending in an ambiguous code: a
  timeout, a broken connection after the request left, a crash) first asks QuerySendDetails, by phone number and
  the Beijing send date (and the day after), page by page, for a row whose ``OutId`` is that attempt's key. Found:
  that attempt went out, the send answers ACCEPTED with provider_id ``"out=<OutId>:<phone>:<yyyymmdd>"`` (rows carry
  no BizId) and sends nothing. Not found: resend. Lookup failed: RECOVERABLE, nothing sent. An attempt younger
  than ``LOOKUP_SETTLE`` seconds is not judged yet (RECOVERABLE until then).

provider_id is ``"<BizId>:<phone>:<yyyymmdd>"``: QuerySendDetails needs the phone number and the send date
(Beijing) besides the BizId. ``parse_sms_report`` builds the same id from a push (biz_id, phone_number and the
date of send_time), and also gives ``detail["out_id"]`` (= the envelope's attempt_key) and
``detail["biz_id"]`` for matching when a send crossed midnight.

The module is longer than most because it owns everything Aliyun-specific in one place: signer, error table,
transport, the two push parsers and the TemplateParam checks used by ``herald validate``.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import time
import uuid
from functools import partial
from typing import Any
from collections.abc import Callable, Iterable, Mapping, Sequence
from urllib.parse import quote

import httpx

from engine.channels.signing import Secret, SettingsReader, http_client, redact, unanswered
from engine.channels.capabilities import CAPABILITIES
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope, Receipt, SendResult

log = logging.getLogger(__name__)

DEFAULT_ENDPOINT = "https://dysmsapi.aliyuncs.com"
API_VERSION = "2017-05-25"
BEIJING = dt.timezone(dt.timedelta(hours=8))
MAX_OUT_ID = 256
MAX_VARIABLE_LENGTH = 35
PUSH_ACK: dict[str, Any] = {"code": 0, "msg": "接收成功"}
OUT_ID_PREFIX = "out="  # provider_id of a send found by its OutId (QuerySendDetails rows carry no BizId)
LOOKUP_SETTLE = 30.0    # seconds after an unanswered SendSms before "no record" is believed
LOOKUP_PAGES = 10       # pages of 50 rows per phone and day searched for an OutId

SETTINGS: dict[str, tuple[bool, bool, str]] = {
    "access_key_id": (True, False, "AccessKey ID of a RAM user allowed to send SMS (AliyunDysmsFullAccess)"),
    "access_key_secret": (True, True, "AccessKey secret of that RAM user"),
    "sign_name": (True, False, "approved SMS signature (签名), shown as 【...】"),
    "template_code": (False, False, "default approved TemplateCode; an envelope's params['template_code'] wins"),
    "endpoint": (False, False, f"API endpoint, default {DEFAULT_ENDPOINT}"),
    "region_id": (False, False, "RegionId, default cn-hangzhou"),
    "push_token": (False, True, "secret part of the SmsReport/SmsUp push URLs (engine/daemon/push.py); unset: no push"),
    "timeout": (False, False, "HTTP timeout in seconds, default 10"),
    "poll_interval": (False, False, "how often the daemon asks QuerySendDetails for receipts (engine/daemon/receipts.py)"),
}

# Code -> (status, retry_after seconds, explanation). isv.BUSINESS_LIMIT_CONTROL is refined by classify_code.
CODES: dict[str, tuple[str, float | None, str]] = {
    "OK": (ACCEPTED, None, "accepted"),
    "isv.BUSINESS_LIMIT_CONTROL": (RECOVERABLE, 60.0, "per-number flow control"),
    "BUSINESS_LIMIT_CONTROL_MINUTE": (RECOVERABLE, 60.0, "per-number flow control: minute window"),
    "isv.BUSINESS_LIMIT_HOUR": (RECOVERABLE, 3600.0, "per-number flow control: hour window"),
    "isv.BUSINESS_LIMIT_DAY": (PERMANENT, None, "per-number flow control: daily limit reached"),
    "isv.DAY_LIMIT_CONTROL": (PERMANENT, None, "the account's daily sending cap (console setting) is reached"),
    "isv.MONTH_LIMIT_CONTROL": (PERMANENT, None, "the account's monthly sending cap (console setting) is reached"),
    "Throttling": (RECOVERABLE, 1.0, "API throttled"),
    "Throttling.User": (RECOVERABLE, 1.0, "API throttled for this account"),
    "Throttling.Api": (RECOVERABLE, 1.0, "API throttled"),
    "ServiceUnavailable": (RECOVERABLE, 5.0, "service unavailable"),
    "InternalError": (RECOVERABLE, 5.0, "Aliyun internal error"),
    "isp.SYSTEM_ERROR": (RECOVERABLE, 5.0, "Aliyun system error"),
    "isp.GATEWAY_ERROR": (RECOVERABLE, 5.0, "Aliyun gateway error"),
    "isp.UNKNOWN": (RECOVERABLE, 5.0, "Aliyun unknown error"),
    "SignatureNonceUsed": (RECOVERABLE, 1.0, "signature nonce reused; a new request gets a new one"),
    "InvalidTimeStamp.Expired": (PERMANENT, None, "request timestamp rejected: this machine's clock is more than "
                                                  "31 minutes off; fix NTP"),
    "SignatureDoesNotMatch": (PERMANENT, None, "signature rejected: access_key_secret is wrong"),
    "IncompleteSignature": (PERMANENT, None, "signature rejected"),
    "InvalidAccessKeyId.NotFound": (PERMANENT, None, "access_key_id does not exist"),
    "InvalidAccessKeyId.Inactive": (PERMANENT, None, "access_key_id is disabled"),
    "isp.RAM_PERMISSION_DENY": (PERMANENT, None, "the RAM user may not send SMS (grant AliyunDysmsFullAccess)"),
    "Forbidden.RAM": (PERMANENT, None, "the RAM user may not call this API"),
    "isv.ACCOUNT_NOT_EXISTS": (PERMANENT, None, "the Aliyun account does not exist"),
    "isv.ACCOUNT_ABNORMAL": (PERMANENT, None, "the Aliyun account is abnormal"),
    "isv.PRODUCT_UN_SUBSCRIPT": (PERMANENT, None, "SMS service is not activated for this account"),
    "isv.PRODUCT_UNSUBSCRIBE": (PERMANENT, None, "SMS service is not activated for this account"),
    "isv.OUT_OF_SERVICE": (PERMANENT, None, "account suspended: balance is not enough"),
    "isv.AMOUNT_NOT_ENOUGH": (PERMANENT, None, "account balance is not enough"),
    "isv.DENY_IP_RANGE": (PERMANENT, None, "the sending IP is outside mainland China"),
    "isv.MOBILE_NUMBER_ILLEGAL": (PERMANENT, None, "the phone number is not valid"),
    "isv.MOBILE_COUNT_OVER_LIMIT": (PERMANENT, None, "too many phone numbers in one request"),
    "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": (PERMANENT, None, "an international template cannot reach a mainland number"),
    "isv.TEMPLATE_MISSING_PARAMETERS": (PERMANENT, None, "TemplateParam lacks a variable the template declares"),
    "isv.INVALID_PARAMETERS": (PERMANENT, None, "invalid parameters"),
    "isv.INVALID_JSON_PARAM": (PERMANENT, None, "TemplateParam is not valid JSON"),
    "isv.PARAM_LENGTH_LIMIT": (PERMANENT, None, "a template variable is too long"),
    "isv.PARAM_NOT_SUPPORT_URL": (PERMANENT, None, "template variables may not contain URLs"),
    "isv.SMS_TEMPLATE_ILLEGAL": (PERMANENT, None, "the template code is unknown or not approved"),
    "isv.SMS_SIGNATURE_ILLEGAL": (PERMANENT, None, "the signature (sign_name) is unknown or not approved"),
    "isv.SMS_SIGN_ILLEGAL": (PERMANENT, None, "the signature may not be used"),
    "isv.SIGN_STATE_ILLEGAL": (PERMANENT, None, "the signature is in an unusable state"),
    "isv.SMS_SIGNATURE_SCENE_ILLEGAL": (PERMANENT, None, "signature and template types do not match"),
    "isv.SMS_CONTENT_ILLEGAL": (PERMANENT, None, "the message content is forbidden"),
    "isv.BLACK_KEY_CONTROL_LIMIT": (PERMANENT, None, "the content hits a blacklisted keyword"),
    "isv.EXTEND_CODE_ERROR": (PERMANENT, None, "extension code misuse"),
    "MissingPhoneNumbers": (PERMANENT, None, "PhoneNumbers is missing"),
    "MissingSignName": (PERMANENT, None, "SignName is missing"),
    "MissingTemplateCode": (PERMANENT, None, "TemplateCode is missing"),
}
_LIMIT_WINDOWS = (("分钟", "minute", RECOVERABLE, 60.0), ("小时", "hour", RECOVERABLE, 3600.0),
                  ("天", "day", PERMANENT, None))

# -- signing ----------------------------------------------------------------------------------------


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as Aliyun's RPC signature wants it: UTF-8, only A-Z a-z 0-9 - _ . ~ left as is."""
    return quote(str(value), safe="~")


def canonical_query(params: Mapping[str, Any]) -> str:
    """The sorted, encoded ``k=v&k=v`` string the signature covers (Signature itself excluded)."""
    return "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()) if k != "Signature")


def string_to_sign(params: Mapping[str, Any], method: str = "GET") -> str:
    return f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical_query(params))}"


def sign(params: Mapping[str, Any], secret: str, method: str = "GET") -> str:
    """base64(HMAC-SHA1(secret + '&', StringToSign))."""
    digest = hmac.new((secret + "&").encode(), string_to_sign(params, method).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def classify_code(code: str, message: str = "") -> tuple[str, float | None, str]:
    """(status, retry_after, explanation) for an Aliyun answer Code; unknown codes are permanent."""
    if code == "isv.BUSINESS_LIMIT_CONTROL":
        text = message or ""
        for zh, en, status, retry in _LIMIT_WINDOWS:
            if zh in text or en in text.lower():
                return status, retry, f"per-number flow control: {en} limit reached"
    if code in CODES:
        return CODES[code]
    if code.startswith("Throttling"):
        return RECOVERABLE, 1.0, "API throttled"
    return PERMANENT, None, "Aliyun refused the message"


# -- addresses and ids ------------------------------------------------------------------------------


def normalize_phone(raw: str) -> str | None:
    """Aliyun's PhoneNumbers form: mainland numbers as 11 digits without +86, others as country code + number."""
    s = re.sub(r"[\s\-().]", "", raw or "")
    mainland = False
    if s.startswith(("+86", "0086")):
        s, mainland = s[3:] if s.startswith("+") else s[4:], True
    elif s.startswith("+"):
        s = s[1:]
    elif s.startswith("00"):
        s = s[2:]
    if not s.isdigit():
        return None
    if mainland or (len(s) == 13 and s.startswith("861")):
        s = s[2:] if len(s) == 13 else s
        return s if len(s) == 11 and s.startswith("1") else None
    if len(s) == 11 and s.startswith("1"):
        return s
    return s if 7 <= len(s) <= 15 else None


def make_provider_id(biz_id: str, phone: str, send_date: str) -> str:
    return f"{biz_id}:{phone}:{send_date}"


def parse_provider_id(provider_id: str) -> tuple[str, str, str] | None:
    """Split ``BizId:phone:yyyymmdd``; None when the id is not of this transport."""
    parts = provider_id.rsplit(":", 2)
    if len(parts) != 3 or not all(parts) or not (len(parts[2]) == 8 and parts[2].isdigit()):
        return None
    return parts[0], parts[1], parts[2]


def _beijing_iso(text: Any) -> str | None:
    """'2017-01-01 00:00:00' (Beijing time) or '20170101000000' -> ISO 8601 with +08:00."""
    if not text:
        return None
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S"):
        try:
            return dt.datetime.strptime(str(text), fmt).replace(tzinfo=BEIJING).isoformat()
        except ValueError:
            continue
    return str(text)


# -- pushes -----------------------------------------------------------------------------------------


def parse_sms_report(body: Sequence[Mapping[str, Any]]) -> list[Receipt]:
    """SmsReport push (a JSON array) -> delivered / undelivered receipts keyed like this transport's provider_id."""
    receipts: list[Receipt] = []
    for item in body if isinstance(body, (list, tuple)) else []:
        if not isinstance(item, Mapping) or not item.get("biz_id"):
            continue
        biz, phone = str(item["biz_id"]), str(item.get("phone_number") or "")
        sent = _beijing_iso(item.get("send_time"))
        day = sent[:10].replace("-", "") if sent and len(sent) >= 10 else ""
        success = item.get("success")
        ok = success is True or str(success).lower() == "true"
        detail = {"biz_id": biz, "out_id": item.get("out_id"), "phone": phone, "err_code": item.get("err_code"),
                  "err_msg": item.get("err_msg"), "sms_size": item.get("sms_size"), "send_time": sent}
        pid = make_provider_id(biz, phone, day) if phone and day else biz
        receipts.append(Receipt(pid, "delivered" if ok else "undelivered",
                                at=_beijing_iso(item.get("report_time")), detail=detail))
    return receipts


def parse_sms_up(body: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """SmsUp push (a JSON array) -> candidate replies: {phone, content, at, sign_name, dest_code, sequence_id}."""
    replies: list[dict[str, Any]] = []
    for item in body if isinstance(body, (list, tuple)) else []:
        if not isinstance(item, Mapping) or not item.get("phone_number"):
            continue
        replies.append({
            "phone": normalize_phone(str(item["phone_number"])) or str(item["phone_number"]),
            "content": str(item.get("content") or ""),
            "at": _beijing_iso(item.get("send_time")),
            "sign_name": item.get("sign_name"),
            "dest_code": item.get("dest_code"),
            "sequence_id": item.get("sequence_id"),
        })
    return replies


# -- validation for `herald validate` ---------------------------------------------------------------
_NAME = re.compile(r"^[A-Za-z0-9_]+$")
_URL = re.compile(r"https?://|www\.|\b[a-z0-9-]+\.(?:com|cn|net|org|io|cc|top|xyz|me)\b|\b\d{1,3}(?:\.\d{1,3}){3}\b",
                  re.IGNORECASE)
_QQ_WX = re.compile(r"(?:QQ|微信|wechat|weixin|vx)\D{0,4}\d{5,}", re.IGNORECASE)
_MOBILE = re.compile(r"(?:(?<!\d)|(?<=86))1[3-9]\d{9}(?!\d)")  # also +86 13800000000


def check_sms_params(params: Mapping[str, Any]) -> list[str]:
    """Problems with TemplateParam variables (names, length <= 35, no URL/phone/QQ/WeChat, no 【】); [] if fine."""
    problems: list[str] = []
    for name, value in params.items():
        if not isinstance(name, str) or not _NAME.match(name) or name.isdigit():
            problems.append(f"SMS variable name {name!r} must be letters, digits and '_' (not only digits)")
            continue
        if isinstance(value, (dict, list, tuple, set)) or value is None:
            problems.append(f"SMS variable {name!r} must be a plain value, not {type(value).__name__}")
            continue
        text = str(value)
        if not text.strip():
            problems.append(f"SMS variable {name!r} is empty; Aliyun rejects empty variables")
        if len(text) > MAX_VARIABLE_LENGTH:
            problems.append(f"SMS variable {name!r} is {len(text)} characters; Aliyun allows {MAX_VARIABLE_LENGTH}")
        if _URL.search(text):
            problems.append(f"SMS variable {name!r} contains a link; put links in the approved template text")
        if _MOBILE.search(text):
            problems.append(f"SMS variable {name!r} contains a mobile number; not allowed in a variable")
        if _QQ_WX.search(text):
            problems.append(f"SMS variable {name!r} contains a QQ/WeChat id; not allowed in SMS")
        if "【" in text or "】" in text:
            problems.append(f"SMS variable {name!r} contains 【】, reserved for the signature")
    return problems


# -- the transport ----------------------------------------------------------------------------------


class AliyunSmsTransport:
    """Sends one template SMS per envelope through Dysmsapi SendSms; thread-safe (no shared mutable state)."""

    name = "aliyun-sms"
    capabilities = CAPABILITIES["aliyun-sms"]
    needs_unanswered = True  # SendSms is not idempotent: earlier unanswered attempts are looked up first

    def __init__(
        self,
        channel: str,
        settings: Mapping[str, Any],
        *,
        clock: Callable[[], float] = time.time,
        client: httpx.Client | None = None,
    ) -> None:
        self.channel = channel
        r = SettingsReader(self.name, channel, settings, SETTINGS)
        self.access_key_id = r.text("access_key_id") or ""
        self._secret = r.secret("access_key_secret") or Secret("")  # required: raise_if_problems refuses it missing
        self.sign_name = r.text("sign_name") or ""
        self.template_code = r.text("template_code")
        self.endpoint = (r.url("endpoint", DEFAULT_ENDPOINT, query=False) or DEFAULT_ENDPOINT).rstrip("/")
        self.region_id = r.text("region_id") or "cn-hangzhou"
        self.timeout = r.number("timeout", 10.0, 0.001)
        r.raise_if_problems()
        self._clock = clock
        self._client = client or http_client(self.timeout)

    def __repr__(self) -> str:
        return f"<AliyunSmsTransport channel={self.channel!r} access_key_id={self.access_key_id!r} sign_name={self.sign_name!r}>"

    def close(self) -> None:
        self._client.close()

    def beijing_date(self, offset_days: int = 0, when: float | None = None) -> str:
        at = self._clock() if when is None else when
        return (dt.datetime.fromtimestamp(at, BEIJING) + dt.timedelta(days=offset_days)).strftime("%Y%m%d")

    def _call(self, action: str, params: Mapping[str, Any]) -> tuple[dict | None, SendResult | None]:
        """Sign and POST one RPC call; (answer, None) when Code is OK, else (answer or None, failure)."""
        common = {
            "AccessKeyId": self.access_key_id, "Action": action, "Format": "JSON", "RegionId": self.region_id,
            "SignatureMethod": "HMAC-SHA1", "SignatureNonce": uuid.uuid4().hex, "SignatureVersion": "1.0",
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock())), "Version": API_VERSION,
        }
        form = {k: v for k, v in params.items() if v is not None}
        # placed as the official SDK's RPC client does (tea-openapi do_rpcrequest): common parameters and the
        # Signature in the URL query, the action's parameters in the form body, the signature over both
        signature = sign({**common, **form}, self._secret.reveal(), "POST")
        where = f"Aliyun {action}"
        try:
            resp = self._client.post(f"{self.endpoint}/?{canonical_query(common)}&Signature={percent_encode(signature)}",
                                     content=canonical_query(form),
                                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        except httpx.HTTPError as e:
            return None, unanswered(where, e, self.timeout, partial(redact, secrets=[self._secret]))
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict) or "Code" not in body:
            if resp.status_code >= 500 or resp.status_code == 429:
                return None, SendResult(RECOVERABLE, error=f"{where}: HTTP {resp.status_code}", code=f"http-{resp.status_code}")
            if resp.status_code >= 400:
                return None, SendResult(PERMANENT, error=f"{where}: HTTP {resp.status_code}", code=f"http-{resp.status_code}")
            return None, SendResult(RECOVERABLE, error=f"{where}: unexpected answer", code="bad-answer")
        code, message = str(body.get("Code")), str(body.get("Message") or "")
        if code == "OK":
            return body, None
        status, retry, note = classify_code(code, message)
        if status == ACCEPTED:  # pragma: no cover - only "OK" maps to accepted
            status = PERMANENT
        if resp.status_code >= 500 and status == PERMANENT and code not in CODES:
            status, retry = RECOVERABLE, 5.0
        text = f"{where}: {note} ({code}: {message})" if message else f"{where}: {note} ({code})"
        return body, SendResult(status, error=redact(text, [self._secret]), code=code, retry_after=retry)

    # -- Transport -------------------------------------------------------------------------------
    def send(self, envelope: Envelope) -> SendResult:
        phone = normalize_phone(envelope.to)
        if phone is None:
            return SendResult(PERMANENT, error="the address is not a phone number Aliyun SMS can reach", code="bad-address")
        template = str(envelope.params.get("template_code") or self.template_code or "").strip()
        if not template:
            return SendResult(PERMANENT, error="no TemplateCode: set template_code on the channel or the SMS block",
                              code="no-template")
        raw_param = envelope.params.get("template_param")
        if isinstance(raw_param, str):
            try:
                raw_param = json.loads(raw_param)
            except ValueError:
                raw_param = None
            if not isinstance(raw_param, dict):
                return SendResult(PERMANENT, error="template_param must be a mapping of variables", code="bad-param")
        if raw_param is not None and not isinstance(raw_param, Mapping):
            return SendResult(PERMANENT, error="template_param must be a mapping of variables", code="bad-param")
        params: dict[str, Any] = {"PhoneNumbers": phone, "SignName": self.sign_name, "TemplateCode": template,
                                  "OutId": (envelope.attempt_key or "")[:MAX_OUT_ID] or None}
        if raw_param:
            params["TemplateParam"] = json.dumps({str(k): _scalar(v) for k, v in raw_param.items()},
                                                 ensure_ascii=False, separators=(",", ":"))
        earlier = self._find_earlier(phone, envelope.meta.get("unanswered") or ())
        if earlier is not None:
            return earlier
        send_date = self.beijing_date()
        body, failure = self._call("SendSms", params)
        if failure is not None:
            return failure
        biz = str((body or {}).get("BizId") or "")
        if not biz:
            return SendResult(RECOVERABLE, error="Aliyun SendSms answered OK without a BizId", code="bad-answer")
        return SendResult(ACCEPTED, provider_id=make_provider_id(biz, phone, send_date))

    def _find_earlier(self, phone: str, unanswered: Sequence[Mapping[str, Any]]) -> SendResult | None:
        """ACCEPTED when Aliyun has a record of an earlier unanswered attempt (by OutId); RECOVERABLE when that
        cannot be known yet; None when it has no record of any (send now)."""
        for item in unanswered:
            key = str(item.get("attempt_key") or "")[:MAX_OUT_ID]
            if not key:
                continue
            age = float(item.get("age") or 0.0)
            if age < LOOKUP_SETTLE:
                return SendResult(RECOVERABLE, error=f"an earlier SendSms got no answer {age:.0f} s ago; looking it "
                                                     f"up before resending", code="lookup-pending",
                                  retry_after=LOOKUP_SETTLE - age)
            sent = _epoch(item.get("sent_at"))
            days = _same_and_next(self.beijing_date(when=sent)) if sent is not None else [self.beijing_date()]
            for day in dict.fromkeys([*days, self.beijing_date()]):
                found, failure = self._row_with_out_id(phone, day, key)
                if failure is not None:
                    return SendResult(RECOVERABLE, error=f"an earlier SendSms got no answer and could not be looked "
                                                         f"up, so nothing was resent: {failure.error}",
                                      code=failure.code, retry_after=failure.retry_after)
                if found:
                    log.info("channel %r: attempt %s reached Aliyun earlier; not resent", self.channel, key)
                    return SendResult(ACCEPTED, provider_id=make_provider_id(OUT_ID_PREFIX + key, phone, day))
        return None

    def _row_with_out_id(self, phone: str, day: str, out_id: str, biz: str | None = None
                         ) -> tuple[Mapping[str, Any] | None, SendResult | None]:
        """The QuerySendDetails row of (phone, day) whose OutId is out_id (and BizId, when given), page by page."""
        for page in range(1, LOOKUP_PAGES + 1):
            body, failure = self._call("QuerySendDetails", {"PhoneNumber": phone, "SendDate": day, "BizId": biz,
                                                            "PageSize": 50, "CurrentPage": page})
            if failure is not None:
                return None, failure
            rows = ((body or {}).get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
            for row in rows:
                if isinstance(row, Mapping) and str(row.get("OutId") or "") == out_id:
                    return row, None
            if len(rows) < 50:
                break
        return None, None

    def check(self) -> list[str]:
        """A signed, read-only QuerySendDetails call: proves keys, signature, clock and reachability; sends nothing."""
        problems: list[str] = []
        _, failure = self._call("QuerySendDetails", {"PhoneNumber": "13000000000", "SendDate": self.beijing_date(),
                                                     "PageSize": 1, "CurrentPage": 1})
        if failure is not None:
            problems.append(f"channel {self.channel!r}: {failure.error}")
        return problems

    def poll_receipts(self, provider_ids: Sequence[str]) -> list[Receipt]:
        receipts: list[Receipt] = []
        for pid in provider_ids:
            parsed = parse_provider_id(pid)
            if parsed is None:
                log.warning("channel %r: ignoring provider_id %r, not '<BizId>:<phone>:<yyyymmdd>'", self.channel, pid)
                continue
            biz, phone, day = parsed
            if biz.startswith(OUT_ID_PREFIX):  # found by OutId after a timeout: no BizId to ask by
                for query_day in _same_and_next(day):
                    row, failure = self._row_with_out_id(phone, query_day, biz[len(OUT_ID_PREFIX):])
                    if failure is not None:
                        log.warning("channel %r: no receipt for %s: %s", self.channel, pid, failure.error)
                        break
                    if row is not None:
                        receipt = _receipt_from_row(pid, row)
                        if receipt is not None:
                            receipts.append(receipt)
                        break
                continue
            for query_day in _same_and_next(day):
                body, failure = self._call("QuerySendDetails", {"PhoneNumber": phone, "BizId": biz, "SendDate": query_day,
                                                                "PageSize": 10, "CurrentPage": 1})
                if failure is not None:
                    log.warning("channel %r: no receipt for %s: %s", self.channel, biz, failure.error)
                    break
                rows = ((body or {}).get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
                if rows:
                    receipt = _receipt_from_row(pid, rows[0])
                    if receipt is not None:
                        receipts.append(receipt)
                    break
        return receipts


def _same_and_next(day: str) -> Iterable[str]:
    yield day
    try:
        yield (dt.datetime.strptime(day, "%Y%m%d") + dt.timedelta(days=1)).strftime("%Y%m%d")
    except ValueError:
        return


def _epoch(value: Any) -> float | None:
    """Seconds since the epoch from an ISO 8601 string or a number; None when neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        when = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _receipt_from_row(pid: str, row: Mapping[str, Any]) -> Receipt | None:
    status = str(row.get("SendStatus"))
    detail = {"err_code": row.get("ErrCode"), "out_id": row.get("OutId"), "send_date": _beijing_iso(row.get("SendDate"))}
    if status == "3":
        return Receipt(pid, "delivered", at=_beijing_iso(row.get("ReceiveDate")), detail=detail)
    if status == "2":
        return Receipt(pid, "undelivered", at=_beijing_iso(row.get("ReceiveDate")), detail=detail)
    return None  # 1: waiting for the carrier's report


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)
