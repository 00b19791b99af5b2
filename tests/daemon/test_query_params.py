"""A query parameter that takes one value, given twice, is refused with 422 naming it (engine/daemon/query.py);
list parameters (`rule`, `state`) still take many. Schemathesis found `/report?stage=a&stage=b` answered 200 for
the last value alone."""
from __future__ import annotations

import re
from typing import Optional

import pytest

from engine.daemon.query import as_sent, takes_many


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


@pytest.mark.parametrize("path, status, says", [
    ("/console/login?next=/console/&next=/console/queue", 422, "next: given 2 times; it takes one value"),
    ("/console/dead-letters/abc", 422, "dead_id: "),  # a path parameter FastAPI refuses
    ("/console/no-such-page", 404, "Nothing here."),
])
def test_the_console_refuses_a_bad_address_with_its_own_page(client, path, status, says):
    """A browser on the console gets the console's error page, naming the parameter, not the API's JSON."""
    r = client.get(path, headers={"Accept-Language": "en"}, follow_redirects=False)
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["content-type"].startswith("text/html"), r.headers
    assert 'id="refused"' in r.text and says in r.text, r.text[-800:]


@pytest.mark.parametrize("path, query", [
    ("/report", "rule=a&rule=b&stage=offer"),
    ("/report", ""),
    ("/v1/queue", "state=scheduled&state=sent&limit=5"),
])
def test_list_parameters_still_take_many(client, path, query):
    r = client.get(f"{path}?{query}" if query else path)
    assert r.status_code == 200, (r.status_code, r.text[:300])


@pytest.mark.parametrize("generated, sent", [
    ({"anyOf": [{"type": "string"}, {"type": "null"}], "title": "Stage"}, {"type": "string", "title": "Stage"}),
    ({"anyOf": [{"type": "string", "maxLength": 100}, {"type": "null"}], "title": "C"},
     {"type": "string", "maxLength": 100, "title": "C"}),
    ({"anyOf": [{"type": "integer"}, {"type": "null"}]}, {"type": "integer"}),
    ({"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]},  # null would have to join the enum
     {"anyOf": [{"enum": ["a", "b"], "type": "string"}, {"type": "null"}]}),
    ({"type": "array", "items": {"type": "string"}, "default": []},
     {"type": ["array", "string"], "items": {"type": "string"}, "default": []}),
    ({"type": "integer", "minimum": 1}, {"type": "integer", "minimum": 1}),
])
def test_query_parameter_schemas_as_sent(generated, sent):
    doc = {"paths": {"/x": {"get": {"parameters": [{"in": "query", "name": "p", "schema": generated},
                                                   {"in": "path", "name": "q", "schema": dict(generated)}]}}}}
    params = as_sent(doc)["paths"]["/x"]["get"]["parameters"]
    assert params[0]["schema"] == sent and params[1]["schema"] == generated  # path parameters left alone


def test_the_served_document_has_no_null_query_parameter(client):
    """No query string can send null: schemathesis judged `?role=0.0` against `anyOf: [string, null]` by the
    generated value (an array) and reported the daemon's 200 as a schema violation."""
    doc = client.get("/openapi.json").json()
    schemas = {(path, p["name"]): p["schema"] for path, ops in doc["paths"].items() for op in ops.values()
               for p in op.get("parameters", ()) if p["in"] == "query"}
    assert schemas[("/report", "role")] == {"type": "string", "title": "Role"}
    assert schemas[("/report", "rule")]["type"] == ["array", "string"]
    assert [k for k, s in schemas.items() if "null" in str(s)] == []


def test_every_documented_scalar_query_parameter_given_twice_is_refused(client):
    """REFUSE_REPEATS is added per router and route, not app-wide (a FastAPI dependency costs ~30 us a request, and
    intake's POST has no query parameter): each scalar query parameter of the document, given twice, is 422."""
    doc = client.get("/openapi.json").json()
    tried = []
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for p in op.get("parameters", ()):
                if p["in"] != "query" or p["schema"].get("type") not in ("string", "integer", "boolean"):
                    continue
                value = {"integer": "5", "boolean": "true"}.get(p["schema"]["type"], "a")
                url = re.sub(r"\{[^}]+\}", "x", path) + f"?{p['name']}={value}&{p['name']}={value}"
                r = client.request(method.upper(), url)
                tried.append(url)
                assert r.status_code == 422 and r.json()["field"] == p["name"], (method, url, r.status_code, r.text)
    assert len(tried) >= 40, tried
