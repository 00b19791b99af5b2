"""Outcome fields the gate completes or refuses, seen over HTTP against a real daemon and from dry-run:
an unknown candidate.timezone is invalid (field named, did-you-mean, raw body kept as a dead letter), and a
missing occurred_at is stored as the time herald received the outcome."""
from __future__ import annotations

import json

import pytest

from daemon_support import outcome, post
from engine.store import SQLiteStore


@pytest.mark.slow
def test_unknown_candidate_timezone_is_refused_with_the_field_named(deploy, daemons):
    d = daemons(deploy)
    body = outcome("tz-1", candidate={"name": "Ann", "email": "ann@example.com", "timezone": "Europe/Berln"})
    raw = json.dumps(body).encode()
    r = post(d.url, raw)
    assert r.status_code == 422, r.text
    answer = r.json()
    assert answer["field"] == "candidate.timezone"
    assert "Europe/Berln" in answer["error"] and 'did you mean "Europe/Berlin"' in answer["error"]
    ok = post(d.url, outcome("tz-2", candidate={"name": "Ann", "email": "ann@example.com",
                                                "timezone": "Europe/Berlin"}))
    assert ok.status_code == 202 and ok.json()["items"][0]["status"] == "matched"
    with SQLiteStore(deploy / "herald.db") as s:
        letter = next(dl for dl in s.dead_letters() if dl.field == "candidate.timezone")
        assert letter.raw == raw
        assert s.get_outcome("tz-1") is None


@pytest.mark.slow
def test_missing_occurred_at_is_the_time_of_receipt(deploy, daemons):
    d = daemons(deploy)
    r = post(d.url, outcome("occ-1"))
    assert r.status_code == 202, r.text
    with SQLiteStore(deploy / "herald.db") as s:
        row = s.get_outcome("occ-1")
        assert row is not None and row.occurred_at is not None
        assert row.occurred_at == row.received_at


def test_dry_run_refuses_an_unknown_candidate_timezone(run_cli, deploy):
    line = json.dumps(outcome("tz-3", candidate={"name": "Ann", "email": "a@example.com", "timezone": "Mars/Base"}))
    result = run_cli(["dry-run", "--outcomes", "-", "--format", "jsonl", "--now", "2026-11-20T10:00:00+08:00"],
                     cwd=deploy, input=line + "\n")
    got = json.loads(result.stdout)
    assert got["status"] == "invalid" and "candidate.timezone" in got["error"]
