"""Revisions: the same id with different content is `amended` (the earlier revision's queued notifications
cancelled, the new one routed, what was already sent reported, every revision in the history); the same
content stays `duplicate`. Over HTTP against a real daemon, through `herald ingest`, and in dry-run."""
from __future__ import annotations

import json

import httpx
import pytest

from daemon_support import RULES, TEMPLATE, make_deployment, outbox, outcome, post, wait_for
from engine.store import SQLiteStore

CORRECTION = TEMPLATE.replace(
    "{% block email %}Hello {{ candidate.name }}, MARK{% endblock %}",
    "{% block email %}{% if previous and previous.sent_at %}Correction to our {{ previous.decision }} message: "
    "{% endif %}Hello {{ candidate.name }}, {{ decision }}{% endblock %}")


@pytest.mark.slow
def test_a_changed_decision_cancels_the_queued_one_and_is_routed(deploy, daemons):
    d = daemons(deploy)
    first = post(d.url, outcome("rev-1", decision="hold"))           # queued an hour ahead
    assert first.json()["items"][0]["status"] == "matched"
    again = post(d.url, outcome("rev-1", decision="hold"))
    assert again.json()["items"][0]["status"] == "duplicate"          # same content
    changed = post(d.url, outcome("rev-1", decision="offer"))
    item = changed.json()["items"][0]
    assert changed.status_code == 202, changed.text
    assert item["status"] == "amended" and item["rev"] == 2 and item["cancelled"] == 1
    assert item["notification"] == "rev-1#2" and item.get("previously_sent") is None
    with SQLiteStore(deploy / "herald.db") as s:
        states = {n.id: n.state for n in s.notifications_for("rev-1")}
    assert states["rev-1#1"] == "cancelled"
    doc = httpx.get(f"{d.url}/v1/outcomes/rev-1").json()
    assert doc["rev"] == 2 and doc["body"]["decision"] == "offer"
    revisions = [(c["kind"], c["body"]["decision"]) for c in doc["history"] if c["body"] is not None]
    assert revisions == [("received", "hold"), ("amended", "offer")]
    wait_for(lambda: any(m.get("outcome") == "rev-1" or "rev-1" in json.dumps(m) for m in outbox(deploy)))


@pytest.mark.slow
def test_an_amendment_after_sending_says_what_was_sent_and_still_goes_out(tmp_path, daemons):
    root = make_deployment(tmp_path)
    (root / "templates" / "any" / "generic.j2").write_text(CORRECTION)
    d = daemons(root)
    post(d.url, outcome("sent-1", decision="reject"))                 # sent at once
    wait_for(lambda: len(outbox(root)) >= 1)
    r = post(d.url, outcome("sent-1", decision="offer"))
    item = r.json()["items"][0]
    assert item["status"] == "amended" and item["cancelled"] == 0
    assert [p["notification"] for p in item["previously_sent"]] == ["sent-1#1"]
    assert "already sent" in item["warning"] and item["previously_sent"][0]["sent_at"]
    bodies = wait_for(lambda: [m for m in outbox(root) if "Correction" in json.dumps(m, ensure_ascii=False)])
    assert "Correction to our reject message" in json.dumps(bodies[0])


def test_ingest_and_dry_run_agree_on_revisions(run_cli, tmp_path):
    root = make_deployment(tmp_path, rules=RULES)
    lines = [outcome("i-1", decision="hold"), outcome("i-1", decision="hold"), outcome("i-1", decision="reject"),
             outcome("i-2")]
    (root / "in.jsonl").write_text("\n".join(json.dumps(o) for o in lines) + "\n")
    dry = run_cli(["dry-run", "--outcomes", "in.jsonl", "--format", "jsonl", "--now", "2026-11-20T10:00:00+00:00"],
                  cwd=root)
    ingested = run_cli(["ingest", "in.jsonl", "--format", "jsonl"], cwd=root)
    want = [("i-1", "matched"), ("i-1", "duplicate"), ("i-1", "amended"), ("i-2", "matched")]
    assert [(d["outcome"], d["status"]) for d in map(json.loads, dry.stdout.splitlines())] == want
    assert [(d["id"], d["status"]) for d in map(json.loads, ingested.stdout.splitlines())] == want
    again = run_cli(["ingest", "in.jsonl", "--format", "jsonl"], cwd=root)   # the store now holds revision 2
    assert [d["status"] for d in map(json.loads, again.stdout.splitlines())] == [
        "amended", "duplicate", "amended", "duplicate"]
