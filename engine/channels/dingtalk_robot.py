"""The dingtalk-robot transport: markdown to a DingTalk custom group robot (HR alerts); reads errcode, since HTTP 200 says nothing.

Rate: "每个机器人每分钟最多发送20条。如果超过20条，会限流10分钟" (DingTalk custom robot docs, "消息发送频率限制";
the official DingtalkChatbot SDK paces itself below 20 a minute too). Past the limit the robot answers errcode 130101
("send too fast, exceed 20 times per minute") and takes nothing for 10 minutes. So every send first reserves a slot
in `ROBOT_LIMITER` (ROBOT_LIMIT sends per sliding minute per robot, shared by every transport of that robot in this
process: alerts of every kind, notifications, the transport rebuilt on reload); without a slot the send is not
made and answers RECOVERABLE (code "paced") with the wait as retry_after. A 130101 blocks the robot locally for
THROTTLE_PENALTY seconds, and retry_after says so, so no attempt is burnt against the penalty.
"""
from __future__ import annotations

import json
import time
from typing import Any
from collections.abc import Callable, Mapping
from urllib.parse import urlencode

import httpx

from engine.channels.capabilities import CAPABILITIES
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope, SendResult
from engine.channels.ratelimit import LocalRateLimiter, RateLimiter, limit_key
from engine.channels.signing import Secret, SettingsReader, dingtalk_sign, http_client, redact

SETTINGS: dict[str, tuple[bool, bool, str]] = {
    "access_token": (True, True, "the robot's access_token: only the value after 'access_token=' in its webhook URL"),
    "secret": (False, True, "the robot's signing secret (加签, starts with SEC); without it the robot must be "
                            "secured by keywords or an IP allow-list"),
    "base_url": (False, False, "API origin (default https://oapi.dingtalk.com)"),
    "timeout": (False, False, "seconds for connect, write and read (default 10)"),
    "verify": (False, False, "verify the TLS certificate (default true)"),
    "ca_file": (False, False, "PEM file of CA certificates to trust instead of the system store"),
}

DEFAULT_BASE_URL = "https://oapi.dingtalk.com"
THROTTLE_PENALTY = 600.0  # past 20 messages a minute a robot answers 130101 for 10 minutes
ROBOT_LIMIT = 19          # sends per sliding minute herald allows itself per robot: below DingTalk's 20
ROBOT_LIMITER: RateLimiter = LocalRateLimiter(ROBOT_LIMIT, 60.0)  # per process; a store-backed one spans replicas
TITLE_LIMIT = 64

# errcode -> (status, code for SendResult, what it means). DingTalk answers HTTP 200 with these in the body.
ERRCODES: dict[int, tuple[str, str, str]] = {
    310000: (PERMANENT, "config", "the robot's security settings refused the message "
                                  "(signature, timestamp, keyword or IP allow-list not matched)"),
    300001: (PERMANENT, "300001", "access_token does not exist"),
    300005: (PERMANENT, "300005", "access_token does not exist (robot of another organisation's group?)"),
    400101: (PERMANENT, "400101", "access_token or robot invalid"),
    400102: (PERMANENT, "400102", "robot stopped"),
    400105: (PERMANENT, "400105", "robot invalid or not allowed to send"),
    410100: (PERMANENT, "410100", "robot disabled"),
    130101: (RECOVERABLE, "130101", "send too fast: a robot takes at most 20 messages per minute, and none for "
                                    "10 minutes past that"),
    -1: (RECOVERABLE, "-1", "DingTalk system busy"),
}


def classify_errcode(errcode: int, errmsg: str = "") -> SendResult | None:
    """None when errcode is 0 (accepted); otherwise the failure it means. Unknown codes are permanent."""
    if errcode == 0:
        return None
    msg = " ".join(str(errmsg).split())[:300]
    if errcode == 130101 or "send too fast" in msg.lower():
        status, code, meaning = ERRCODES[130101]
        return SendResult(status, error=f"{meaning} (errcode {errcode}: {msg})", code=code,
                          retry_after=THROTTLE_PENALTY)
    if errcode in ERRCODES:
        status, code, meaning = ERRCODES[errcode]
        return SendResult(status, error=f"{meaning} (errcode {errcode}: {msg})", code=code)
    return SendResult(PERMANENT, error=f"DingTalk refused the message (errcode {errcode}: {msg})", code=str(errcode))


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return [str(value).strip()] if str(value).strip() else []
    if isinstance(value, (list, tuple, set, frozenset)):
        return [str(v).strip() for v in value if v is not None and str(v).strip()]
    raise ValueError("must be a string or a list of strings")


class DingTalkRobotTransport:
    """Posts markdown to one custom group robot; the envelope's `to` is not used (the robot's group is the address)."""

    name = "dingtalk-robot"
    capabilities = CAPABILITIES["dingtalk-robot"]
    rate_limit = (ROBOT_LIMIT, 60.0)  # per robot; build_transport shares it across replicas on PostgreSQL

    def __init__(self, channel: str, settings: Mapping[str, Any], *, limiter: RateLimiter | None = None):
        self.channel = channel
        self.limiter = limiter if limiter is not None else ROBOT_LIMITER
        r = SettingsReader(self.name, channel, settings, SETTINGS)
        self.access_token: Secret | None = r.secret("access_token")
        if self.access_token and ("access_token=" in self.access_token.reveal()
                                  or "://" in self.access_token.reveal()):
            r.fail("access_token", "looks like a whole webhook URL; give only the value after 'access_token='")
        self.secret: Secret | None = r.secret("secret")
        self.base_url = (r.url("base_url", DEFAULT_BASE_URL, query=False) or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = r.number("timeout", 10.0, 0.001)
        self.verify = r.flag("verify", True)
        self.ca_file = r.text("ca_file")
        r.raise_if_problems()
        assert self.access_token is not None
        self.limit_key = limit_key(self.name, self.access_token.reveal())  # one robot, however many channels name it
        self.clock: Callable[[], float] = time.time  # seconds; tests may replace it

    def __repr__(self) -> str:
        signed = ", secret=***" if self.secret else ""
        return f"DingTalkRobotTransport(channel={self.channel!r}, base_url={self.base_url!r}, access_token=***{signed})"

    # --- request ---------------------------------------------------------------------------------------

    def signed_url(self, timestamp_ms: int | None = None) -> str:
        """The robot/send URL with access_token and, when a secret is set, timestamp and URL-encoded sign."""
        assert self.access_token is not None
        query: dict[str, str] = {"access_token": self.access_token.reveal()}
        if self.secret:
            ts = int(self.clock() * 1000) if timestamp_ms is None else int(timestamp_ms)
            query["timestamp"] = str(ts)
            query["sign"] = dingtalk_sign(self.secret.reveal(), ts)  # urlencode quotes + / = as %2B %2F %3D
        return f"{self.base_url}/robot/send?{urlencode(query)}"

    @staticmethod
    def message(envelope: Envelope) -> dict[str, Any]:
        """The JSON body: markdown with a title, and an 'at' block when meta names people to mention."""
        text = envelope.body
        title = " ".join((envelope.subject or "").split())
        if not title:
            first = next((line for line in text.splitlines() if line.strip()), "")
            title = first.strip().lstrip("#>*- ").strip() or "herald"
        meta = envelope.meta or {}
        mobiles = _strings(meta.get("at_mobiles"))
        user_ids = _strings(meta.get("at_user_ids"))
        at_all = bool(meta.get("at_all", False))
        missing = [f"@{m}" for m in mobiles + user_ids if f"@{m}" not in text]
        if missing:  # DingTalk only highlights a mention in markdown when the text itself says @mobile
            text = text.rstrip("\n") + "\n\n" + " ".join(missing)
        body: dict[str, Any] = {"msgtype": "markdown", "markdown": {"title": title[:TITLE_LIMIT], "text": text}}
        if mobiles or user_ids or at_all:
            body["at"] = {"atMobiles": mobiles, "atUserIds": user_ids, "isAtAll": at_all}
        return body

    def _client(self) -> httpx.Client:
        return http_client(self.timeout, self.verify, self.ca_file)

    def _clean(self, text: str) -> str:
        return redact(text, [self.access_token, self.secret])

    # --- send ------------------------------------------------------------------------------------------

    def send(self, envelope: Envelope) -> SendResult:
        try:
            body = json.dumps(self.message(envelope), ensure_ascii=False).encode("utf-8")
        except ValueError as e:
            return SendResult(PERMANENT, error=f"message cannot be sent: meta mentions {e}", code="message")
        now = self.clock()
        wait = self.limiter.reserve(self.limit_key, now)
        if wait > 0:
            return SendResult(RECOVERABLE, error=f"not sent: this robot is paced below DingTalk's limit of 20 "
                                                 f"messages a minute (or blocked after errcode 130101); next slot "
                                                 f"in {wait:.0f} s", code="paced", retry_after=wait)
        ts = int(now * 1000)
        url = self.signed_url(ts)
        sign = dingtalk_sign(self.secret.reveal(), ts) if self.secret else None  # replayable for an hour: redact it
        try:
            with self._client() as client:
                response = client.post(url, content=body,
                                       headers={"Content-Type": "application/json; charset=utf-8"})
        except httpx.HTTPError as e:
            return self._transport_error(e, extra=[sign])
        result = self.classify(response, envelope.attempt_key)
        if result.code == "130101":
            self.limiter.block(self.limit_key, THROTTLE_PENALTY, now)
        return result

    def classify(self, response: httpx.Response, attempt_key: str) -> SendResult:
        """HTTP status first, then errcode: only errcode 0 is accepted (robots return no message id)."""
        status = response.status_code
        where = f"{self.base_url} answered HTTP {status}"
        if status == 429 or 500 <= status < 600:
            return SendResult(RECOVERABLE, error=where, code=str(status))
        if status != 200:
            return SendResult(PERMANENT, error=where, code=str(status))
        try:
            data = response.json()
            errcode = int(data["errcode"])
            errmsg = str(data.get("errmsg", ""))
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            return SendResult(RECOVERABLE, error=f"{where} with a body that is not a DingTalk answer",
                              code="response")
        failure = classify_errcode(errcode, self._clean(errmsg))  # masked before classify_errcode cuts it
        if failure is None:
            return SendResult(ACCEPTED, provider_id=attempt_key)
        return SendResult(failure.status, error=self._clean(failure.error or ""), code=failure.code,
                          retry_after=failure.retry_after)

    def _transport_error(self, e: httpx.HTTPError, extra: list[str | None] | None = None) -> SendResult:
        if isinstance(e, httpx.TimeoutException):
            return SendResult(RECOVERABLE, error=f"{self.base_url}: timed out after {self.timeout:g} s "
                                                 f"({type(e).__name__})", code="timeout")
        text = redact(self._clean(f"{self.base_url}: {type(e).__name__}: {e}"), extra or [])
        return SendResult(RECOVERABLE, error=text, code="connection")

    def check(self, send_test: bool = False) -> list[str]:
        """Settings were checked on construction; this checks the API host answers. Posts only with send_test=True."""
        problems: list[str] = []
        try:
            with self._client() as client:
                client.get(self.base_url + "/")  # any HTTP answer shows the host resolves and connects
        except httpx.HTTPError as e:
            return [f"channel {self.channel!r}: {self._transport_error(e).error}"]
        if send_test:
            result = self.send(Envelope(
                notification_id="herald-check", attempt_key=f"herald-check-{int(self.clock())}",
                channel=self.channel, to="", subject="herald check",
                body=f"herald check: channel **{self.channel}** can post to this group."))
            if not result.ok:
                problems.append(f"channel {self.channel!r}: test message not accepted: {result.error}")
        return problems
