"""A fake DingTalk custom-robot server on loopback: checks token, timestamp and sign like DingTalk, throttles, records.

Throttling as documented ("每个机器人每分钟最多发送20条。如果超过20条，会限流10分钟", DingTalk custom robot docs,
消息发送频率限制): the 21st message in a sliding minute is refused with errcode 130101 and the robot then refuses
everything for `penalty` seconds (600), whatever the window says.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler
from typing import Any
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from loopback import LoopbackServer  # tests/channels is on sys.path for every fake's user

SIGN_NOT_MATCH = {"errcode": 310000, "errmsg": "sign not match, more: [https://ding-doc.dingtalk.com/doc#/serverapi2/qf2nxq]"}
OK = {"errcode": 0, "errmsg": "ok"}


class FakeRobot(LoopbackServer):
    """One robot. Answers HTTP 200 with {errcode, errmsg} for every /robot/send, as DingTalk does."""

    def __init__(self, access_token: str = "tok-fake-0123456789", secret: str | None = "SECfake0123456789abcdef",
                 per_minute: int = 20, keywords: tuple[str, ...] = (), clock: Callable[[], float] = time.time,
                 delay: float = 0.0, penalty: float = 600.0):
        self.access_token = access_token
        self.secret = secret
        self.per_minute = per_minute
        self.keywords = keywords
        self.clock = clock
        self.delay = delay
        self.received: list[dict[str, Any]] = []   # accepted messages (the JSON bodies)
        self.requests: list[dict[str, Any]] = []   # every request: raw query string, parsed query, body, answer
        self.forced: deque[tuple[int, Any]] = deque()  # (http status, body) answers to give next, before any check
        self._sent_at: deque[float] = deque()
        self.penalty = penalty
        self.blocked_until = float("-inf")
        self._lock = threading.Lock()
        robot = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def _answer(self, status: int, body: Any) -> None:
                raw = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=UTF-8")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self) -> None:
                self._answer(200 if urlsplit(self.path).path == "/" else 404, {"status": "fake robot"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if robot.delay:
                    time.sleep(robot.delay)
                parts = urlsplit(self.path)
                if parts.path != "/robot/send":
                    self._answer(404, {"errcode": 404, "errmsg": "not found"})
                    return
                status, answer = robot.handle(parts.query, raw)
                self._answer(status, answer)

        self._serve(Handler)

    @property
    def base_url(self) -> str:
        return self.url

    @staticmethod
    def expected_sign(secret: str, timestamp: str) -> str:
        digest = hmac.new(secret.encode("utf-8"), f"{timestamp}\n{secret}".encode(), hashlib.sha256).digest()
        return base64.b64encode(digest).decode("ascii")

    def handle(self, query_string: str, raw: bytes) -> tuple[int, Any]:
        query = {k: v[0] for k, v in parse_qs(query_string, keep_blank_values=True).items()}  # '+' decodes to ' '
        record: dict[str, Any] = {"query_string": query_string, "query": query, "raw": raw}
        with self._lock:
            self.requests.append(record)
            answer = self._decide(query, raw)
            record["answer"] = answer
            return answer

    def _decide(self, query: dict[str, str], raw: bytes) -> tuple[int, Any]:
        if self.forced:
            return self.forced.popleft()
        if query.get("access_token") != self.access_token:
            return 200, {"errcode": 300001, "errmsg": "token is not exist"}
        if self.secret is not None:
            ts, sign = query.get("timestamp"), query.get("sign")
            if not ts or not sign or not ts.isdigit():
                return 200, SIGN_NOT_MATCH
            if abs(self.clock() * 1000 - int(ts)) > 3600 * 1000:  # DingTalk: within an hour of its clock
                return 200, {"errcode": 310000, "errmsg": "invalid timestamp"}
            if not hmac.compare_digest(sign, self.expected_sign(self.secret, ts)):
                return 200, SIGN_NOT_MATCH
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return 200, {"errcode": 40035, "errmsg": "缺少参数 json"}
        if self.keywords and not any(k in json.dumps(body, ensure_ascii=False) for k in self.keywords):
            return 200, {"errcode": 310000, "errmsg": "keywords not in content"}
        now = self.clock()
        too_fast = {"errcode": 130101, "errmsg": f"send too fast, exceed {self.per_minute} times per minute"}
        if now < self.blocked_until:
            return 200, too_fast
        while self._sent_at and now - self._sent_at[0] >= 60:
            self._sent_at.popleft()
        if len(self._sent_at) >= self.per_minute:
            self.blocked_until = now + self.penalty
            return 200, too_fast
        if body.get("msgtype") not in ("text", "markdown", "link", "actionCard", "feedCard"):
            return 200, {"errcode": 40008, "errmsg": "不合法的消息类型"}
        self._sent_at.append(now)
        self.received.append(body)
        return 200, OK
