"""What the replica tests share: a webhook receiver that never deduplicates (it counts every delivery, can answer
slowly, and can hold the first delivery until released), a deployment on a PostgreSQL database, and reads of a
replica's /healthz and /metrics."""
from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import httpx
from daemon_support import make_deployment


class Receiver(BaseHTTPRequestHandler):
    """Takes every POST (no deduplication). `delay` seconds before answering; with `hold` set, the first delivery
    waits until `release` is set. Reset with Receiver.reset() before each test."""

    lock = threading.Lock()
    got: ClassVar[list[tuple[str, str, float]]] = []  # (notification, Idempotency-Key, arrival monotonic time)
    delay: ClassVar[float] = 0.01
    hold: ClassVar[bool] = False
    release: ClassVar[threading.Event] = threading.Event()
    arrived: ClassVar[threading.Event] = threading.Event()

    @classmethod
    def reset(cls, delay: float = 0.01, hold: bool = False) -> None:
        cls.got, cls.delay, cls.hold = [], delay, hold
        cls.release, cls.arrived = threading.Event(), threading.Event()

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with Receiver.lock:
            first = not Receiver.got
            Receiver.got.append((body["notification"], self.headers["Idempotency-Key"], time.monotonic()))
        Receiver.arrived.set()
        if first and Receiver.hold:
            Receiver.release.wait(60)
        time.sleep(Receiver.delay)
        out = json.dumps({"id": body["attempt_key"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def pg_deployment(root: Path, url: str, hook_url: str, dispatch: str, extra: str = "") -> Path:
    """A deployment whose email and sms channels post to `hook_url`, on the PostgreSQL database `url`."""
    channels = (f"  email: {{transport: webhook, url: \"{hook_url}/in\", timeout: 60}}\n"
                f"  sms: {{transport: webhook, url: \"{hook_url}/in\", timeout: 60}}")
    root = make_deployment(root, channels=channels, dispatch=dispatch)
    cfg = (root / "herald.yaml").read_text().replace("store: {path: herald.db}", f'store: {{url: "{url}"}}')
    (root / "herald.yaml").write_text(cfg + extra)
    return root


def health(url: str) -> dict:
    return httpx.get(url + "/healthz", timeout=10).json()


def metric(url: str, name: str) -> float:
    """One sample of the replica's /metrics (0 when absent)."""
    m = re.search(rf"^{re.escape(name)} (\S+)$", httpx.get(url + "/metrics", timeout=10).text, re.M)
    return float(m.group(1)) if m else 0.0


def query(url: str, sql: str, params: tuple = ()) -> list[tuple]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(sql, params or None).fetchall()
