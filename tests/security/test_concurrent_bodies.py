"""Item 5: requests with a body in progress at once are capped (server.max_concurrent_bodies): 503 + Retry-After."""
from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from daemon_support import make_deployment, outcome, post, wait_for


@pytest.mark.slow
def test_a_request_beyond_the_cap_gets_503_with_retry_after(tmp_path: Path, daemons) -> None:
    root = make_deployment(tmp_path)
    with open(root / "herald.yaml", "a") as f:
        f.write("server: {max_concurrent_bodies: 1}\n")
    d = daemons(root)
    u = urlsplit(d.url)
    slow = socket.create_connection((u.hostname, u.port))  # a large batch still arriving
    try:
        slow.sendall(b"POST /v1/outcomes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 7000000\r\n\r\n[")
        r = wait_for(lambda: (x := post(d.url, outcome("gate-1"))).status_code == 503 and x, timeout=10)
        assert r.headers["Retry-After"] == "1" and "max_concurrent_bodies" in r.json()["error"]
        assert httpx.get(d.url + "/healthz").status_code == 200  # no body: never held back
    finally:
        slow.close()
    r = wait_for(lambda: (x := post(d.url, outcome("gate-1"))).status_code == 202 and x, timeout=10)
    assert r.json()["items"][0]["status"] == "matched"
