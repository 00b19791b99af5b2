"""No secret leaks: every transport configured with distinctive secrets from the environment, then every output checked.

Runs `herald validate`, `herald dry-run`, `herald channels check` (against unreachable endpoints and against fakes
that refuse, some of them echoing what they were sent, as careless servers do), and `herald serve --log-level DEBUG`
where every send fails (DingTalk, Aliyun SMS, SMTP and the webhook refuse; the HR alert robot refuses too). Then
the CLI outputs, the daemon's log, the stored attempt errors and events, GET /v1/notifications/{id},
GET /v1/outcomes/{id}, GET /metrics, /healthz, a 401 answer, and what the robot received are searched for every
secret, in its raw, URL-encoded and base64 forms (and as SMTP AUTH PLAIN would encode it).
"""
from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from daemon_support import ServeProcess, wait_for
from loopback import Serving
from fake_aliyun import FakeAliyunSms
from fake_dingtalk import FakeDingTalk
from fake_robot import FakeRobot

from engine.store import SQLiteStore

HERE = Path(__file__).resolve().parent

HERALD = str(Path(sys.executable).with_name("herald"))
SMTP_USER = "hr@example.com"
SECRETS = {
    "SMTP_PASSWORD": "SECRET-SMTP-PASSWORD-123",
    "DING_APP_SECRET": "SECRET-DING-APP-SECRET-456",
    "ALIYUN_KEY_SECRET": "SECRET-ALIYUN/KEY+SECRET=789",
    "ROBOT_TOKEN": "SECRET-ROBOT-TOKEN-abc",
    "ROBOT_SECRET": "SECRET-ROBOT-SIGN-def",
    "WEBHOOK_SECRET": "SECRET-WEBHOOK-HMAC-ghi",
    "WEBHOOK_AUTH": "Bearer SECRET-WEBHOOK-HEADER-jkl",
    "WEBHOOK_PATH": "SECRET-WEBHOOK-PATH-mno",
    "SERVER_TOKEN": "SECRET-SERVER-TOKEN-pqr",
    "SERVER_HMAC": "SECRET-SERVER-HMAC-stu",
    "TRACKING_SECRET": "SECRET-TRACKING-KEY-vwx",
    "PUSH_TOKEN": "SECRET-PUSH-TOKEN-yz0123456789",
}

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def forms(secret: str) -> set[str]:
    """The secret as it could show up: raw, URL-encoded both ways, base64 (and inside SMTP AUTH PLAIN / LOGIN)."""
    out = {secret, quote(secret, safe=""), quote_plus(secret), base64.b64encode(secret.encode()).decode()}
    out.add(base64.b64encode(f"\0{SMTP_USER}\0{secret}".encode()).decode())
    return out


def leaks(texts: dict[str, str], extra: tuple = ()) -> list[tuple[str, str]]:
    """(where, which secret) for every secret form found in any text."""
    found = []
    for where, text in texts.items():
        for name, secret in [*SECRETS.items(), *(("issued", e) for e in extra)]:
            if any(f in text for f in forms(secret)):
                found.append((where, name))
    return found


# ------------------------------------------------------------------------------------------- fakes

class EchoingDingTalk(FakeDingTalk):
    """Issues tokens, then refuses every work notice with an errmsg that repeats the token and the app secret."""

    def route(self, method, path, query, raw, ctype):
        if path.endswith("asyncsend_v2"):
            return 200, {"errcode": 40035, "errmsg": f"bad request token={query.get('access_token')} "
                                                     f"secret={self.app_secret}"}
        return super().route(method, path, query, raw, ctype)


class Webhook(BaseHTTPRequestHandler):
    """Refuses everything (400), echoing the path, the Authorization header and the signature in its body."""

    def _refuse(self, body: bool) -> None:
        text = (f"denied {self.path} auth={self.headers.get('Authorization')} "
                f"sig={self.headers.get('X-Herald-Signature')}").encode()
        self.send_response(400 if body else 404)
        self.send_header("Content-Length", str(len(text)))
        self.end_headers()
        if body:
            self.wfile.write(text)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._refuse(True)

    def do_HEAD(self):
        self._refuse(False)

    def log_message(self, *args):
        pass


class Mailer:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"


def echo_auth(server, session, envelope, mechanism, auth_data):
    """A careless SMTP server: it refuses every login and repeats the password it was given."""
    given = auth_data.password.decode() if isinstance(auth_data, LoginPassword) else "?"
    return AuthResult(success=False, handled=False, message=f"535 5.7.8 bad credentials ({given})")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def fakes():
    ding = EchoingDingTalk(app_secret=SECRETS["DING_APP_SECRET"]).start()
    sms = FakeAliyunSms(access_key_secret=SECRETS["ALIYUN_KEY_SECRET"]).start()
    robot = FakeRobot(access_token=SECRETS["ROBOT_TOKEN"], secret=SECRETS["ROBOT_SECRET"]).start()
    hook = Serving(Webhook).start()
    smtp = Controller(Mailer(), hostname="127.0.0.1", port=free_port(), authenticator=echo_auth,
                      auth_require_tls=False)
    smtp.start()
    yield {"ding": ding, "sms": sms, "robot": robot, "hook": hook.url, "smtp": smtp.port}
    smtp.stop()
    for f in (ding, sms, robot, hook):
        f.stop()


# ------------------------------------------------------------------------------------------- deployment

TEMPLATE = """{# herald: decisions=[reject] sms_code=SMS_100001 sms_params={name: candidate.name, job: position.title} #}
{% block subject %}Interview result{% endblock %}
{% block email %}Hello {{ candidate.name }}{% endblock %}
{% block sms %}Hello {{ candidate.name }}{% endblock %}
{% block dingtalk %}Hello {{ candidate.name }}{% endblock %}
{% block webhook %}Hello {{ candidate.name }}{% endblock %}
"""

RULES = """version: 1
rules:
  - id: everything
    match: {decision: reject}
    template: any/generic
    channels: [dingtalk, sms, email, webhook]
    locale: en
    timezone: UTC
"""


def deployment(root: Path, ding: str, sms: str, robot: str, hook: str, smtp_port: int) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "templates" / "any").mkdir(parents=True)
    (root / "rules" / "10.yaml").write_text(RULES)
    (root / "templates" / "any" / "generic.j2").write_text(TEMPLATE)
    (root / "herald.yaml").write_text(f"""store: {{path: herald.db}}
outbox: outbox
channels:
  dingtalk: {{transport: dingtalk-work-notice, app_key: dingkey, app_secret: "${{DING_APP_SECRET}}", agent_id: 4242,
             base_url: "{ding}"}}
  sms: {{transport: aliyun-sms, access_key_id: LTAI-test-id, access_key_secret: "${{ALIYUN_KEY_SECRET}}",
        sign_name: 面试通知, endpoint: "{sms}", push_token: "${{PUSH_TOKEN}}"}}
  email: {{transport: smtp, host: 127.0.0.1, port: {smtp_port}, username: {SMTP_USER}, password: "${{SMTP_PASSWORD}}",
          allow_insecure_auth: true, from: "HR <hr@example.com>", timeout: 5}}
  webhook: {{transport: webhook, url: "{hook}/hook/${{WEBHOOK_PATH}}?key=${{WEBHOOK_PATH}}", secret: "${{WEBHOOK_SECRET}}",
            headers: {{Authorization: "${{WEBHOOK_AUTH}}"}}, timeout: 5}}
  hr: {{transport: dingtalk-robot, access_token: "${{ROBOT_TOKEN}}", secret: "${{ROBOT_SECRET}}", base_url: "{robot}"}}
server:
  auth: {{token: "${{SERVER_TOKEN}}", hmac_secret: "${{SERVER_HMAC}}"}}
tracking: {{secret: "${{TRACKING_SECRET}}"}}
alerts: {{channel: hr, interval: 1s}}
dispatch: {{max_attempts: 1, poll_interval: 1s, receipt_interval: 1s}}
""")
    outcome = {"id": "sec-1", "decision": "reject", "stage": "first_round", "role": "backend",
               "position": {"title": "Backend Engineer"},
               "candidate": {"name": "Ann", "email": "ann@example.com", "phone": "+8613800000000",
                             "dingtalk_userid": "u-alice"}}
    (root / "outcomes.jsonl").write_text(json.dumps(outcome) + "\n")
    return root


def run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, **SECRETS}
    p = subprocess.run([HERALD, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    return f"exit {p.returncode}\n{p.stdout}\n{p.stderr}"


def closed_port() -> str:
    return f"http://127.0.0.1:{free_port()}"


# ------------------------------------------------------------------------------------------- the test

@pytest.mark.slow
def test_no_secret_in_any_output(tmp_path, fakes):
    outputs: dict[str, str] = {}

    # 1. validate, dry-run and channels check against endpoints nobody listens on
    dead = deployment(tmp_path / "dead", closed_port(), closed_port(), closed_port(), closed_port(), free_port())
    outputs["validate"] = run(["validate"], dead)
    assert outputs["validate"].startswith("exit 0"), outputs["validate"]
    outputs["dry-run"] = run(["dry-run", "--outcomes", "outcomes.jsonl", "--show-pii"], dead)
    assert "sec-1" in outputs["dry-run"]
    outputs["check (unreachable)"] = run(["channels", "check"], dead)
    assert outputs["check (unreachable)"].startswith("exit 1") and outputs["check (unreachable)"].count("FAILED") == 5

    # 2. channels check and a daemon against fakes that refuse (and echo)
    root = deployment(tmp_path / "live", fakes["ding"].url, fakes["sms"].url, fakes["robot"].base_url, fakes["hook"],
                      fakes["smtp"])
    fakes["sms"].fail_next("QuerySendDetails", "isv.INVALID_PARAMETERS", f"echo {SECRETS['ALIYUN_KEY_SECRET']}")
    outputs["check (refusing)"] = run(["channels", "check"], root)
    assert "535" in outputs["check (refusing)"] and "FAILED" in outputs["check (refusing)"]

    fakes["sms"].fail_next("SendSms", "isv.SMS_CONTENT_ILLEGAL", f"echo {SECRETS['ALIYUN_KEY_SECRET']}")
    robot = fakes["robot"]
    robot.forced.append((200, {"errcode": 310000, "errmsg": f"sign not match {SECRETS['ROBOT_SECRET']} "
                                                            f"{SECRETS['ROBOT_TOKEN']}"}))
    serve = ServeProcess(root, "--log-level", "DEBUG", env=SECRETS)
    try:
        url = serve.wait_ready()
        bearer = {"Authorization": f"Bearer {SECRETS['SERVER_TOKEN']}"}
        body = (root / "outcomes.jsonl").read_bytes()
        r = httpx.post(url + "/v1/outcomes", content=body, headers={**bearer, "Content-Type": "application/json"})
        assert r.status_code == 202, r.text
        nid = url + "/v1/notifications/sec-1%231"
        wait_for(lambda: httpx.get(nid, headers=bearer).json()["state"] == "failed", timeout=60)
        wait_for(lambda: robot.requests, timeout=30)  # the HR alert, refused by the robot
        outputs["notification"] = httpx.get(nid, headers=bearer).text
        outputs["outcome"] = httpx.get(url + "/v1/outcomes/sec-1", headers=bearer).text
        outputs["metrics"] = httpx.get(url + "/metrics").text
        outputs["healthz"] = httpx.get(url + "/healthz").text
        outputs["401"] = httpx.get(nid, headers={"Authorization": "Bearer wrong"}).text
        outputs["push 404"] = httpx.post(url + "/v1/push/aliyun-sms/wrong/report", json=[]).text
    finally:
        serve.stop()
    outputs["daemon log"] = serve.log()
    outputs["alert sent"] = "\n".join(r["raw"].decode() for r in robot.requests)
    with SQLiteStore(root / "herald.db") as store:
        detail = store.get_notification("sec-1#1")
    outputs["stored attempts"] = "\n".join(f"{a.status} {a.code} {a.error} {a.provider_id}" for a in detail.attempts)
    outputs["stored events"] = "\n".join(json.dumps(e.detail, ensure_ascii=False) for e in detail.events)

    # the run did what it should: every channel tried and refused, secrets really were sent to the fakes
    attempts = [(a.channel, a.status) for a in detail.attempts]
    assert attempts == [("dingtalk", "permanent"), ("sms", "permanent"), ("email", "permanent"),
                        ("webhook", "permanent")], outputs["stored attempts"]
    assert "auth" in outputs["stored attempts"] and "400" in outputs["stored attempts"]
    assert "failed on every channel" in outputs["alert sent"] and "alerts: hr refused" in outputs["daemon log"]
    issued = tuple(fakes["ding"].tokens)
    assert issued and fakes["ding"].gettoken_calls >= 2

    assert leaks(outputs, issued) == [], {k: v[-3000:] for k, v in outputs.items()}


def test_a_secret_echoed_across_the_display_limit_is_not_cut_in_half():
    """Error texts keep only the start of a provider's answer: the secret is masked before the text is cut."""
    from engine.channels.dingtalk_robot import DingTalkRobotTransport
    from engine.channels.webhook import WebhookTransport

    secret = SECRETS["WEBHOOK_AUTH"]
    hook = WebhookTransport("hook", {"url": "https://hooks.example.com/x", "headers": {"Authorization": secret}})
    for pad in range(180, 200):
        answer = httpx.Response(400, text="x" * pad + secret, request=httpx.Request("POST", "https://hooks.example.com"))
        error = hook.classify(answer, "key").error
        assert "SECRET-" not in error and secret[:12] not in error, (pad, error)
    robot = DingTalkRobotTransport("hr", {"access_token": SECRETS["ROBOT_TOKEN"], "secret": SECRETS["ROBOT_SECRET"]})
    for pad in range(280, 300):
        body = {"errcode": 310000, "errmsg": "y" * pad + SECRETS["ROBOT_SECRET"]}
        answer = httpx.Response(200, json=body, request=httpx.Request("POST", "https://oapi.dingtalk.com"))
        error = robot.classify(answer, "key").error
        assert "SECRET-" not in error, (pad, error)
