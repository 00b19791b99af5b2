"""Intake authentication: a bearer token or an HMAC-SHA256 signature of the raw body, from herald.yaml server.auth."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress
from dataclasses import dataclass, field
from collections.abc import Mapping

from engine.config.settings import ServerAuth

DEFAULT_SIGNATURE_HEADER = "X-Herald-Signature"


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

    def allows(self, headers: Mapping[str, str], body: bytes) -> bool:
        """True when the request carries the bearer token or a valid signature of `body` (or auth is off)."""
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
            if algo.lower() == "sha256" and digest:
                want = sign(self.hmac_secret, body)
                return hmac.compare_digest(digest.strip().lower().encode(), want.encode())
        return False


def sign(secret: str, body: bytes) -> str:
    """The hex HMAC-SHA256 of `body` keyed with `secret` (send it as `sha256=<hex>`)."""
    return hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
