"""Tracking links: signed tokens, the links templates use (rating, unsubscribe), click redirects and the open pixel.

A token is `base64url(payload || mac)` without padding, where

    payload = version (1 byte) | kind (1 byte) | issued_at (uint32, epoch seconds, big-endian)
              | channel | notification id | [target URL, clicks only]     (each: length-prefixed UTF-8)
    mac     = HMAC-SHA256(secret, "herald.tracking.v1" NUL payload)[:16]

so a token binds what it is for (open, click, rate, unsubscribe), the notification, the channel it went out on,
when it was issued and, for a click, the target URL itself: the redirect goes where the token says, never to a
free query parameter, and changing one byte of the target (or of anything else) breaks the 128-bit MAC. Tokens
are not encrypted: the notification id (outcome id and revision) can be read from a link, never forged.

Verification answers the payload or None (forged, altered, another kind, expired, from the future). Replays are
stopped where tokens are used (engine/tracking/routes.py): an open, a click, a rating and an unsubscription
count once per notification (a dedupe key on the event); a second rating is refused, never replaces the first.

The secret is `tracking.secret` in herald.yaml (write "${HERALD_TRACKING_SECRET}"): `herald serve` requires it
(`tracking_secret(config, required=True)`), dry-run renders links with a fixed placeholder secret that a real
daemon refuses, so links printed by a dry-run can never be replayed against production.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import html as _html
import re
import struct
import time
from dataclasses import dataclass, replace
from typing import Any
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from engine.config.settings import Config

OPEN, CLICK, RATE, UNSUBSCRIBE = "open", "click", "rate", "unsubscribe"
KINDS = {OPEN: 1, CLICK: 2, RATE: 3, UNSUBSCRIBE: 4}
_KIND_NAMES = {v: k for k, v in KINDS.items()}
DAY = 86400
MAX_AGE = {OPEN: 180 * DAY, CLICK: 365 * DAY, RATE: 60 * DAY, UNSUBSCRIBE: 730 * DAY}
CLOCK_SKEW = 300  # a token issued up to 5 minutes "in the future" (another host's clock) is accepted
PATHS = {OPEN: "/t/o/{token}.gif", CLICK: "/t/c/{token}", RATE: "/t/r/{token}", UNSUBSCRIBE: "/t/u/{token}"}
PLACEHOLDER_SECRET = "herald-dry-run-placeholder-secret-not-for-serve"
MIN_SECRET_LENGTH = 16
_VERSION = 1
_MAC_BYTES = 16
_DOMAIN = b"herald.tracking.v1\x00"
_HEAD = struct.Struct(">BBI")


class TrackingConfigError(ValueError):
    """tracking.secret is missing or unusable where links must be signed for real."""


@dataclass(frozen=True)
class TokenPayload:
    """What a verified token says."""

    kind: str
    notification_id: str
    channel: str | None
    issued_at: int
    url: str | None = None

    def expired(self, now: float | None = None, max_age: Mapping[str, float] | None = None) -> bool:
        limit = (max_age or MAX_AGE).get(self.kind, MAX_AGE[self.kind])
        return (time.time() if now is None else now) - self.issued_at > limit


# ------------------------------------------------------------------------------------------------ tokens

def _key(secret: str | bytes) -> bytes:
    key = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    if not key:
        raise TrackingConfigError("the tracking secret is empty")
    return key


def _mac(secret: str | bytes, payload: bytes) -> bytes:
    return hmac.new(_key(secret), _DOMAIN + payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _field(text: str) -> bytes:
    raw = text.encode("utf-8")
    if len(raw) < 0x80:
        return bytes([len(raw)]) + raw
    if len(raw) < 0x8000:
        return bytes([0x80 | (len(raw) >> 8), len(raw) & 0xFF]) + raw
    raise ValueError("a token field is limited to 32767 bytes")


def _read_field(data: bytes, pos: int) -> tuple[str, int]:
    if pos >= len(data):
        raise ValueError("truncated")
    n = data[pos]
    pos += 1
    if n & 0x80:
        if pos >= len(data):
            raise ValueError("truncated")
        n = ((n & 0x7F) << 8) | data[pos]
        pos += 1
    if pos + n > len(data):
        raise ValueError("truncated")
    return data[pos:pos + n].decode("utf-8"), pos + n


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(token: str) -> bytes | None:
    if not isinstance(token, str) or not token or len(token) > 48000 or not re.fullmatch(r"[A-Za-z0-9_-]+", token):
        return None
    try:
        return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (ValueError, TypeError):
        return None


def is_web_url(url: str) -> bool:
    """An absolute http(s) URL with a host: the only targets a click token may carry."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc) and not any(c in url for c in "\r\n\t ")


def make_token(secret: str | bytes, kind: str, notification_id: str, channel: str | None = None, *,
               url: str | None = None, issued_at: float | None = None) -> str:
    """A signed token for `kind` (open, click, rate, unsubscribe); a click needs the target `url` (http or https)."""
    if kind not in KINDS:
        raise ValueError(f"token kind {kind!r}: use one of {', '.join(KINDS)}")
    if not notification_id:
        raise ValueError("a token needs a notification id")
    if (kind == CLICK) != (url is not None):
        raise ValueError("a click token needs the target url, and only a click token carries one")
    if url is not None and not is_web_url(url):
        raise ValueError(f"click target must be an absolute http(s) URL, got {url!r}")
    iat = int(time.time() if issued_at is None else issued_at)
    payload = _HEAD.pack(_VERSION, KINDS[kind], iat & 0xFFFFFFFF) + _field(channel or "") + _field(notification_id)
    if url is not None:
        payload += _field(url)
    return _b64(payload + _mac(secret, payload))


def decode_token(secret: str | bytes, token: str, kind: str | None = None) -> TokenPayload | None:
    """The payload of an authentic token (MAC checked, kind checked when given), expired or not; else None."""
    data = _unb64(token)
    if data is None or len(data) < _HEAD.size + 2 + _MAC_BYTES:
        return None
    payload, mac = data[:-_MAC_BYTES], data[-_MAC_BYTES:]
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        return None
    try:
        version, code, iat = _HEAD.unpack_from(payload)
        if version != _VERSION or code not in _KIND_NAMES:
            return None
        channel, pos = _read_field(payload, _HEAD.size)
        nid, pos = _read_field(payload, pos)
        url = None
        if _KIND_NAMES[code] == CLICK:
            url, pos = _read_field(payload, pos)
        if pos != len(payload) or not nid:
            return None
    except (ValueError, UnicodeDecodeError, struct.error):
        return None
    got = TokenPayload(_KIND_NAMES[code], nid, channel or None, iat, url)
    if kind is not None and got.kind != kind:
        return None
    if got.url is not None and not is_web_url(got.url):
        return None
    return got


def verify_token(secret: str | bytes, token: str, kind: str | None = None, *, now: float | None = None,
                 max_age: Mapping[str, float] | None = None) -> TokenPayload | None:
    """The payload of an authentic, unexpired token of `kind`; None for anything else."""
    got = decode_token(secret, token, kind)
    if got is None:
        return None
    t = time.time() if now is None else now
    if got.issued_at > t + CLOCK_SKEW or got.expired(t, max_age):
        return None
    return got


def tracking_secret(config: Config | None = None, *, required: bool, env: Mapping[str, str] | None = None) -> str:
    """The secret that signs links: config.tracking.secret (already expanded from ${ENV}).

    required (herald serve): missing, too short, or the dry-run placeholder -> TrackingConfigError.
    Not required (dry-run, validate): the fixed PLACEHOLDER_SECRET when none is set.
    """
    secret = config.tracking.secret if config is not None else None
    if isinstance(secret, str) and secret and secret != PLACEHOLDER_SECRET:
        if len(secret) < MIN_SECRET_LENGTH and required:
            raise TrackingConfigError(f"tracking.secret is {len(secret)} characters long; use at least "
                                      f"{MIN_SECRET_LENGTH} random ones (e.g. `openssl rand -base64 32`)")
        return secret
    if required:
        raise TrackingConfigError('tracking.secret is not set: add `tracking: {secret: "${HERALD_TRACKING_SECRET}"}` '
                                  "to herald.yaml and set HERALD_TRACKING_SECRET to a long random value")
    return PLACEHOLDER_SECRET


# ------------------------------------------------------------------------------------------------- links

def _base(base_url: str) -> str:
    if not is_web_url(base_url):
        raise ValueError(f"base_url must be an absolute http(s) URL (server.public_url), got {base_url!r}")
    return base_url.rstrip("/")


def tracking_url(kind: str, notification_id: str, channel: str | None, base_url: str, secret: str | bytes, *,
                 url: str | None = None, issued_at: float | None = None) -> str:
    """The daemon URL for one token of `kind`."""
    token = make_token(secret, kind, notification_id, channel, url=url, issued_at=issued_at)
    return _base(base_url) + PATHS[kind].format(token=token)


def links_for(notification_id: str, channel: str | None, base_url: str, secret: str | bytes, *,
              issued_at: float | None = None) -> dict[str, str]:
    """The `links` a template sees: {"rating": url, "unsubscribe": url}, signed for this notification and channel."""
    return {"rating": tracking_url(RATE, notification_id, channel, base_url, secret, issued_at=issued_at),
            "unsubscribe": tracking_url(UNSUBSCRIBE, notification_id, channel, base_url, secret, issued_at=issued_at)}


def click_url(target: str, notification_id: str, channel: str | None, base_url: str, secret: str | bytes, *,
              issued_at: float | None = None) -> str:
    """A signed redirect to `target` that records a click."""
    return tracking_url(CLICK, notification_id, channel, base_url, secret, url=target, issued_at=issued_at)


def pixel_html(notification_id: str, channel: str | None, base_url: str, secret: str | bytes, *,
               issued_at: float | None = None) -> str:
    """The open-tracking <img> for an e-mail's HTML part (1x1 transparent GIF)."""
    src = tracking_url(OPEN, notification_id, channel, base_url, secret, issued_at=issued_at)
    return (f'<img src="{_html.escape(src)}" width="1" height="1" alt="" '
            f'style="border:0;width:1px;height:1px;overflow:hidden" />')


_TEXT_URL = re.compile(r"https?://[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]+")
_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(?:"([^"]*)"|'([^']*)')""", re.IGNORECASE | re.DOTALL)


def _trim(url: str) -> str:
    """A URL found in running text, without the punctuation that ends the sentence (and unbalanced ')' ']')."""
    while url:
        last = url[-1]
        if last in ".,;:!?'\"*" or (last == ")" and url.count("(") < url.count(")")) or (last == "]" and url.count("[") < url.count("]")):
            url = url[:-1]
        else:
            break
    return url


def template_links(source: str | None) -> frozenset[str]:
    """The http(s) URLs written out in a template's source (a URL with a {{ }} part ends before it, so a link
    built from outcome data is never one of them), in the form they render to (HTML entities decoded)."""
    if not source:
        return frozenset()
    found = {_trim(m.group(0)) for m in _TEXT_URL.finditer(source)}
    return frozenset(found | {_html.unescape(u) for u in found})


def rewrite_links(content: str | None, notification_id: str, channel: str | None, base_url: str,
                  secret: str | bytes, *, html: bool = False, issued_at: float | None = None,
                  only: Collection[str] | None = None) -> str | None:
    """Wraps http(s) links of a rendered body into signed click redirects.

    html=True: the href of each <a> (entities decoded, the new URL escaped); text inside the HTML is left.
    html=False: every http(s) URL in the text (markdown links too), minus trailing sentence punctuation.
    only: wrap only these targets (the daemon passes template_links() of the template: links from outcome
    data are never signed). Links that already point at the daemon (`base_url`: rating, unsubscribe, earlier
    rewrites) are left as they are, so rewriting twice changes nothing.
    """
    if not content:
        return content
    base = _base(base_url)
    iat = int(time.time() if issued_at is None else issued_at)

    def wrap(target: str) -> str | None:
        if not is_web_url(target) or target == base or target.startswith(base + "/"):
            return None
        if only is not None and target not in only:
            return None
        return click_url(target, notification_id, channel, base, secret, issued_at=iat)

    if html:
        def href(m: re.Match) -> str:
            raw = m.group(2) if m.group(2) is not None else m.group(3)
            new = wrap(_html.unescape(raw).strip())
            return m.group(0) if new is None else f'{m.group(1)}"{_html.escape(new)}"'
        return _HREF.sub(href, content)

    def text(m: re.Match) -> str:
        url = _trim(m.group(0))
        new = wrap(url)
        return m.group(0) if new is None else new + m.group(0)[len(url):]
    return _TEXT_URL.sub(text, content)


def add_pixel(html_body: str | None, notification_id: str, channel: str | None, base_url: str,
              secret: str | bytes, *, issued_at: float | None = None) -> str | None:
    """The HTML with the open pixel just before </body> (appended when there is none); None stays None."""
    if not html_body:
        return html_body
    img = pixel_html(notification_id, channel, base_url, secret, issued_at=issued_at)
    at = html_body.lower().rfind("</body>")
    return html_body[:at] + img + html_body[at:] if at >= 0 else html_body + img


REWRITE_CHANNELS = frozenset({"email", "dingtalk", "webhook"})  # SMS text comes from approved templates: untouched


def track_message(message: Any, notification_id: str, base_url: str, secret: str | bytes, *,
                  links: Collection[str] = frozenset(), issued_at: float | None = None,
                  channels: frozenset = REWRITE_CHANNELS) -> Any:
    """A rendered engine.model.Message with the hrefs of its HTML part wrapped and, on e-mail, the open pixel.

    Only hrefs whose target is one of `links` (template_links() of the template source) are wrapped: a URL that
    came from outcome data is never signed into a redirect. Plain text (and DingTalk markdown, SMS) is left as
    written, so the reader sees the real URL. Call it just before the transport (the stored message stays as
    rendered); put {{ links.rating }} in the template where a rating link is wanted.
    """
    ch = message.channel
    if ch not in channels or not message.html:
        return message
    iat = int(time.time() if issued_at is None else issued_at)
    html_body = rewrite_links(message.html, notification_id, ch, base_url, secret, html=True, issued_at=iat,
                              only=frozenset(links))
    if ch == "email":
        html_body = add_pixel(html_body, notification_id, ch, base_url, secret, issued_at=iat)
    return replace(message, html=html_body)


# 1x1 transparent GIF (43 bytes)
PIXEL_GIF = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
             b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")

__all__ = [
    "CLICK",
    "KINDS",
    "MAX_AGE",
    "OPEN",
    "PIXEL_GIF",
    "PLACEHOLDER_SECRET",
    "RATE",
    "UNSUBSCRIBE",
    "TokenPayload",
    "TrackingConfigError",
    "add_pixel",
    "click_url",
    "decode_token",
    "is_web_url",
    "links_for",
    "make_token",
    "pixel_html",
    "rewrite_links",
    "template_links",
    "track_message",
    "tracking_secret",
    "tracking_url",
    "verify_token",
]
