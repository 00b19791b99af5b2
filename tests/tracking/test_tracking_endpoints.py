"""The tracking router over a real store (FastAPI TestClient): the open pixel records once, a click records and
redirects (never to a target outside its token), the rating page renders and records once, forged, expired and
replayed tokens record nothing; inbound replies; the read-only report; the report's Prometheus collector."""
from __future__ import annotations

import re
import warnings

import pytest
from fastapi import FastAPI, HTTPException, Request
from report_support import T0, Builder, open_store

from engine.tracking import tokens as tr
from engine.tracking.routes import ReportCollector, tracking_router
from engine.report import build_report

with warnings.catch_warnings():  # starlette's TestClient warns about httpx at import
    warnings.filterwarnings("ignore", message=".*starlette.testclient")
    from fastapi.testclient import TestClient

S = "endpoint-test-secret-0123456789"


class FixedClock:
    def __init__(self, t: float):
        self.t = t

    def now(self) -> float:
        return self.t


@pytest.fixture
def env(tmp_path):
    store = open_store(tmp_path / "herald.db")
    b = Builder(store)
    zh = b.outcome("zh-1", "tech", occurred=T0, channels=("email",), email="zhangwei@example.com")
    en = b.outcome("en-1", "tech", occurred=T0, channels=("sms",), locale="en", phone="+8613800000000")
    b.send(zh, T0 + 60)
    b.send(en, T0 + 60)
    clock = FixedClock(T0 + 3600)

    def authorize(request: Request, body: bytes) -> None:
        if request.headers.get("authorization") != "Bearer good":
            raise HTTPException(401, "authentication required")

    app = FastAPI()
    app.include_router(tracking_router(store, S, clock, authorize=authorize))
    client = TestClient(app, follow_redirects=False)
    yield client, store, clock, {"zh": zh, "en": en}, b
    client.close()
    store.close()


def kinds(store, nid: str, kind: str) -> list:
    return [e for e in store.get_notification(nid).events if e.kind == kind]


def tok(kind: str, nid: str, channel: str = "email", url: str | None = None, at: float = T0 + 100,
        secret: str = S) -> str:
    return tr.make_token(secret, kind, nid, channel, url=url, issued_at=at)


def test_open_pixel_records_once(env):
    client, store, clock, n, _ = env
    t = tok(tr.OPEN, n["zh"])
    for _ in range(3):
        r = client.get(f"/t/o/{t}.gif")
        assert r.status_code == 200 and r.headers["content-type"] == "image/gif" and r.content == tr.PIXEL_GIF
        assert "no-store" in r.headers["cache-control"]
    opened = kinds(store, n["zh"], "opened")
    assert len(opened) == 1 and opened[0].at == clock.t and opened[0].channel == "email"


@pytest.mark.parametrize("bad", ["forged", "other-secret", "click-kind", "expired", "unknown-notification"])
def test_open_pixel_with_a_bad_token_records_nothing(env, bad):
    client, store, clock, n, _ = env
    t = {"forged": "AQFrSdIABWVtYWlsA24jMR9odHRwczov",
         "other-secret": tok(tr.OPEN, n["zh"], secret="some-other-secret-0123456789"),
         "click-kind": tok(tr.CLICK, n["zh"], url="https://a.example/"),
         "expired": tok(tr.OPEN, n["zh"], at=clock.t - tr.MAX_AGE[tr.OPEN] - 1),
         "unknown-notification": tok(tr.OPEN, "nobody#1")}[bad]
    r = client.get(f"/t/o/{t}.gif")
    assert r.status_code == 200 and r.content == tr.PIXEL_GIF  # the same answer: a token's validity is not told
    assert kinds(store, n["zh"], "opened") == []


def test_click_records_once_and_redirects_to_the_signed_target(env):
    client, store, _clock, n, _ = env
    url = tr.click_url("https://jobs.example.com/openings?team=backend&x=1", n["zh"], "email", "https://h.example", S)
    path = url[len("https://h.example"):]
    for _ in range(2):
        r = client.get(path)
        assert r.status_code == 302
        assert r.headers["location"] == "https://jobs.example.com/openings?team=backend&x=1"
    clicked = kinds(store, n["zh"], "clicked")
    assert len(clicked) == 1 and clicked[0].detail == {"url": "https://jobs.example.com/openings?team=backend&x=1"}


def test_a_bad_click_token_is_a_404_never_a_redirect(env):
    client, store, clock, n, _ = env
    good = tok(tr.CLICK, n["zh"], url="https://a.example/")
    raw = bytearray(good.encode())
    raw[-3] = ord("A") if raw[-3] != ord("A") else ord("B")
    for bad in (raw.decode(), tok(tr.OPEN, n["zh"]), tok(tr.CLICK, n["zh"], url="https://evil.example/",
                                                       secret="attacker-secret-0123456789"),
                "x", good[:-1]):
        r = client.get(f"/t/c/{bad}")
        assert r.status_code == 404 and "location" not in r.headers, bad
        assert "<script" not in r.text
    r = client.get(f"/t/c/{good}", params={"url": "https://evil.example/", "next": "https://evil.example/"})
    assert r.headers["location"] == "https://a.example/"  # query parameters never choose the target
    assert len(kinds(store, n["zh"], "clicked")) == 1
    # an authentic click token past its age does not redirect any more (410, the expiry page), records nothing
    old = tok(tr.CLICK, n["en"], "sms", url="https://a.example/old", at=clock.t - tr.MAX_AGE[tr.CLICK] - 1)
    r = client.get(f"/t/c/{old}")
    assert r.status_code == 410 and "location" not in r.headers and "https://a.example/old" not in r.text
    assert kinds(store, n["en"], "clicked") == []


def test_rating_page_renders_by_locale(env):
    client, _store, _clock, n, _ = env
    zh = client.get(f"/t/r/{tok(tr.RATE, n['zh'])}")
    assert zh.status_code == 200 and 'lang="zh-CN"' in zh.text and "您对这次面试结果通知满意吗" in zh.text
    assert len(re.findall(r'<input type="radio" name="score" value="[1-5]" required', zh.text)) == 5
    assert 'name="comment" maxlength="1000"' in zh.text and 'method="post"' in zh.text
    assert "<script" not in zh.text and 'name="viewport"' in zh.text
    assert "default-src 'none'" in zh.headers["content-security-policy"]
    en = client.get(f"/t/r/{tok(tr.RATE, n['en'], 'sms')}")
    assert 'lang="en"' in en.text and "How satisfied are you" in en.text


def test_rating_records_once(env):
    client, store, clock, n, _ = env
    path = f"/t/r/{tok(tr.RATE, n['zh'])}"
    r = client.post(path, data={"score": "4", "comment": "  通知很及时,谢谢 \r\n第二行 "})
    assert r.status_code == 200 and "感谢您的反馈" in r.text
    rated = kinds(store, n["zh"], "rated")
    assert len(rated) == 1 and rated[0].detail == {"score": 4, "comment": "通知很及时,谢谢 \n第二行"}
    assert rated[0].at == clock.t
    r = client.post(path, data={"score": "1"})  # a replayed or second rating is refused; the first stands
    assert r.status_code == 200 and "您已经评价过了" in r.text
    assert client.get(path).text.count("您已经评价过了") >= 1
    assert [e.detail["score"] for e in kinds(store, n["zh"], "rated")] == [4]
    row = build_report(store.path).total
    assert (row.counts["rated"], row.satisfaction) == (1, 4.0)


@pytest.mark.parametrize("form", [{"score": "0"}, {"score": "6"}, {"score": "abc"}, {"score": "4.5"}, {},
                                  {"score": "3", "comment": "字" * 1001}, {"score": "-1"}])
def test_invalid_ratings_record_nothing(env, form):
    client, store, _clock, n, _ = env
    r = client.post(f"/t/r/{tok(tr.RATE, n['zh'])}", data=form)
    assert r.status_code == 422 and 'class="err"' in r.text
    assert kinds(store, n["zh"], "rated") == []


def test_forged_and_expired_rating_tokens(env):
    client, store, clock, n, _ = env
    forged = tok(tr.RATE, n["zh"], secret="attacker-secret-0123456789")
    assert client.get(f"/t/r/{forged}").status_code == 404
    assert client.post(f"/t/r/{forged}", data={"score": "5"}).status_code == 404
    assert client.post(f"/t/r/{tok(tr.UNSUBSCRIBE, n['zh'])}", data={"score": "5"}).status_code == 404
    expired = tok(tr.RATE, n["zh"], at=clock.t - tr.MAX_AGE[tr.RATE] - 1)
    assert client.get(f"/t/r/{expired}").status_code == 410
    assert client.post(f"/t/r/{expired}", data={"score": "5"}).status_code == 410
    assert client.post(f"/t/r/{tok(tr.RATE, 'nobody#1')}", data={"score": "5"}).status_code == 404
    assert kinds(store, n["zh"], "rated") == []


def test_unsubscribe_needs_a_post(env):
    client, store, _clock, n, _ = env
    path = f"/t/u/{tok(tr.UNSUBSCRIBE, n['en'], 'sms')}"
    r = client.get(path)
    assert r.status_code == 200 and 'method="post"' in r.text
    assert kinds(store, n["en"], "unsubscribed") == []  # a link scanner's GET records nothing
    assert client.post(path).status_code == 200 and client.post(path).status_code == 200
    assert len(kinds(store, n["en"], "unsubscribed")) == 1


AUTH = {"authorization": "Bearer good"}


def test_replies_need_auth(env):
    client, store, _clock, n, _ = env
    r = client.post("/v1/replies", json={"notification_id": n["zh"], "content": "hi"})
    assert r.status_code == 401
    assert store.replies(unhandled=False) == []


@pytest.mark.parametrize("who, expect", [
    ({"notification_id": "zh"}, "zh"),
    ({"provider_id": "p-en-1#1-0"}, "en"),
    ({"phone": "13800000000"}, "en"),
    ({"phone": "+86 138 0000 0000"}, "en"),
    ({"phone": "8613800000000", "channel": "sms"}, "en"),
    ({"email": "ZhangWei@Example.com"}, "zh"),
    ({"phone": "13900000000"}, None),
    ({"provider_id": "nope"}, None),
])
def test_replies_find_their_notification(env, who, expect):
    client, store, clock, n, _ = env
    body = {k: (n[v] if k == "notification_id" else v) for k, v in who.items()}
    r = client.post("/v1/replies", json={**body, "content": "请问可以给我更多反馈吗?"}, headers=AUTH)
    assert r.status_code == 201, r.text
    want = n[expect] if expect else None
    assert r.json()["notification_id"] == want and r.json()["matched"] == (want is not None)
    [reply] = store.replies()
    assert (reply.notification_id, reply.content, reply.at) == (want, "请问可以给我更多反馈吗?", clock.t)
    if want:
        assert len(kinds(store, want, "replied")) == 1


def test_reply_validation(env):
    client, store, _clock, _n, _ = env
    cases = [(b"not json", 422), (b"[1]", 422), (b'{"notification_id": "x#1"}', 422),
             (b'{"content": "hi"}', 422), (b'{"content": "hi", "notification_id": "nobody#1"}', 404),
             (b'{"content": "hi", "phone": 138}', 422), (b'{"content": "hi", "email": "a@b.c", "at": "yesterday"}', 422),
             (b'{"content": "' + b"x" * 70000 + b'", "email": "a@b.c"}', 413)]
    for body, code in cases:
        r = client.post("/v1/replies", content=body, headers={**AUTH, "content-type": "application/json"})
        assert r.status_code == code, (body[:40], r.text)
    assert store.replies(unhandled=False) == []
    r = client.post("/v1/replies", json={"email": "zhangwei@example.com", "content": "hi",
                                         "at": "2027-01-15T10:00:00+08:00"}, headers=AUTH)
    assert r.status_code == 201 and store.replies()[0].at == T0 - 6 * 3600  # 02:00Z


def test_report_page(env):
    client, _store, _clock, _n, _b = env
    assert client.get("/report").status_code == 401
    r = client.get("/report", headers=AUTH)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "<svg" in r.text and 'id="report-table"' in r.text
    r = client.get("/report", params={"rule": "nope"}, headers=AUTH)
    assert "No notifications match." in r.text
    assert client.get("/report", params={"since": "soon"}, headers=AUTH).status_code == 422


def test_report_collector(env):
    from prometheus_client import CollectorRegistry, generate_latest

    _client, store, _clock, n, b = env
    b.receipt(n["zh"], "delivered", T0 + 100)
    reg = CollectorRegistry()
    reg.register(ReportCollector(lambda: store, ttl=0))
    text = generate_latest(reg).decode()
    assert 'herald_rule_notifications{rule="tech",stage="sent"} 2.0' in text
    assert 'herald_rule_rate{metric="delivered",rule="tech"} 0.5' in text


def test_without_a_secret_every_token_is_refused(tmp_path):
    store = open_store(tmp_path / "h.db")
    nid = Builder(store).outcome("x-1", "tech", occurred=T0)
    app = FastAPI()
    app.include_router(tracking_router(store, None))
    with TestClient(app, follow_redirects=False) as client:
        for kind, path in ((tr.CLICK, "/t/c/{}"), (tr.RATE, "/t/r/{}"), (tr.UNSUBSCRIBE, "/t/u/{}")):
            t = tok(kind, nid, url="https://a.example/" if kind == tr.CLICK else None, at=T0)
            assert client.get(path.format(t)).status_code == 404
        assert client.get(f"/t/o/{tok(tr.OPEN, nid, at=T0)}.gif").status_code == 200
        assert client.post("/v1/replies", json={"notification_id": nid, "content": "hi"}).status_code == 201
    assert [e.kind for e in store.get_notification(nid).events] == ["queued", "replied"]
    with pytest.raises(ValueError):
        tracking_router(store, tr.PLACEHOLDER_SECRET)
    store.close()
