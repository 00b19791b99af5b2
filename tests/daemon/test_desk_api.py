"""The desk's /v1 API: fast tests through FastAPI's TestClient on a Runtime with a frozen clock (no dispatcher),
and slow ones against a real daemon (approve and see the outbox, pause and resume, resubmit a dead letter)."""
from __future__ import annotations

import json
import warnings

import httpx
import pytest
from daemon_support import API_NOW, TOKEN, make_deployment, outbox, outcome, post, wait_for


with warnings.catch_warnings():  # starlette's TestClient warns about httpx at import
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

NOW = API_NOW  # the `api` fixture's clock (tests/daemon/conftest.py)


def test_listings_need_the_token_and_page_with_cursors(api):
    client, _store = api
    assert TestClient(client.app).get("/v1/held").status_code == 401
    r = client.post("/v1/outcomes", json=[outcome(f"h{i}", approved=False) for i in range(3)])
    assert r.status_code == 202
    first = client.get("/v1/held", params={"limit": 2}).json()
    assert [o["id"] for o in first["items"]] == ["h0", "h1"] and first["items"][0]["candidate"]["name"] == "Ann"
    rest = client.get("/v1/held", params={"limit": 2, "cursor": first["next"]}).json()
    assert [o["id"] for o in rest["items"]] == ["h2"] and rest["next"] is None
    bad = client.get("/v1/unmatched", params={"cursor": first["next"]})
    assert bad.status_code == 422 and bad.json()["field"] == "cursor"
    preview = client.get("/v1/outcomes/h0/preview").json()
    assert preview["rule"] == "now" and "Hello Ann" in preview["messages"][0]["body"]


def test_approve_then_queue_cancel_reschedule_send_now_and_the_audit(api):
    client, store = api
    client.post("/v1/outcomes", json=[outcome("a1", decision="hold"), outcome("a2", decision="hold"),
                                      outcome("a3", decision="hold")])
    q = client.get("/v1/queue", params={"today": "true", "timezone": "Asia/Shanghai", "state": "scheduled"}).json()
    assert [n["id"] for n in q["items"]] == ["a1#1", "a2#1", "a3#1"] and q["paused"] == []
    r = client.post("/v1/notifications/a1%231/cancel", params={"reason": "wrong person"})
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert client.post("/v1/notifications/a1%231/cancel").status_code == 409
    r = client.post("/v1/notifications/a2%231/reschedule", params={"at": "2026-11-24T15:00:00+08:00"})
    assert r.json()["next_attempt_at"] == "2026-11-24T07:00:00+00:00"
    r = client.post("/v1/notifications/a2%231/reschedule", params={"at": "tomorrow"})
    assert r.status_code == 422 and r.json()["field"] == "at"
    assert client.post("/v1/notifications/a3%231/send-now").json()["next_attempt_at"] == "2026-11-24T02:00:00+00:00"
    assert client.post("/v1/notifications/zz%231/send-now").status_code == 404
    audit = client.get("/v1/audit").json()["items"]
    assert [(a["action"], a["actor"], a["notification_id"]) for a in audit] == [
        ("send_now", "li.wei", "a3#1"), ("reschedule", "li.wei", "a2#1"), ("cancel", "li.wei", "a1#1")]
    assert all(TOKEN not in json.dumps(a) for a in audit)  # the credential never reaches the log
    assert [a.actor for a in store.audit_page()] == ["li.wei"] * 3


def test_pause_resume_candidates_history_replies(api):
    client, store = api
    assert client.post("/v1/pause", params={"channel": "fax"}).status_code == 404
    r = client.post("/v1/pause", params={"channel": "email", "reason": "relay down"})
    assert [p["channel"] for p in r.json()["paused"]] == ["email"]
    assert [p["actor"] for p in client.get("/v1/pauses").json()["paused"]] == ["li.wei"]
    assert client.post("/v1/resume", params={"channel": "email"}).json()["paused"] == []
    client.post("/v1/outcomes", json=outcome("c1", candidate={"name": "Wang Fang", "email": "wf@example.com"}))
    client.post("/v1/outcomes/c1/withdraw", json={"reason": "decision changed"})
    found = client.get("/v1/candidates", params={"q": "wang"}).json()["items"]
    assert [(c["outcome_id"], c["email"]) for c in found] == [("c1", "wf@example.com")]
    store.add_reply("c1#1", "why?", at=NOW)
    h = client.get("/v1/history/c1").json()
    assert h["outcome"]["state"] == "withdrawn" and [a["action"] for a in h["actions"]] == ["withdraw"]
    assert [n["id"] for n in h["notifications"]] == ["c1#1"] and h["replies"][0]["content"] == "why?"
    assert client.get("/v1/history/nobody").status_code == 404
    [reply] = client.get("/v1/inbox").json()["items"]
    assert client.post(f"/v1/replies/{reply['id']}/handle").json()["handled_at"]
    assert client.get("/v1/inbox").json()["items"] == []


def test_dead_letters_list_and_resubmit(api):
    client, _store = api
    r = client.post("/v1/outcomes", json=outcome("d1", decision="maybe"))
    assert r.status_code == 422
    dl = r.json()["dead_letter"]
    [item] = client.get("/v1/dead-letters").json()["items"]
    assert item["id"] == dl and '"maybe"' in item["body"] and item["field"] == "decision"
    still = client.post(f"/v1/dead-letters/{dl}/resubmit", json=outcome("d1", decision="maybe"))
    assert still.status_code == 422 and still.json()["field"] == "decision"
    ok = client.post(f"/v1/dead-letters/{dl}/resubmit", params={"reason": "typo"}, json=outcome("d1"))
    assert ok.status_code == 200 and ok.json()["status"] == "matched"
    assert client.get("/v1/dead-letters").json()["items"] == []
    assert client.post(f"/v1/dead-letters/{dl}/resubmit", json=outcome("d1")).status_code == 409
    assert client.get("/v1/history/d1").json()["actions"][0]["target"] == f"dead letter {dl}"


def test_openapi_documents_every_desk_route(api):
    client, _store = api
    paths = client.get("/openapi.json").json()["paths"]
    for p in ("/v1/held", "/v1/unmatched", "/v1/dead-letters", "/v1/queue", "/v1/candidates", "/v1/inbox",
              "/v1/audit", "/v1/pauses", "/v1/pause", "/v1/resume", "/v1/history/{outcome_id}",
              "/v1/notifications/{notification_id}/cancel", "/v1/notifications/{notification_id}/reschedule",
              "/v1/notifications/{notification_id}/send-now", "/v1/dead-letters/{dead_letter_id}/resubmit",
              "/v1/replies/{reply_id}/handle", "/v1/outcomes/{outcome_id}/route", "/v1/outcomes/{outcome_id}/preview"):
        assert p in paths, p
        for op in paths[p].values():
            assert op["security"] and op["description"], p


@pytest.mark.slow
def test_against_a_real_daemon_approve_pause_resume(tmp_path, daemons):
    root = make_deployment(tmp_path)
    d = daemons(root)
    httpx.post(d.url + "/v1/pause", params={"reason": "checking the templates"}, timeout=10)
    post(d.url, outcome("p1"))  # the `now` rule: due at once, but sending is paused
    post(d.url, outcome("p2", approved=False))
    held = httpx.get(d.url + "/v1/held", timeout=10).json()["items"]
    assert [o["id"] for o in held] == ["p2"]
    assert httpx.post(d.url + "/v1/outcomes/p2/approve", timeout=10).status_code == 200
    q = httpx.get(d.url + "/v1/queue", params={"state": "scheduled"}, timeout=10).json()
    assert {n["id"] for n in q["items"]} == {"p1#1", "p2#1"} and q["paused"] == ["*"]
    assert outbox(root) == []  # intake and approval went on; nothing was sent
    httpx.post(d.url + "/v1/resume", headers={"X-Herald-Actor": "ops"}, timeout=10)
    wait_for(lambda: {m["notification"] for m in outbox(root)} == {"p1#1", "p2#1"})
    actions = [a["action"] for a in httpx.get(d.url + "/v1/audit", timeout=10).json()["items"]]
    assert actions == ["resume", "approve", "pause"]
