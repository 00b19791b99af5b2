"""`herald channels check`: every channel's settings and reachability, messaging no one."""
from __future__ import annotations

import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from engine.channels.check import check_channels
from loopback import Serving
from engine.config.settings import load_config

HERALD = str(Path(sys.executable).with_name("herald"))


class _Receiver(BaseHTTPRequestHandler):
    posts = 0

    def do_HEAD(self):  # http.server's naming
        self.send_response(405)
        self.end_headers()

    def do_POST(self):
        type(self).posts += 1
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.posts = 0
    with Serving(_Receiver) as server:
        yield server.url + "/hook"


def _config(tmp_path, url: str) -> Path:
    (tmp_path / "herald.yaml").write_text(
        "channels:\n"
        "  email: {transport: outbox}\n"
        f"  hook: {{transport: webhook, url: \"{url}\", secret: \"${{HOOK_SECRET}}\"}}\n"
        "  mail: {transport: smtp, host: 127.0.0.1, port: 1, from: hr@example.com, timeout: 2}\n"
        "  broken: {transport: smtp}\n")
    return tmp_path / "herald.yaml"


def test_reports_each_channel_and_sends_nothing(tmp_path, monkeypatch, receiver):
    monkeypatch.setenv("HOOK_SECRET", "s3cret-value-for-the-hook")
    cfg, _ = load_config(_config(tmp_path, receiver))
    reports = {r.channel: r for r in check_channels(cfg)}
    assert reports["email"].ok and reports["hook"].ok
    assert not reports["mail"].ok and "connect" in " ".join(reports["mail"].problems).lower()
    assert not reports["broken"].ok and "from" in " ".join(reports["broken"].problems)
    assert _Receiver.posts == 0  # a check never posts a message


def test_cli_exit_codes_and_names(tmp_path, monkeypatch, receiver, run_cli):
    monkeypatch.setenv("HOOK_SECRET", "s3cret-value-for-the-hook")
    _config(tmp_path, receiver)
    ok = run_cli(["channels", "check", "email", "hook"], cwd=tmp_path)
    assert ok.exit_code == 0, ok.output
    assert [line.split()[:3] for line in ok.stdout.splitlines()] == [["email", "outbox", "ok"],
                                                                    ["hook", "webhook", "ok"]]
    bad = run_cli(["channels", "check"], cwd=tmp_path)
    assert bad.exit_code == 1 and "mail" in bad.stdout and "FAILED" in bad.stdout
    assert "s3cret-value-for-the-hook" not in bad.output
    assert run_cli(["channels", "check", "fax"], cwd=tmp_path).exit_code == 2


@pytest.mark.slow
def test_subprocess_on_the_defaults(tmp_path):
    run = subprocess.run([HERALD, "channels", "check"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert [line.split()[0] for line in run.stdout.splitlines()] == ["dingtalk", "sms", "email", "webhook"]
