"""The HTTP side of `POST /v1/sources/NAME` (engine/daemon/sources.py) and the server it runs on: a lean route
first in the router, the same answers as the API's other errors, uvicorn's C parser."""
from __future__ import annotations

import httpx
import pytest
from fastapi.routing import APIRoute

from fake_ats import payload
from sources_support import source_deployment

pytestmark = pytest.mark.slow


def test_the_source_route_is_a_plain_route_tried_first(tmp_path, daemons, gh):
    """FastAPI's request handling (dependency solving, the endpoint's wrappers) cost about a third of the HTTP
    layer's time for an event; the source route is a plain ASGI endpoint and the first route the router tries."""
    d = daemons(source_deployment(tmp_path))
    first = d.server.config.loaded_app  # uvicorn's wrapper -> the FastAPI app
    app = getattr(first, "app", first)
    route = app.router.routes[0]
    assert route.path == "/v1/sources/{name}" and not isinstance(route, APIRoute)
    r = gh.deliver(d.url, "greenhouse", payload("greenhouse_candidate_stage_change.json"), event_id="ev-1")
    assert r.status_code == 202 and r.json()["status"] == "matched", r.text


def test_errors_on_the_source_route_answer_as_the_rest_of_the_api(tmp_path, daemons, gh):
    d = daemons(source_deployment(tmp_path))
    problem = {"field": None, "dead_letter": None}
    r = httpx.post(d.url + "/v1/sources/nosuch", content=b"{}")
    assert r.status_code == 404 and r.json() == {"error": "Not Found", **problem}
    r = httpx.get(d.url + "/v1/sources/greenhouse")
    assert r.status_code == 405 and r.json() == {"error": "Method Not Allowed", **problem}
    assert r.headers["allow"] == "POST"
    r = httpx.post(d.url + "/v1/sources/greenhouse/more", content=b"{}")
    assert r.status_code == 404
    r = gh.deliver(d.url, "greenhouse", payload("greenhouse_ping.json"), sign=False)
    assert r.status_code == 401 and r.json()["status"] == "unauthorized"
    assert "/v1/sources/{name}" not in httpx.get(d.url + "/openapi.json").json()["paths"]


def test_the_daemon_serves_with_httptools(tmp_path, daemons, gh):
    """uvicorn takes its C HTTP parser when it is installed (a dependency): about a quarter less CPU per request
    in the HTTP layer than h11. It refuses control characters in header values itself (400)."""
    d = daemons(source_deployment(tmp_path))
    assert d.server.config.http_protocol_class.__name__ == "HttpToolsProtocol"
