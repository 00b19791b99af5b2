"""The webhook transport: a signed JSON POST per envelope; the receiver's HTTP status decides accepted, recoverable or permanent.

Request: ``POST <url>`` with ``Content-Type: application/json; charset=utf-8`` and the UTF-8 JSON body
``{"notification", "attempt_key", "channel", "to", "subject", "body", "html", "meta", "sent_at"}``.
Headers:

- ``Idempotency-Key: <attempt_key>``: the same on every retry of one attempt; receivers should deduplicate on it
  (a timed-out request may have been processed, and will be sent again).
- ``X-Herald-Timestamp: <unix seconds>``.
- ``X-Herald-Signature: sha256=<hex>`` when the channel has a ``secret``: the hex HMAC-SHA256, keyed with the
  secret (UTF-8), of the bytes ``f"{timestamp}."`` followed by the raw request body, exactly as received.

To verify, a receiver recomputes the HMAC over the raw body (before parsing the JSON), compares in constant time
and refuses timestamps more than 5 minutes away from its clock; ``verify_signature()`` here does exactly that.

Answers: 2xx is accepted (``provider_id`` is the JSON reply's ``id`` when there is one, else the attempt key);
408, 425, 429 and 5xx, timeouts and connection errors are recoverable (``Retry-After`` is honoured); any other
status is permanent with ``code`` the status number.
"""
from __future__ import annotations

import json
import ssl
import threading
import time
from datetime import datetime, UTC
from email.utils import parsedate_to_datetime
from typing import Any
from collections.abc import Mapping
from urllib.parse import urlsplit

import httpx

from engine.channels.capabilities import CAPABILITIES
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope, SendResult
from engine.channels.signing import Secret, SettingsReader, http_client, redact, verify_signature, webhook_signature

__all__ = ["SETTINGS", "WebhookTransport", "retry_after_seconds", "verify_signature", "webhook_signature"]

SETTINGS: dict[str, tuple[bool, bool, str]] = {
    "url": (True, False, "http(s) URL to POST to; only its scheme, host and port appear in errors"),
    "secret": (False, True, "HMAC-SHA256 key: when set, every request carries X-Herald-Signature"),
    "headers": (False, True, "extra request headers (a mapping); values are treated as secrets, e.g. Authorization"),
    "timeout": (False, False, "seconds for connect, write and read (default 10)"),
    "verify": (False, False, "verify the receiver's TLS certificate (default true)"),
    "ca_file": (False, False, "PEM file of CA certificates to trust instead of the system store"),
}

RESERVED_HEADERS = {"content-type", "content-length", "host", "idempotency-key", "x-herald-timestamp",
                    "x-herald-signature"}
RECOVERABLE_STATUS = {408, 425, 429}
MAX_RETRY_AFTER = 24 * 3600.0


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delay-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class WebhookTransport:
    """POSTs one signed JSON document per envelope. Safe from any thread: each thread sending through it has an HTTP
    client of its own, kept until close(), so a worker's sends reuse its connection (keep-alive) instead of
    building a client and connecting (a TLS handshake, for https) for every message; after close() a send gets a
    client for that call only."""

    name = "webhook"
    capabilities = CAPABILITIES["webhook"]

    def __init__(self, channel: str, settings: Mapping[str, Any]):
        self.channel = channel
        r = SettingsReader(self.name, channel, settings, SETTINGS)
        url = r.url("url") or ""
        self._url = Secret(url)  # paths and queries often carry tokens: kept out of reprs and errors
        self.origin = origin_of(url)
        self.secret: Secret | None = r.secret("secret")
        self.timeout = r.number("timeout", 10.0, 0.001)
        self.verify = r.flag("verify", True)
        self.ca_file = r.text("ca_file")
        self._headers: dict[str, Secret] = {}
        self._local = threading.local()  # .client: this thread's client
        self._clients: list[httpx.Client] = []  # every thread's, closed by close()
        self._closed = False
        self._lock = threading.Lock()
        raw_headers = settings.get("headers") or {}
        if not isinstance(raw_headers, Mapping):
            r.fail("headers", "must be a mapping of header name to value")
        else:
            for key, value in raw_headers.items():
                name = str(key).strip()
                if not name or any(c in name for c in " :\r\n\0") or not name.isascii():
                    r.fail("headers", "has a name that is not a valid HTTP header name")
                elif name.lower() in RESERVED_HEADERS:
                    r.fail("headers", f"must not set {name!r}: herald sets it")
                elif not isinstance(value, (str, int, float)) or any(c in str(value) for c in "\r\n\0"):
                    r.fail("headers", f"value of {name!r} must be a single-line string")
                else:
                    self._headers[name] = Secret(str(value))
        r.raise_if_problems()

    def __repr__(self) -> str:
        extra = f", headers={sorted(self._headers)}" if self._headers else ""
        signed = ", secret=***" if self.secret else ""
        return f"WebhookTransport(channel={self.channel!r}, url={self.origin!r}{signed}{extra})"

    def _secrets(self) -> list[Secret | str | None]:
        out: list[Secret | str | None] = [self.secret, *self._headers.values()]
        parts = urlsplit(self._url.reveal())
        out += [parts.password, parts.query or None]  # a token in the URL's query is a secret too
        if parts.path and len(parts.path) > 1:
            out.append(parts.path)
        return out

    def _clean(self, text: str) -> str:
        return redact(text, self._secrets())

    def _client(self) -> httpx.Client:
        return http_client(self.timeout, self.verify, self.ca_file)

    def _kept_client(self) -> httpx.Client | None:
        """This thread's client, made on its first send (None once the transport is closed)."""
        if self._closed:
            return None
        client = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                if self._closed:
                    return None
                client = self._local.client = self._client()
                self._clients.append(client)
        return client

    def close(self) -> None:
        """Closes every thread's client (their connections); later sends use a client per call."""
        with self._lock:
            self._closed = True
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    def payload(self, envelope: Envelope, sent_at: datetime | None = None) -> bytes:
        """The exact request body bytes (what the signature covers)."""
        record = {**envelope.record(), "sent_at": (sent_at or datetime.now(UTC)).isoformat(timespec="seconds")}
        return json.dumps(record, ensure_ascii=False, separators=(",", ":"), default=str).encode("utf-8")

    def request_headers(self, envelope: Envelope, body: bytes, timestamp: int) -> dict[str, str]:
        headers = {k: v.reveal() for k, v in self._headers.items()}
        headers.update({
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": envelope.attempt_key,
            "X-Herald-Timestamp": str(timestamp),
            "User-Agent": "herald-webhook/1",
        })
        if self.secret:
            headers["X-Herald-Signature"] = webhook_signature(self.secret.reveal(), timestamp, body)
        return headers

    def send(self, envelope: Envelope) -> SendResult:
        if any(c in envelope.attempt_key for c in "\r\n\0"):
            return SendResult(PERMANENT, error="attempt key cannot go in a header", code="message")
        body = self.payload(envelope)
        headers = self.request_headers(envelope, body, int(time.time()))
        try:
            response = None
            kept = self._kept_client()
            if kept is not None:
                try:
                    response = kept.post(self._url.reveal(), content=body, headers=headers)
                except RuntimeError:  # closed by close() meanwhile, before anything was sent
                    response = None
            if response is None:
                with self._client() as client:
                    response = client.post(self._url.reveal(), content=body, headers=headers)
        except httpx.HTTPError as e:
            return self._transport_error(e)
        return self.classify(response, envelope.attempt_key)

    def classify(self, response: httpx.Response, attempt_key: str) -> SendResult:
        status = response.status_code
        if 200 <= status < 300:
            return SendResult(ACCEPTED, provider_id=_reply_id(response) or attempt_key)
        # mask first, then cut: a secret echoed across the cut would otherwise leave its first half behind
        detail = " ".join(self._clean(response.text[:10000]).split())[:200] if response.content else ""
        error = f"{self.origin} answered {status} {response.reason_phrase}" + (f": {detail}" if detail else "")
        if status in RECOVERABLE_STATUS or 500 <= status < 600:
            return SendResult(RECOVERABLE, error=error, code=str(status),
                              retry_after=retry_after_seconds(response.headers.get("Retry-After")))
        if 300 <= status < 400:
            error += "; redirects are not followed: configure the final URL"
        return SendResult(PERMANENT, error=error, code=str(status))

    def _transport_error(self, e: httpx.HTTPError) -> SendResult:
        if isinstance(e, httpx.TimeoutException):
            return SendResult(RECOVERABLE, error=f"{self.origin}: timed out after {self.timeout:g} s "
                                                 f"({type(e).__name__})", code="timeout")
        if _cert_error(e):
            return SendResult(PERMANENT, error=f"{self.origin}: TLS certificate not trusted; set ca_file",
                              code="tls")
        kind = "connection failed" if isinstance(e, httpx.ConnectError) else "request failed"
        return SendResult(RECOVERABLE, error=self._clean(f"{self.origin}: {kind}: {e}"), code="connection")

    def check(self) -> list[str]:
        """HEADs the URL (no body, nothing reaches a candidate); any answer but 404, 410 or 5xx (501 aside) is reachable."""
        try:
            with self._client() as client:
                response = client.head(self._url.reveal(), headers={k: v.reveal() for k, v in self._headers.items()})
        except httpx.HTTPError as e:
            return [f"channel {self.channel!r}: {self._transport_error(e).error}"]
        if response.status_code in (404, 410) or (response.status_code >= 500 and response.status_code != 501):
            return [f"channel {self.channel!r}: {self.origin} answered {response.status_code} "
                    f"{response.reason_phrase} to HEAD; is the URL right?"]
        return []


def origin_of(url: str) -> str:
    """scheme://host[:port] only: paths and queries often hold tokens, and errors must not show them."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}"


def _reply_id(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except (ValueError, UnicodeDecodeError):
        return None
    if isinstance(data, dict) and isinstance(data.get("id"), (str, int)) and not isinstance(data.get("id"), bool):
        value = str(data["id"]).strip()
        return value[:200] or None
    return None


def _cert_error(e: BaseException) -> bool:
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ssl.SSLCertVerificationError):
            return True
        cur = cur.__cause__ or cur.__context__
    return False
