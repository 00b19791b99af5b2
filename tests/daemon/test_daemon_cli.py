"""The daemon's commands through click's CliRunner: ingest (JSON lines, CSV), post, unmatched, route, serve refusals."""
from __future__ import annotations

import pytest

import json
import os
import sqlite3
import threading
import time

from click.testing import CliRunner

from cli import main
from daemon_support import RULES, make_deployment, outcome
from engine.store import SQLiteStore


def run(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def test_ingest_json_lines_and_csv_through_the_gate(deploy):
    lines = [json.dumps(outcome("in-1")), "not json", json.dumps(outcome("in-1")),
             json.dumps(outcome("in-2", approved=False)), json.dumps({"id": "in-3", "decision": "reject"})]
    (deploy / "o.jsonl").write_text("\n".join(lines) + "\n\n")
    r = run("ingest", str(deploy / "o.jsonl"), "--config", str(deploy / "herald.yaml"))
    assert r.exit_code == 0, r.output
    assert "1 matched, 1 held, 1 duplicate, 2 invalid" in r.output and "line 2" in r.output
    (deploy / "o.csv").write_text(
        "id,decision,stage,role,score,approved,candidate.name,candidate.email,feedback.strengths,attributes.source\n"
        "csv-1,reject,first_round,backend,72,true,张伟,zw@example.com,逻辑清晰|沟通好,campus\n"
        "csv-2,pass,first_round,backend,88.5,no,李四,ls@example.com,,\n"
        "csv-3,maybe,first_round,backend,x,true,王五,,,\n", encoding="utf-8")
    r = run("ingest", str(deploy / "o.csv"), "--config", str(deploy / "herald.yaml"), "--format", "jsonl")
    got = [json.loads(line) for line in r.output.splitlines() if line.startswith("{")]
    assert [(g["id"], g["status"]) for g in got] == [("csv-1", "matched"), ("csv-2", "held"), ("csv-3", "invalid")]
    with SQLiteStore(deploy / "herald.db") as s:
        body = s.get_outcome("csv-1").data()
        assert body["score"] == 72 and body["approved"] is True and body["attributes"] == {"source": "campus"}
        assert body["candidate"] == {"name": "张伟", "email": "zw@example.com"}
        assert body["feedback"]["strengths"] == ["逻辑清晰", "沟通好"]
        assert s.get_outcome("csv-2").data()["score"] == 88.5 and s.get_outcome("csv-2").approved is False
        assert {dl.source for dl in s.dead_letters()} == {"file"}
        assert any(dl.raw == b"not json" for dl in s.dead_letters())
    (deploy / "list.json").write_text(json.dumps([outcome("js-1"), outcome("js-2")]))
    r = run("ingest", str(deploy / "list.json"), "--config", str(deploy / "herald.yaml"))
    assert "2 matched" in r.output


def _stored(db, outcome_id: str) -> bool:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            return conn.execute("SELECT 1 FROM outcomes WHERE id = ?", (outcome_id,)).fetchone() is not None
    except sqlite3.Error:  # not created yet
        return False


def test_ingest_stores_each_batch_as_it_is_read(deploy):
    """`herald ingest` reads the file a batch at a time: a batch is in the store before the rest of the file exists
    (a FIFO, written on only once the first batch is stored; ingest used to read the whole input first)."""
    fifo = deploy / "o.jsonl"
    os.mkfifo(fifo)
    first_batch_stored = threading.Event()

    def writer() -> None:
        with open(fifo, "w", encoding="utf-8") as fh:
            fh.write("".join(json.dumps(outcome(f"st-{i}")) + "\n" for i in range(3)))
            fh.flush()
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not first_batch_stored.is_set():
                if _stored(deploy / "herald.db", "st-2"):
                    first_batch_stored.set()
                time.sleep(0.02)
            fh.write(json.dumps(outcome("st-3")) + "\n")

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    r = run("ingest", str(fifo), "--batch", "3", "--config", str(deploy / "herald.yaml"))
    t.join(timeout=90)
    assert r.exit_code == 0, r.output
    assert first_batch_stored.is_set(), "ingest stored nothing until the whole input was read"
    assert "ingested 4 item(s)" in r.output and "4 matched" in r.output, r.output


def test_unmatched_listed_retried_after_a_rule_edit_and_routed_by_hand(deploy):
    (deploy / "o.jsonl").write_text("\n".join(json.dumps(outcome(f"um-{i}", decision="pass")) for i in (1, 2)))
    cfg = str(deploy / "herald.yaml")
    assert run("ingest", str(deploy / "o.jsonl"), "--config", cfg).exit_code == 0
    r = run("unmatched", "--config", cfg)
    assert "um-1" in r.output and "um-2" in r.output and "2 outcome(s) waiting" in r.output
    r = run("route", "um-1", "--rule", "now", "--by", "hr-li", "--config", cfg)
    assert r.exit_code == 0 and "notification um-1#1" in r.output
    assert run("route", "um-1", "--rule", "now", "--config", cfg).exit_code == 1  # already routed
    assert run("route", "um-2", "--rule", "nope", "--config", cfg).exit_code == 1
    r = run("unmatched", "--retry", "--config", cfg)
    assert "um-2: still unmatched" in r.output
    (deploy / "rules" / "10-rules.yaml").write_text(RULES.replace("match: {decision: reject}",
                                                                  "match: {decision: [reject, pass]}"))
    r = run("unmatched", "--retry", "--config", cfg)
    assert "um-2: matched now: notification um-2#1" in r.output and "1 routed, 0 still waiting" in r.output
    assert "0 outcome(s) waiting" in run("unmatched", "--config", cfg).output
    with SQLiteStore(deploy / "herald.db") as s:
        assert s.get_outcome("um-1").handled_by == "hr-li" and s.get_outcome("um-2").status == "matched"


def test_unmatched_retry_records_the_operator(deploy, monkeypatch):
    """--retry's routes go to the audit log under the operator's name: --actor, else HERALD_ACTOR, like the
    other desk commands (never "unknown")."""
    (deploy / "o.jsonl").write_text("\n".join(json.dumps(outcome(f"ra-{i}", decision="pass")) for i in (1, 2)))
    cfg = str(deploy / "herald.yaml")
    assert run("ingest", str(deploy / "o.jsonl"), "--config", cfg).exit_code == 0
    (deploy / "rules" / "10-rules.yaml").write_text(RULES.replace("match: {decision: reject}",
                                                                  "match: {decision: [reject, pass]}"))
    monkeypatch.setenv("HERALD_ACTOR", "hr-wang")
    r = run("unmatched", "--retry", "--limit", "1", "--config", cfg)
    assert r.exit_code == 0 and "1 routed" in r.output, r.output
    r = run("unmatched", "--retry", "--actor", "hr-zhao", "--config", cfg)
    assert r.exit_code == 0 and "1 routed" in r.output, r.output
    with SQLiteStore(deploy / "herald.db") as s:
        actors = {oid: [(a.action, a.actor) for a in s.audit_for(oid)] for oid in ("ra-1", "ra-2")}
    assert actors == {"ra-1": [("route", "hr-wang")], "ra-2": [("route", "hr-zhao")]}


@pytest.mark.slow
def test_post_to_a_running_daemon(deploy, daemons):
    d = daemons(deploy)
    (deploy / "o.jsonl").write_text("\n".join(
        [json.dumps(outcome(f"p-{i}")) for i in range(250)] + ["{broken", json.dumps(outcome("p-0"))]))
    r = run("post", str(deploy / "o.jsonl"), "--url", d.url)
    assert r.exit_code == 0, r.output
    assert "posted 252" in r.output and "250 matched" in r.output and "1 duplicate" in r.output
    assert "1 invalid" in r.output
    assert run("post", str(deploy / "o.jsonl"), "--url", "http://127.0.0.1:9").exit_code == 1


@pytest.mark.slow
def test_serve_refuses_invalid_rules_open_non_loopback_and_a_taken_port(tmp_path, daemons):
    root = make_deployment(tmp_path)
    taken = daemons(root)
    r = run("serve", "--config", str(root / "herald.yaml"), "--port", str(taken.port))
    assert r.exit_code == 1 and "cannot listen" in r.output
    r = run("serve", "--config", str(root / "herald.yaml"), "--host", "0.0.0.0", "--port", "0")
    assert r.exit_code == 1 and "without authentication" in r.output
    (root / "rules" / "10-rules.yaml").write_text(RULES.replace("any/generic", "any/nothing"))
    r = run("serve", "--config", str(root / "herald.yaml"), "--port", "0")
    assert r.exit_code == 1 and "rules are invalid" in r.output
