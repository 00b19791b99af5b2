"""Helpers for the daemon tests: a small deployment on disk, outcomes, an in-process or subprocess daemon."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterator

import httpx
import pytest

from engine.channels.base import ACCEPTED, SendResult
from engine.daemon import Daemon
from engine.config.deployment import load_deployment

HERALD = str(Path(sys.executable).with_name("herald"))
TOKEN = "test-token-0123456"
SECRET = "test-hmac-secret"
API_NOW = datetime(2026, 11, 24, 2, 0, tzinfo=UTC).timestamp()  # the `api` fixture's frozen clock (conftest.py)

TEMPLATE = """{# herald: decisions=[reject, pass, offer, hold] #}
{% block subject %}Interview result{% endblock %}
{% block email %}Hello {{ candidate.name }}, MARK{% endblock %}
{% block sms %}Hello {{ candidate.name }}, MARK{% endblock %}
{% block dingtalk %}Hello {{ candidate.name }}, MARK{% endblock %}
{% block webhook %}Hello {{ candidate.name }}, MARK{% endblock %}
"""

RULES = """version: 1
defaults:
  locale: en
  timezone: UTC
  channels: [email, sms]
  timing: {delay: 0s}
rules:
  - id: later
    match: {decision: hold}
    template: any/generic
    timing: {delay: 1h}
  - id: escalating
    match: {decision: offer}
    template: any/generic
    timing: {delay: 0s, escalate_after: 1h}
  - id: now
    match: {decision: reject}
    template: any/generic
"""


def make_deployment(root: Path, *, auth: bool = False, channels: str | None = None, rules: str = RULES,
                    dispatch: str = "{max_attempts: 3, backoff_base: 30s, poll_interval: 1s}",
                    mark: str = "v1") -> Path:
    """A deployment in `root`: herald.yaml, rules/10-rules.yaml, templates/any/generic.j2 (its text says `mark`)."""
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "templates" / "any").mkdir(parents=True, exist_ok=True)
    (root / "rules" / "10-rules.yaml").write_text(rules)
    (root / "templates" / "any" / "generic.j2").write_text(TEMPLATE.replace("MARK", mark))
    cfg = ["store: {path: herald.db}", "outbox: outbox",
           "channels:\n" + (channels or "  email: {transport: outbox}\n  sms: {transport: outbox}\n"
                                         "  dingtalk: {transport: outbox}"),
           f"dispatch: {dispatch}"]
    if auth:
        cfg.append('server:\n  auth: {token: "${HERALD_TEST_TOKEN}", hmac_secret: "${HERALD_TEST_SECRET}"}')
    (root / "herald.yaml").write_text("\n".join(cfg) + "\n")
    return root


def outcome(oid: str, decision: str = "reject", **extra: Any) -> dict:
    o = {"id": oid, "decision": decision, "stage": "first_round", "role": "backend",
         "candidate": {"name": "Ann", "email": "ann@example.com", "phone": "+8613800000000"}}
    o.update(extra)
    return o


def start_daemon(root: Path, time_scale: float = 1.0, watch: bool = False, **kw: Any) -> Daemon:
    """An in-process daemon on 127.0.0.1, any free port (uvicorn in a thread); call .shutdown()."""
    dep = load_deployment([str(root)])
    assert dep.ok, [d.format() for d in dep.diagnostics]
    return Daemon(dep, paths=[str(root)], host="127.0.0.1", port=0, time_scale=time_scale, watch=watch,
                  **kw).start()


@pytest.fixture
def daemons() -> Iterator[Callable[..., Daemon]]:
    """Starts daemons with start(root, ...) and shuts every one down at teardown (a conftest imports it)."""
    started: list[Daemon] = []

    def start(root: Path, **kw: Any) -> Daemon:
        d = start_daemon(root, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.shutdown()


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, step: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        time.sleep(step)


def outbox(root: Path) -> list[dict]:
    """Every message file in the deployment's outbox (temporary files excluded)."""
    return [json.loads(p.read_text()) for p in sorted((root / "outbox").rglob("*.json"))]


def post(url: str, body: Any, **headers: str) -> httpx.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url + "/v1/outcomes", content=data, headers={"Content-Type": "application/json", **headers},
                      timeout=30)


class ScriptedTransport:
    """A transport answering from a script of statuses (then the last one forever); records every envelope."""

    def __init__(self, name: str, *statuses: str, receipts: bool = False, delay: float = 0.0):
        self.name = name
        self.script = list(statuses) or [ACCEPTED]
        self.sent: list = []
        self.delay = delay
        if receipts:
            self.poll_receipts = lambda ids: []  # reports delivery (never, here): escalation applies

    def send(self, envelope):
        self.sent.append(envelope)
        if self.delay:
            time.sleep(self.delay)
        status = self.script[min(len(self.sent), len(self.script)) - 1]
        if status == ACCEPTED:
            return SendResult(ACCEPTED, provider_id=f"{self.name}-{envelope.attempt_key}")
        return SendResult(status, error=f"scripted {status}", code="X")

    def check(self):
        return []


_started: list[ServeProcess] = []  # every `herald serve` a test started: conftest checks none outlives its test


def reap_leftovers() -> list[str]:
    """kill -9 every `herald serve` a test started that still runs; their command lines (empty: none was left)."""
    left = []
    for p in _started:
        if p.proc.poll() is None:
            left.append(" ".join(p.proc.args))
            p.proc.kill()
            p.proc.wait(10)
    _started.clear()
    return left


class ServeProcess:
    """`herald serve` in a subprocess on a free port; stderr collected; kill/terminate by its own pid only."""

    def __init__(self, root: Path, *args: str, env: dict | None = None):
        cmd = [HERALD, "serve", "--config", str(root / "herald.yaml"), "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                     env={**os.environ, **(env or {})})
        self.lines: list[str] = []
        self.url: str | None = None
        self._sigterm_sent = False
        self._seen = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()
        _started.append(self)

    def _pump(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            if self.url is None and "listening on http://" in line:
                self.url = line.split("listening on ")[1].split()[0]
                self._seen.set()
        self._seen.set()

    def wait_ready(self, timeout: float = 30.0) -> str:
        self._seen.wait(timeout)
        assert self.url, "".join(self.lines)
        return self.url

    def log(self) -> str:
        return "".join(self.lines)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def sigterm(self) -> None:
        """SIGTERM once (the clean stop); never a second, which would stop it at once (exit 143)."""
        if not self._sigterm_sent and self.proc.poll() is None:
            self._sigterm_sent = True
            self.proc.terminate()

    def terminate(self, grace: float = 30.0) -> int:
        """SIGTERM (unless sent already), up to `grace` seconds for the clean stop, then kill -9: never left running.
        The exit code (0: stopped cleanly; -9: it had to be killed)."""
        if self.proc.poll() is None:
            self.sigterm()
            try:
                return self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        return self.proc.wait(10)
