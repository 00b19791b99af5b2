"""The transport contract's shared parts: settings reader, Secret, redaction, the HTTP client factory, HMAC signatures.

Every transport reads its settings block with `SettingsReader` (problems named by setting, never by value; unknown
settings refused), holds each secret as a `Secret`, masks error texts with `redact` (and `redact_query` for URLs
whose query carries credentials), and makes its HTTP clients with `http_client`, which also masks query values in
httpx's own request log lines (DingTalk puts app secrets, tokens and signatures in the query string).
"""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import logging
import re
import ssl
import threading
import time
from typing import Any
from collections.abc import Callable, Iterable, Mapping
from urllib.parse import urlsplit

import httpx

from engine.model import RECOVERABLE, SendResult

REDACTED = "***"


# a query parameter's value in a URL: `?name=value` or `&name=value`
_QUERY_VALUE = re.compile(r"([?&][^=&\s\"'#]+=)[^&\s\"'#]+")


def redact_query(text: str) -> str:
    """Every query parameter value in text's URLs as *** (DingTalk puts appsecret, access_token and sign there)."""
    return _QUERY_VALUE.sub(rf"\1{REDACTED}", text)


class _QueryRedactor(logging.Filter):
    """Masks query values in httpx's request log lines ("HTTP Request: POST <url> ...")."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken record is not ours to fix; a log filter must not raise
            return True
        masked = redact_query(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


QUERY_REDACTOR = _QueryRedactor()
_redactor_lock = threading.Lock()


def _install_query_redactor() -> None:
    with _redactor_lock:
        httpx_log = logging.getLogger("httpx")
        if QUERY_REDACTOR not in httpx_log.filters:
            httpx_log.addFilter(QUERY_REDACTOR)


def http_client(timeout: float, verify: bool = True, ca_file: str | None = None) -> httpx.Client:
    """An httpx client for one provider: the system's CAs, or only `ca_file`'s, or (verify off) none; no redirects.

    Making one puts `QUERY_REDACTOR` on the httpx logger (once per process), so no request line logs a credential."""
    _install_query_redactor()
    tls: ssl.SSLContext | bool = tls_context(ca_file) if verify else False
    return httpx.Client(timeout=httpx.Timeout(timeout), verify=tls, follow_redirects=False)


@functools.lru_cache(maxsize=32)
def tls_context(ca_file: str | None = None) -> ssl.SSLContext:
    """The verifying TLS context for `ca_file` (None: what httpx's verify=True uses), made once per process and
    shared by every client: making one loads the whole CA bundle (about 0.1 s), which a transport that opens a
    client per send (webhook, the DingTalk robot) paid on every message. A CA file changed on disk is read again
    at the next start."""
    if ca_file:
        return ssl.create_default_context(cafile=ca_file)
    return httpx.create_ssl_context()


class Secret:
    """A secret setting: prints as *** everywhere (repr, str, f-strings, logs); reveal() gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict) -> Secret:
        return self

    def __reduce__(self) -> Any:  # copying works (above); pickling, which could write the value out, does not
        raise TypeError("Secret cannot be pickled")


def unanswered(where: str, e: httpx.HTTPError, timeout: float, clean: Callable[[str], str]) -> SendResult:
    """The result of a request that got no answer: code 'connection' when it never reached the provider (safe to
    send again), 'timeout' or 'network' when it may have (engine.channels.base.UNANSWERED_CODES: a transport that
    cannot deduplicate looks such an attempt up before sending again). `clean` redacts the exception's text."""
    if isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout)):
        return SendResult(RECOVERABLE, error=clean(f"{where}: {type(e).__name__}: {e}"), code="connection")
    if isinstance(e, httpx.TimeoutException):
        return SendResult(RECOVERABLE, error=f"{where}: no answer within {timeout:g} s", code="timeout")
    return SendResult(RECOVERABLE, error=clean(f"{where}: {type(e).__name__}: {e}"), code="network")


def valid_url(url: str, query: bool = True) -> bool:
    """An http:// or https:// URL with a host (and a readable port), no whitespace; `query=False`: and no query."""
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError on a bad port
    except ValueError:
        return False
    return (parts.scheme in ("http", "https") and bool(parts.hostname) and not any(c in url for c in " \r\n\0")
            and (query or not parts.query))


def redact(text: str, secrets: Iterable[str | Secret | None]) -> str:
    """Replace every occurrence of each secret (and its URL-quoted forms) in text with ***."""
    from urllib.parse import quote, quote_plus

    values: set[str] = set()
    for s in secrets:
        raw = s.reveal() if isinstance(s, Secret) else s
        if not raw:
            continue
        values.update({raw, quote(raw, safe=""), quote_plus(raw)})
    for value in sorted(values, key=len, reverse=True):  # longest first: a quoted form may contain the raw one
        if len(value) >= 4:  # a 1-3 character "secret" would shred ordinary text; such secrets are refused anyway
            text = text.replace(value, REDACTED)
    return text


# --- HMAC ------------------------------------------------------------------------------------------

def hmac_sha256(key: str | bytes, message: str | bytes) -> bytes:
    k = key.encode("utf-8") if isinstance(key, str) else key
    m = message.encode("utf-8") if isinstance(message, str) else message
    return hmac.new(k, m, hashlib.sha256).digest()


def webhook_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Herald-Signature value: 'sha256=' + hex HMAC-SHA256(secret, f'{timestamp}.' + raw body bytes)."""
    return "sha256=" + hmac_sha256(secret, str(timestamp).encode("ascii") + b"." + body).hex()


def verify_signature(secret: str, timestamp: int | str | None, body: bytes | str, header: str | None,
                     tolerance: float = 300, now: float | None = None) -> bool:
    """True when header is the webhook signature of (timestamp, body) under secret and the timestamp is fresh.

    For receivers of herald's webhook: pass the X-Herald-Timestamp header, the raw request body (bytes, exactly as
    received, before any JSON parsing) and the X-Herald-Signature header. A timestamp more than `tolerance` seconds
    away from now is refused (replay protection). Never raises on malformed input; answers False.
    """
    if not secret or header is None or timestamp is None:
        return False
    try:
        ts = int(str(timestamp).strip())
    except ValueError:
        return False
    current = time.time() if now is None else now
    if abs(current - ts) > tolerance:
        return False
    raw = body.encode("utf-8") if isinstance(body, str) else body
    expected = webhook_signature(secret, ts, raw)
    return hmac.compare_digest(expected.encode("ascii"), header.strip().encode("utf-8", "replace"))


def dingtalk_sign(secret: str, timestamp_ms: int | str) -> str:
    """DingTalk robot signature: base64(HMAC-SHA256(key=secret, msg=f'{timestamp}\\n{secret}')), not yet URL-encoded."""
    return base64.b64encode(hmac_sha256(secret, f"{timestamp_ms}\n{secret}")).decode("ascii")


# --- settings coercion (values may come from YAML or from ${ENV} strings) -------------------------------

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingsReader:
    """Reads a channel's settings block, collecting every problem (named by setting, never by value)."""

    def __init__(self, transport: str, channel: str, settings: Mapping[str, Any], spec: Mapping[str, tuple]):
        self.prefix = f"channel {channel!r} ({transport})"
        self.settings = dict(settings)
        self.problems: list[str] = []
        unknown = sorted(k for k in self.settings if k not in spec and k != "transport")
        if unknown:
            self.problems.append(f"unknown setting(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(spec))}")
        for name, (required, _secret, _doc) in spec.items():
            value = self.settings.get(name)
            if required and (value is None or (isinstance(value, str) and not value.strip())):
                self.problems.append(f"setting {name!r} is required")

    def fail(self, name: str, why: str) -> None:
        self.problems.append(f"setting {name!r} {why}")

    def raise_if_problems(self) -> None:
        if self.problems:
            raise ValueError(f"{self.prefix}: " + "; ".join(self.problems))

    def text(self, name: str, default: str | None = None) -> str | None:
        value = self.settings.get(name)
        if value is None:
            return default
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            self.fail(name, "must be a string")
            return default
        value = str(value).strip()
        if any(c in value for c in "\r\n\0"):
            self.fail(name, "must not contain line breaks")
            return default
        return value or default

    def secret(self, name: str) -> Secret | None:
        value = self.settings.get(name)
        if value is None or value == "":
            return None
        if not isinstance(value, str):
            self.fail(name, "must be a string")
            return None
        if any(c in value for c in "\r\n\0"):
            self.fail(name, "must not contain line breaks")
            return None
        if len(value) < 4:
            self.fail(name, "is too short to be a real secret")
            return None
        return Secret(value)

    def url(self, name: str, default: str | None = None, query: bool = True) -> str | None:
        """An http(s) URL setting (see valid_url), without a trailing slash when it is a base to add paths to."""
        value = self.text(name, default)
        if value is not None and not valid_url(value, query):
            self.fail(name, "must be an http:// or https:// URL with a host" + ("" if query else " and no query"))
        return value

    def flag(self, name: str, default: bool) -> bool:
        value = self.settings.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
            return value.strip().lower() in _TRUE
        self.fail(name, "must be true or false")
        return default

    def number(self, name: str, default: float, minimum: float = 0.0, integer: bool = False) -> float:
        value = self.settings.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            return default
        try:
            if isinstance(value, bool):
                raise ValueError
            number = int(str(value).strip()) if integer else float(str(value).strip())
        except ValueError:
            self.fail(name, "must be an integer" if integer else "must be a number")
            return default
        if number < minimum or number != number:
            self.fail(name, f"must be at least {minimum:g}")
            return default
        return number

