"""Actions that tell the truth: withdraw after send and approve of a withdrawn or sent outcome answer 409 with
what happened; every action keeps its reason and its actor."""
from __future__ import annotations

import httpx
import pytest

from daemon_support import make_deployment, outbox, outcome, post, wait_for

pytestmark = pytest.mark.slow


def history(d, oid: str) -> list[dict]:
    return httpx.get(f"{d.url}/v1/outcomes/{oid}", timeout=10).json()["history"]


def test_withdraw_after_send_answers_409_with_what_was_sent(tmp_path, daemons):
    root = make_deployment(tmp_path)
    d = daemons(root)
    post(d.url, outcome("ws-1"))  # the `now` rule: sent at once
    wait_for(lambda: [m for m in outbox(root) if m["notification"] == "ws-1#1"])
    r = httpx.post(d.url + "/v1/outcomes/ws-1/withdraw", json={"reason": "offer made instead"},
                   headers={"X-Herald-Actor": "li.wei@hr"})
    assert r.status_code == 409, r.text
    body = r.json()
    assert "already sent" in body["error"] and "email" in body["error"]
    assert [(s["notification"], s["channel"]) for s in body["sent"]] == [("ws-1#1", "email")]
    assert body["sent"][0]["sent_at"].startswith("20")
    # nothing changed: the outcome stays active
    assert httpx.get(d.url + "/v1/outcomes/ws-1").json()["state"] == "active"


def test_approve_of_withdrawn_or_sent_answers_409(tmp_path, daemons):
    root = make_deployment(tmp_path)
    d = daemons(root)
    post(d.url, outcome("ap-1", approved=False))
    r = httpx.post(d.url + "/v1/outcomes/ap-1/withdraw", params={"reason": "position closed"})
    assert r.status_code == 200 and r.json()["state"] == "withdrawn"
    r = httpx.post(d.url + "/v1/outcomes/ap-1/approve")
    assert r.status_code == 409 and "withdrawn" in r.json()["error"]

    post(d.url, outcome("ap-2", approved=False))
    assert httpx.post(d.url + "/v1/outcomes/ap-2/approve").status_code == 200
    wait_for(lambda: [m for m in outbox(root) if m["notification"] == "ap-2#1"])
    r = httpx.post(d.url + "/v1/outcomes/ap-2/approve")
    assert r.status_code == 409 and "already sent" in r.json()["error"]


def test_every_action_keeps_its_reason_and_actor(tmp_path, daemons):
    root = make_deployment(tmp_path)
    d = daemons(root, time_scale=1.0)
    post(d.url, outcome("ra-1", approved=False))
    r = httpx.post(d.url + "/v1/outcomes/ra-1/approve", json={"reason": "checked by the panel"},
                   headers={"X-Herald-Actor": "zhang.min"})
    assert r.status_code == 200
    post(d.url, outcome("ra-2", decision="hold"))  # the `later` rule: an hour away
    r = httpx.post(d.url + "/v1/outcomes/ra-2/withdraw", json={"reason": "decision changed"},
                   headers={"X-Herald-Actor": "li.wei"})
    assert r.status_code == 200 and r.json()["cancelled"] == 1
    approved = [c for c in history(d, "ra-1") if c["kind"] == "approved"]
    assert approved[0]["detail"] == {"reason": "checked by the panel", "actor": "zhang.min"}
    withdrawn = [c for c in history(d, "ra-2") if c["kind"] == "withdrawn"]
    assert withdrawn[0]["detail"] == {"reason": "decision changed", "actor": "li.wei"}
    # the query parameter still works, and without a header the actor says how the caller came in
    post(d.url, outcome("ra-3", decision="hold"))
    assert httpx.post(d.url + "/v1/outcomes/ra-3/withdraw", params={"reason": "dup"}).status_code == 200
    assert [c["detail"] for c in history(d, "ra-3") if c["kind"] == "withdrawn"] == [
        {"reason": "dup", "actor": "anonymous (loopback)"}]
    # an actor header with control characters is refused, not stored: a tab (valid in an HTTP header) by the
    # actor check, naming the header; the others already by uvicorn's HTTP parser (httptools), with 400
    r = httpx.post(d.url + "/v1/outcomes/ra-1/withdraw", headers={"X-Herald-Actor": "x\ty"})
    assert r.status_code == 422 and r.json()["field"] == "X-Herald-Actor"
    for bad in ("x\x01y", "x\x1by", "x\x7fy"):
        assert httpx.post(d.url + "/v1/outcomes/ra-1/withdraw", headers={"X-Herald-Actor": bad}).status_code == 400
    assert not [c for c in history(d, "ra-1") if c["kind"] == "withdrawn"]
