"""Aliyun SMS pushes (SmsReport delivery reports, SmsUp replies) into the daemon, authenticated by a secret in the path.

Aliyun's HTTP batch push cannot carry herald's bearer token, so each `aliyun-sms` channel that wants pushes
gets a `push_token` (from the environment, at least 16 random characters) that is part of its URLs. In the
Aliyun SMS console (国内消息 > 通用设置 > 订阅 HTTP 批量推送 / "HTTP batch push"), configure:

    SmsReport (短信发送状态):  <server.public_url>/v1/push/aliyun-sms/<push_token>/report
    SmsUp     (上行短信):      <server.public_url>/v1/push/aliyun-sms/<push_token>/up

POST .../report  a JSON array of delivery reports -> a delivered / undelivered receipt per message, matched by
                 the report's out_id (our attempt key) or else by BizId:phone:date, recorded once per provider id
                 and kind (a repeated push changes nothing).
POST .../up      a JSON array of inbound messages -> a candidate reply each, attributed to the notification most
                 recently sent to that phone number on this channel (else kept for HR to place).

Both answer 200 with PUSH_ACK (`{"code": 0, "msg": "接收成功"}`) once the batch is stored: Aliyun retries after
1, 5 and 10 minutes otherwise. A wrong or missing token, or a channel without a push_token, gets the same 404 as
an unknown path (no hint that the route exists); a body that is not a JSON array gets 400. The routes are left
out of the OpenAPI document: they are for Aliyun only.
"""
from __future__ import annotations

import hmac
import json
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.channels.aliyun_sms import OUT_ID_PREFIX, PUSH_ACK, parse_sms_report, parse_sms_up
from engine.channels.base import Receipt
from engine.config.settings import MIN_PUSH_TOKEN
from engine.tracking.routes import record_reply
from engine.daemon.receipts import record_receipts

if TYPE_CHECKING:
    from engine.config.settings import ChannelConfig
    from engine.daemon.runtime import Runtime
    from engine.store import Store

log = logging.getLogger("herald.push")

MAX_PUSH_BODY = 1024 * 1024


def push_channel(channels: Mapping[str, ChannelConfig], token: str) -> str | None:
    """The aliyun-sms channel whose push_token is `token` (compared in constant time), or None."""
    given = token.encode("utf-8", "surrogateescape")
    found = None
    for name, ch in channels.items():
        configured = ch.settings.get("push_token") if ch.transport == "aliyun-sms" else None
        if not isinstance(configured, str) or len(configured) < MIN_PUSH_TOKEN:
            continue
        if hmac.compare_digest(configured.encode("utf-8"), given) and found is None:
            found = name
    return found


def _matched(store: Store, channel: str, receipts: list[Receipt]) -> list[Receipt]:
    """Each receipt under the provider id our attempt stored: found by out_id (the attempt key) when it is ours.
    An attempt that timed out but reached Aliyun has no provider id; the later attempt that found it by OutId
    holds "out=<out_id>:..." instead."""
    out = []
    for r in receipts:
        out_id = (r.detail or {}).get("out_id")
        attempt = store.attempt_by_key(str(out_id)) if out_id else None
        if attempt is not None and attempt.channel == channel:
            pid = attempt.provider_id
            if not pid:
                detail = store.get_notification(attempt.notification_id)
                later = [a.provider_id for a in (detail.attempts if detail else ())
                         if a.provider_id and a.provider_id.startswith(f"{OUT_ID_PREFIX}{out_id}:")]
                pid = later[-1] if later else None
            if pid:
                r = Receipt(pid, r.event, r.at, r.detail)
        out.append(r)
    return out


def push_router(runtime: Runtime) -> APIRouter:
    """The two Aliyun push routes over one Runtime (the channels are read at each request: reload-safe)."""
    router = APIRouter()

    async def authenticated_body(token: str, request: Request) -> tuple[str, list]:
        channel = push_channel(runtime.state.deployment.config.channels, token)
        if channel is None:
            raise StarletteHTTPException(404, "Not Found")
        size = request.headers.get("content-length")
        chunks: list[bytes] = []
        total = 0
        if not (size and size.isdigit() and int(size) > MAX_PUSH_BODY):
            async for chunk in request.stream():
                total += len(chunk)
                if total > MAX_PUSH_BODY:
                    break
                chunks.append(chunk)
        if (size and size.isdigit() and int(size) > MAX_PUSH_BODY) or total > MAX_PUSH_BODY:
            raise _Refused(413, f"body larger than {MAX_PUSH_BODY} bytes")
        try:
            body = json.loads(b"".join(chunks).decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            raise _Refused(400, "not JSON") from None
        if not isinstance(body, list):
            raise _Refused(400, "an Aliyun push is a JSON array")
        return channel, body

    async def push(token: str, request: Request, work: Callable[[str, list], int], what: str) -> JSONResponse:
        """One Aliyun push: authenticated and read, `work(channel, items)` in a worker thread (it returns how
        many items matched a notification), then Aliyun's acknowledgement."""
        try:
            channel, body = await authenticated_body(token, request)
        except _Refused as e:
            return e.response()
        matched = await run_in_threadpool(work, channel, body)
        log.info("%s on %s: %d item(s), %d matched to a notification", what, channel, len(body), matched)
        return JSONResponse(PUSH_ACK)

    def reports(channel: str, body: list) -> int:
        receipts = _matched(runtime.store, channel, parse_sms_report(body))
        return sum(nid is not None for nid in record_receipts(runtime, channel, receipts))

    def replies(channel: str, body: list) -> int:
        placed = 0
        for reply in parse_sms_up(body):
            _rid, nid = record_reply(runtime.store, reply["content"], runtime.now(), channel=channel,
                                     phone=reply["phone"])
            placed += nid is not None
        return placed

    @router.post("/v1/push/aliyun-sms/{token}/report", include_in_schema=False)
    async def sms_report(token: str, request: Request) -> JSONResponse:
        return await push(token, request, reports, "SmsReport")

    @router.post("/v1/push/aliyun-sms/{token}/up", include_in_schema=False)
    async def sms_up(token: str, request: Request) -> JSONResponse:
        return await push(token, request, replies, "SmsUp")

    return router


class _Refused(Exception):
    """A push with the right token but a body we cannot take."""

    def __init__(self, code: int, error: str):
        super().__init__(error)
        self.code, self.error = code, error

    def response(self) -> JSONResponse:
        return JSONResponse({"code": self.code, "msg": self.error}, status_code=self.code)
