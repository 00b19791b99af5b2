"""DingTalk work-notification transport (工作通知): token cache, asyncsend_v2, read receipts from getsendresult.

Provider facts this module relies on (checked with the public docs/search where noted):

* ``GET /gettoken?appkey=..&appsecret=..`` answers ``{"errcode":0,"access_token":"..","expires_in":7200}``
  (confirmed: DingTalk global error-code page). The token is cached until ``TOKEN_REFRESH_MARGIN`` (5 min,
  or half the lifetime if shorter) before it expires, behind a lock; one fetch serves every thread.
* ``POST /topapi/message/corpconversation/asyncsend_v2?access_token=..`` with ``agent_id``,
  ``userid_list`` (comma-separated string) and ``msg`` (confirmed: API reference mirrors and SDK demos).
  Sent as JSON. Answer ``{"errcode":0,"task_id":123,"request_id":".."}``.
* The send is asynchronous: errcode 0 does not mean the user got it. The documented limits are "the same
  content from one app reaches one user once a day" and "at most 500 messages per app per user per day";
  the docs say that past those limits *the API still answers success* and the user lands in
  ``forbidden_user_id_list`` of ``getsendresult`` (confirmed: official doc as quoted by CSDN, dingtalk-rs
  docs). ``forbidden_list`` gives the reason per user: code 143105 the daily cap, 143106 duplicate content
  (getsendresult doc). Some deployments are said to answer errcode 143106 at send time instead (undocumented);
  both paths are handled.
* A duplicate-content verdict on a send made after an earlier attempt of the same message got no answer (a
  timeout: DingTalk may have taken it; listed by the dispatcher in ``meta["unanswered"]``) means that earlier
  attempt arrived: the retry's provider_id carries ``RETRY_MARK`` and its forbidden-as-duplicate receipt is
  ``delivered`` (detail ``by_earlier_attempt``), not ``undelivered``, so no second channel is made due. A
  forbidden user without a reason code counts the same way on such a retry (the 500-a-day cap cannot be what
  stopped one candidate's notice). Without an unanswered attempt, 143106 stays a refusal: PERMANENT at send
  time, ``undelivered`` in receipts (another notification carried the same text today).
* ``POST /topapi/message/corpconversation/getsendresult`` ``{agent_id, task_id}`` answers ``send_result``
  with ``read_user_id_list``, ``unread_user_id_list``, ``invalid_user_id_list``, ``forbidden_user_id_list``,
  ``failed_user_id_list`` (and ``forbidden_list`` with reasons) (confirmed: dingtalk-rs ``AsyncSendResult``).
  No timestamps are given, so receipts carry ``at=None``.
* errcode ``88`` means "auth exception, look at sub_code/sub_msg": usually an invalid token, or no
  permission for the API (sub_code 60011) (confirmed: global error-code page). ``-1`` is "system busy, retry
  once, at most 3 times" (confirmed). ``90002`` (platform-wide limit), ``90019`` (third-party per-app limit)
  are rate limits and ``90020`` is the monthly API quota (confirmed: call-frequency doc, DingTalk help).
  ``143103``/``143104`` are per-app/per-org messages-per-minute limits (confirmed: getsendresult doc mirror).
  The IP-level throttle answers a non-errcode body (``{"status":1111,"wait":5,"punish":"deny"}`` or an HTML
  page) and bans for 5 minutes (confirmed): treated as RECOVERABLE, retry after 300 s.
* NOT confirmed by any document the search tool found (taken from the brief and common knowledge, kept
  because the behaviour is the safe one): 143106 as the "same content once a day" code, 40014/42001
  (invalid/expired access_token), 40001/40089/40096 (bad app credentials), 90018/90005/90006 (other
  rate limits), 40003/33012 (invalid userid), 40035 (bad parameters), 40056 (invalid agentid),
  60020 (server IP not whitelisted), 404 (wrong URL).

provider_id is ``"<task_id>:<userid>"`` (``"retry/<task_id>:<userid>"`` after an unanswered attempt):
``getsendresult`` is per task and per user, so the id carries both.
``parse_provider_id`` splits it. ``poll_receipts`` answers the strongest state per user, each time it is
asked: ``read`` (implies delivered), ``delivered`` (unread), or ``undelivered`` (invalid, forbidden, failed);
nothing while DingTalk has not placed the user in any list yet. The tracker should de-duplicate.

Secrets: the app_secret travels in the gettoken query string and the access token in every API query
string (DingTalk's design). Error texts name paths, never URLs, and are passed through ``_clean``; the shared
HTTP client factory (``engine/channels/signing.py``) puts a filter on the ``httpx`` logger that masks query values
(``appsecret=***``, ``access_token=***``) in httpx's own request log lines.
"""
from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any
from collections.abc import Callable, Mapping, Sequence

import httpx

from engine.channels.signing import Secret, SettingsReader, http_client, redact, redact_query, unanswered
from engine.channels.capabilities import CAPABILITIES
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope, Receipt, SendResult

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://oapi.dingtalk.com"
TOKEN_REFRESH_MARGIN = 300.0  # seconds before expiry at which a cached token is refreshed
IP_THROTTLE_BAN = 300.0       # DingTalk documents a 5 minute ban for the per-IP limit
MAX_MSG_BYTES = 2048          # asyncsend_v2: "msg ... 最长不超过2048个字节" (its JSON, UTF-8)
RETRY_MARK = "retry/"         # provider_id prefix of a send made after an unanswered attempt of the same message
DUPLICATE_CONTENT = "143106"  # forbidden_list code (and send-time errcode): same content to this user today

SETTINGS: dict[str, tuple[bool, bool, str]] = {
    "app_key": (True, False, "AppKey of the internal app (企业内部应用) that sends the notices"),
    "app_secret": (True, True, "AppSecret of that app"),
    "agent_id": (True, False, "AgentId of that app (an integer)"),
    "base_url": (False, False, f"API root, default {DEFAULT_BASE_URL}"),
    "timeout": (False, False, "HTTP timeout in seconds, default 10"),
    "poll_interval": (False, False, "how often the daemon asks getsendresult for receipts (engine/daemon/receipts.py)"),
}

# Kinds answered by classify_errcode besides RECOVERABLE / PERMANENT.
OK = "ok"
TOKEN = "token"  # refresh the access token once and retry; RECOVERABLE if it fails again

# errcode -> (kind, retry_after seconds, explanation). The one table every answer goes through.
ERRCODES: dict[int, tuple[str, float | None, str]] = {
    0: (OK, None, "ok"),
    -1: (RECOVERABLE, 2.0, "DingTalk is busy (errcode -1); documented advice: retry, at most 3 times"),
    40014: (TOKEN, None, "invalid access_token"),
    42001: (TOKEN, None, "access_token expired"),
    40001: (TOKEN, None, "access_token invalid or app secret wrong"),
    88: (TOKEN, None, "authentication exception (see sub_code)"),
    40089: (PERMANENT, None, "DingTalk refused app_key/app_secret"),
    40096: (PERMANENT, None, "DingTalk refused app_key/app_secret"),
    90002: (RECOVERABLE, 1.0, "rate limited: platform-wide calls per second for this API"),
    90005: (RECOVERABLE, 1.0, "rate limited: calls per second"),
    90006: (RECOVERABLE, 60.0, "rate limited: calls per minute"),
    90018: (RECOVERABLE, 1.0, "rate limited: too many requests per second for this org"),
    90019: (RECOVERABLE, 1.0, "rate limited: calls per second for this app and org"),
    90020: (PERMANENT, None, "the organisation's monthly DingTalk API quota is used up"),
    143103: (RECOVERABLE, 60.0, "rate limited: this app's message recipients per minute"),
    143104: (RECOVERABLE, 60.0, "rate limited: this organisation's message recipients per minute"),
    143106: (PERMANENT, None,
             "DingTalk delivers the same content to the same user only once a day; this exact message "
             "already went to this user today, so retrying this channel cannot help"),
    40003: (PERMANENT, None, "invalid DingTalk userid"),
    33012: (PERMANENT, None, "invalid DingTalk userid"),
    40035: (PERMANENT, None, "invalid request parameters"),
    40056: (PERMANENT, None, "invalid agent_id: the app is not authorised to send as this agent"),
    60011: (PERMANENT, None, "the app is not authorised to call this API"),
    60020: (PERMANENT, None, "the server's IP address is not on the app's whitelist"),
    404: (PERMANENT, None, "the API address does not exist (check base_url)"),
}
_PERMISSION_SUB_CODES = {"60011", "60020", "40056"}


def classify_errcode(errcode: int, sub_code: str | None = None, sub_msg: str = "") -> tuple[str, float | None, str]:
    """(kind, retry_after, explanation) for a DingTalk errcode; kind is ok, token, recoverable or permanent."""
    if errcode == 88 and sub_code is not None:
        sub = str(sub_code)
        if sub in _PERMISSION_SUB_CODES:
            kind, retry, note = ERRCODES[int(sub)]
            return kind, retry, note
        if sub.lstrip("-").isdigit() and int(sub) in ERRCODES and int(sub) != 88:
            return ERRCODES[int(sub)]
        if "token" not in (sub_msg or "").lower() and "token" not in sub.lower():
            return PERMANENT, None, "authentication exception (errcode 88)"
    if errcode in ERRCODES:
        return ERRCODES[errcode]
    return PERMANENT, None, "DingTalk refused the request"


def parse_provider_id(provider_id: str) -> tuple[str, str] | None:
    """Split a provider_id of this transport into (task_id, userid); None when it is not one."""
    task, sep, user = provider_id.removeprefix(RETRY_MARK).partition(":")
    if not sep or not task.isdigit() or not user:
        return None
    return task, user


class DingTalkWorkNoticeTransport:
    """Sends one markdown work notice per envelope to one DingTalk userid; thread-safe."""

    name = "dingtalk-work-notice"
    capabilities = CAPABILITIES["dingtalk-work-notice"]
    needs_unanswered = True  # a duplicate-content verdict after an unanswered attempt means that attempt arrived

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
        self.app_key = r.text("app_key") or ""
        self._app_secret = r.secret("app_secret") or Secret("")  # required: raise_if_problems refuses it missing
        agent = r.text("agent_id") or ""
        if agent and not agent.isdigit():
            r.fail("agent_id", "must be an integer")
        self.agent_id = int(agent) if agent.isdigit() else 0
        self.base_url = (r.url("base_url", DEFAULT_BASE_URL, query=False) or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = r.number("timeout", 10.0, 0.001)
        r.raise_if_problems()
        self._clock = clock
        self._client = client or http_client(self.timeout)
        self._lock = threading.Lock()
        self._token: str | None = None
        self._token_expires_at = 0.0
        self._token_margin = TOKEN_REFRESH_MARGIN
        self._old_tokens: list[str] = []

    def __repr__(self) -> str:
        return f"<DingTalkWorkNoticeTransport channel={self.channel!r} app_key={self.app_key!r} agent_id={self.agent_id}>"

    def close(self) -> None:
        self._client.close()

    # -- secrets ---------------------------------------------------------------------------------
    def _clean(self, text: str) -> str:
        """`text` without query values (appsecret, access_token) nor the secret and the tokens fetched so far:
        not only the shared `redact`, since the secrets it must hide change while the transport runs."""
        return redact(redact_query(text), [self._app_secret, self._token, *self._old_tokens])

    # -- HTTP ------------------------------------------------------------------------------------
    def _http(self, method: str, path: str, *, params: Mapping[str, Any], payload: Any = None) -> dict | SendResult:
        where = f"DingTalk {path}"
        try:
            resp = self._client.request(method, self.base_url + path, params=params, json=payload)
        except httpx.HTTPError as e:
            return unanswered(where, e, self.timeout, self._clean)
        status = resp.status_code
        if status == 429:
            return SendResult(RECOVERABLE, error=f"{where}: HTTP 429 too many requests", code="http-429",
                              retry_after=_retry_after(resp.headers.get("retry-after"), 60.0))
        if status >= 500:
            return SendResult(RECOVERABLE, error=f"{where}: HTTP {status}", code=f"http-{status}")
        try:
            body = resp.json()
        except ValueError:
            if status < 300:  # DingTalk's per-IP throttle answers an HTML page
                return SendResult(RECOVERABLE, error=f"{where}: answer is not JSON (IP throttle page?)",
                                  code="throttled", retry_after=IP_THROTTLE_BAN)
            return SendResult(PERMANENT, error=f"{where}: HTTP {status}", code=f"http-{status}")
        if not isinstance(body, dict):
            return SendResult(PERMANENT, error=f"{where}: unexpected answer", code="bad-answer")
        if "errcode" not in body:
            if "punish" in body or "wait" in body:
                return SendResult(RECOVERABLE, error=f"{where}: the server IP is throttled by DingTalk",
                                  code="throttled", retry_after=IP_THROTTLE_BAN)
            if status >= 400:
                return SendResult(PERMANENT, error=f"{where}: HTTP {status}", code=f"http-{status}")
        return body

    def _failure(self, path: str, body: Mapping[str, Any], kind: str, retry: float | None, note: str) -> SendResult:
        code = body.get("errcode")
        errmsg = str(body.get("errmsg") or "")
        sub = body.get("sub_code")
        detail = f"errcode {code}" + (f", sub_code {sub}" if sub not in (None, "") else "")
        text = f"DingTalk {path}: {note} ({detail}: {errmsg})" if errmsg else f"DingTalk {path}: {note} ({detail})"
        status = RECOVERABLE if kind in (RECOVERABLE, TOKEN) else PERMANENT
        return SendResult(status, error=self._clean(text), code=str(code), retry_after=retry)

    # -- token -----------------------------------------------------------------------------------
    def _access_token(self, stale: str | None = None, force: bool = False) -> str | SendResult:
        with self._lock:
            now = self._clock()
            cached = self._token
            if cached and not force and cached != stale and now < self._token_expires_at - self._token_margin:
                return cached
            body = self._http("GET", "/gettoken", params={"appkey": self.app_key, "appsecret": self._app_secret.reveal()})
            if isinstance(body, SendResult):
                return body
            errcode = _int(body.get("errcode"))
            token = body.get("access_token")
            if errcode != 0 or not token:
                kind, retry, note = classify_errcode(errcode if errcode is not None else -999)
                if kind in (OK, TOKEN, PERMANENT):
                    kind, retry, note = PERMANENT, None, "DingTalk refused app_key/app_secret"
                return self._failure("/gettoken", body, kind, retry, note)
            expires_in = float(body.get("expires_in") or 7200)
            if cached:
                self._old_tokens = ([cached] + self._old_tokens)[:3]
            self._token = str(token)
            self._token_expires_at = now + expires_in
            self._token_margin = min(TOKEN_REFRESH_MARGIN, expires_in / 2)
            return self._token

    def _api(self, path: str, payload: Mapping[str, Any]) -> dict | SendResult:
        """POST to a token-protected API; refresh the token once on a token error."""
        stale: str | None = None
        for attempt in (1, 2):
            token = self._access_token(stale=stale)
            if isinstance(token, SendResult):
                return token
            body = self._http("POST", path, params={"access_token": token}, payload=payload)
            if isinstance(body, SendResult):
                return body
            errcode = _int(body.get("errcode"))
            if errcode is None:
                return SendResult(PERMANENT, error=f"DingTalk {path}: answer without errcode", code="bad-answer")
            kind, retry, note = classify_errcode(errcode, body.get("sub_code"), str(body.get("sub_msg") or ""))
            if kind == OK:
                return body
            if kind == TOKEN and attempt == 1:
                stale = token
                continue
            if kind == TOKEN:
                return self._failure(path, body, RECOVERABLE, 60.0, f"{note}, even after a token refresh")
            return self._failure(path, body, kind, retry, note)
        raise AssertionError("unreachable")

    # -- Transport -------------------------------------------------------------------------------
    def send(self, envelope: Envelope) -> SendResult:
        userid = envelope.to.strip()
        if not userid or "," in userid:
            return SendResult(PERMANENT, error="a DingTalk work notice needs exactly one userid", code="bad-address")
        text = envelope.body or ""
        title = (envelope.subject or _first_line(text) or "通知")[:64]
        payload = {
            "agent_id": self.agent_id,
            "userid_list": userid,
            "msg": {"msgtype": "markdown", "markdown": {"title": title, "text": text}},
        }
        size = len(json.dumps(payload["msg"], ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if size > MAX_MSG_BYTES:
            return SendResult(PERMANENT, error=f"the work notice is {size} bytes; DingTalk takes at most "
                                               f"{MAX_MSG_BYTES} (shorten the template for this channel)",
                              code="too-long")
        retry = bool(envelope.meta.get("unanswered"))
        mark = RETRY_MARK if retry else ""
        body = self._api("/topapi/message/corpconversation/asyncsend_v2", payload)
        if isinstance(body, SendResult):
            if retry and body.code == DUPLICATE_CONTENT:  # the unanswered attempt arrived: no task, no receipt
                return SendResult(ACCEPTED, provider_id=f"{RETRY_MARK}dup:{userid}")
            return body
        task_id = body.get("task_id")
        if task_id in (None, ""):
            return SendResult(RECOVERABLE, error="DingTalk answered errcode 0 without a task_id", code="bad-answer")
        return SendResult(ACCEPTED, provider_id=f"{mark}{task_id}:{userid}")

    def check(self) -> list[str]:
        """Fetches a fresh access token: proves the credentials and reachability without messaging anyone."""
        token = self._access_token(force=True)
        if isinstance(token, SendResult):
            return [f"channel {self.channel!r}: {token.error}"]
        return []

    def poll_receipts(self, provider_ids: Sequence[str]) -> list[Receipt]:
        by_task: dict[str, list[tuple[str, str]]] = {}
        receipts: list[Receipt] = []
        for pid in provider_ids:
            if pid.startswith(f"{RETRY_MARK}dup:"):  # refused at send time as a duplicate of the unanswered attempt
                receipts.append(Receipt(pid, "delivered", detail={"by_earlier_attempt": True,
                                                                  "code": DUPLICATE_CONTENT}))
                continue
            parsed = parse_provider_id(pid)
            if parsed is None:
                log.warning("channel %r: ignoring provider_id %r, not '<task_id>:<userid>'", self.channel, pid)
                continue
            by_task.setdefault(parsed[0], []).append((pid, parsed[1]))
        for task_id, wanted in by_task.items():
            body = self._api("/topapi/message/corpconversation/getsendresult",
                             {"agent_id": self.agent_id, "task_id": int(task_id)})
            if isinstance(body, SendResult):
                log.warning("channel %r: no receipts for task %s: %s", self.channel, task_id, body.error)
                continue
            result = body.get("send_result") or {}
            for pid, user in wanted:
                receipt = _receipt_for(pid, user, result)
                if receipt is not None:
                    receipts.append(receipt)
        return receipts


def _receipt_for(pid: str, user: str, result: Mapping[str, Any]) -> Receipt | None:
    def has(key: str) -> bool:
        return user in (result.get(key) or [])

    if has("read_user_id_list"):
        return Receipt(pid, "read")
    if has("unread_user_id_list"):
        return Receipt(pid, "delivered")
    for key, reason in (("invalid_user_id_list", "invalid userid"),
                        ("forbidden_user_id_list", "filtered by DingTalk's limits (same content once a day, "
                                                   "or too many messages to this user today)"),
                        ("failed_user_id_list", "send failed")):
        if has(key):
            detail: dict[str, Any] = {"list": key, "reason": reason}
            forbidden = [f for f in (result.get("forbidden_list") or [])
                         if isinstance(f, Mapping) and f.get("userid") == user]
            if forbidden:
                detail["forbidden"] = forbidden
            codes = {str(f.get("code")) for f in forbidden}
            if (key == "forbidden_user_id_list" and pid.startswith(RETRY_MARK)
                    and (DUPLICATE_CONTENT in codes or not codes)):
                return Receipt(pid, "delivered", detail={**detail, "by_earlier_attempt": True,
                                                         "reason": "duplicate of an earlier attempt that got no "
                                                                   "answer: that attempt arrived"})
            return Receipt(pid, "undelivered", detail=detail)
    return None


def _first_line(text: str) -> str:
    for line in text.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line
    return ""


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _retry_after(header: str | None, default: float) -> float:
    try:
        return max(0.0, float(header)) if header else default
    except ValueError:
        return default
