"""A loopback fake of Aliyun Dysmsapi (SendSms, QuerySendDetails) that re-checks the RPC signature."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import re
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler
from typing import Any
from collections.abc import Callable
from urllib.parse import parse_qsl, quote, urlsplit

from loopback import LoopbackServer  # tests/channels is on sys.path for every fake's user

BEIJING = dt.timezone(dt.timedelta(hours=8))
COMMON = ("AccessKeyId", "Action", "Format", "SignatureMethod", "SignatureNonce", "SignatureVersion", "Timestamp",
          "Version", "Signature")


def _enc(value: str) -> str:
    return quote(value, safe="~")


def reference_signature(params: dict[str, str], secret: str, method: str) -> str:
    """Written apart from the transport's signer, from Aliyun's description, so the two check each other."""
    pairs = sorted((k, v) for k, v in params.items() if k != "Signature")
    canonical = "&".join(_enc(k) + "=" + _enc(v) for k, v in pairs)
    to_sign = method + "&" + _enc("/") + "&" + _enc(canonical)
    return base64.b64encode(hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()).decode()


class FakeAliyunSms(LoopbackServer):
    """Serves on 127.0.0.1:<random port>; ``messages`` holds accepted SMS; steer with ``fail_next``/``set_status``."""

    def __init__(
        self,
        *,
        access_key_id: str = "LTAI-test-id",
        access_key_secret: str = "aliyun-s3cret-key",
        sign_name: str = "面试通知",
        templates: dict[str, list[str]] | None = None,
        per_minute: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.access_key_id, self.access_key_secret, self.sign_name = access_key_id, access_key_secret, sign_name
        self.templates = templates if templates is not None else {
            "SMS_100001": ["name", "job"], "SMS_100002": [],
        }
        self.per_minute = per_minute
        self.clock = clock
        self.lock = threading.Lock()
        self.nonces: set[str] = set()
        self.messages: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []
        self.raw: list[dict[str, dict[str, str]]] = []  # each request's URL query and form body, apart
        self.status: dict[str, tuple[int, str]] = {}  # biz_id -> (SendStatus, ErrCode)
        self._failures: list[tuple[str, int, dict[str, Any]]] = []
        self._late: list[tuple[str, float]] = []  # (action, seconds): do the work, then answer that late
        self._serve(self._handler())


    def fail_next(self, action: str, code: str, message: str = "", http_status: int = 200) -> None:
        with self.lock:
            self._failures.append((action, http_status, {"Code": code, "Message": message or code}))

    def answer_late(self, action: str, seconds: float) -> None:
        """The next `action` is carried out (an SMS is sent) but answered `seconds` late: past a client's timeout."""
        with self.lock:
            self._late.append((action, seconds))

    def set_status(self, biz_id: str, send_status: int, err_code: str = "DELIVERED") -> None:
        with self.lock:
            self.status[biz_id] = (send_status, err_code)

    # -- HTTP ------------------------------------------------------------------------------------
    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self, method: str) -> None:
                # RPC: parameters come in the URL query and, for POST, a form body too; one signature covers both
                query = urlsplit(self.path).query
                form = ""
                if method == "POST":
                    form = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
                params = dict(parse_qsl(query, keep_blank_values=True))
                params.update(parse_qsl(form, keep_blank_values=True))
                with fake.lock:
                    fake.raw.append({"query": dict(parse_qsl(query, keep_blank_values=True)),
                                     "form": dict(parse_qsl(form, keep_blank_values=True))})
                status, body = fake.route(method, params)
                with fake.lock:
                    late = next((i for i, (a, _) in enumerate(fake._late) if a == params.get("Action")), None)
                    delay = fake._late.pop(late)[1] if late is not None else 0.0
                if delay:
                    time.sleep(delay)  # the client has given up by now; the SMS went all the same
                data = json.dumps(body, ensure_ascii=False).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json;charset=utf-8")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):  # answered late: the client left
                    pass

            def do_GET(self) -> None:
                self._handle("GET")

            def do_POST(self) -> None:
                self._handle("POST")

        return Handler

    def route(self, method: str, p: dict[str, str]) -> tuple[int, dict[str, Any]]:
        rid = str(uuid.uuid4()).upper()

        def err(status: int, code: str, message: str) -> tuple[int, dict[str, Any]]:
            return status, {"Code": code, "Message": message, "RequestId": rid}

        with self.lock:
            self.requests.append(dict(p))
            missing = [k for k in COMMON if not p.get(k)]
            if missing:
                return err(400, f"Missing{missing[0]}", f"{missing[0]} is mandatory for this action.")
            if p["AccessKeyId"] != self.access_key_id:
                return err(404, "InvalidAccessKeyId.NotFound", "Specified access key is not found.")
            if p["SignatureMethod"] != "HMAC-SHA1" or p["SignatureVersion"] != "1.0" or p["Version"] != "2017-05-25":
                return err(400, "InvalidParameter", "Unsupported signature method or version.")
            if p["Signature"] != reference_signature(p, self.access_key_secret, method):
                return err(400, "SignatureDoesNotMatch", "Specified signature is not matched with our calculation.")
            try:
                stamp = dt.datetime.strptime(p["Timestamp"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
            except ValueError:
                return err(400, "InvalidTimeStamp.Format", "Specified time stamp is not valid.")
            if abs(stamp.timestamp() - self.clock()) > 31 * 60:  # "签名机制": a Timestamp is valid for 31 minutes
                return err(400, "InvalidTimeStamp.Expired", "Specified time stamp or date value is expired.")
            if p["SignatureNonce"] in self.nonces:
                return err(400, "SignatureNonceUsed", "Specified signature nonce was used already.")
            self.nonces.add(p["SignatureNonce"])
            for i, (action, status, body) in enumerate(self._failures):
                if action == p["Action"]:
                    del self._failures[i]
                    return status, {**body, "RequestId": rid}
            if p["Action"] == "SendSms":
                return self._send(p, rid, err)
            if p["Action"] == "QuerySendDetails":
                return self._query(p, rid, err)
            return err(400, "InvalidAction.NotFound", "Specified api is not found.")

    def _send(self, p: dict[str, str], rid: str, err) -> tuple[int, dict[str, Any]]:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not p.get(name):
                return err(400, f"Missing{name}", f"{name} is mandatory for this action.")
        phone = p["PhoneNumbers"]
        if not re.fullmatch(r"1[3-9]\d{9}|[2-9]\d{6,14}", phone):
            return 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "非法手机号", "RequestId": rid}
        if p["SignName"] != self.sign_name:
            return 200, {"Code": "isv.SMS_SIGNATURE_ILLEGAL", "Message": "该账号下找不到对应签名", "RequestId": rid}
        variables = self.templates.get(p["TemplateCode"])
        if variables is None:
            return 200, {"Code": "isv.SMS_TEMPLATE_ILLEGAL", "Message": "该账号下找不到对应模板", "RequestId": rid}
        try:
            values = json.loads(p["TemplateParam"]) if p.get("TemplateParam") else {}
        except ValueError:
            return 200, {"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON参数不合法，只接受字符串值", "RequestId": rid}
        if not isinstance(values, dict):
            return 200, {"Code": "isv.INVALID_JSON_PARAM", "Message": "JSON参数不合法", "RequestId": rid}
        lacking = [v for v in variables if not values.get(v)]
        if lacking:
            return 200, {"Code": "isv.TEMPLATE_MISSING_PARAMETERS", "Message": f"模板缺少变量 {lacking[0]}", "RequestId": rid}
        if any(len(str(v)) > 35 for v in values.values()):
            return 200, {"Code": "isv.PARAM_LENGTH_LIMIT", "Message": "参数超出长度限制", "RequestId": rid}
        now = self.clock()
        recent = [m for m in self.messages if m["phone"] == phone and now - m["at"] < 60]
        if len(recent) >= self.per_minute:
            return 200, {"Code": "isv.BUSINESS_LIMIT_CONTROL", "Message": "触发分钟级流控Permits:1", "RequestId": rid}
        biz = f"{int(now)}{len(self.messages):04d}^0"
        self.messages.append({"biz_id": biz, "phone": phone, "template": p["TemplateCode"], "params": values,
                              "sign_name": p["SignName"], "out_id": p.get("OutId"), "at": now})
        self.status.setdefault(biz, (1, ""))
        return 200, {"Code": "OK", "Message": "OK", "BizId": biz, "RequestId": rid}

    def _query(self, p: dict[str, str], rid: str, err) -> tuple[int, dict[str, Any]]:
        for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not p.get(name):
                return err(400, f"Missing{name}", f"{name} is mandatory for this action.")
        rows = []
        for m in self.messages:
            sent = dt.datetime.fromtimestamp(m["at"], BEIJING)
            if m["phone"] != p["PhoneNumber"] or sent.strftime("%Y%m%d") != p["SendDate"]:
                continue
            if p.get("BizId") and m["biz_id"] != p["BizId"]:
                continue
            status, code = self.status.get(m["biz_id"], (1, ""))
            stamp = sent.strftime("%Y-%m-%d %H:%M:%S")
            rows.append({"PhoneNum": m["phone"], "SendStatus": status, "ErrCode": code, "TemplateCode": m["template"],
                         "Content": f"【{m['sign_name']}】{m['params']}", "SendDate": stamp,
                         "ReceiveDate": stamp if status != 1 else "", "OutId": m["out_id"]})
        size, page = int(p["PageSize"]), int(p["CurrentPage"])
        if not 1 <= size <= 50 or page < 1:  # QuerySendDetails: PageSize 1..50, CurrentPage from 1
            return err(400, "isv.INVALID_PARAMETERS", "PageSize must be 1..50 and CurrentPage at least 1")
        return 200, {"Code": "OK", "Message": "OK", "RequestId": rid, "TotalCount": len(rows),
                     "SmsSendDetailDTOs": {"SmsSendDetailDTO": rows[(page - 1) * size:page * size]}}
