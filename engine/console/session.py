"""Console sessions: a signed cookie (HMAC-SHA256 over its JSON payload) naming the account, when it expires and
a random nonce; the CSRF token every form carries is an HMAC of that nonce. Nothing is kept on the server, so the
role is always read from herald.yaml (a reload that removes an account or changes a password ends its sessions:
the cookie carries a fingerprint of the password hash)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass

COOKIE = "herald_console"
MAX_COOKIE = 1024  # characters; a longer cookie is not read


@dataclass(frozen=True)
class Session:
    """What a valid cookie says: the account name ("" before sign-in), its password fingerprint, expiry, nonce."""

    user: str
    fingerprint: str
    expires: float
    nonce: str


def fingerprint(password_hash: str) -> str:
    """A short digest of an account's password hash: a changed password no longer matches old cookies."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Signs and reads session cookies and CSRF tokens with one key."""

    def __init__(self, key: str):
        self._key = hashlib.sha256(b"herald console\n" + key.encode()).digest()

    def _mac(self, purpose: str, data: bytes) -> str:
        return _b64(hmac.new(self._key, purpose.encode() + b"\n" + data, hashlib.sha256).digest())

    def new(self, user: str, fingerprint: str, expires: float) -> tuple[Session, str]:
        """A fresh session (new nonce: a sign-in never keeps the token of the anonymous session before it)."""
        session = Session(user, fingerprint, expires, secrets.token_urlsafe(16))
        payload = json.dumps([session.user, session.fingerprint, session.expires, session.nonce],
                             separators=(",", ":")).encode()
        return session, f"{_b64(payload)}.{self._mac('session', payload)}"

    def read(self, cookie: str | None, now: float) -> Session | None:
        """The session a cookie carries, or None when it is missing, forged, malformed or expired."""
        if not cookie or len(cookie) > MAX_COOKIE or cookie.count(".") != 1:
            return None
        body, mac = cookie.split(".")
        try:
            payload = _unb64(body)
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac("session", payload)):
            return None
        try:
            user, fp, expires, nonce = json.loads(payload)
        except (ValueError, TypeError):
            return None
        if not (isinstance(user, str) and isinstance(fp, str) and isinstance(expires, (int, float))
                and isinstance(nonce, str)) or expires <= now:
            return None
        return Session(user, fp, float(expires), nonce)

    def csrf(self, session: Session) -> str:
        """The CSRF token of a session: forms carry it, and a POST without the right one is refused (403)."""
        return self._mac("csrf", session.nonce.encode())

    def csrf_ok(self, session: Session | None, token: str | None) -> bool:
        return session is not None and bool(token) and hmac.compare_digest(str(token), self.csrf(session))
