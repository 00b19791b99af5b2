"""`herald sources test NAME --event FILE`: the outcome an event would become, nothing stored."""
from __future__ import annotations

import json

from click.testing import CliRunner

from cli import main
from fake_ats import PAYLOADS, payload_json
from sources_support import source_deployment


def _run(root, *args, env=None):
    return CliRunner().invoke(main, ["sources", "test", *args, "--config", str(root / "herald.yaml"),
                                     "--now", "2026-11-20T10:00:00+00:00"], env={"GH_SECRET": "x", **(env or {})})


def test_shows_the_outcome_and_its_route_without_storing(tmp_path):
    root = source_deployment(tmp_path, approve="manual")
    r = _run(root, "greenhouse", "--event", str(PAYLOADS / "greenhouse_reject_candidate.json"),
             "--header", "Greenhouse-Event-ID: 77")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0] == "event 77: reject_candidate (application 770001)"
    record = json.loads(lines[1].removeprefix("outcome: "))
    assert record["id"] == "greenhouse:770001" and record["reason"] == "lacks_project_experience"
    assert record["approved"] is False
    assert lines[2].startswith("route: rule reject-backend,") and lines[2].endswith("after approval (approve: manual)")
    assert not (root / "herald.db").exists()


def test_says_why_an_event_is_unmapped_and_exits_1(tmp_path):
    root = source_deployment(tmp_path)
    body = payload_json("greenhouse_reject_candidate.json")
    body["payload"]["application"]["rejection_reason"]["name"] = "Relocation"
    event = tmp_path / "event.json"
    event.write_text(json.dumps(body))
    r = _run(root, "greenhouse", "--event", str(event))
    assert r.exit_code == 1
    assert 'unmapped: reason: no mapping for "Relocation" (application.rejection_reason.name) [field reason]' in r.output


def test_withdrawals_ignored_events_and_unknown_sources(tmp_path):
    root = source_deployment(tmp_path)
    r = _run(root, "greenhouse", "--event", str(PAYLOADS / "greenhouse_unreject_candidate.json"))
    assert r.exit_code == 0 and "withdraws outcome greenhouse:770001" in r.output
    r = _run(root, "greenhouse", "--event", str(PAYLOADS / "greenhouse_ping.json"))
    assert r.exit_code == 0 and "ignored: greenhouse ping makes no outcome" in r.output
    r = _run(root, "greenhose", "--event", str(PAYLOADS / "greenhouse_ping.json"))
    assert r.exit_code == 2 and 'did you mean "greenhouse"' in r.output
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    r = _run(root, "greenhouse", "--event", str(bad))
    assert r.exit_code == 1 and "not an event herald can read: not JSON" in r.output


def test_an_unmapped_event_is_resubmitted_once_the_mapping_knows_its_value(tmp_path, monkeypatch):
    from engine.sources.base import SourceRequest
    from engine.sources.greenhouse import sign
    from engine.sources.receive import receive
    from engine.config.deployment import load_deployment
    from engine.intake.batch import intake
    from engine.pipeline import Pipeline
    from engine.store import open_store

    monkeypatch.setenv("GH_SECRET", "x")
    root = source_deployment(tmp_path)
    dep = load_deployment([str(root)])
    body = payload_json("greenhouse_candidate_stage_change.json")
    body["payload"]["application"]["current_stage"]["name"] = "Take Home Test"
    raw = json.dumps(body).encode()
    with open_store(root / "herald.db") as store:
        pipe = Pipeline(dep)
        got = receive(dep.config.sources["greenhouse"],
                      SourceRequest(raw, {"signature": sign("x", raw), "greenhouse-event-id": "e9"}), store=store,
                      intake=lambda items, origin: intake(items, pipe, store, origin), withdraw=None)
        assert got.status == "unmapped"
    r = CliRunner().invoke(main, ["sources", "resubmit", "--config", str(root / "herald.yaml")], env={"GH_SECRET": "x"})
    assert r.exit_code == 0 and "greenhouse\te9\tgreenhouse:770001\tunmapped" in r.output
    yaml = (root / "herald.yaml").read_text().replace('"Onsite": second_round', '"Onsite": second_round, "Take Home Test": first_round')
    (root / "herald.yaml").write_text(yaml)
    r = CliRunner().invoke(main, ["sources", "resubmit", "--config", str(root / "herald.yaml")], env={"GH_SECRET": "x"})
    assert r.exit_code == 0 and "greenhouse\te9\tgreenhouse:770001\tmatched" in r.output, r.output
    with open_store(root / "herald.db") as store:
        assert store.get_outcome("greenhouse:770001").data()["stage"] == "first_round"
        assert store.unmapped_source_events() == []
        assert store.source_event("greenhouse", "e9").status == "matched"
