"""Greenhouse through a real daemon: signed deliveries from a fake Greenhouse, intake, the outbox."""
from __future__ import annotations

import json

import httpx
import pytest

from daemon_support import outbox, wait_for
from engine.sources.greenhouse import KIND, sign
from engine.sources.base import SourceRequest
from fake_ats import hexmac, payload, payload_json
from sources_support import source_deployment

pytestmark = pytest.mark.slow



def test_signature_is_sha256_space_hex_of_the_raw_body():
    from engine.sources.config import SourceConfig

    src = SourceConfig("gh", "greenhouse", "secret")
    body = payload("greenhouse_ping.json")
    assert sign("secret", body) == "sha256 " + hexmac("secret", body)
    ok = SourceRequest(body, {"signature": sign("secret", body)})
    assert KIND.verify(ok, src)
    assert KIND.verify(SourceRequest(body, {"signature": sign("secret", body).upper().replace("SHA256", "sha256")}), src)
    for bad in ({}, {"signature": ""}, {"signature": "sha256=" + hexmac("secret", body)},
                {"signature": sign("other", body)}, {"signature": "sha1 " + hexmac("secret", body)}):
        assert not KIND.verify(SourceRequest(body, bad), src), bad
    assert not KIND.verify(SourceRequest(body + b" ", {"signature": sign("secret", body)}), src)


def test_stage_change_becomes_a_pass_sent_to_the_outbox_and_a_replay_is_a_duplicate(tmp_path, daemons, gh):
    root = source_deployment(tmp_path)
    d = daemons(root)
    r = gh.deliver(d.url, "greenhouse", payload("greenhouse_candidate_stage_change.json"), event_id="ev-1")
    assert r.status_code == 202, r.text
    got = r.json()
    assert got["status"] == "matched" and got["outcome_id"] == "greenhouse:770001" and got["rule"] == "pass"
    row = d.runtime.store.get_outcome("greenhouse:770001")
    rec = row.data()
    assert rec["decision"] == "pass" and rec["stage"] == "second_round" and rec["role"] == "backend"
    assert rec["candidate"] == {"name": "Wei Zhang", "email": "zhang.wei@example.com", "phone": "+8613800001111",
                                "id": "880011"}
    assert row.source == "source:greenhouse"
    msgs = wait_for(lambda: outbox(root))
    assert any("Wei Zhang" in json.dumps(m, ensure_ascii=False) for m in msgs)
    again = gh.deliver(d.url, "greenhouse", payload("greenhouse_candidate_stage_change.json"), event_id="ev-1")
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert again.json()["outcome_id"] == "greenhouse:770001"
    metrics = httpx.get(d.url + "/metrics").text
    assert 'herald_source_events_total{source="greenhouse",status="matched"} 1.0' in metrics
    assert 'herald_source_events_total{source="greenhouse",status="duplicate"} 1.0' in metrics


def test_bad_or_missing_signature_is_401_nothing_stored_and_counted(tmp_path, daemons, gh):
    root = source_deployment(tmp_path)
    d = daemons(root)
    body = payload("greenhouse_reject_candidate.json")
    for headers in ({"Signature": "sha256 " + "0" * 64}, {"Signature": sign("wrong-secret", body)}, {}):
        r = gh.deliver(d.url, "greenhouse", body, event_id="ev-x", headers=headers, sign=bool(headers))
        assert r.status_code == 401, r.text
    store = d.runtime.store
    assert store.get_outcome("greenhouse:770001") is None and store.source_event("greenhouse", "ev-x") is None
    assert store.dead_letters() == []
    assert 'herald_source_events_total{source="greenhouse",status="unauthorized"} 3.0' in httpx.get(d.url + "/metrics").text
    assert httpx.post(d.url + "/v1/sources/nosuch", content=body).status_code == 404


def test_manual_approval_holds_and_unreject_withdraws(tmp_path, daemons, gh):
    root = source_deployment(tmp_path, approve="manual")
    d = daemons(root)
    r = gh.deliver(d.url, "greenhouse", payload("greenhouse_reject_candidate.json"), event_id="ev-r")
    assert r.status_code == 202 and r.json()["status"] == "held", r.text
    row = d.runtime.store.get_outcome("greenhouse:770001")
    assert row.approved is False or row.approved == 0
    rec = row.data()
    assert rec["decision"] == "reject" and rec["reason"] == "lacks_project_experience" and rec["approved"] is False
    assert rec["occurred_at"] == "2026-11-20T03:00:00Z"
    r = gh.deliver(d.url, "greenhouse", payload("greenhouse_unreject_candidate.json"), event_id="ev-u")
    assert r.status_code == 200 and r.json() == {"status": "withdrawn", "outcome_id": "greenhouse:770001",
                                                 "event_id": "ev-u"}
    assert d.runtime.store.get_outcome("greenhouse:770001").state == "withdrawn"
    assert outbox(root) == []


def test_unmapped_event_is_kept_with_its_raw_body_and_listed(tmp_path, daemons, gh, monkeypatch):
    root = source_deployment(tmp_path)
    d = daemons(root)
    body = payload_json("greenhouse_candidate_stage_change.json")
    body["payload"]["application"]["current_stage"]["name"] = "Take Home Test"
    raw = json.dumps(body).encode()
    r = gh.deliver(d.url, "greenhouse", raw, event_id="ev-m")
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "unmapped" and r.json()["field"] == "stage"
    assert '"Take Home Test"' in r.json()["error"]
    store = d.runtime.store
    assert store.get_outcome("greenhouse:770001") is None
    [kept] = store.unmapped_source_events()
    assert kept.raw == raw and kept.event_id == "ev-m" and kept.outcome_id == "greenhouse:770001"
    from click.testing import CliRunner

    from cli import main

    monkeypatch.chdir(root)
    out = CliRunner().invoke(main, ["unmatched", "--config", str(root / "herald.yaml")])
    assert "greenhouse\tev-m" in out.output and "unmapped: stage: no mapping for \"Take Home Test\"" in out.output


def test_ping_and_other_actions_are_ignored(tmp_path, daemons, gh):
    d = daemons(source_deployment(tmp_path))
    r = gh.deliver(d.url, "greenhouse", payload("greenhouse_ping.json"))
    assert r.status_code == 200 and r.json()["status"] == "ignored"


def test_offer_created_without_an_earlier_outcome_is_unmapped(tmp_path, daemons, gh):
    d = daemons(source_deployment(tmp_path))
    r = gh.deliver(d.url, "greenhouse", payload("greenhouse_offer_created.json"))
    assert r.status_code == 202 and r.json()["status"] == "unmapped" and r.json()["field"] == "candidate"


def test_a_later_event_for_the_same_application_amends_its_outcome(tmp_path, daemons, gh):
    d = daemons(source_deployment(tmp_path))
    assert gh.deliver(d.url, "greenhouse", payload("greenhouse_candidate_stage_change.json")).json()["status"] == "matched"
    r = gh.deliver(d.url, "greenhouse", payload("greenhouse_offer_created.json"))
    assert r.json()["status"] == "amended", r.text
    rec = d.runtime.store.get_outcome("greenhouse:770001").data()
    assert rec["decision"] == "offer" and rec["candidate"]["name"] == "Wei Zhang"


def test_source_bodies_obey_the_apis_body_cap(tmp_path, daemons, gh, monkeypatch):
    import engine.daemon.app as app_module

    d = daemons(source_deployment(tmp_path))
    monkeypatch.setattr(app_module, "MAX_BODY", 1000)
    body = payload_json("greenhouse_candidate_stage_change.json")
    body["padding"] = "x" * 2000
    r = gh.deliver(d.url, "greenhouse", json.dumps(body).encode(), event_id="big")
    assert r.status_code == 413, r.text
    assert d.runtime.store.source_event("greenhouse", "big") is None
    assert d.runtime.store.get_outcome("greenhouse:770001") is None
