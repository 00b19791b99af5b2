"""Chaos on PostgreSQL: three `herald serve` replicas share one database; outcomes are posted round-robin while one
replica is killed with kill -9 (and started again) and another is stopped with SIGTERM. A webhook receiver that
does not deduplicate counts deliveries: none lost, and a repeat carries the same Idempotency-Key."""
from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from daemon_support import ServeProcess, make_deployment, outcome, wait_for
from loopback import Serving

TOTAL = 300
BATCH = 10


class Receiver(BaseHTTPRequestHandler):
    """Takes every POST (no deduplication), after a short pause so sends are in flight when a replica dies."""

    lock = threading.Lock()
    got: ClassVar[list[tuple[str, str]]] = []  # (notification, Idempotency-Key), in arrival order

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(0.01)
        with Receiver.lock:
            Receiver.got.append((body["notification"], self.headers["Idempotency-Key"]))
        out = json.dumps({"id": body["attempt_key"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


def _post(replicas: list[ServeProcess], k: int, items: list[dict]) -> None:
    """Posts one batch to replica k, or to the next live one (a dead replica refuses the connection)."""
    for i in range(len(replicas)):
        r = replicas[(k + i) % len(replicas)]
        if r.proc.poll() is not None:
            continue
        try:
            resp = httpx.post(r.url + "/v1/outcomes", json=items, timeout=30)
        except httpx.TransportError:
            continue
        if resp.status_code < 300:
            return
    raise AssertionError("no replica took the batch")


@pytest.mark.slow
def test_three_replicas_kill_9_and_sigterm_lose_nothing(pg, tmp_path: Path):
    Receiver.got = []
    url = pg.create_database()
    with Serving(Receiver) as hook:
        channels = (f"  email: {{transport: webhook, url: \"{hook.url}/in\"}}\n"
                    f"  sms: {{transport: webhook, url: \"{hook.url}/in\"}}")
        root = make_deployment(tmp_path / "d", channels=channels,
                               dispatch="{max_attempts: 5, backoff_base: 1s, poll_interval: 0.05s, lease: 3s}")
        cfg = (root / "herald.yaml").read_text().replace("store: {path: herald.db}", f'store: {{url: "{url}"}}')
        (root / "herald.yaml").write_text(cfg)
        replicas = [ServeProcess(root, "--upgrade-store") for _ in range(3)]
        restarted: list[ServeProcess] = []
        try:
            for r in replicas:
                r.wait_ready(60)
            ids = [f"c-{i}" for i in range(TOTAL)]
            for k, start in enumerate(range(0, TOTAL, BATCH)):
                if start == TOTAL // 3:
                    replicas[0].proc.kill()  # kill -9 mid-stream: its claims come back after the lease
                    replicas[0].proc.wait(10)
                if start == TOTAL // 2:
                    restarted.append(ServeProcess(root))
                    restarted[0].wait_ready(60)
                    replicas[0] = restarted[0]
                if start == 2 * TOTAL // 3:
                    replicas[1].proc.terminate()  # SIGTERM: a clean stop, sends in flight finished
                _post(replicas, k, [outcome(i) for i in ids[start:start + BATCH]])
            expected = {f"{i}#1" for i in ids}
            wait_for(lambda: expected <= {n for n, _ in Receiver.got}, timeout=120, step=0.2)
            time.sleep(1)  # let a straggling repeat arrive before counting
        finally:
            logs = [r.log() for r in replicas + restarted]
            for r in replicas + restarted:
                if r.proc.poll() is None:
                    r.proc.terminate()
                    r.proc.wait(30)
    keys: dict[str, set[str]] = defaultdict(set)
    for n, key in Receiver.got:
        keys[n].add(key)
    assert set(keys) == expected  # nothing lost, nothing foreign
    assert all(len(k) == 1 for k in keys.values()), {n: k for n, k in keys.items() if len(k) > 1}
    repeats = len(Receiver.got) - len(expected)
    print(f"\n{len(Receiver.got)} deliveries of {len(expected)} notifications, {repeats} repeat(s), same key each")
    sends = [sum(1 for line in log.splitlines() if " sent " in line) for log in logs]
    assert all(s > 0 for s in sends[:3]), sends  # every original replica sent some
