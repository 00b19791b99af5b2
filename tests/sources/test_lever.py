"""Lever through a real daemon: ids-only events completed through a fake Lever API (retries, pending, resubmit)."""
from __future__ import annotations

import json

import pytest

from daemon_support import outbox, wait_for
from engine.sources.base import SourceRequest
from engine.sources.config import SourceConfig
from engine.sources.lever import KIND, sign
from fake_ats import payload_json
from fake_lever import FakeLever
from sources_support import SECRET, source_deployment

API_KEY = "lever-api-key-123"
LEVER = """sources:
  lever:
    kind: lever
    secret: "${GH_SECRET}"
    api_key: "${LEVER_TEST_KEY}"
    api_url: "URL"
    map:
      stage:  {from: stage.text, values: {"On-site interview": second_round}}
      role:   {from: opportunity.headline, values: {"Engineer": backend}, default: other}
      reason: {from: archive_reason.text, values: {"Underqualified": lacks_project_experience}}
"""


def signed(name: str, secret: str = SECRET) -> bytes:
    body = payload_json(name)
    body["signature"] = sign(secret, body["token"], body["triggeredAt"])
    return json.dumps(body).encode()


@pytest.fixture
def lever(monkeypatch):
    monkeypatch.setenv("GH_SECRET", SECRET)
    monkeypatch.setenv("LEVER_TEST_KEY", API_KEY)
    monkeypatch.setattr(KIND, "sleep", lambda s: None)  # the backoff's waits, not its count
    with FakeLever(API_KEY) as api:
        api.add("/opportunities/opp-77", payload_json("lever_api_opportunity.json"))
        api.add("/stages/st-onsite", payload_json("lever_api_stage.json"))
        api.add("/archive_reasons/ar-experience", payload_json("lever_api_archive_reason.json"))
        yield api


def test_signature_is_over_token_and_triggered_at():
    src = SourceConfig("lever", "lever", "secret")
    body = signed("lever_candidate_stage_change.json", "secret")
    assert KIND.verify(SourceRequest(body), src)
    assert not KIND.verify(SourceRequest(signed("lever_candidate_stage_change.json", "other")), src)
    tampered = json.loads(body)
    tampered["triggeredAt"] += 1
    assert not KIND.verify(SourceRequest(json.dumps(tampered).encode()), src)
    assert not KIND.verify(SourceRequest(b"not json"), src)


def _post(d, body: bytes):
    import httpx

    return httpx.post(d.url + "/v1/sources/lever", content=body, headers={"Content-Type": "application/json"},
                      timeout=30)


@pytest.mark.slow
def test_stage_change_is_completed_through_the_api_and_sent(tmp_path, daemons, lever):
    root = source_deployment(tmp_path, LEVER.replace("URL", lever.url))
    d = daemons(root)
    lever.fail_next(2)  # two 503s: the look-up is retried with backoff
    r = _post(d, signed("lever_candidate_stage_change.json"))
    assert r.status_code == 202 and r.json()["status"] == "matched", r.text
    rec = d.runtime.store.get_outcome("lever:opp-77").data()
    assert (rec["decision"], rec["stage"], rec["role"]) == ("pass", "second_round", "backend")
    assert rec["candidate"] == {"name": "Zhao Lei", "email": "zhao.lei@example.com", "phone": "+8613600004444",
                                "id": "contact-77"}
    assert lever.requests[:3] == ["/opportunities/opp-77"] * 3 and "/stages/st-onsite" in lever.requests
    assert wait_for(lambda: any("Zhao Lei" in json.dumps(m) for m in outbox(root)))
    assert _post(d, signed("lever_candidate_stage_change.json")).json()["status"] == "duplicate"


@pytest.mark.slow
def test_lever_down_keeps_the_event_pending_until_resubmitted(tmp_path, daemons, lever):
    from click.testing import CliRunner

    from cli import main

    root = source_deployment(tmp_path, LEVER.replace("URL", lever.url))
    d = daemons(root)
    lever.fail_next(100)
    r = _post(d, signed("lever_candidate_archive_change.json"))
    assert r.status_code == 202 and r.json()["status"] == "pending", r.text
    assert "kept as pending" in r.json()["error"]
    store = d.runtime.store
    assert store.get_outcome("lever:opp-77") is None
    [kept] = store.unmapped_source_events()
    assert kept.status == "pending" and kept.event_id == "evt-lever-0002"
    assert _post(d, signed("lever_candidate_archive_change.json")).json()["status"] == "duplicate"
    lever.fail_next(0)
    d.shutdown()
    out = CliRunner().invoke(main, ["sources", "resubmit", "--config", str(root / "herald.yaml")],
                             env={"GH_SECRET": SECRET, "LEVER_TEST_KEY": API_KEY})
    assert out.exit_code == 0 and "lever\tevt-lever-0002\tlever:opp-77\tmatched" in out.output, out.output
    from engine.store import open_store

    with open_store(root / "herald.db") as s:
        rec = s.get_outcome("lever:opp-77").data()
        assert rec["decision"] == "reject" and rec["reason"] == "lacks_project_experience"
        assert s.unmapped_source_events() == []


@pytest.mark.slow
def test_unarchive_withdraws(tmp_path, daemons, lever):
    manual = LEVER.replace("URL", lever.url).replace("    kind: lever\n", "    kind: lever\n    approve: manual\n")
    d = daemons(source_deployment(tmp_path, manual))
    assert _post(d, signed("lever_candidate_archive_change.json")).json()["status"] == "held"
    r = _post(d, signed("lever_candidate_unarchive.json"))
    assert r.json() == {"status": "withdrawn", "outcome_id": "lever:opp-77", "event_id": "evt-lever-0003"}
    assert d.runtime.store.get_outcome("lever:opp-77").state == "withdrawn"
