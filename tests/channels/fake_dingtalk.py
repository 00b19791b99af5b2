"""A loopback fake of DingTalk's gettoken, asyncsend_v2 and getsendresult, for transport tests.

Same content to the same user twice a day: asyncsend_v2 answers success and getsendresult lists the user in
forbidden_user_id_list, with ``{"code": "143106", ...}`` in forbidden_list (143105 is the 500-a-day cap) --
the documented path ("企业内部应用...同一用户相同内容的消息一天仅能发送一次", work-notice docs; getsendresult's
forbidden_list codes). ``same_content_mode="error"`` answers errcode 143106 at send time instead, a path reported
by users but not documented.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from collections.abc import Callable
from urllib.parse import parse_qs, urlsplit

from loopback import LoopbackServer  # tests/channels is on sys.path for every fake's user


class FakeDingTalk(LoopbackServer):
    """Serves on 127.0.0.1:<random port>; tests read .messages, .gettoken_calls and steer it with methods.

    Tokens really expire on the server after ``token_ttl`` seconds of ``clock`` (or at once with
    ``expire_tokens()``), whatever ``expires_in`` says, so tests can force the refresh path.
    """

    def __init__(
        self,
        *,
        app_key: str = "dingkey",
        app_secret: str = "s3cr3t-app-secret",
        agent_id: int = 4242,
        users: set[str] | None = None,
        token_ttl: float = 7200.0,
        expires_in: int = 7200,
        same_content_mode: str = "forbidden",  # "forbidden": success + forbidden list (documented); "error": 143106
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_key, self.app_secret, self.agent_id = app_key, app_secret, agent_id
        self.users = set(users) if users is not None else {"u-alice", "u-bob"}
        self.token_ttl, self.expires_in = token_ttl, expires_in
        self.same_content_mode = same_content_mode
        self.forbidden_code = "143106"  # reason given in forbidden_list (143105: the 500-a-day cap)
        self.clock = clock
        self.lock = threading.Lock()
        self.tokens: dict[str, float] = {}          # token -> issued at (fake clock)
        self.gettoken_calls = 0
        self.requests: list[tuple[str, str]] = []  # (method, path) of every request
        self.messages: list[dict[str, Any]] = []   # accepted asyncsend_v2 payloads, with task_id
        self.tasks: dict[int, dict[str, list[str]]] = {}
        self.sent_today: set[tuple[str, str, str]] = set()
        self._next_task = 1000
        self._failures: list[tuple[str, int, dict[str, Any]]] = []
        self._late: list[tuple[str, float]] = []  # (path suffix, seconds): do the work, then answer that late
        self._serve(self._handler())

    # -- lifecycle -------------------------------------------------------------------------------

    # -- steering --------------------------------------------------------------------------------
    def expire_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def fail_next(self, path_suffix: str, *, http_status: int = 200, **body: Any) -> None:
        """The next request whose path ends with path_suffix gets this answer instead (errcode=..., errmsg=...)."""
        with self.lock:
            self._failures.append((path_suffix, http_status, body))

    def answer_late(self, path_suffix: str, seconds: float) -> None:
        """The next request whose path ends with path_suffix is carried out, then answered `seconds` late."""
        with self.lock:
            self._late.append((path_suffix, seconds))

    def set_state(self, task_id: int | str, userid: str, state: str) -> None:
        """Move a user of a task to read / unread / invalid / forbidden / failed."""
        with self.lock:
            lists = self.tasks[int(task_id)]
            for users in lists.values():
                if userid in users:
                    users.remove(userid)
            lists.setdefault(state, []).append(userid)

    # -- handlers --------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def _answer(self, status: int, body: Any) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8" if not isinstance(body, bytes)
                                 else "text/html")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _dispatch(self, method: str) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                raw = b""
                if method == "POST":
                    raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with fake.lock:
                    fake.requests.append((method, parts.path))
                    for i, (suffix, status, body) in enumerate(fake._failures):
                        if parts.path.endswith(suffix):
                            del fake._failures[i]
                            if body.get("html"):
                                return self._answer(status, b"<html>busy</html>")
                            return self._answer(status, body)
                status, body = fake.route(method, parts.path, query, raw, self.headers.get("Content-Type", ""))
                with fake.lock:
                    late = next((i for i, (s, _) in enumerate(fake._late) if parts.path.endswith(s)), None)
                    delay = fake._late.pop(late)[1] if late is not None else 0.0
                if delay:
                    time.sleep(delay)  # the client has given up; the work is done all the same
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # answered late: the client left
                    self._answer(status, body)

            def do_GET(self) -> None:
                self._dispatch("GET")

            def do_POST(self) -> None:
                self._dispatch("POST")

        return Handler

    def route(self, method: str, path: str, query: dict[str, str], raw: bytes, ctype: str) -> tuple[int, Any]:
        if path == "/gettoken" and method == "GET":
            return 200, self._gettoken(query)
        if path.startswith("/topapi/") and method == "POST":
            token_error = self._check_token(query.get("access_token"))
            if token_error:
                return 200, token_error
            payload = _decode(raw, ctype)
            if payload is None:
                return 200, {"errcode": 40035, "errmsg": "不合法的参数"}
            if path == "/topapi/message/corpconversation/asyncsend_v2":
                return 200, self._asyncsend(payload)
            if path == "/topapi/message/corpconversation/getsendresult":
                return 200, self._getsendresult(payload)
        return 404, {"errcode": 404, "errmsg": "请求的URI地址不存在"}

    def _gettoken(self, query: dict[str, str]) -> dict[str, Any]:
        with self.lock:
            self.gettoken_calls += 1
            if query.get("appkey") != self.app_key or query.get("appsecret") != self.app_secret:
                return {"errcode": 40089, "errmsg": "不合法的appKey或appSecret"}
            token = uuid.uuid4().hex
            self.tokens[token] = self.clock()
            return {"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": self.expires_in}

    def _check_token(self, token: str | None) -> dict[str, Any] | None:
        with self.lock:
            issued = self.tokens.get(token or "")
            if issued is None:
                return {"errcode": 40014, "errmsg": "不合法的access_token"}
            if self.clock() - issued >= self.token_ttl:
                return {"errcode": 42001, "errmsg": "access_token超时"}
        return None

    def _asyncsend(self, p: dict[str, Any]) -> dict[str, Any]:
        if str(p.get("agent_id", "")) != str(self.agent_id):
            return {"errcode": 88, "sub_code": "60011", "sub_msg": "没有调用该接口的权限",
                    "errmsg": "ding talk error[subcode=60011,submsg=没有调用该接口的权限]"}
        users = [u for u in str(p.get("userid_list") or "").split(",") if u]
        msg = p.get("msg")
        if isinstance(msg, str):
            try:
                msg = json.loads(msg)
            except ValueError:
                msg = None
        if not users:
            return {"errcode": 40035, "errmsg": "缺少参数 userid_list"}
        if not isinstance(msg, dict) or msg.get("msgtype") not in msg or not isinstance(msg[msg["msgtype"]], dict):
            return {"errcode": 40035, "errmsg": "不合法的参数 msg"}
        if len(json.dumps(msg, ensure_ascii=False, separators=(",", ":")).encode("utf-8")) > 2048:
            # asyncsend_v2 doc: "msg ... 最长不超过2048个字节"; the refusal's code is not documented
            return {"errcode": 40035, "errmsg": "不合法的参数 msg: 超过2048字节"}
        day = dt.datetime.fromtimestamp(self.clock(), dt.timezone(dt.timedelta(hours=8))).date().isoformat()
        content = json.dumps(msg, sort_keys=True, ensure_ascii=False)
        with self.lock:
            repeated = [u for u in users if (u, content, day) in self.sent_today]
            if repeated and self.same_content_mode == "error":
                return {"errcode": 143106, "errmsg": "相同内容的消息一天只能给同一用户发送一次"}
            task_id = self._next_task
            self._next_task += 1
            lists: dict[str, list[str]] = {"unread": [], "invalid": [], "forbidden": []}
            for u in users:
                if u not in self.users:
                    lists["invalid"].append(u)
                elif u in repeated:
                    lists["forbidden"].append(u)
                else:
                    lists["unread"].append(u)
                    self.sent_today.add((u, content, day))
            self.tasks[task_id] = lists
            self.messages.append({"task_id": task_id, "agent_id": p.get("agent_id"), "userid_list": users, "msg": msg})
        return {"errcode": 0, "errmsg": "ok", "task_id": task_id, "request_id": uuid.uuid4().hex[:12]}

    def _getsendresult(self, p: dict[str, Any]) -> dict[str, Any]:
        if str(p.get("agent_id", "")) != str(self.agent_id):
            return {"errcode": 88, "sub_code": "60011", "sub_msg": "没有调用该接口的权限", "errmsg": "ding talk error"}
        with self.lock:
            lists = self.tasks.get(int(p.get("task_id") or 0))
            if lists is None:
                return {"errcode": 40035, "errmsg": "不合法的参数 task_id"}
            result = {f"{state}_user_id_list": list(users) for state, users in lists.items()}
            result["forbidden_list"] = [{"code": self.forbidden_code, "count": 1, "userid": u} for u in lists.get("forbidden", [])]
        return {"errcode": 0, "errmsg": "ok", "send_result": result, "request_id": uuid.uuid4().hex[:12]}


def _decode(raw: bytes, ctype: str) -> dict[str, Any] | None:
    try:
        if "json" in ctype:
            data = json.loads(raw or b"{}")
            return data if isinstance(data, dict) else None
        return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
    except ValueError:
        return None
