"""A query parameter that takes one value, given twice, is refused with 422 naming it (engine/daemon/query.py);
list parameters (`rule`, `state`) still take many. Schemathesis found `/report?stage=a&stage=b` answered 200 for
the last value alone."""
from __future__ import annotations

from typing import Optional

import pytest

from engine.daemon.query import takes_many


@pytest.fixture
def client(api):
    return api[0]


@pytest.mark.parametrize("annotation, many", [  # Optional is typing.Union, `X | None` types.UnionType: both
    (str, False), (int, False), (bool, False), (str | None, False), (Optional[int], False),  # noqa: UP045
    (list[str], True), (list[str] | None, True), (Optional[list[int]], True),  # noqa: UP045
    (tuple[str, ...], True), (set[str], True),
])
def test_which_annotations_take_many(annotation, many):
    assert takes_many(annotation) is many


@pytest.mark.parametrize("method, path, query, field", [
    ("get", "/report", "stage=offer&stage=onsite", "stage"),
    ("get", "/report", "rule=a&channel=sms&channel=email", "channel"),
    ("get", "/report", "since=2026-01-01&since=2026-02-01", "since"),
    ("get", "/v1/queue", "limit=5&limit=6", "limit"),
    ("get", "/v1/queue", "state=sent&today=true&today=false", "today"),
    ("get", "/v1/audit", "action=approve&action=withdraw", "action"),
    ("get", "/v1/held", "cursor=a&cursor=b", "cursor"),
    ("post", "/v1/outcomes/x1/approve", "reason=a&reason=b", "reason"),
])
def test_a_scalar_parameter_given_twice_is_refused_naming_it(client, method, path, query, field):
    r = client.request(method.upper(), f"{path}?{query}")
    assert r.status_code == 422, (r.status_code, r.text[:300])
    body = r.json()
    assert body["field"] == field and "given 2 times" in body["error"], body


@pytest.mark.parametrize("path, query", [
    ("/report", "rule=a&rule=b&stage=offer"),
    ("/report", ""),
    ("/v1/queue", "state=scheduled&state=sent&limit=5"),
])
def test_list_parameters_still_take_many(client, path, query):
    r = client.get(f"{path}?{query}" if query else path)
    assert r.status_code == 200, (r.status_code, r.text[:300])
