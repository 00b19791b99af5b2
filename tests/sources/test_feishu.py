"""Feishu Hire (飞书招聘): X-Lark-Signature, AES bodies, the URL challenge, and Hire events through a real daemon
completed through a fake Feishu open platform on loopback (token, applications, talents, jobs, offers)."""
from __future__ import annotations

import copy
import json

import httpx
import pytest

from daemon_support import outbox, wait_for
from engine.sources.base import EventError, SourceRequest
from engine.sources.config import SourceConfig
from engine.sources.feishu import KIND, WINDOW_S, decrypt, encrypt, plain_body
from fake_feishu import (APP_SECRET, ENCRYPT_KEY, VERIFICATION_TOKEN, FakeFeishu, feishu_payload, lark_signature,
                         seal)
from sources_support import source_deployment

FEISHU = """sources:
  feishu:
    kind: feishu
    secret: "${FEISHU_TEST_ENCRYPT_KEY}"
    verification_token: "${FEISHU_TEST_TOKEN}"
    app_id: cli_9f5343c580712544
    app_secret: "${FEISHU_TEST_APP_SECRET}"
    api_url: "URL"
    map:
      stage:  {from: application.stage.zh_name, values: {"初试": first_round, "复试": second_round, "终面": final}}
      role:   {from: job.title, values: {"后端工程师": backend}, default: other}
      reason: {from: application.termination_reason_note, values: {"项目经验不足": lacks_project_experience}}
"""
STAGE = "application_stage_changed.json"
OFFER = "offer_status_changed.json"
OID = "feishu:6949805467799537964"
APP_PATH = "/open-apis/hire/v1/applications/6949805467799537964"
TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"


def _src() -> SourceConfig:
    return SourceConfig("feishu", "feishu", ENCRYPT_KEY, settings={"verification_token": VERIFICATION_TOKEN})


def _signed(body: bytes, ts: int, key: str = ENCRYPT_KEY, nonce: str = "n0nce") -> dict:
    return {"x-lark-request-timestamp": str(ts), "x-lark-request-nonce": nonce,
            "x-lark-signature": lark_signature(str(ts), nonce, key, body)}


def test_signature_is_sha256_of_timestamp_nonce_key_and_body_within_the_window():
    body = json.dumps(feishu_payload(STAGE)).encode()
    now = 1_800_000_000
    ok = SourceRequest(body, _signed(body, now), received_at=now + 30)
    assert KIND.verify(ok, _src())
    assert not KIND.verify(SourceRequest(body + b" ", _signed(body, now), received_at=now), _src())
    assert not KIND.verify(SourceRequest(body, _signed(body, now, key="other"), received_at=now), _src())
    assert not KIND.verify(SourceRequest(body, {}, received_at=now), _src())
    stale = SourceRequest(body, _signed(body, now), received_at=now + WINDOW_S + 1)
    assert not KIND.verify(stale, _src()), "a delivery replayed after the window is refused"
    early = SourceRequest(body, _signed(body, now + WINDOW_S + 1), received_at=now)
    assert not KIND.verify(early, _src())
    bad_ts = dict(_signed(body, now), **{"x-lark-request-timestamp": "soon"})
    assert not KIND.verify(SourceRequest(body, bad_ts, received_at=now), _src())
    other_token = feishu_payload(STAGE)
    other_token["header"]["token"] = "not-the-verification-token"
    b2 = json.dumps(other_token).encode()
    assert not KIND.verify(SourceRequest(b2, _signed(b2, now), received_at=now), _src())


def test_decrypt_matches_the_documented_example_and_an_independent_encryption():
    # The open platform's decryption example: key "test key" -> "hello world".
    assert decrypt("test key", "P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=") == b"hello world"
    plain = json.dumps(feishu_payload(STAGE), ensure_ascii=False).encode()
    assert decrypt(ENCRYPT_KEY, seal(ENCRYPT_KEY, plain)) == plain
    # (another key's text with a fixed IV: with a random one, the garbage it decrypts to ends in a valid
    # PKCS#7 padding about once in 256, and then only the JSON decode refuses it; see the test below)
    for bad in ("not base64!", encrypt("other key", plain, bytes(16)), "", "QUJD"):
        with pytest.raises(EventError):
            decrypt(ENCRYPT_KEY, bad)


def test_another_key_s_text_is_refused_even_where_its_padding_happens_to_be_valid():
    """decrypt() refuses a wrong key by the padding, which garbage passes about once in 256; the body is refused
    all the same, by the JSON decode of that garbage."""
    plain = json.dumps(feishu_payload(STAGE), ensure_ascii=False).encode()
    source = SourceConfig("feishu", "feishu", secret=ENCRYPT_KEY)
    padded_ok = 0
    for i in range(1024):
        sealed = encrypt("other key", plain, i.to_bytes(16, "big"))
        try:
            decrypt(ENCRYPT_KEY, sealed)
            padded_ok += 1
        except EventError:
            pass
        with pytest.raises(EventError):
            plain_body(SourceRequest(json.dumps({"encrypt": sealed}).encode()), source)
    assert padded_ok > 0  # (the case this test is for happened among these 1,024 IVs)


def test_the_url_challenge_is_answered_only_with_the_verification_token():
    challenge = dict(feishu_payload("url_verification.json"), token=VERIFICATION_TOKEN)
    plain = json.dumps(challenge).encode()
    sealed = json.dumps({"encrypt": seal(ENCRYPT_KEY, plain)}).encode()
    for body in (plain, sealed):
        req = SourceRequest(body)
        assert KIND.verify(req, _src())
        assert KIND.parse(req, _src()).reply == {"challenge": "ajls384kdjx98XX"}
    wrong = json.dumps(dict(challenge, token="guess")).encode()
    assert not KIND.verify(SourceRequest(wrong), _src())
    assert not KIND.verify(SourceRequest(json.dumps({"encrypt": seal("other", plain)}).encode()), _src())
    event = json.dumps(feishu_payload(STAGE)).encode()
    assert not KIND.verify(SourceRequest(event), _src()), "only a challenge may come unsigned"


@pytest.fixture
def feishu(monkeypatch):
    monkeypatch.setenv("FEISHU_TEST_ENCRYPT_KEY", ENCRYPT_KEY)
    monkeypatch.setenv("FEISHU_TEST_TOKEN", VERIFICATION_TOKEN)
    monkeypatch.setenv("FEISHU_TEST_APP_SECRET", APP_SECRET)
    monkeypatch.setattr(KIND, "sleep", lambda s: None)  # the backoff's waits, not its count
    with FakeFeishu() as fake:
        yield fake


def _daemon(tmp_path, daemons, fake, sources: str = FEISHU):
    return daemons(source_deployment(tmp_path, sources.replace("URL", fake.url)))


@pytest.mark.slow
@pytest.mark.parametrize("encrypted", [False, True])
def test_stage_change_is_completed_through_the_hire_api_and_sent(tmp_path, daemons, feishu, encrypted):
    d = _daemon(tmp_path, daemons, feishu)
    now = d.runtime.now()
    feishu.fail_next(1)  # one 503: retried with backoff
    r = feishu.push(d.url, "feishu", feishu_payload(STAGE), encrypted=encrypted, timestamp=now)
    assert r.status_code == 202 and r.json()["status"] == "matched", r.text
    rec = d.runtime.store.get_outcome(OID).data()
    assert (rec["decision"], rec["stage"], rec["role"]) == ("pass", "second_round", "backend")
    assert rec["candidate"] == {"name": "王小明", "email": "wang.xiaoming@example.com", "phone": "+8613800001111",
                                "id": "6891560630172518670"}
    assert rec["occurred_at"].startswith("2020-12-23T12:19:49")
    assert feishu.requests[:3] == [TOKEN_PATH, TOKEN_PATH, APP_PATH], "the 503 was retried"
    assert "/open-apis/hire/v1/talents/6891560630172518670" in feishu.requests
    assert wait_for(lambda: any("王小明" in json.dumps(m, ensure_ascii=False) for m in outbox(tmp_path)))
    again = feishu.push(d.url, "feishu", feishu_payload(STAGE), encrypted=encrypted, timestamp=now)
    assert again.status_code == 200 and again.json()["status"] == "duplicate", again.text


@pytest.mark.slow
def test_offer_sent_amends_the_outcome_and_the_token_is_reused(tmp_path, daemons, feishu):
    d = _daemon(tmp_path, daemons, feishu)
    now = d.runtime.now()
    assert feishu.push(d.url, "feishu", feishu_payload(STAGE), timestamp=now).json()["status"] == "matched"
    r = feishu.push(d.url, "feishu", feishu_payload(OFFER), encrypted=True, timestamp=now)
    assert r.status_code == 202 and r.json()["status"] == "amended", r.text
    assert d.runtime.store.get_outcome(OID).data()["decision"] == "offer"
    assert feishu.requests.count(TOKEN_PATH) == 1, "the tenant_access_token is kept between events"
    feishu.revoke_tokens()  # Feishu calls the cached token invalid: a new one is fetched and the look-up retried
    terminated = copy.deepcopy(feishu_payload("api_application.json"))
    terminated["data"]["application"].update(active_status=2, termination_reason_note="项目经验不足")
    feishu.add(APP_PATH, terminated)
    event = feishu_payload(STAGE)
    event["header"]["event_id"] = "terminated-0001"
    r = feishu.push(d.url, "feishu", event, timestamp=now)
    assert r.json()["status"] == "amended", r.text
    rec = d.runtime.store.get_outcome(OID).data()
    assert (rec["decision"], rec["reason"]) == ("reject", "lacks_project_experience")
    assert feishu.requests.count(TOKEN_PATH) == 2


@pytest.mark.slow
def test_an_invalidated_offer_withdraws_and_other_statuses_are_ignored(tmp_path, daemons, feishu):
    manual = FEISHU.replace("    kind: feishu\n", "    kind: feishu\n    approve: manual\n")
    d = _daemon(tmp_path, daemons, feishu, manual)
    now = d.runtime.now()
    assert feishu.push(d.url, "feishu", feishu_payload(STAGE), timestamp=now).json()["status"] == "held"
    offer = copy.deepcopy(feishu_payload("api_offer.json"))
    for status, event_id, want in ((2, "ev-approving", "ignored"), (9, "ev-invalid", "withdrawn")):
        offer["data"]["offer"]["offer_status"] = status
        feishu.add("/open-apis/hire/v1/offers/6951176962155202860", copy.deepcopy(offer))
        event = feishu_payload(OFFER)
        event["header"]["event_id"] = event_id
        r = feishu.push(d.url, "feishu", event, timestamp=now)
        assert r.status_code == 200 and r.json()["status"] == want, r.text
    assert d.runtime.store.get_outcome(OID).state == "withdrawn"


@pytest.mark.slow
def test_bad_signature_stale_timestamp_or_wrong_key_is_401_and_nothing_stored(tmp_path, daemons, feishu):
    d = _daemon(tmp_path, daemons, feishu)
    now = d.runtime.now()
    body = feishu_payload(STAGE)
    attempts = [feishu.push(d.url, "feishu", body, timestamp=now, headers={"X-Lark-Signature": "0" * 64}),
                feishu.push(d.url, "feishu", body, timestamp=now, key="wrong-key"),
                feishu.push(d.url, "feishu", body, timestamp=now - WINDOW_S - 60),
                feishu.push(d.url, "feishu", body, signed=False),
                feishu.push(d.url, "feishu", body, encrypted=True, signed=False)]
    assert [r.status_code for r in attempts] == [401] * 5, [r.text for r in attempts]
    store = d.runtime.store
    assert store.get_outcome(OID) is None and store.source_event("feishu", "5e3702a84e847582be8db7fb73283c02") is None
    assert store.dead_letters() == [] and feishu.requests == [], "nothing fetched for an unverified event"
    metrics = httpx.get(d.url + "/metrics").text
    assert 'herald_source_events_total{source="feishu",status="unauthorized"} 5.0' in metrics


@pytest.mark.slow
def test_url_challenge_through_the_daemon_plain_and_encrypted(tmp_path, daemons, feishu):
    d = _daemon(tmp_path, daemons, feishu)
    challenge = dict(feishu_payload("url_verification.json"), token=VERIFICATION_TOKEN)
    for encrypted in (False, True):
        r = feishu.push(d.url, "feishu", challenge, encrypted=encrypted, signed=False)
        assert r.status_code == 200 and r.json() == {"challenge": "ajls384kdjx98XX"}, r.text
    r = feishu.push(d.url, "feishu", dict(challenge, token="guess"), signed=False)
    assert r.status_code == 401
    assert d.runtime.store.unmapped_source_events() == []


@pytest.mark.slow
def test_feishu_down_keeps_the_event_pending_then_resubmit_completes_it(tmp_path, daemons, feishu):
    from click.testing import CliRunner

    from cli import main
    from engine.store import open_store

    root = source_deployment(tmp_path, FEISHU.replace("URL", feishu.url))
    d = daemons(root)
    feishu.fail_next(100)
    r = feishu.push(d.url, "feishu", feishu_payload(STAGE), encrypted=True, timestamp=d.runtime.now())
    assert r.status_code == 202 and r.json()["status"] == "pending", r.text
    assert "kept as pending" in r.json()["error"] and APP_SECRET not in r.text
    feishu.fail_next(0)
    d.shutdown()
    env = {"FEISHU_TEST_ENCRYPT_KEY": ENCRYPT_KEY, "FEISHU_TEST_TOKEN": VERIFICATION_TOKEN,
           "FEISHU_TEST_APP_SECRET": APP_SECRET}
    out = CliRunner().invoke(main, ["sources", "resubmit", "--config", str(root / "herald.yaml")], env=env)
    assert out.exit_code == 0 and f"feishu\t5e3702a84e847582be8db7fb73283c02\t{OID}\tmatched" in out.output, out.output
    with open_store(root / "herald.db") as s:
        assert s.get_outcome(OID).data()["stage"] == "second_round" and s.unmapped_source_events() == []


def test_feishu_settings_are_required_and_secrets_come_from_the_environment(tmp_path):
    from engine.config.settings import load_config

    bare = """sources:
  feishu:
    kind: feishu
    secret: "${FEISHU_TEST_ENCRYPT_KEY}"
    app_secret: "written-in-the-file"
"""
    source_deployment(tmp_path, bare)
    cfg, diags = load_config(tmp_path / "herald.yaml", env={"FEISHU_TEST_ENCRYPT_KEY": ENCRYPT_KEY})
    errors = {d.message for d in diags if d.is_error}
    assert any("needs `verification_token`" in m for m in errors) and any("needs `app_id`" in m for m in errors)
    assert all(d.line > 1 for d in diags if "feishu" in d.message)
    warned = [d for d in diags if not d.is_error and d.code == "literal-secret"]
    assert warned and '"app_secret" is written in the file' in warned[0].message
    assert "feishu" not in cfg.sources
    assert "written-in-the-file" not in " ".join(d.format() for d in diags)
