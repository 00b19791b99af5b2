"""The HTTP API through a real uvicorn server on a loopback port: auth, 422 + dead letters, idempotency, approve, withdraw."""
from __future__ import annotations

import json
import time

import httpx
import pytest

from daemon_support import SECRET, TOKEN, make_deployment, outbox, outcome, post, wait_for
from engine.daemon.auth import signed_headers
from engine.store import SQLiteStore

BEARER = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def authed(tmp_path, auth_env, daemons):
    root = make_deployment(tmp_path, auth=True)
    return root, daemons(root)


@pytest.mark.slow
def test_auth_bearer_hmac_and_open_endpoints(authed):
    root, d = authed
    body = json.dumps(outcome("auth-1")).encode()
    assert post(d.url, body).status_code == 401
    assert post(d.url, body, Authorization="Bearer wrong").status_code == 401
    assert post(d.url, body, **{"X-Herald-Signature": "sha256=" + "0" * 64}).status_code == 401
    assert post(d.url, body, **signed_headers("other-secret-0123456", "POST", "/v1/outcomes", body,
                                              time.time())).status_code == 401
    r = post(d.url, body, **BEARER)
    assert r.status_code == 202 and r.json()["items"][0]["status"] == "matched"
    body2 = json.dumps(outcome("auth-2")).encode()
    r = post(d.url, body2, **signed_headers(SECRET, "POST", "/v1/outcomes", body2, time.time()))
    assert r.status_code == 202, r.text
    signed = signed_headers(SECRET, "POST", "/v1/outcomes/nobody/withdraw", b'{"by": "hr"}', time.time())
    # signed: past authentication (404: no such outcome; a sent one would answer 409)
    assert httpx.post(d.url + "/v1/outcomes/nobody/withdraw", content=b'{"by": "hr"}', headers=signed).status_code == 404
    assert httpx.post(d.url + "/v1/outcomes/auth-1/approve", content=b'{"by": "x"}', headers=signed).status_code == 401
    assert httpx.get(d.url + "/v1/outcomes/auth-1").status_code == 401
    assert httpx.get(d.url + "/v1/outcomes/auth-1", headers=BEARER).status_code == 200
    assert httpx.get(d.url + "/healthz").json()["auth"] is True
    assert httpx.get(d.url + "/metrics").status_code == 200
    # a 401 is not an intake: nothing stored, no dead letter
    with SQLiteStore(root / "herald.db") as s:
        assert s.get_outcome("auth-1") is not None and s.dead_letter_count() == 0


@pytest.mark.slow
def test_422_names_the_field_and_keeps_the_raw_body(deploy, daemons):
    d = daemons(deploy)
    raw = b'{"id": "bad-1",  "decision": "maybe",\n "candidate": {"name": "\xe5\xbc\xa0\xe4\xbc\x9f"}}  '
    r = post(d.url, raw)
    assert r.status_code == 422
    assert r.json()["field"] == "decision" and "decision" in r.json()["error"]
    missing = post(d.url, {"id": "bad-2", "decision": "reject"})
    assert missing.status_code == 422 and missing.json()["field"] == "candidate"
    junk = b"\xff\xfe not json at all {"
    r = post(d.url, junk)
    assert r.status_code == 422 and "UTF-8" in r.json()["error"]
    with SQLiteStore(deploy / "herald.db") as s:
        letters = {dl.id: dl for dl in s.dead_letters()}
        assert letters[post_dl(r)].raw == junk
        first = next(dl for dl in letters.values() if dl.field == "decision")
        assert first.raw == raw and first.source == "http" and first.remote == "127.0.0.1"
        assert s.get_outcome("bad-1") is None


def post_dl(r: httpx.Response) -> int:
    return r.json()["dead_letter"]


@pytest.mark.slow
def test_a_list_is_judged_item_by_item(deploy, daemons):
    d = daemons(deploy)
    body = (b'[ {"id": "l-1", "decision": "reject", "candidate": {"name": "A", "email": "a@example.com"}} ,'
            b'{"id": "l-2", "decision": "reject"},\n {"candidate": {"email": "a@example.com", "name": "A"}, "id": "l-1",'
            b' "decision": "reject"},'
            b' 42, {"id": "l-3", "decision": "reject", "approved": false, "candidate": {"name": "C"}},'
            b' {"id": "l-4", "decision": "pass", "candidate": {"name": "D", "email": "d@example.com"}}]')
    r = post(d.url, body)
    assert r.status_code == 202
    got = [(i["id"], i["status"], i.get("field")) for i in r.json()["items"]]
    assert got == [("l-1", "matched", None), ("l-2", "invalid", "candidate"), ("l-1", "duplicate", None),
                   (None, "invalid", ""), ("l-3", "held", None), ("l-4", "unmatched", None)]
    assert r.json()["counts"] == {"matched": 1, "invalid": 2, "duplicate": 1, "held": 1, "unmatched": 1}
    with SQLiteStore(deploy / "herald.db") as s:
        raws = {dl.text for dl in s.dead_letters()}
        assert '{"id": "l-2", "decision": "reject"}' in raws and "42" in raws  # each item's exact text
        assert s.get_outcome("l-1").raw.startswith('{"id": "l-1", "decision": "reject", "candidate"')
        assert [o.id for o in s.unmatched()] == ["l-4"]


@pytest.mark.slow
def test_same_id_twice_is_one_notification_and_one_message(deploy, daemons):
    d = daemons(deploy)
    first = post(d.url, outcome("dup-1")).json()["items"][0]
    assert first["status"] == "matched" and first["notification"] == "dup-1#1"
    assert post(d.url, outcome("dup-1")).json()["items"][0]["status"] == "duplicate"
    wait_for(lambda: httpx.get(d.url + "/v1/notifications/dup-1%231").json()["state"] == "delivered")
    assert post(d.url, [outcome("dup-1"), outcome("dup-1")]).json()["counts"] == {"duplicate": 2}
    n = httpx.get(d.url + "/v1/notifications/dup-1%231").json()
    assert [a["status"] for a in n["attempts"]] == ["accepted"]
    assert [e["kind"] for e in n["events"]] == ["queued", "sent", "delivered"]
    assert n["messages"][0]["body"] == "Hello Ann, v1"
    assert len([m for m in outbox(deploy) if m["notification"] == "dup-1#1"]) == 1
    o = httpx.get(d.url + "/v1/outcomes/dup-1").json()
    assert o["notifications"] == ["dup-1#1"] and o["body"]["id"] == "dup-1"
    assert httpx.get(d.url + "/v1/notifications/nope%231").status_code == 404
    metrics = httpx.get(d.url + "/metrics").text
    assert 'herald_outcomes_total{status="duplicate"} 3.0' in metrics
    assert 'herald_sends_total{channel="email",result="accepted"} 1.0' in metrics
    assert "herald_dispatch_lag_seconds_count 1.0" in metrics
    assert 'herald_notifications{state="delivered"} 1.0' in metrics


@pytest.mark.slow
def test_held_until_approved_then_sent(deploy, daemons):
    d = daemons(deploy)
    item = post(d.url, outcome("held-1", approved=False)).json()["items"][0]
    assert item["status"] == "held" and item.get("notification") is None
    d.dispatcher.wake()
    wait_for(lambda: d.runtime.store.next_due_time() is None)
    assert outbox(deploy) == []
    r = httpx.post(d.url + "/v1/outcomes/held-1/approve")
    assert r.status_code == 200 and r.json()["notification"] == "held-1#1" and r.json()["status"] == "matched"
    wait_for(lambda: [m for m in outbox(deploy) if m["notification"] == "held-1#1"])
    again = httpx.post(d.url + "/v1/outcomes/held-1/approve")  # already sent: nothing to approve
    assert again.status_code == 409 and again.json()["sent"][0]["notification"] == "held-1#1"
    assert httpx.post(d.url + "/v1/outcomes/nobody/approve").status_code == 404
    assert len(outbox(deploy)) == 1


@pytest.mark.slow
def test_withdraw_before_send_is_never_sent(deploy, daemons):
    # the `later` rule waits 1h: 15 real seconds, room for the withdraw on a loaded machine (at 1 s it lost the race)
    d = daemons(deploy, time_scale=240.0)
    item = post(d.url, outcome("wd-1", decision="hold")).json()["items"][0]
    assert item["status"] == "matched"
    r = httpx.post(d.url + "/v1/outcomes/wd-1/withdraw", params={"reason": "decision changed"})
    assert r.status_code == 200 and r.json()["cancelled"] == 1 and r.json()["state"] == "withdrawn"
    post(d.url, outcome("wd-2", decision="hold"))  # a control, sent after the same delay
    wait_for(lambda: [m for m in outbox(deploy) if m["notification"] == "wd-2#1"], timeout=90)
    assert [m["notification"] for m in outbox(deploy)] == ["wd-2#1"]
    n = httpx.get(d.url + "/v1/notifications/wd-1%231").json()
    assert n["state"] == "cancelled" and n["attempts"] == []
    assert httpx.post(d.url + "/v1/outcomes/nobody/withdraw").status_code == 404
