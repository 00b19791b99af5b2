"""A fake ATS: delivers the providers' documented payloads (tests/sources/payloads) signed as each provider signs.

`FakeATS(kind, secret).deliver(url, payload)` POSTs one webhook over real HTTP to herald's loopback daemon
and returns the response; `event_id` sets the provider's delivery id where the kind has one.
"""
from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

PAYLOADS = Path(__file__).resolve().parent / "payloads"


def payload(name: str) -> bytes:
    return (PAYLOADS / name).read_bytes()


def payload_json(name: str) -> Any:
    return json.loads(payload(name))


def hexmac(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class FakeATS:
    """Signs and sends webhooks the way provider `kind` does."""

    def __init__(self, kind: str, secret: str, *, header: str = "X-Signature"):
        self.kind, self.secret, self.header = kind, secret, header
        self.client = httpx.Client(timeout=30)

    def signed(self, body: bytes, event_id: str | None = None) -> tuple[dict, dict]:
        """(headers, query) of one delivery of `body`."""
        event_id = event_id or str(uuid.uuid4())
        h = hexmac(self.secret, body)
        if self.kind == "greenhouse":
            return {"Signature": f"sha256 {h}", "Greenhouse-Event-ID": event_id}, {}
        if self.kind == "ashby":
            return {"Ashby-Signature": f"sha256={h}"}, {}
        if self.kind == "moka":
            return {}, {"sign": h}
        if self.kind == "lever":
            return {}, {}
        if self.kind == "feishu":  # the secret is the Encrypt Key; the timestamp is the wall clock
            ts, nonce = str(int(time.time())), uuid.uuid4().hex[:12]
            digest = hashlib.sha256(f"{ts}{nonce}{self.secret}".encode() + body).hexdigest()
            return {"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce, "X-Lark-Signature": digest}, {}
        return {self.header: f"sha256={h}"}, {}

    def deliver(self, base_url: str, source: str, body: bytes | dict, event_id: str | None = None,
                headers: dict | None = None, sign: bool = True) -> httpx.Response:
        if self.kind == "lever" and sign:  # Lever signs token + triggeredAt, inside the body
            doc = json.loads(body) if isinstance(body, bytes) else dict(body)
            doc["signature"] = hmac.new(self.secret.encode(), f"{doc.get('token')}{doc.get('triggeredAt')}".encode(),
                                        hashlib.sha256).hexdigest()
            body = doc
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        h, q = self.signed(data, event_id) if sign else ({}, {})
        h = {"Content-Type": "application/json", "User-Agent": f"fake-{self.kind}", **h, **(headers or {})}
        return self.client.post(f"{base_url}/v1/sources/{source}", content=data, headers=h, params=q)

    def close(self) -> None:
        self.client.close()
