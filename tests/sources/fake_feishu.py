"""A fake Feishu open platform on loopback: it pushes Hire events to herald as Feishu does (signed with
X-Lark-Signature, optionally AES-encrypted) and answers the tenant_access_token and Hire API look-ups.

The payloads are tests/sources/payloads/feishu/ (built from the open platform's documented examples).
`fail_next(n)` makes the next n API requests answer 503; `revoke_tokens()` makes the tokens issued so far
answer Feishu's "invalid access token" code; `requests` records every path asked for.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import httpx

from loopback import LoopbackServer

PAYLOADS = Path(__file__).resolve().parent / "payloads" / "feishu"
APP_ID, APP_SECRET = "cli_9f5343c580712544", "feishu-app-secret-0123"
ENCRYPT_KEY, VERIFICATION_TOKEN = "feishu-encrypt-key-4567", "rvaYgkR3kYtbkwXnoZHxRhqUFOvFfw5N"


def feishu_payload(name: str) -> Any:
    return json.loads((PAYLOADS / name).read_text("utf-8"))


def lark_signature(timestamp: str, nonce: str, key: str, body: bytes) -> str:
    """Written here from the open platform's description, independently of engine/sources/feishu.py."""
    return hashlib.sha256(timestamp.encode() + nonce.encode() + key.encode() + body).hexdigest()


def seal(key: str, plain: bytes) -> str:
    """The `encrypt` value of `plain`: AES-256-CBC, key SHA-256(key), a random IV in front, PKCS#7."""
    import base64

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    iv = os.urandom(16)
    pad = 16 - len(plain) % 16
    enc = Cipher(algorithms.AES(hashlib.sha256(key.encode()).digest()), modes.CBC(iv)).encryptor()
    return base64.b64encode(iv + enc.update(plain + bytes([pad]) * pad) + enc.finalize()).decode()


class FakeFeishu(LoopbackServer):
    def __init__(self, app_id: str = APP_ID, app_secret: str = APP_SECRET, encrypt_key: str = ENCRYPT_KEY):
        self.app_id, self.app_secret, self.encrypt_key = app_id, app_secret, encrypt_key
        self.objects: dict[str, dict] = {}
        self.requests: list[str] = []
        self.tokens: set[str] = set()
        self.failures = 0
        self.client = httpx.Client(timeout=30)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_POST(self):
                fake.requests.append(self.path)
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path != "/open-apis/auth/v3/tenant_access_token/internal":
                    return self._send(404, {"code": 404, "msg": "not found"})
                if fake._fail():
                    return self._send(503, {"code": 99991000, "msg": "unavailable"})
                if (body.get("app_id"), body.get("app_secret")) != (fake.app_id, fake.app_secret):
                    return self._send(200, {"code": 10014, "msg": "app secret invalid"})
                token = "t-" + uuid.uuid4().hex
                fake.tokens.add(token)
                return self._send(200, {**feishu_payload("tenant_access_token.json"), "tenant_access_token": token})

            def do_GET(self):
                fake.requests.append(self.path)
                if fake._fail():
                    return self._send(503, {"code": 99991000, "msg": "unavailable"})
                auth = self.headers.get("Authorization") or ""
                if not auth.startswith("Bearer ") or auth[7:] not in fake.tokens:
                    return self._send(400, {"code": 99991663, "msg": "Invalid access token for authorization."})
                obj = fake.objects.get(self.path)
                if obj is None:
                    return self._send(400, {"code": 1002001, "msg": "record not found"})
                return self._send(200, obj)

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json; charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._serve(Handler)
        for kind, name in (("applications", "api_application.json"), ("talents", "api_talent.json"),
                           ("jobs", "api_job.json"), ("offers", "api_offer.json")):
            answer = feishu_payload(name)
            key = kind[:-1]
            self.add(f"/open-apis/hire/v1/{kind}/{answer['data'][key]['id']}", answer)

    def _fail(self) -> bool:
        if self.failures > 0:
            self.failures -= 1
            return True
        return False

    def add(self, path: str, answer: dict) -> None:
        self.objects[path] = answer

    def fail_next(self, n: int) -> None:
        self.failures = n

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    def stop(self) -> None:
        self.client.close()
        super().stop()

    # ------------------------------------------------------------------------------ pushing events

    def push(self, herald_url: str, source: str, body: dict | bytes, *, encrypted: bool = False,
             timestamp: float | None = None, signed: bool = True, key: str | None = None,
             headers: dict | None = None) -> httpx.Response:
        """POST one event to herald as Feishu does; `timestamp` is herald's clock (default: the wall clock)."""
        key = self.encrypt_key if key is None else key
        data = body if isinstance(body, bytes) else json.dumps(body, ensure_ascii=False).encode()
        if encrypted:
            data = json.dumps({"encrypt": seal(key, data)}).encode()
        h = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "Go-http-client/1.1"}
        if signed:
            ts, nonce = str(int(time.time() if timestamp is None else timestamp)), uuid.uuid4().hex[:10]
            h.update({"X-Lark-Request-Timestamp": ts, "X-Lark-Request-Nonce": nonce,
                      "X-Lark-Signature": lark_signature(ts, nonce, key, data)})
        h.update(headers or {})
        return self.client.post(f"{herald_url}/v1/sources/{source}", content=data, headers=h)
