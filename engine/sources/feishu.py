"""Feishu Hire (飞书招聘) event subscriptions (open.feishu.cn, "将事件发送至开发者服务器"), completed through the Hire API.

Configuration: `secret` is the subscription's **Encrypt Key**, `verification_token` its Verification Token,
`app_id` / `app_secret` the app's credentials for the Hire API (`api_url`, default https://open.feishu.cn).

- Signature: `X-Lark-Signature` is the hex SHA-256 of `X-Lark-Request-Timestamp` + `X-Lark-Request-Nonce`
  + the Encrypt Key (UTF-8) followed by the raw body; the timestamp (Unix seconds) must lie within
  WINDOW_S of herald's clock, so a captured delivery cannot be replayed later. A plain body's
  `header.token` must also be the Verification Token.
- Encrypted bodies `{"encrypt": "<base64>"}`: AES-256-CBC, key = SHA-256 of the Encrypt Key, IV = the first
  16 bytes of the decoded data, PKCS#7 padding; the plain text is the event.
- URL verification (`{"type": "url_verification", "challenge", "token"}`, plain or encrypted; Feishu does not
  sign it): answered `{"challenge": ...}` when the token is the Verification Token, 401 otherwise.
- Schema 2.0 envelope: `header.event_id` is the dedup key, `header.event_type` the action,
  `header.create_time` (ms) the time. Events:
  - `hire.application.stage_changed_v1` (`event.application_id`): the application, its talent and job are
    fetched; a terminated application (`active_status` 2) -> reject, otherwise -> pass (to the new stage:
    `map.stage` from `application.stage.zh_name`); `map.decision` may say otherwise;
  - `hire.offer.status_changed_v1` (`event.offer_id`): the offer, its application, talent and job are
    fetched; `offer_status` 6 (sent) or 7 (accepted) -> offer, 9 (invalidated) -> the outcome is withdrawn,
    any other status -> ignored;
  - every other event type -> ignored.
- Details: `tenant_access_token` from POST /open-apis/auth/v3/tenant_access_token/internal (kept until
  shortly before it expires, fetched again when the API calls it invalid), then GET
  /open-apis/hire/v1/applications/:id, /talents/:id, /jobs/:id, /offers/:id; each retried with backoff on
  network errors, HTTP 429/5xx and Feishu's rate-limit code; still failing -> the event is kept as `pending`.

Candidate name, e-mail, phone and id come from the talent's `basic_info`. Map paths start at {event,
application, talent, job, offer}: `application.stage.zh_name`, `job.title`, `talent.basic_info.name`.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import httpx

from engine.sources.base import BaseKind, EventError, SourceEvent, SourceRequest, load_json, obj, same_hex, text
from engine.sources.lookup import TIMEOUT_S, Retry, retrying

if TYPE_CHECKING:
    from engine.sources.config import SourceConfig

API_URL = "https://open.feishu.cn"
WINDOW_S = 300  # how far X-Lark-Request-Timestamp may be from herald's clock
STAGE_CHANGED = "hire.application.stage_changed_v1"
OFFER_CHANGED = "hire.offer.status_changed_v1"
TERMINATED = 2                    # application.active_status of a terminated (rejected) application
OFFER_SENT = frozenset({6, 7})    # offer_status: sent, accepted by the candidate
OFFER_INVALID = frozenset({9})    # offer_status: invalidated -> withdraw
RETRY_CODES = frozenset({99991400})                     # Feishu's "too many requests"
TOKEN_CODES = frozenset({99991661, 99991663, 99991668})  # the tenant_access_token is missing, invalid or expired
TOKEN_MARGIN_S = 300


def signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """The X-Lark-Signature Feishu sends for `body`."""
    return hashlib.sha256((timestamp + nonce + encrypt_key).encode("utf-8") + body).hexdigest()


def decrypt(encrypt_key: str, data: str) -> bytes:
    """The plain text of an `encrypt` value; EventError when it is not base64 AES-256-CBC data or its PKCS#7
    padding is wrong. Another key's text decrypts to garbage whose padding is valid about once in 256: the
    caller's JSON decode refuses it then (plain_body)."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise EventError("encrypt is not base64") from None
    if len(raw) < 32 or len(raw) % 16:
        raise EventError("encrypt is not AES-256-CBC data")
    key = hashlib.sha256(encrypt_key.encode("utf-8")).digest()
    dec = Cipher(algorithms.AES(key), modes.CBC(raw[:16])).decryptor()
    padded = dec.update(raw[16:]) + dec.finalize()
    try:
        unpadder = padding.PKCS7(128).unpadder()
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise EventError("encrypt does not decrypt with the Encrypt Key") from None


def encrypt(encrypt_key: str, plain: bytes, iv: bytes) -> str:
    """The `encrypt` value Feishu sends for `plain` (for tests and `herald sources test`)."""
    from cryptography.hazmat.primitives import padding
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    padder = padding.PKCS7(128).padder()
    padded = padder.update(plain) + padder.finalize()
    enc = Cipher(algorithms.AES(hashlib.sha256(encrypt_key.encode("utf-8")).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(padded) + enc.finalize()).decode("ascii")


def plain_body(request: SourceRequest, source: SourceConfig) -> dict:
    """The delivery as a JSON object, decrypted when it is `{"encrypt": ...}`."""
    body = obj(load_json(request.body), "the body")
    sealed = body.get("encrypt")
    if sealed is None:
        return body
    if not isinstance(sealed, str):
        raise EventError("encrypt must be a string")
    return obj(load_json(decrypt(source.secret, sealed)), "the decrypted body")


def _same_token(given: Any, source: SourceConfig) -> bool:
    expected = str(source.settings.get("verification_token") or "")
    return isinstance(given, str) and bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _phone(info: dict) -> str | None:
    mobile = text(info.get("mobile"))
    code = text(info.get("mobile_code")) or text(info.get("mobile_country_code"))
    if mobile and code and not mobile.startswith("+"):
        return f"+{code.lstrip('+')}{mobile}"
    return mobile


def _instant(ms: Any) -> str | None:
    """`header.create_time` (milliseconds, a string) as RFC 3339 UTC."""
    try:
        return datetime.fromtimestamp(int(str(ms)) / 1000, UTC).isoformat()
    except (TypeError, ValueError, OverflowError, OSError):
        return None


class Feishu(BaseKind):
    name = "feishu"

    def __init__(self, sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        self.sleep, self.clock = sleep, clock
        self._tokens: dict[tuple, tuple[str, float]] = {}  # (api_url, app_id) -> (token, expires at, monotonic)
        self._lock = threading.Lock()

    # ------------------------------------------------------------------------------------- verify

    def verify(self, request: SourceRequest, source: SourceConfig) -> bool:
        given = request.header("X-Lark-Signature")
        if given is None:  # only a URL verification comes unsigned: its token is the proof
            try:
                body = plain_body(request, source)
            except EventError:
                return False
            return body.get("type") == "url_verification" and _same_token(body.get("token"), source)
        ts, nonce = request.header("X-Lark-Request-Timestamp") or "", request.header("X-Lark-Request-Nonce") or ""
        try:
            at = int(ts)
        except ValueError:
            return False
        now = request.received_at if request.received_at is not None else self.clock()
        if abs(now - at) > WINDOW_S or len(nonce) > 256:
            return False
        if not same_hex(given, signature(ts, nonce, source.secret, request.body)):
            return False
        try:
            body = obj(load_json(request.body), "the body")
        except EventError:
            return True  # signed but not JSON: parse says so (422)
        if "encrypt" in body:
            return True  # the token is inside: the signature already proves the Encrypt Key
        token = body.get("token") if body.get("type") == "url_verification" else \
            (body.get("header") or {}).get("token") if isinstance(body.get("header"), dict) else None
        return token is None or _same_token(token, source)

    # -------------------------------------------------------------------------------------- parse

    def parse(self, request: SourceRequest, source: SourceConfig) -> SourceEvent:
        body = plain_body(request, source)
        if body.get("type") == "url_verification":
            challenge = text(body.get("challenge"))
            if challenge is None:
                raise EventError("url_verification without a challenge")
            return SourceEvent("url_verification", "url_verification", reply={"challenge": challenge})
        header = obj(body.get("header"), "header")
        event_id, action = text(header.get("event_id")), text(header.get("event_type"))
        if event_id is None or action is None:
            raise EventError("header.event_id and header.event_type are required (schema 2.0)")
        event = body.get("event")
        if action not in (STAGE_CHANGED, OFFER_CHANGED):
            return SourceEvent(event_id, action, data={"event": event}, ignore=f"feishu {action} makes no outcome")
        event = obj(event, "event")
        with _Api(self, source) as api:
            if action == STAGE_CHANGED:
                return self._stage_changed(api, event_id, action, event, header)
            return self._offer_changed(api, event_id, action, event, header)

    def _stage_changed(self, api: _Api, event_id: str, action: str, event: dict, header: dict) -> SourceEvent:
        app_id = text(event.get("application_id"))
        if app_id is None:
            raise EventError("event.application_id is missing")
        shell = SourceEvent(event_id, action, app_id)
        application = api.get(f"applications/{app_id}", "application", shell)
        root = self._details(api, shell, event, application)
        terminated = application.get("active_status") == TERMINATED
        base = {"decision": "reject" if terminated else "pass", "occurred_at": _instant(header.get("create_time"))}
        base.update(_candidate(root["talent"]))
        return SourceEvent(event_id, action, app_id, root, base)

    def _offer_changed(self, api: _Api, event_id: str, action: str, event: dict, header: dict) -> SourceEvent:
        offer_id = text(event.get("offer_id"))
        if offer_id is None:
            raise EventError("event.offer_id is missing")
        offer = api.get(f"offers/{offer_id}", "offer", SourceEvent(event_id, action))
        app_id = text(offer.get("application_id"))
        if app_id is None:
            raise EventError(f"Feishu offer {offer_id} names no application")
        status = offer.get("offer_status")
        if status in OFFER_INVALID:
            return SourceEvent(event_id, action, app_id, {"event": event, "offer": offer}, withdraw=True)
        if status not in OFFER_SENT:
            return SourceEvent(event_id, action, app_id, {"event": event, "offer": offer},
                               ignore=f"feishu offer status {status} makes no outcome")
        shell = SourceEvent(event_id, action, app_id)
        application = api.get(f"applications/{app_id}", "application", shell)
        root = self._details(api, shell, event, application, offer)
        base = {"decision": "offer", "occurred_at": _instant(header.get("create_time"))}
        base.update(_candidate(root["talent"]))
        return SourceEvent(event_id, action, app_id, root, base)

    @staticmethod
    def _details(api: _Api, shell: SourceEvent, event: dict, application: dict, offer: dict | None = None) -> dict:
        talent_id, job_id = text(application.get("talent_id")), text(application.get("job_id"))
        talent = api.get(f"talents/{talent_id}", "talent", shell) if talent_id else {}
        job = api.get(f"jobs/{job_id}", "job", shell) if job_id else {}
        return {"event": event, "application": application, "talent": talent, "job": job, "offer": offer}

    # -------------------------------------------------------------------------------------- token

    def token(self, client: httpx.Client, source: SourceConfig, shell: SourceEvent, fresh: bool = False) -> str:
        """The tenant_access_token of the source's app (cached until TOKEN_MARGIN_S before it expires)."""
        key = (str(client.base_url), str(source.settings.get("app_id") or ""))
        with self._lock:
            held = self._tokens.get(key)
            if held is not None and not fresh and held[1] > time.monotonic():
                return held[0]

        def once() -> tuple[str, float]:
            r = client.post("/open-apis/auth/v3/tenant_access_token/internal",
                            json={"app_id": key[1], "app_secret": str(source.settings.get("app_secret") or "")})
            answer = _answer(r, "Feishu tenant_access_token")
            token = text(answer.get("tenant_access_token"))
            if token is None:
                raise EventError(f"Feishu tenant_access_token: refused (code {answer.get('code')})")
            raw = answer.get("expire")
            expire = raw if isinstance(raw, int) else 7200
            return token, time.monotonic() + max(expire - TOKEN_MARGIN_S, 60)

        got = retrying(once, "Feishu tenant_access_token", shell, self.sleep)
        with self._lock:
            self._tokens[key] = got
        return got[0]


def _answer(r: httpx.Response, what: str) -> dict:
    """Feishu's JSON answer; Retry on 429, 5xx and the rate-limit code; EventError on other HTTP errors."""
    if r.status_code == 429 or r.status_code >= 500:
        raise Retry(f"HTTP {r.status_code}")
    try:
        answer = r.json()
    except ValueError:
        raise EventError(f"{what}: HTTP {r.status_code}, not JSON") from None
    if not isinstance(answer, dict):
        raise EventError(f"{what}: HTTP {r.status_code}, not a JSON object")
    if answer.get("code") in RETRY_CODES:
        raise Retry(f"code {answer.get('code')}")
    if r.status_code != 200 and answer.get("code") not in TOKEN_CODES:
        raise EventError(f"{what}: HTTP {r.status_code} (code {answer.get('code')})")
    return answer


class _Api:
    """One event's look-ups: a client on the source's api_url, the app's token, `get(path, key)` -> data[key]."""

    def __init__(self, kind: Feishu, source: SourceConfig) -> None:
        self.kind, self.source = kind, source
        self.client = httpx.Client(base_url=str(source.settings.get("api_url") or API_URL).rstrip("/"),
                                   timeout=TIMEOUT_S)

    def __enter__(self) -> _Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()

    def get(self, path: str, key: str, shell: SourceEvent) -> dict:
        what = f"Feishu {key} look-up"
        fresh = False

        def once() -> dict:
            nonlocal fresh
            token = self.kind.token(self.client, self.source, shell, fresh)
            r = self.client.get(f"/open-apis/hire/v1/{path}", headers={"Authorization": f"Bearer {token}"})
            answer = _answer(r, what)
            code = answer.get("code")
            if code in TOKEN_CODES:
                fresh = True  # the cached token went stale: fetch a new one and try again
                raise Retry(f"code {code}")
            if code != 0:
                raise EventError(f"{what}: code {code} ({str(answer.get('msg') or '')[:120]})")
            return obj(obj(answer.get("data"), f"Feishu's answer to {key}").get(key), f"Feishu's {key}")

        return retrying(once, what, shell, self.kind.sleep)


def _candidate(talent: dict) -> dict:
    raw = talent.get("basic_info")
    info: dict = raw if isinstance(raw, dict) else {}
    return {"candidate.name": text(info.get("name")), "candidate.email": text(info.get("email")),
            "candidate.phone": _phone(info), "candidate.id": text(talent.get("id"))}


KIND = Feishu()
