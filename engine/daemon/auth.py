"""Intake authentication from herald.yaml server.auth: a bearer token, or an HMAC-SHA256 signature.

The signature (`X-Herald-Signature: sha256=<hex>`) covers `METHOD\nPATH?QUERY\nTIMESTAMP\nBODY`:
the method, the raw request path with its query (`?QUERY` only when there is one), the Unix time in
`X-Herald-Timestamp`, and the raw body. A timestamp more than `MAX_SKEW` seconds from the daemon's
real time is refused, so an observed signature cannot be replayed later, nor used for another
method, path or body.
"""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Mapping

from engine.config.settings import ServerAuth

DEFAULT_SIGNATURE_HEADER = "X-Herald-Signature"
TIMESTAMP_HEADER = "X-Herald-Timestamp"
MAX_SKEW = 300  # seconds a signed request's timestamp may be off the daemon's real time (either way)


@dataclass(frozen=True)
class Auth:
    """What an intake request must carry; with neither token nor secret set, nothing (loopback only)."""

    token: str | None = field(default=None, repr=False)
    hmac_secret: str | None = field(default=None, repr=False)
    signature_header: str = DEFAULT_SIGNATURE_HEADER

    @classmethod
    def from_settings(cls, auth: ServerAuth) -> Auth:
        """From herald.yaml's server.auth (secrets already expanded from ${ENV}; empty values are unset)."""
        return cls(token=auth.token, hmac_secret=auth.hmac_secret, signature_header=auth.signature_header)

    @property
    def enabled(self) -> bool:
        return bool(self.token or self.hmac_secret)

    def allows(self, method: str, target: str, headers: Mapping[str, str], body: bytes, now: float) -> bool:
        """True when the request carries the bearer token or a valid, fresh signature (or auth is off).

        `target`: the raw path with `?query` when there is one; `now`: real Unix time.
        """
        if not self.enabled:
            return True
        if self.token:
            given = headers.get("authorization", "")
            scheme, _, value = given.partition(" ")
            if scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), self.token.encode()):
                return True
        if self.hmac_secret:
            given = headers.get(self.signature_header.lower(), "") or headers.get(self.signature_header, "")
            algo, _, digest = given.strip().partition("=")
            stamp = (headers.get(TIMESTAMP_HEADER.lower(), "") or headers.get(TIMESTAMP_HEADER, "")).strip()
            if algo.lower() == "sha256" and digest and stamp.isdigit() and len(stamp) <= 12 \
                    and abs(now - int(stamp)) <= MAX_SKEW:
                want = sign(self.hmac_secret, method, target, stamp, body)
                return hmac.compare_digest(digest.strip().lower().encode(), want.encode())
        return False


def sign(secret: str, method: str, target: str, timestamp: str | int, body: bytes) -> str:
    """The hex HMAC-SHA256, keyed with `secret`, of `METHOD\nPATH?QUERY\nTIMESTAMP\nBODY` (send `sha256=<hex>`)."""
    head = f"{method.upper()}\n{target}\n{timestamp}\n".encode()
    return hmac.new(secret.encode("utf-8"), head + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, method: str, target: str, body: bytes, now: float,
                   signature_header: str = DEFAULT_SIGNATURE_HEADER) -> dict[str, str]:
    """The two headers that sign a request: the timestamp and the signature."""
    stamp = str(int(now))
    return {TIMESTAMP_HEADER: stamp, signature_header: "sha256=" + sign(secret, method, target, stamp, body)}


def request_target(raw_path: str, query: str) -> str:
    """What the signature covers of the URL: the raw path, and `?query` when there is one."""
    return f"{raw_path}?{query}" if query else raw_path


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def console_unguarded(cfg: Any, host: str) -> str | None:
    """Why the console may not be served on `host` (a network address with no console accounts), else None."""
    console = cfg.console
    if console.enabled and not console.users and not is_loopback(host):
        return (f"refusing to serve the console on {host} without accounts: add console.users to herald.yaml "
                "(`herald user add NAME --role admin` prints an entry), set console.enabled: false, "
                "or listen on 127.0.0.1")
    return None
