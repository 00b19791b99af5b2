"""Tests for the smtp transport against aiosmtpd servers on loopback: plain, AUTH, STARTTLS and implicit TLS."""
from __future__ import annotations

import email
import shutil
import socket
import ssl
import subprocess
from email import policy
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, Envelope
from engine.channels.smtp import SETTINGS, SMTPTransport, message_id_for

PASSWORD = "pw-s3cret-Zq81!"
USER = "hr@example.com"
FROM = "招聘团队 <hr@example.com>"
SUBJECT = "关于您应聘后端工程师的面试结果"

# the AUTH-over-plain test server is deliberate (the transport refuses it unless allow_insecure_auth is set)
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Recorder:
    """An aiosmtpd handler that records messages, and can be told to refuse at MAIL, RCPT or DATA."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.mail_reply: str | None = None
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        if self.mail_reply:
            return self.mail_reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply:
            return self.data_reply
        self.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                              "content": envelope.original_content or envelope.content,
                              "login": getattr(session.auth_data, "login", None)})
        return "250 2.0.0 Message accepted for delivery"


def authenticator(server, session, envelope, mechanism, auth_data):
    if isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode() \
            and auth_data.password == PASSWORD.encode():
        return AuthResult(success=True, auth_data=auth_data)
    if isinstance(auth_data, LoginPassword) and auth_data.password == b"pw-temporary-fail":
        return AuthResult(success=False, handled=False, message="454 4.7.0 Temporary authentication failure")
    # a careless server that echoes what it was given: the transport must not pass it on
    given = auth_data.password.decode() if isinstance(auth_data, LoginPassword) else "?"
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 Authentication credentials invalid ({given})")


class Server:
    def __init__(self, **kwargs: Any) -> None:
        self.handler = Recorder()
        self.port = free_port()
        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **kwargs)

    def __enter__(self) -> Server:
        self.controller.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.controller.stop()


@pytest.fixture
def server():
    with Server() as s:
        yield s


def make(port: int, **settings: Any) -> SMTPTransport:
    cfg: dict[str, Any] = {"host": "127.0.0.1", "port": port, "from": FROM, "timeout": 5}
    cfg.update(settings)
    return SMTPTransport("email", cfg)


def envelope(**kw: Any) -> Envelope:
    base: dict[str, Any] = {
        "notification_id": "ntf-42", "attempt_key": "ats-98123-r1/email#1", "channel": "email", "to": "zhang.wei@example.org",
        "subject": SUBJECT, "body": "张伟您好:\n\n感谢参加面试,本次未能进入下一轮。\n", "html": "<p>张伟您好:</p><p>感谢参加面试。</p>",
        "meta": {"unsubscribe_url": "https://hr.example.com/u/abc123"}}
    base.update(kw)
    return Envelope(**base)


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=policy.default)


def test_send_and_parse(server):
    result = make(server.port).send(envelope())
    assert result.status == ACCEPTED, result
    (rec,) = server.handler.messages
    assert rec["from"] == "hr@example.com" and rec["to"] == ["zhang.wei@example.org"]
    raw: bytes = rec["content"]
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert head.isascii()  # RFC 2047 encoded words, no raw UTF-8 in the header
    assert b"=?utf-8?" in head.lower()
    msg = parse(raw)
    assert msg["Subject"] == SUBJECT
    assert msg["From"].addresses[0].display_name == "招聘团队"
    assert msg["From"].addresses[0].addr_spec == "hr@example.com"
    assert msg["To"] == "zhang.wei@example.org"
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == "张伟您好:\n\n感谢参加面试,本次未能进入下一轮。\n"
    assert "张伟您好" in msg.get_body(("html",)).get_content()
    assert msg["Message-ID"] == result.provider_id
    assert result.provider_id.startswith("<herald.") and result.provider_id.endswith("@example.com>")
    assert msg["List-Unsubscribe"] == "<https://hr.example.com/u/abc123>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["X-Herald-Notification"] == "ntf-42"
    assert msg["X-Herald-Attempt"] == "ats-98123-r1/email#1"
    assert msg["Date"] is not None


def test_rule_file_sender_is_the_from_of_its_messages(server):
    t = make(server.port)
    assert t.send(envelope(sender="上海招聘 <hr-sh@example.com>")).status == ACCEPTED
    rec = server.handler.messages[0]
    assert rec["from"] == "hr-sh@example.com"
    assert parse(rec["content"])["From"].addresses[0].display_name == "上海招聘"
    bad = t.send(envelope(sender="a@x.example, b@y.example"))
    assert bad.status == PERMANENT and "company.sender" in (bad.error or "")


def test_plain_only_without_html(server):
    make(server.port).send(envelope(html=None, meta={}))
    msg = parse(server.handler.messages[0]["content"])
    assert msg.get_content_type() == "text/plain" and msg.get_content_charset() == "utf-8"
    assert "List-Unsubscribe" not in msg


def test_retry_keeps_message_id(server):
    t = make(server.port)
    first, second = t.send(envelope()), t.send(envelope())
    other = t.send(envelope(attempt_key="ats-98123-r1/email#2"))
    assert first.provider_id == second.provider_id != other.provider_id
    ids = [parse(m["content"])["Message-ID"] for m in server.handler.messages]
    assert ids[0] == ids[1] != ids[2]


def test_message_id_sanitising_keeps_keys_distinct():
    a, b, c = (message_id_for(k, "example.com", "prod") for k in ("a/b", "a:b", "a-b"))
    assert len({a, b, c}) == 3
    assert c == "<herald.prod.a-b@example.com>"
    assert all(" " not in x and x.count("@") == 1 for x in (a, b))
    assert message_id_for("x" * 500, "example.com", "p") == message_id_for("x" * 500, "example.com", "p")


def test_message_id_has_a_per_deployment_part(server):
    """Two deployments sending from one domain with the same outcome ids: different Message-IDs."""
    prod, staging = make(server.port, message_id_scope="prod"), make(server.port, message_id_scope="staging")
    a, b = prod.send(envelope()), staging.send(envelope())
    assert a.provider_id != b.provider_id
    assert a.provider_id.startswith("<herald.prod.") and b.provider_id.startswith("<herald.staging.")
    default = make(server.port).send(envelope()).provider_id
    other_relay = make(server.port, host="localhost").send(envelope()).provider_id
    assert default.startswith("<herald.") and default != other_relay
    assert make(server.port).send(envelope()).provider_id == default  # stable across restarts and replicas
    with pytest.raises(ValueError, match="message_id_scope"):
        make(server.port, message_id_scope="a.b")


def test_unsubscribe_setting_and_meta(server):
    t = make(server.port, list_unsubscribe="mailto:unsubscribe@example.com?subject=unsubscribe")
    t.send(envelope())
    t.send(envelope(meta={}))
    with_both, mailto_only = (parse(m["content"]) for m in server.handler.messages)
    assert with_both["List-Unsubscribe"] == ("<https://hr.example.com/u/abc123>, "
                                             "<mailto:unsubscribe@example.com?subject=unsubscribe>")
    assert with_both["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mailto_only["List-Unsubscribe"] == "<mailto:unsubscribe@example.com?subject=unsubscribe>"
    assert "List-Unsubscribe-Post" not in mailto_only


def test_one_https_uri_only(server):
    make(server.port, list_unsubscribe="https://hr.example.com/unsubscribe").send(envelope())
    msg = parse(server.handler.messages[0]["content"])
    assert msg["List-Unsubscribe"] == "<https://hr.example.com/u/abc123>"  # the message's own URL wins


@pytest.mark.parametrize("url", ["http://hr.example.com/u/1", "https://x/u 1", "https://x/u>, <https://evil", "https://x/ü",
                                 "javascript:alert(1)"])
def test_bad_unsubscribe_url_is_permanent(server, url):
    result = make(server.port).send(envelope(meta={"unsubscribe_url": url}))
    assert result.status == PERMANENT and result.code == "message"
    assert server.handler.messages == []


def test_header_injection_is_refused(server):
    result = make(server.port).send(envelope(to="a@example.org\r\nBcc: b@example.org"))
    assert result.status == PERMANENT and result.code == "message"
    ok = make(server.port).send(envelope(subject="面试结果\nBcc: x@example.org\n"))
    assert ok.status == ACCEPTED
    msg = parse(server.handler.messages[0]["content"])
    assert msg["Subject"] == "面试结果 Bcc: x@example.org" and "Bcc" not in msg


def test_reply_to(server):
    make(server.port, reply_to="招聘 <jobs@example.com>").send(envelope())
    assert parse(server.handler.messages[0]["content"])["Reply-To"].addresses[0].addr_spec == "jobs@example.com"


def test_recipient_refused_is_permanent(server):
    server.handler.rcpt_reply = "550 5.1.1 <zhang.wei@example.org>: Recipient address rejected: User unknown"
    result = make(server.port).send(envelope())
    assert result.status == PERMANENT and result.code == "550" and not result.ok
    assert "recipient" in result.error and "User unknown" in result.error


def test_greylisting_is_recoverable(server):
    server.handler.rcpt_reply = "451 4.7.1 Greylisted, please try again later"
    result = make(server.port).send(envelope())
    assert result.status == RECOVERABLE and result.code == "451"


def test_data_4xx_recoverable_5xx_permanent(server):
    server.handler.data_reply = "452 4.3.1 Insufficient system storage"
    assert make(server.port).send(envelope()).status == RECOVERABLE
    server.handler.data_reply = "554 5.7.1 Message rejected as spam"
    result = make(server.port).send(envelope())
    assert result.status == PERMANENT and result.code == "554"


def test_sender_refused(server):
    server.handler.mail_reply = "553 5.7.1 Sender address rejected: not owned by user"
    result = make(server.port).send(envelope())
    assert result.status == PERMANENT and result.code == "553" and "sender" in result.error
    server.handler.mail_reply = "451 4.3.0 try later"
    assert make(server.port).send(envelope()).status == RECOVERABLE


def test_server_down_is_recoverable():
    result = make(free_port()).send(envelope())
    assert result.status == RECOVERABLE and result.code == "connection"


def test_silent_server_times_out():
    with socket.socket() as listener:  # accepts TCP (backlog) but never greets
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        result = make(listener.getsockname()[1], timeout=0.5).send(envelope())
    assert result.status == RECOVERABLE and result.code == "timeout"


def test_check(server):
    assert make(server.port).check() == []
    assert server.handler.messages == []
    (problem,) = make(free_port()).check()
    assert "connection refused" in problem


# --- AUTH --------------------------------------------------------------------------------------------

@pytest.fixture
def auth_server():
    with Server(authenticator=authenticator, auth_required=True, auth_require_tls=False) as s:
        yield s


def test_login_success(auth_server):
    t = make(auth_server.port, username=USER, password=PASSWORD, allow_insecure_auth=True)
    assert t.send(envelope()).status == ACCEPTED
    assert auth_server.handler.messages[0]["login"] == USER.encode()
    assert t.check() == []


def test_login_failure_is_permanent_auth(auth_server):
    t = make(auth_server.port, username=USER, password="pw-wrong-password-1", allow_insecure_auth=True)
    result = t.send(envelope())
    assert result.status == PERMANENT and result.code == "auth" and not result.ok
    assert "535" in result.error and "pw-wrong-password-1" not in result.error
    (problem,) = t.check()
    assert "authentication failed" in problem and "pw-wrong-password-1" not in problem


def test_login_temporary_failure_is_recoverable(auth_server):
    t = make(auth_server.port, username=USER, password="pw-temporary-fail", allow_insecure_auth=True)
    result = t.send(envelope())
    assert result.status == RECOVERABLE and result.code == "454"


def test_no_login_when_required(auth_server):
    result = make(auth_server.port).send(envelope())
    assert result.status == PERMANENT and result.code == "530"


# --- TLS ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cert(tmp_path_factory):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed and cryptography is not in the venv: no self-signed certificate")
    d = tmp_path_factory.mktemp("smtp-cert")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2",
                    "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(d / "cert.pem"), str(d / "key.pem")


def server_context(cert: tuple[str, str]) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(*cert)
    return ctx


@pytest.fixture
def starttls_server(cert):
    with Server(tls_context=server_context(cert), require_starttls=True, authenticator=authenticator,
                auth_required=True) as s:  # AUTH only after STARTTLS (auth_require_tls default)
        yield s


def test_starttls_with_ca_file_and_login(starttls_server, cert):
    t = make(starttls_server.port, starttls=True, ca_file=cert[0], username=USER, password=PASSWORD)
    assert t.send(envelope()).status == ACCEPTED
    assert t.check() == []


def test_starttls_untrusted_certificate_is_permanent(starttls_server):
    result = make(starttls_server.port, starttls=True, username=USER, password=PASSWORD).send(envelope())
    assert result.status == PERMANENT and result.code == "tls"
    assert PASSWORD not in repr(result)


def test_starttls_verify_off(starttls_server):
    t = make(starttls_server.port, starttls=True, verify=False, username=USER, password=PASSWORD)
    assert t.send(envelope()).ok


def test_starttls_required_but_not_offered(server, cert):
    result = make(server.port, starttls=True, ca_file=cert[0]).send(envelope())
    assert result.status == PERMANENT and result.code == "config"
    assert server.handler.messages == []  # never falls back to clear text


@pytest.fixture
def ssl_server(cert):
    with Server(ssl_context=server_context(cert)) as s:
        yield s


def test_implicit_tls(ssl_server, cert):
    t = make(ssl_server.port, ssl=True, ca_file=cert[0])
    result = t.send(envelope())
    assert result.status == ACCEPTED
    assert parse(ssl_server.handler.messages[0]["content"])["Subject"] == SUBJECT
    assert t.check() == []


def test_implicit_tls_untrusted(ssl_server):
    result = make(ssl_server.port, ssl=True).send(envelope())
    assert result.status == PERMANENT and result.code == "tls"


# --- settings and secrets ----------------------------------------------------------------------------

@pytest.mark.parametrize("settings,fragment", [
    ({}, "'from' is required"),
    ({"from": "not an address"}, "'from' must be one address"),
    ({"from": FROM, "ssl": True, "starttls": True}, "exclude each other"),
    ({"from": FROM, "username": USER, "ssl": True}, "go together"),
    ({"from": FROM, "username": USER, "password": PASSWORD}, "clear text"),
    ({"from": FROM, "port": "smtp"}, "'port' must be an integer"),
    ({"from": FROM, "port": 70000}, "'port' must be at most"),
    ({"from": FROM, "ssl": "perhaps"}, "'ssl' must be true or false"),
    ({"from": FROM, "list_unsubscribe": "http://x.example/u"}, "'list_unsubscribe'"),
    ({"from": FROM, "pasword": PASSWORD}, "unknown setting"),
    ({"from": FROM, "ca_file": "/tmp/x.pem"}, "'ca_file' has no effect"),
])
def test_settings_validation(settings, fragment):
    with pytest.raises(ValueError) as info:
        SMTPTransport("email", settings)
    assert fragment in str(info.value) and "'email'" in str(info.value)
    assert PASSWORD not in str(info.value)


def test_settings_from_environment_strings(server):
    t = SMTPTransport("email", {"host": "127.0.0.1", "port": str(server.port), "from": FROM, "ssl": "false",
                                "starttls": "no", "timeout": "5"})
    assert t.port == server.port and t.ssl is False and t.send(envelope()).ok


def test_default_ports():
    assert SMTPTransport("e", {"from": FROM, "ssl": True}).port == 465
    assert SMTPTransport("e", {"from": FROM, "starttls": True}).port == 587
    assert SMTPTransport("e", {"from": FROM}).port == 25


def test_settings_table_shape():
    assert SETTINGS["from"][0] is True and SETTINGS["password"][1] is True
    assert not any(secret for name, (_, secret, _) in SETTINGS.items() if name != "password")


def test_no_password_anywhere(auth_server):
    t = make(auth_server.port, username=USER, password=PASSWORD, allow_insecure_auth=True)
    for text in (repr(t), str(t), str(vars(t)), f"{t.password}", repr(t.password)):
        assert PASSWORD not in text
    wrong = "pw-wrong-but-echoed-77"
    bad = make(auth_server.port, username=USER, password=wrong, allow_insecure_auth=True)
    texts = [repr(bad.send(envelope())), *bad.check(), repr(bad), str(vars(bad))]
    down = make(free_port(), username=USER, password=PASSWORD, allow_insecure_auth=True)
    texts += [repr(down.send(envelope())), *down.check()]
    for text in texts:
        assert wrong not in text and PASSWORD not in text, text


REAL_LINK = "https://herald.example.com/t/u/" + "eyJuIjoibnRmLTQyIiwiYyI6ImVtYWlsIn0.Zq81Xv3m9Lw2HkT0bRcYpA4sNdEuJfGi"


def raw_header(raw: bytes, name: bytes) -> bytes:
    """The header's bytes as they went over the wire (folds included), up to the next header."""
    head = raw.split(b"\r\n\r\n", 1)[0]
    start = head.index(b"\r\n" + name + b":") + 2
    end = start
    while True:
        nxt = head.find(b"\r\n", end)
        if nxt < 0:
            return head[start:]
        if head[nxt + 2:nxt + 3] not in (b" ", b"\t"):
            return head[start:nxt]
        end = nxt + 2


def test_list_unsubscribe_real_length_link_goes_unencoded(server):
    """Gmail and Yahoo read List-Unsubscribe only when it starts with '<': no RFC 2047 encoded-word, ever."""
    assert len(REAL_LINK) >= 86
    make(server.port).send(envelope(meta={"unsubscribe_url": REAL_LINK}))
    raw = server.handler.messages[0]["content"]
    assert raw_header(raw, b"List-Unsubscribe") == b"List-Unsubscribe: <" + REAL_LINK.encode() + b">"
    assert raw_header(raw, b"List-Unsubscribe-Post") == b"List-Unsubscribe-Post: List-Unsubscribe=One-Click"


def test_list_unsubscribe_folds_only_at_commas(server):
    mailto = "mailto:unsubscribe+" + "x" * 60 + "@hr.example.com?subject=unsubscribe"
    make(server.port, list_unsubscribe=mailto).send(envelope(meta={"unsubscribe_url": REAL_LINK}))
    raw = server.handler.messages[0]["content"]
    assert raw_header(raw, b"List-Unsubscribe") == (b"List-Unsubscribe: <" + REAL_LINK.encode() + b">,\r\n <"
                                                    + mailto.encode() + b">")
    assert b"=?" not in raw_header(raw, b"List-Unsubscribe")
    assert parse(raw)["List-Unsubscribe"] == f"<{REAL_LINK}>, <{mailto}>"
