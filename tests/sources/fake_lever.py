"""A fake Lever API on loopback: opportunities, stages and archive reasons by id, behind the API key (HTTP basic).

`fail_next(n)` makes the next n requests answer 503 (the retry path); `requests` records every path asked for.
"""
from __future__ import annotations

import base64
import json
from http.server import BaseHTTPRequestHandler

from loopback import LoopbackServer


class FakeLever(LoopbackServer):
    def __init__(self, api_key: str):
        self.api_key = api_key
        self.objects: dict[str, dict] = {}
        self.requests: list[str] = []
        self.failures = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                fake.requests.append(self.path)
                want = "Basic " + base64.b64encode(f"{fake.api_key}:".encode()).decode()
                if self.headers.get("Authorization") != want:
                    return self._send(401, {"code": "Unauthorized", "message": "Invalid API key"})
                if fake.failures > 0:
                    fake.failures -= 1
                    return self._send(503, {"code": "ServiceUnavailable"})
                obj = fake.objects.get(self.path.rstrip("/"))
                if obj is None:
                    return self._send(404, {"code": "ResourceNotFound"})
                return self._send(200, {"data": obj})

            def _send(self, code, body):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._serve(Handler)

    def add(self, path: str, obj: dict) -> None:
        self.objects[path] = obj

    def fail_next(self, n: int) -> None:
        self.failures = n
