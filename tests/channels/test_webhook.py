"""Tests for the webhook transport against a real loopback receiver that verifies signatures as a receiver would."""
from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections import deque
from email.utils import format_datetime
from datetime import datetime, timedelta, UTC
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope
from engine.channels.webhook import SETTINGS, WebhookTransport, retry_after_seconds, verify_signature
from engine.channels.signing import webhook_signature
from loopback import QuietHTTPServer

SECRET = "whsec-test-7f3a9c1e5b"
AUTH = "Bearer tok-extra-header-4242"
URL_TOKEN = "qtok-in-url-31337"


class Receiver:
    """A webhook receiver: verifies X-Herald-Signature (401 when wrong), records requests, answers as told."""

    def __init__(self, secret: str | None = SECRET, delay: float = 0.0, tls: ssl.SSLContext | None = None):
        self.secret = secret
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.answers: deque[tuple[int, dict[str, str], bytes]] = deque()
        rcv = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _reply(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_HEAD(self) -> None:
                self._reply(404 if self.path.startswith("/missing") else 405, {"Allow": "POST"}, b"")

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if rcv.delay:
                    time.sleep(rcv.delay)
                rcv.requests.append({"path": self.path, "headers": dict(self.headers), "raw": raw,
                                     "peer": self.client_address})
                if rcv.secret is not None and not verify_signature(
                        rcv.secret, self.headers.get("X-Herald-Timestamp"), raw,
                        self.headers.get("X-Herald-Signature")):
                    self._reply(401, {"Content-Type": "text/plain"}, b"bad signature")
                    return
                if rcv.answers:
                    self._reply(*rcv.answers.popleft())
                    return
                self._reply(200, {"Content-Type": "application/json"},
                            json.dumps({"id": f"rcv-{len(rcv.requests)}"}).encode())

        self.server = QuietHTTPServer(("127.0.0.1", 0), Handler)
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str = "/hooks/herald") -> str:
        host, port = self.server.server_address[:2]
        return f"{self.scheme}://{'localhost' if self.scheme == 'https' else host}:{port}{path}"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    with Receiver() as r:
        yield r


def envelope(**kw) -> Envelope:
    base = {"notification_id": "n-1", "attempt_key": "n-1:webhook:1", "channel": "webhook", "to": "https://ats.example/cb",
                "subject": "面试结果", "body": "张伟您好,感谢参加面试。", "html": "<p>张伟您好</p>",
                "meta": {"outcome": "ats-98123-r1", "rule": "tech-first-round"}}
    base.update(kw)
    return Envelope(**base)


def make(url: str, **settings) -> WebhookTransport:
    cfg: dict[str, Any] = {"url": url, "secret": SECRET, "timeout": 5}
    cfg.update(settings)
    return WebhookTransport("webhook", cfg)


def test_a_thread_reuses_its_connection_until_close(receiver):
    # keep-alive: one connection per sending thread (not a client and a connection per message); after close()
    # a send still goes, on a connection of its own
    t = make(receiver.url())
    for i in range(3):
        assert t.send(envelope(attempt_key=f"n-1:webhook:{i}")).status == ACCEPTED
    other = threading.Thread(target=lambda: t.send(envelope(attempt_key="n-1:webhook:other")))
    other.start()
    other.join(10)
    peers = [r["peer"] for r in receiver.requests]
    assert len(set(peers[:3])) == 1 and peers[3] not in peers[:3]
    t.close()
    assert t.send(envelope(attempt_key="n-1:webhook:after")).status == ACCEPTED
    assert receiver.requests[-1]["peer"] not in peers


def test_success_signed_and_recorded(receiver):
    t = make(receiver.url(), headers={"Authorization": AUTH, "X-Tenant": "acme"})
    before = int(time.time())
    result = t.send(envelope())
    assert result.status == ACCEPTED and result.provider_id == "rcv-1"
    (req,) = receiver.requests
    body = json.loads(req["raw"])
    assert set(body) == {"notification", "attempt_key", "channel", "to", "subject", "body", "html", "meta", "sent_at"}
    assert body["notification"] == "n-1" and body["attempt_key"] == "n-1:webhook:1"
    assert body["body"] == "张伟您好,感谢参加面试。" and body["meta"]["rule"] == "tech-first-round"
    assert datetime.fromisoformat(body["sent_at"]).tzinfo is not None
    h = req["headers"]
    assert h["Content-Type"].startswith("application/json")
    assert h["Idempotency-Key"] == "n-1:webhook:1"
    assert before <= int(h["X-Herald-Timestamp"]) <= int(time.time())
    assert h["X-Herald-Signature"] == webhook_signature(SECRET, h["X-Herald-Timestamp"], req["raw"])
    assert h["Authorization"] == AUTH and h["X-Tenant"] == "acme"


def test_retry_carries_same_idempotency_key(receiver):
    t = make(receiver.url())
    t.send(envelope())
    t.send(envelope())
    assert receiver.requests[0]["headers"]["Idempotency-Key"] == receiver.requests[1]["headers"]["Idempotency-Key"]


def test_provider_id_defaults_to_attempt_key(receiver):
    receiver.answers.append((204, {}, b""))
    receiver.answers.append((200, {"Content-Type": "application/json"}, b'{"ok": true}'))
    receiver.answers.append((202, {"Content-Type": "text/plain"}, b"queued"))
    t = make(receiver.url())
    assert [t.send(envelope()).provider_id for _ in range(3)] == ["n-1:webhook:1"] * 3


def test_wrong_secret_is_refused_permanent(receiver):
    result = make(receiver.url(), secret="whsec-wrong-000000").send(envelope())
    assert result.status == PERMANENT and result.code == "401" and not result.ok
    assert "bad signature" in result.error


def test_unsigned_when_no_secret(receiver):
    result = make(receiver.url(), secret=None).send(envelope())
    assert result.status == PERMANENT and result.code == "401"
    assert "X-Herald-Signature" not in receiver.requests[0]["headers"]


@pytest.mark.parametrize("status,expected", [
    (400, PERMANENT), (401, PERMANENT), (403, PERMANENT), (404, PERMANENT), (409, PERMANENT), (410, PERMANENT),
    (422, PERMANENT), (301, PERMANENT),
    (408, RECOVERABLE), (425, RECOVERABLE), (429, RECOVERABLE),
    (500, RECOVERABLE), (502, RECOVERABLE), (503, RECOVERABLE), (504, RECOVERABLE),
])
def test_status_classes(receiver, status, expected):
    receiver.answers.append((status, {"Content-Type": "text/plain", "Location": "http://elsewhere/"}, b"nope"))
    result = make(receiver.url()).send(envelope())
    assert result.status == expected and result.code == str(status) and not result.ok


def test_retry_after_seconds_honoured(receiver):
    receiver.answers.append((429, {"Retry-After": "120"}, b""))
    result = make(receiver.url()).send(envelope())
    assert result.status == RECOVERABLE and result.retry_after == 120.0


def test_retry_after_http_date(receiver):
    when = datetime.now(UTC) + timedelta(seconds=90)
    receiver.answers.append((503, {"Retry-After": format_datetime(when, usegmt=True)}, b""))
    result = make(receiver.url()).send(envelope())
    assert result.status == RECOVERABLE and 80 <= result.retry_after <= 91


@pytest.mark.parametrize("value,expected", [
    (None, None), ("", None), ("soon", None), ("0", 0.0), ("-5", 0.0), ("30", 30.0), ("1e9", 86400.0),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
])
def test_retry_after_parsing(value, expected):
    assert retry_after_seconds(value) == expected


def test_timeout_is_recoverable():
    with Receiver(delay=1.5) as slow:
        result = make(slow.url(), timeout=0.3).send(envelope())
    assert result.status == RECOVERABLE and result.code == "timeout"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_connection_refused_is_recoverable():
    result = make(f"http://127.0.0.1:{_free_port()}/hook").send(envelope())
    assert result.status == RECOVERABLE and result.code == "connection"


def test_check_reachable_and_sends_nothing(receiver):
    assert make(receiver.url()).check() == []  # HEAD answered 405: reachable
    assert receiver.requests == []


def test_check_reports_missing_path_and_down_host(receiver):
    (problem,) = make(receiver.url("/missing")).check()
    assert "404" in problem
    (problem,) = make(f"http://127.0.0.1:{_free_port()}/hook").check()
    assert "connection failed" in problem


# --- signature helper --------------------------------------------------------------------------------

def test_signature_round_trip():
    body = b'{"a":1}'
    ts = int(time.time())
    header = webhook_signature(SECRET, ts, body)
    assert header.startswith("sha256=") and len(header) == 7 + 64
    assert verify_signature(SECRET, ts, body, header)
    assert verify_signature(SECRET, str(ts), body.decode(), header)


@pytest.mark.parametrize("change", ["body", "timestamp", "secret", "header", "stale", "future", "garbage"])
def test_signature_tampering(change):
    body, ts = b'{"to":"a@example.com"}', int(time.time())
    header = webhook_signature(SECRET, ts, body)
    args = {"secret": SECRET, "timestamp": ts, "body": body, "header": header}
    if change == "body":
        args["body"] = b'{"to":"b@example.com"}'
    elif change == "timestamp":
        args["timestamp"] = ts + 1
    elif change == "secret":
        args["secret"] = "other-secret"
    elif change == "header":
        args["header"] = header[:-1] + ("0" if header[-1] != "0" else "1")
    elif change == "stale":
        args.update(timestamp=ts - 301, header=webhook_signature(SECRET, ts - 301, body))
    elif change == "future":
        args.update(timestamp=ts + 301, header=webhook_signature(SECRET, ts + 301, body))
    elif change == "garbage":
        args.update(timestamp="yesterday")
    assert not verify_signature(**args)


def test_signature_tolerance_and_missing_parts():
    body, ts = b"x", 1_000_000
    header = webhook_signature(SECRET, ts, body)
    assert verify_signature(SECRET, ts, body, header, tolerance=10, now=ts + 10)
    assert not verify_signature(SECRET, ts, body, header, tolerance=10, now=ts + 11)
    assert not verify_signature(SECRET, None, body, header)
    assert not verify_signature(SECRET, ts, body, None, now=ts)
    assert not verify_signature("", ts, body, header, now=ts)
    assert not verify_signature(SECRET, ts, body, "sha256=héllo", now=ts)


@hsettings(max_examples=60, deadline=None)
@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=300), flip=st.integers(min_value=0))
def test_signature_property(secret, body, flip):
    ts = 1_700_000_000
    header = webhook_signature(secret, ts, body)
    assert verify_signature(secret, ts, body, header, now=ts)
    if body:
        i = flip % len(body)
        tampered = body[:i] + bytes([body[i] ^ 1]) + body[i + 1:]
        assert not verify_signature(secret, ts, tampered, header, now=ts)


# --- settings and secrets ----------------------------------------------------------------------------

@pytest.mark.parametrize("settings,fragment", [
    ({}, "'url' is required"),
    ({"url": "ftp://example.com/x"}, "'url' must be"),
    ({"url": "https://example.com:99999/x"}, "'url' must be"),
    ({"url": "https://example.com/x", "timeout": "-1"}, "'timeout' must be at least"),
    ({"url": "https://example.com/x", "headers": {"Idempotency-Key": "x"}}, "must not set"),
    ({"url": "https://example.com/x", "headers": {"X-A": "line\nbreak" + AUTH}}, "single-line"),
    ({"url": "https://example.com/x", "headers": ["Authorization"]}, "mapping"),
    ({"url": "https://example.com/x", "secret": "abc"}, "too short"),
    ({"url": "https://example.com/x", "verify": "maybe"}, "'verify' must be true or false"),
])
def test_settings_validation(settings, fragment):
    with pytest.raises(ValueError) as info:
        WebhookTransport("webhook", settings)
    assert fragment in str(info.value) and "'webhook'" in str(info.value)
    assert AUTH not in str(info.value)


def test_settings_table_shape():
    assert SETTINGS["url"][0] is True and SETTINGS["secret"][1] is True
    assert all(len(v) == 3 for v in SETTINGS.values())


def test_no_secret_in_errors_or_repr(receiver):
    url = receiver.url(f"/hooks/herald?token={URL_TOKEN}")
    t = make(url, headers={"Authorization": AUTH})
    secrets = (SECRET, AUTH, URL_TOKEN, "tok-extra-header-4242")
    for text in (repr(t), str(t), str(vars(t))):
        for s in secrets:
            assert s not in text
    # a receiver echoing everything back in its error body
    echo = f"got Authorization={AUTH} secret={SECRET} url={url}".encode()
    receiver.answers.extend([(400, {}, echo), (503, {}, echo)])
    results = [t.send(envelope()), t.send(envelope())]
    results.append(make(f"http://127.0.0.1:{_free_port()}/h?token={URL_TOKEN}", headers={"Authorization": AUTH})
                   .send(envelope()))
    results.append(make(url, secret="whsec-wrong-000000").send(envelope()))
    problems = make(f"http://127.0.0.1:{_free_port()}/h?token={URL_TOKEN}").check()
    texts = [repr(r) for r in results] + problems
    assert all(not r.ok for r in results)
    for text in texts:
        for s in (*secrets, "whsec-wrong-000000"):
            assert s not in text, text


# --- TLS ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: cannot make a self-signed certificate for the TLS test")
    d = tmp_path_factory.mktemp("webhook-cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return d / "cert.pem", d / "key.pem"


@pytest.fixture
def tls_receiver(cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    with Receiver(tls=ctx) as r:
        yield r


def test_tls_untrusted_certificate_is_permanent(tls_receiver):
    result = make(tls_receiver.url()).send(envelope())
    assert result.status == PERMANENT and result.code == "tls"


def test_tls_with_ca_file(tls_receiver, cert):
    assert make(tls_receiver.url(), ca_file=str(cert[0])).send(envelope()).ok


def test_tls_verify_off(tls_receiver):
    assert make(tls_receiver.url(), verify=False).send(envelope()).ok
