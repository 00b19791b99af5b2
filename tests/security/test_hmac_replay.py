"""Item 6: a signature covers method, path with query, a timestamp and the body; old timestamps are refused."""
from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from daemon_support import SECRET, make_deployment, outcome, post
from engine.daemon.auth import sign, signed_headers
from engine.daemon.client import Poster


@pytest.fixture
def signed_daemon(tmp_path: Path, daemons, monkeypatch):
    monkeypatch.setenv("HERALD_TEST_TOKEN", "test-token-0123456789")
    monkeypatch.setenv("HERALD_TEST_SECRET", SECRET)
    return daemons(make_deployment(tmp_path, auth=True))


@pytest.mark.slow
def test_one_observed_signature_authorises_nothing_else(signed_daemon) -> None:
    d = signed_daemon
    body = json.dumps(outcome("replay-1")).encode()
    now = time.time()
    h = signed_headers(SECRET, "POST", "/v1/outcomes", body, now)
    assert post(d.url, body, **h).status_code == 202
    empty = signed_headers(SECRET, "POST", "/v1/outcomes/replay-1/approve", b"", now)
    # the same signature for another path, another method, another body: refused
    assert httpx.post(d.url + "/v1/outcomes/replay-1/withdraw", headers=empty).status_code == 401
    assert httpx.get(d.url + "/v1/outcomes/replay-1", headers=empty).status_code == 401
    assert post(d.url, json.dumps(outcome("replay-2")).encode(), **h).status_code == 401
    # the query is covered too
    get = signed_headers(SECRET, "GET", "/report?since=2026-01-01", b"", now)
    assert httpx.get(d.url + "/report?since=2026-01-01", headers=get).status_code == 200
    assert httpx.get(d.url + "/report?since=2025-01-01", headers=get).status_code == 401
    # a signature more than 5 minutes old (or ahead), or without its timestamp: refused
    for stamp in (now - 302, now + 330):
        old = signed_headers(SECRET, "GET", "/v1/outcomes/replay-1", b"", stamp)
        assert httpx.get(d.url + "/v1/outcomes/replay-1", headers=old).status_code == 401
    fresh = signed_headers(SECRET, "GET", "/v1/outcomes/replay-1", b"", now - 200)
    assert httpx.get(d.url + "/v1/outcomes/replay-1", headers=fresh).status_code == 200
    bare = {"X-Herald-Signature": fresh["X-Herald-Signature"]}
    assert httpx.get(d.url + "/v1/outcomes/replay-1", headers=bare).status_code == 401


def test_the_signed_text_is_method_path_query_timestamp_body() -> None:
    """The worked example of README's "Signed requests" section."""
    assert sign("0123456789abcdef", "POST", "/v1/outcomes", "1767225600", b'{"id":"x"}') == \
        "56a6f8c7348e21b758c834eedce0fb53316b9f2805bf0cc9bf277497a82acf87"


@pytest.mark.slow
def test_herald_post_signs_each_request(signed_daemon) -> None:
    poster = Poster(signed_daemon.url, hmac_secret=SECRET)
    try:
        r = poster.post(json.dumps([outcome("replay-3")]).encode())
    finally:
        poster.close()
    assert r.status_code == 202 and poster.counts["matched"] == 1
