"""A full loop on loopback: outcomes into a running daemon (with the tracking router included, as `herald serve`
will), messages out through the outbox transport, then opens, clicks, ratings and replies in over HTTP, and
every number of the report checked exactly against the events the store holds."""
from __future__ import annotations

from datetime import datetime, UTC

import httpx
import pytest

import daemon_support

from engine.tracking import tokens as tr
from engine.report import build_report

SECRET = "loop-test-tracking-secret-0123456789"


@pytest.fixture
def daemon(tmp_path, monkeypatch):
    import engine.daemon.serve as serve_module

    monkeypatch.setattr(serve_module, "_tracking_key", lambda cfg, required: SECRET)  # as tracking.secret would
    root = daemon_support.make_deployment(tmp_path, mark="v1 {{ links.rating }}")
    d = daemon_support.start_daemon(root)
    yield d, root
    d.shutdown()


@pytest.mark.slow
def test_outcomes_to_report(daemon):
    d, root = daemon
    occurred = datetime.now(UTC).replace(microsecond=0)
    outcomes = [daemon_support.outcome(f"loop-{i}", occurred_at=occurred.isoformat(),
                                       candidate={"name": f"C{i}", "email": f"c{i}@example.com",
                                                  "phone": f"+86138000000{i:02d}", "locale": "zh-CN"})
                for i in (1, 2, 3)]
    r = daemon_support.post(d.url, outcomes)
    assert r.status_code == 202, r.text
    store = d.runtime.store
    nids = [f"loop-{i}#1" for i in (1, 2, 3)]
    daemon_support.wait_for(lambda: all(store.get_notification(n).notification.state == "delivered" for n in nids))
    sent = daemon_support.outbox(root)
    assert len(sent) == 3
    rating_prefix = d.url + "/t/r/"  # the template's {{ links.rating }}, signed for that notification
    for msg in sent:  # each message carries its own signed rating link
        token = msg["body"].split(rating_prefix, 1)[1].split()[0]
        payload = tr.verify_token(SECRET, token, tr.RATE)
        assert payload is not None and payload.notification_id == msg["notification"], msg["body"]

    with httpx.Client(base_url=d.url, timeout=10, follow_redirects=False) as c:
        pixel = tr.tracking_url(tr.OPEN, nids[0], "email", d.url, SECRET)[len(d.url):]
        assert c.get(pixel).content == tr.PIXEL_GIF and c.get(pixel).status_code == 200
        click = tr.click_url("https://jobs.example.com/", nids[0], "email", d.url, SECRET)[len(d.url):]
        assert c.get(click).headers["location"] == "https://jobs.example.com/"
        for nid, score in ((nids[0], 5), (nids[1], 2)):
            rate = tr.links_for(nid, "email", d.url, SECRET)["rating"][len(d.url):]
            assert "满意" in c.get(rate).text
            assert c.post(rate, data={"score": str(score)}).status_code == 200
        assert "已经评价过" in c.post(rate, data={"score": "5"}).text  # replayed: refused
        r = c.post("/v1/replies", json={"phone": "13800000003", "channel": "sms", "content": "请问原因?"})
        assert r.status_code == 201 and r.json()["notification_id"] == nids[2]
        r = c.post("/v1/replies", json={"notification_id": nids[0], "content": "谢谢"})
        assert r.status_code == 201
        page = c.get("/report")
        assert page.status_code == 200 and "<svg" in page.text

    rep = build_report(store.path)
    [row] = rep.rows
    assert (row.rule_id, row.ruleset_version) == ("now", d.runtime.version)
    c = row.counts
    assert {k: c[k] for k in ("matched", "sent", "delivered", "assumed", "opened", "clicked", "replied", "rated",
                              "score_sum", "late", "fallbacks", "failed")} == {
        "matched": 3, "sent": 3, "delivered": 3, "assumed": 3, "opened": 1, "clicked": 1, "replied": 2, "rated": 2,
        "score_sum": 7, "late": 0, "fallbacks": 0, "failed": 0}
    assert row.satisfaction == 3.5
    # time to notify, exactly: each notification's first delivery minus its outcome's occurred_at
    expected = sorted(min(e.at for e in store.get_notification(n).events if e.kind == "delivered")
                      - occurred.timestamp() for n in nids)
    assert row.ttn_sorted == expected
    assert rep.replies["received"] == 2 and rep.replies["open"] == 2
