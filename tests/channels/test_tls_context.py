"""Clients for providers share one TLS context per CA file: a transport that opens a client per send (webhook,
the DingTalk robot) no longer loads the CA bundle on every message (it cost about 0.1 s a send: bench/cluster.py
measured 8 webhook sends/s before, on a loopback sink)."""
from __future__ import annotations

import ssl
from pathlib import Path

from engine.channels.signing import http_client


def _ctx(client) -> ssl.SSLContext:
    return client._transport._pool._ssl_context  # httpx's connection pool keeps the context it was given


def test_clients_share_one_verifying_context_per_ca_file(tmp_path):
    import certifi

    a, b = http_client(5.0), http_client(10.0)
    assert _ctx(a) is _ctx(b) and _ctx(a).verify_mode == ssl.CERT_REQUIRED and _ctx(a).check_hostname
    ca = tmp_path / "ca.pem"
    ca.write_bytes(Path(certifi.where()).read_bytes())
    c, d = http_client(5.0, ca_file=str(ca)), http_client(5.0, ca_file=str(ca))
    assert _ctx(c) is _ctx(d) and _ctx(c) is not _ctx(a)
    off = http_client(5.0, verify=False)
    assert _ctx(off).verify_mode == ssl.CERT_NONE
    for cl in (a, b, c, d, off):
        cl.close()
