"""Item 11: the SMTP password in its base64 AUTH forms, and webhook URL tokens, never reach errors or the store."""
from __future__ import annotations

import base64
import socket
from typing import Any

import pytest

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from engine.channels.base import Envelope
from engine.channels.smtp import SMTPTransport
from engine.daemon.send import address

USER, PASSWORD = "hr@example.com", "Secret-Pa55word-xyz"
PLAIN = base64.b64encode(f"\0{USER}\0{PASSWORD}".encode()).decode()
LOGIN = base64.b64encode(PASSWORD.encode()).decode()


def echoing_authenticator(server, session, envelope, mechanism, auth_data):
    """A careless server: its refusal quotes the AUTH arguments it was sent, base64 as they came."""
    assert isinstance(auth_data, LoginPassword)
    raw = base64.b64encode(b"\0" + auth_data.login + b"\0" + auth_data.password).decode()
    pw = base64.b64encode(auth_data.password).decode()
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad credentials: {raw} / {pw}")


class _Sink:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# the test server takes AUTH on a plain loopback connection (to see the forms a client sends); aiosmtpd warns of it
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")
def test_base64_forms_of_the_password_are_redacted_in_send_and_check() -> None:
    port = _free_port()
    controller = Controller(_Sink(), hostname="127.0.0.1", port=port, authenticator=echoing_authenticator,
                            auth_required=True, auth_require_tls=False)
    controller.start()
    try:
        t = SMTPTransport("email", {"host": "127.0.0.1", "port": port, "from": "hr@example.com", "timeout": 5,
                                    "username": USER, "password": PASSWORD, "allow_insecure_auth": True})
        env = Envelope(notification_id="n#1", attempt_key="n#1:0:1", channel="email", to="ann@example.com",
                       body="hi", subject="s")
        texts: list[Any] = [t.send(env).error, *t.check()]
    finally:
        controller.stop()
    for text in texts:
        assert "535" in text and "***" in text, text
        for secret in (PASSWORD, PLAIN, PLAIN.rstrip("="), LOGIN, LOGIN.rstrip("=")):
            assert secret not in text, (secret, text)


def test_a_webhook_address_is_its_origin_only() -> None:
    url = "https://user:pw@hooks.example.com:8443/services/T0K3N-abc?key=s3cret#frag"
    assert address("webhook", {}, {"url": url}) == "https://hooks.example.com:8443"
