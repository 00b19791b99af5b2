"""Consent through a real daemon: an unsubscribe suppresses the channel and address it came from; later messages
skip it (recorded `suppressed`), fall back to the next channel, end `suppressed` when none is left; the rating
link keeps working; `herald suppressions` lists, adds and removes entries; the report counts unsubscribes."""
from __future__ import annotations

import httpx
import pytest

from daemon_support import make_deployment, outbox, outcome, post, wait_for
from engine.tracking import tokens as tr

pytestmark = pytest.mark.slow
SECRET = "suppression-test-tracking-secret-0123"


@pytest.fixture
def tracked(tmp_path, monkeypatch, daemons):
    import engine.daemon.serve as serve_module

    monkeypatch.setattr(serve_module, "_tracking_key", lambda cfg, required: SECRET)
    root = make_deployment(tmp_path, mark="v1 {{ links.unsubscribe }}")
    return root, daemons(root)


def state(d, nid: str) -> dict:
    return httpx.get(d.url + "/v1/notifications/" + nid.replace("#", "%23"), timeout=10).json()


def test_unsubscribe_suppresses_later_messages_on_that_channel(tracked, run_cli):
    root, d = tracked
    store = d.runtime.store
    post(d.url, outcome("su-1", candidate={"name": "Ann", "email": "Ann@Example.com", "phone": "+8613800000000"}))
    wait_for(lambda: [m for m in outbox(root) if m["notification"] == "su-1#1"])
    [first] = outbox(root)
    assert first["channel"] == "email"
    unsubscribe = first["body"].split("v1 ", 1)[1].split()[0]  # the template's {{ links.unsubscribe }}
    assert unsubscribe.startswith(d.url + "/t/u/")
    # RFC 8058 one-click: a POST with List-Unsubscribe=One-Click
    r = httpx.post(unsubscribe, content=b"List-Unsubscribe=One-Click",
                   headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200
    entry = store.suppression("email", "ann@example.com")
    assert entry is not None and (entry.reason, entry.actor, entry.notification_id) == (
        "unsubscribed", "candidate", "su-1#1")

    # the same person again: e-mail is skipped, the SMS goes
    post(d.url, outcome("su-2", candidate={"name": "Ann", "email": "ann@EXAMPLE.com", "phone": "+8613800000000"}))
    wait_for(lambda: state(d, "su-2#1")["state"] in ("sent", "delivered"))
    n = state(d, "su-2#1")
    assert n["channel"] == "sms"
    assert [e["channel"] for e in n["events"] if e["kind"] == "suppressed"] == ["email"]
    assert [m["channel"] for m in outbox(root) if m["notification"] == "su-2#1"] == ["sms"]

    # no channel left: ends suppressed, nothing sent
    post(d.url, outcome("su-3", candidate={"name": "Ann", "email": "ANN@example.com"}))
    wait_for(lambda: state(d, "su-3#1")["state"] == "suppressed")
    assert not [m for m in outbox(root) if m["notification"] == "su-3#1"]

    # the rating link of the first message keeps working
    rating = tr.links_for("su-1#1", None, d.url, SECRET)["rating"]
    assert httpx.get(rating).status_code == 200
    assert httpx.post(rating, data={"score": "4"}).status_code == 200

    # herald suppressions: list, remove, add (who and why)
    listed = run_cli(["suppressions", "--config", str(root / "herald.yaml")])
    assert listed.exit_code == 0 and "email" in listed.stdout and "ann@example.com" in listed.stdout
    assert "unsubscribed" in listed.stdout and "candidate" in listed.stdout
    removed = run_cli(["suppressions", "remove", "email", "ann@example.com", "--config", str(root / "herald.yaml")])
    assert removed.exit_code == 0 and store.suppression("email", "ann@example.com") is None
    added = run_cli(["suppressions", "add", "sms", "+86 138 0000 0000", "--reason", "asked by phone",
                     "--by", "li.wei", "--config", str(root / "herald.yaml")])
    assert added.exit_code == 0
    entry = store.suppression("sms", "+8613800000000")
    assert entry is not None and (entry.reason, entry.actor) == ("asked by phone", "li.wei")

    # the report counts unsubscribes per rule
    from engine.report import build_report

    [row] = [r for r in build_report(store.path).rows if r.rule_id == "now"]
    assert row.counts["unsubscribed"] == 1
