"""ashby, moka and generic: each kind's signature as its provider documents it (Lever's: test_lever.py), and their
events through a real daemon."""
from __future__ import annotations

import json

import pytest

from daemon_support import outbox, wait_for
from engine.sources import KIND_NAMES, kind
from engine.sources.base import SourceRequest
from engine.sources.config import SourceConfig
from fake_ats import FakeATS, hexmac, payload, payload_json
from sources_support import ASHBY, GENERIC, MOKA, SECRET, source_deployment


def _src(kind_name: str, **settings) -> SourceConfig:
    return SourceConfig("s", kind_name, "secret", settings=settings)


def test_every_kind_verifies_only_its_own_signature_over_the_exact_body():
    body = payload("generic_event.json")
    good = {"ashby": ({"ashby-signature": "sha256=" + hexmac("secret", body)}, {}),
            "moka": ({}, {"sign": hexmac("secret", body)}),
            "generic": ({"x-sig": "sha256=" + hexmac("secret", body)}, {}),
            "greenhouse": ({"signature": "sha256 " + hexmac("secret", body)}, {})}
    assert set(good) == set(KIND_NAMES) - {"lever", "feishu"}  # signed otherwise: test_lever.py, test_feishu.py
    for name, (headers, query) in good.items():
        src = _src(name, signature_header="X-Sig")
        k = kind(name)
        assert k.verify(SourceRequest(body, headers, query), src), name
        assert not k.verify(SourceRequest(body + b"\n ", headers, query), src), name
        assert not k.verify(SourceRequest(body, {}, {}), src), name
        wrong = {h: v.replace(hexmac("secret", body), hexmac("other", body)) for h, v in headers.items()}
        wrong_q = {q: hexmac("other", body) for q in query}
        assert not k.verify(SourceRequest(body, wrong, wrong_q), src), name


def test_moka_also_accepts_the_signature_of_the_compact_json_it_signed():
    data = payload_json("moka_archived.json")
    compact = json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
    pretty = json.dumps(data, ensure_ascii=False, indent=2).encode()
    src = _src("moka")
    assert kind("moka").verify(SourceRequest(pretty, {}, {"sign": hexmac("secret", compact)}), src)
    assert not kind("moka").verify(SourceRequest(pretty, {}, {"sign": hexmac("other", compact)}), src)


@pytest.fixture
def env(monkeypatch):
    monkeypatch.setenv("GH_SECRET", SECRET)


@pytest.mark.slow
def test_ashby_stage_change_then_its_related_update_is_one_outcome(tmp_path, daemons, env):
    root = source_deployment(tmp_path, ASHBY)
    d = daemons(root)
    ats = FakeATS("ashby", SECRET)
    r = ats.deliver(d.url, "ashby", payload("ashby_candidate_stage_change.json"))
    assert r.status_code == 202 and r.json()["status"] == "matched", r.text
    oid = "ashby:5d8e7c1a-3b2f-4e6a-9c10-aa11bb22cc33"
    rec = d.runtime.store.get_outcome(oid).data()
    assert (rec["decision"], rec["stage"], rec["role"]) == ("pass", "second_round", "backend")
    assert rec["candidate"]["email"] == "li.na@example.com" and rec["candidate"]["phone"] == "+8613900002222"
    r = ats.deliver(d.url, "ashby", payload("ashby_application_update.json"))  # same webhookActionId
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    r = ats.deliver(d.url, "ashby", payload("ashby_ping.json"))
    assert r.json()["status"] == "ignored"
    assert wait_for(lambda: any("Li Na" in json.dumps(m) for m in outbox(root)))


@pytest.mark.slow
def test_ashby_archived_is_a_reject_with_its_reason(tmp_path, daemons, env):
    d = daemons(source_deployment(tmp_path, ASHBY))
    r = FakeATS("ashby", SECRET).deliver(d.url, "ashby", payload("ashby_archived.json"))
    assert r.status_code == 202 and r.json()["rule"] == "reject-backend", r.text
    rec = d.runtime.store.get_outcome(r.json()["outcome_id"]).data()
    assert rec["decision"] == "reject" and rec["reason"] == "lacks_project_experience"


@pytest.mark.slow
def test_moka_archived_is_a_reject_with_the_archive_reason(tmp_path, daemons, env):
    root = source_deployment(tmp_path, MOKA)
    d = daemons(root)
    ats = FakeATS("moka", SECRET)
    r = ats.deliver(d.url, "moka", payload("moka_archived.json"))
    assert r.status_code == 202 and r.json()["status"] == "matched" and r.json()["rule"] == "reject-backend", r.text
    rec = d.runtime.store.get_outcome("moka:5120033").data()
    assert rec["reason"] == "lacks_project_experience" and rec["attributes"] == {"archive_reason": "经验不足"}
    assert rec["candidate"]["name"] == "王芳" and rec["occurred_at"] == "2026-11-20T06:00:00.000Z"
    assert ats.deliver(d.url, "moka", payload("moka_archived.json")).json()["status"] == "duplicate"
    assert ats.deliver(d.url, "moka", payload("moka_archived.json"), sign=False).status_code == 401
    assert wait_for(lambda: any("王芳" in json.dumps(m, ensure_ascii=False) for m in outbox(root)))


@pytest.mark.slow
def test_generic_maps_every_field_from_its_own_paths(tmp_path, daemons, env):
    root = source_deployment(tmp_path, GENERIC)
    d = daemons(root)
    ats = FakeATS("generic", SECRET, header="X-Hub-Signature-256")
    r = ats.deliver(d.url, "hook", payload("generic_event.json"))
    assert r.status_code == 202 and r.json()["status"] == "matched", r.text
    assert r.json()["outcome_id"] == "hook:A-9" and r.json()["event_id"] == "evt-0001"
    rec = d.runtime.store.get_outcome("hook:A-9").data()
    assert {k: rec[k] for k in ("decision", "stage", "role")} == {"decision": "reject", "stage": "first_round",
                                                                 "role": "backend"}
    assert ats.deliver(d.url, "hook", payload("generic_event.json")).json()["status"] == "duplicate"
    body = payload_json("generic_event.json")
    body["event"]["id"], body["application"]["id"], body["application"]["result"] = "evt-2", "A-10", "withdrawn"
    r = ats.deliver(d.url, "hook", body)
    assert r.json()["status"] == "unmapped" and r.json()["field"] == "decision"
    r = ats.deliver(d.url, "hook", payload("generic_event.json"), headers={"X-Hub-Signature-256": "sha256=00"})
    assert r.status_code == 401
