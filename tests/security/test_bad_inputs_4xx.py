"""Item 10: inputs that used to get 500s get a 4xx naming the field."""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from daemon_support import make_deployment, outcome, post
from engine.intake.gate import check_record


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"x": value}
    return value


def test_attributes_nested_too_deep_are_refused_at_the_gate() -> None:
    assert check_record({**outcome("deep-0"), "attributes": {"source": {"a": [1, {"b": 2}]}}}).status == "ok"
    result = check_record({**outcome("deep-1"), "attributes": nested(300)})
    assert result.status == "invalid" and result.field == "attributes" and "16 levels" in result.error
    assert check_record({**outcome("deep-2"), "attributes": json.loads("[" * 900 + "]" * 900)}).status == "invalid"


@pytest.mark.slow
def test_the_daemon_answers_4xx_naming_the_field(tmp_path: Path, daemons) -> None:
    d = daemons(make_deployment(tmp_path))
    r = post(d.url, {**outcome("deep-3"), "attributes": nested(300)})
    assert r.status_code == 422 and r.json()["field"] == "attributes", r.text
    for query, field in (("since=0001-01-01", "since"), ("until=9999-12-31", "until"),
                         ("since=0001-01-01T00:00:00%2B01:00", "since")):
        r = httpx.get(f"{d.url}/report?{query}")
        assert r.status_code == 422 and r.json()["field"] == field, (query, r.status_code, r.text)
    assert httpx.get(f"{d.url}/report?since=2026-01-01").status_code == 200
    for at in (b"NaN", b"Infinity", b"1e308", b"-1", b'"0001-01-01T00:00:00+01:00"'):
        body = b'{"email": "ann@example.com", "content": "hi", "at": ' + at + b"}"
        r = httpx.post(d.url + "/v1/replies", content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 422 and r.json()["field"] == "at", (at, r.status_code, r.text)
    ok = httpx.post(d.url + "/v1/replies", json={"email": "ann@example.com", "content": "hi", "at": 1767225600})
    assert ok.status_code == 201, ok.text
