"""Item 12: kill -9 during sending, counted at a receiver that does NOT deduplicate: nothing lost, and every
repeat (a crash that landed during a send) carries the same Idempotency-Key."""
from __future__ import annotations

import collections
import json
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest

from daemon_support import RULES, ServeProcess, make_deployment, outcome, wait_for
from engine.store import SQLiteStore
from loopback import Serving

RECEIVED: list[tuple[str, str]] = []  # (notification, Idempotency-Key), every POST, repeats included
_LOCK = threading.Lock()


class Counting(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with _LOCK:
            RECEIVED.append((body["notification"], self.headers.get("Idempotency-Key") or ""))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def _settled(root: Path) -> bool:
    with SQLiteStore(root / "herald.db") as s:
        counts = s.notification_counts_by_state()
    return sum(counts.values()) > 0 and counts["delivered"] + counts["sent"] == sum(counts.values())


@pytest.mark.slow
def test_kill_9_loses_nothing_and_repeats_carry_the_same_key(tmp_path: Path) -> None:
    RECEIVED.clear()
    with Serving(Counting) as receiver:
        rules = RULES.replace("  channels: [email, sms]", "  channels: [webhook]").replace(
            "  timing: {delay: 0s}", "  timing: {delay: 1s}")
        root = make_deployment(tmp_path, rules=rules,
                               channels=f'  webhook: {{transport: webhook, url: "{receiver.url}/hook"}}')
        acked: list[str] = []
        first = ServeProcess(root)
        try:
            base = first.wait_ready()
            for b in range(6):
                r = httpx.post(base + "/v1/outcomes", json=[outcome(f"k9-{b}-{i}") for i in range(100)], timeout=30)
                acked += [item["id"] for item in r.json()["items"] if item["status"] == "matched"]
            wait_for(lambda: len(RECEIVED) >= 100, timeout=60, step=0.002)
            first.proc.kill()  # SIGKILL while sending
            first.proc.wait(10)
        finally:
            first.stop()
        assert not _settled(root)  # the kill came with work left
        second = ServeProcess(root)
        try:
            second.wait_ready()
            wait_for(lambda: _settled(root), timeout=120)
        finally:
            second.stop()
    by_notification: dict[str, set] = collections.defaultdict(set)
    deliveries = collections.Counter()
    for nid, key in RECEIVED:
        by_notification[nid].add(key)
        deliveries[nid] += 1
    lost = [oid for oid in acked if deliveries[f"{oid}#1"] == 0]
    assert acked and not lost, lost[:10]
    assert all(len(keys) == 1 and "" not in keys for keys in by_notification.values()), \
        {n: k for n, k in by_notification.items() if len(k) != 1}
    repeats = sum(c - 1 for c in deliveries.values())
    assert repeats <= 2, repeats  # at most the sends in flight when the kill came (2 dispatch workers)
