"""Item 7: a reload that drops server.auth on a non-loopback address is refused; short secrets are refused."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from daemon_support import SECRET, make_deployment
from engine.config.deployment import load_deployment
from engine.daemon import Daemon
from engine.daemon.reload import reload

TOKEN = "a-long-enough-token-0123"


@pytest.mark.slow
def test_a_reload_dropping_auth_on_a_network_address_is_refused(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HERALD_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("HERALD_TEST_SECRET", SECRET)
    root = make_deployment(tmp_path, auth=True)
    cfg = (root / "herald.yaml").read_text()
    (root / "herald.yaml").write_text("console: {enabled: false}  # no console accounts: off on 0.0.0.0\n" + cfg)
    d = Daemon(load_deployment([str(root)]), paths=[str(root)], host="0.0.0.0", port=0, watch=False).start()
    try:
        alerts: list = []
        d.runtime.alert = lambda kind, text: alerts.append((kind, text))
        cfg = (root / "herald.yaml").read_text()
        (root / "herald.yaml").write_text(cfg[:cfg.index("server:")])
        assert reload(d.runtime, "test") is False
        assert d.runtime.state.auth.enabled
        assert "no server.auth" in d.runtime.last_reload_error[0]
        assert alerts and alerts[0][0] == "reload" and "no server.auth" in alerts[0][1]
        port = d.url.rsplit(":", 1)[1]
        assert httpx.get(f"http://127.0.0.1:{port}/v1/outcomes/x").status_code == 401
    finally:
        d.shutdown()


def test_short_tokens_and_hmac_secrets_are_refused_in_validate_and_at_start(tmp_path: Path, run_cli,
                                                                           monkeypatch) -> None:
    monkeypatch.setenv("HERALD_TEST_TOKEN", "short-tok")
    monkeypatch.setenv("HERALD_TEST_SECRET", "short-secret")
    root = make_deployment(tmp_path, auth=True)
    res = run_cli(["validate", str(root)])
    assert res.exit_code == 1
    assert "herald.yaml:9:17: error: server.auth.token" in res.output and "server.auth.token is 9 characters long" in res.output, res.output
    assert "server.auth.hmac_secret is 12 characters long" in res.output and "[weak-secret]" in res.output
    assert "short-tok" not in res.output and "short-secret" not in res.output
    res = run_cli(["serve", "--config", str(root / "herald.yaml"), "--port", "0"])
    assert res.exit_code != 0 and "weak-secret" in res.output, res.output
