"""The desk's commands (engine/cli/desk.py) through click's CliRunner against a real daemon on loopback, and once
as a subprocess: held, approve, withdraw, queue, cancel, reschedule, send-now, pause, resume, history,
dead-letters (list and resubmit), in table and JSON formats; the URL and token from the environment."""
from __future__ import annotations

import json
import os
import subprocess
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from click.testing import CliRunner
from daemon_support import HERALD, TOKEN, make_deployment, outbox, outcome, post, wait_for

from cli import main

pytestmark = pytest.mark.slow


@pytest.fixture
def desk(tmp_path, daemons, auth_env, monkeypatch):
    root = make_deployment(tmp_path, auth=True)
    d = daemons(root)
    monkeypatch.setenv("HERALD_URL", d.url)
    monkeypatch.setenv("HERALD_TOKEN", TOKEN)
    monkeypatch.setenv("HERALD_ACTOR", "li.wei")
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def run(*args: str, code: int = 0) -> str:
        r = CliRunner().invoke(main, list(args), catch_exceptions=False)
        assert r.exit_code == code, r.output
        return r.stdout if code == 0 else r.output  # the in-process daemon logs to stderr meanwhile

    return d, root, run, lambda body: post(d.url, body, **auth)


def test_held_approve_withdraw(desk):
    _d, root, run, send = desk
    send([outcome("h1", approved=False), outcome("h2", approved=False), outcome("h3", approved=False)])
    out = run("held")
    assert out.splitlines()[0].split()[:2] == ["ID", "STATUS"] and "h1" in out and "Ann" in out
    assert [o["id"] for o in json.loads(run("held", "--format", "json"))] == ["h1", "h2", "h3"]
    assert [o["id"] for o in json.loads(run("held", "--format", "json", "--limit", "2"))] == ["h1", "h2"]
    assert "notification h1#1" in run("approve", "h1", "--reason", "panel agreed")
    wait_for(lambda: [m for m in outbox(root) if m["notification"] == "h1#1"])
    assert json.loads(run("withdraw", "h2", "--reason", "decision changed", "--format", "json"))["state"] == "withdrawn"
    assert "already sent" in run("withdraw", "h1", "--reason", "too late", code=1)
    assert "--reason" in run("withdraw", "h3", code=2)  # the reason is required
    assert "no outcome" in run("approve", "nobody", code=1)


def test_queue_cancel_reschedule_send_now(desk):
    _d, root, run, send = desk
    send([outcome("q1", decision="hold"), outcome("q2", decision="hold"), outcome("q3", decision="hold")])
    listed = json.loads(run("queue", "--format", "json"))
    assert [n["id"] for n in listed["items"]] == ["q1#1", "q2#1", "q3#1"] and listed["paused"] == []
    today = run("queue", "--today", "--timezone", "UTC", "--format", "json")  # an hour ahead may be tomorrow
    assert {n["id"] for n in json.loads(today)["items"]} <= {"q1#1", "q2#1", "q3#1"}
    assert "cancelled" in run("cancel", "q1#1", "--reason", "wrong person")
    later = (datetime.now(UTC) + timedelta(days=2)).replace(microsecond=0)
    out = json.loads(run("reschedule", "q2#1", "--at", later.astimezone(timezone(timedelta(hours=8))).isoformat(),
                         "--format", "json"))
    assert out["next_attempt_at"] == later.isoformat()
    assert "--at" in run("reschedule", "q2#1", code=2)
    assert "not an RFC 3339 time" in run("reschedule", "q2#1", "--at", "soon", code=1)
    run("send-now", "q3#1")
    wait_for(lambda: [m for m in outbox(root) if m["notification"] == "q3#1"])
    since = json.loads(run("queue", "--since", (later - timedelta(hours=1)).isoformat(),
                           "--until", (later + timedelta(hours=1)).isoformat(), "--format", "json"))
    assert [n["id"] for n in since["items"]] == ["q2#1"]
    assert "not both" in run("queue", "--today", "--since", "2031-01-01T00:00:00Z", code=2)


def test_pause_resume_and_history(desk):
    d, root, run, send = desk
    assert "paused: email" in run("pause", "--channel", "email", "--reason", "relay down")
    assert "every channel" in run("pause")
    send(outcome("p1", candidate={"name": "Wang Fang", "email": "wf@example.com", "phone": "+8613800138000"}))
    assert "paused: every channel, email" in run("queue")
    assert outbox(root) == []
    assert run("resume").strip() == "paused: email"
    assert json.loads(run("resume", "--channel", "email", "--format", "json")) == {"paused": []}
    wait_for(lambda: [m for m in outbox(root) if m["notification"] == "p1#1"])
    out = run("history", "wang")
    assert out.startswith("p1  Wang Fang") and "pause by li.wei: relay down" not in out  # pauses are not p1's
    assert "p1#1 sent" in out or "p1#1 attempt on email: accepted" in out
    [h] = json.loads(run("history", "wf@example.com", "--format", "json"))
    assert h["outcome"]["id"] == "p1" and h["notifications"][0]["id"] == "p1#1"
    assert "nobody matches" in run("history", "nobody", code=1)
    audit = httpx.get(d.url + "/v1/audit", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).json()
    assert [(a["action"], a["actor"], a["target"]) for a in audit["items"]] == [
        ("resume", "li.wei", "email"), ("resume", "li.wei", "*"), ("pause", "li.wei", "*"), ("pause", "li.wei", "email")]


def test_history_shows_every_revision(desk):
    _d, _root, run, send = desk
    send(outcome("rv1", decision="hold", reason="skills_gap"))  # queued an hour ahead
    send(outcome("rv1", decision="offer", stage="final"))       # the decision changed: amended
    out = run("history", "rv1")
    assert out.startswith("rv1  Ann  matched / active  (revision 2)")
    assert "outcome received: revision 1: hold · first_round · backend · skills_gap" in out
    assert "outcome amended: revision 2: offer · final · backend; 1 queued notification(s) cancelled" in out
    [h] = json.loads(run("history", "rv1", "--format", "json"))
    assert [c["body"]["decision"] for c in h["outcome"]["history"]] == ["hold", "offer"]


def test_dead_letters_list_and_resubmit(desk, tmp_path):
    _d, _root, run, send = desk
    r = send(outcome("d1", decision="maybe"))
    dl = r.json()["dead_letter"]
    out = run("dead-letters")
    assert str(dl) in out and "decision" in out
    fixed = tmp_path / "fixed.json"
    fixed.write_text(json.dumps(outcome("d1", decision="maybe")))
    assert "decision" in run("dead-letters", "--resubmit", str(dl), "--file", str(fixed), code=1)
    fixed.write_text(json.dumps(outcome("d1")))
    assert "taken as d1: matched" in run("dead-letters", "--resubmit", str(dl), "--file", str(fixed))
    assert json.loads(run("dead-letters", "--format", "json")) == []
    assert "go together" in run("dead-letters", "--resubmit", str(dl), code=2)


def test_a_desk_command_as_a_subprocess(desk):
    d, _root, _run, send = desk
    send(outcome("s1", approved=False))
    env = {**os.environ, "HERALD_URL": d.url, "HERALD_TOKEN": TOKEN}
    p = subprocess.run([HERALD, "held", "--format", "json"], capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert [o["id"] for o in json.loads(p.stdout)] == ["s1"]
    bad = subprocess.run([HERALD, "held"], capture_output=True, text=True, timeout=60,
                         env={**env, "HERALD_TOKEN": "wrong-token-000000"})
    assert bad.returncode == 1 and "authentication required" in bad.stderr and "Traceback" not in bad.stderr
