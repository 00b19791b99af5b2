"""herald.yaml's server, dispatch, tracking and alerts sections are parsed once into frozen, typed settings."""
from __future__ import annotations

import dataclasses

import pytest

from engine.config.settings import (AlertSettings, DispatchSettings, ServerAuth, ServerSettings, TrackingSettings,
                                    load_config)

YAML = """
server:
  host: 0.0.0.0
  port: 9000
  public_url: https://herald.example.com
  auth: {token: "${TOK}", hmac_secret: "${MAC}"}
dispatch: {workers: 4, max_attempts: 3, backoff_base: 1m, backoff_max: 2h, poll_interval: 5s, receipt_interval: 5m}
tracking: {secret: "${TRACK}", timezone: Europe/Berlin}
channels:
  hr: {transport: webhook, url: "https://hooks.example.com/x"}
alerts: {channel: hr, at_mobiles: ["13800000000"], interval: 5m}
"""


def test_sections_are_typed_and_parsed_once(tmp_path):
    (tmp_path / "herald.yaml").write_text(YAML, encoding="utf-8")
    env = {"TOK": "t" * 20, "MAC": "m" * 20, "TRACK": "s" * 40}
    cfg, diags = load_config(root=tmp_path, env=env)
    assert [d for d in diags if d.is_error] == []
    assert cfg.server == ServerSettings("0.0.0.0", 9000, "https://herald.example.com",
                                        ServerAuth("t" * 20, "m" * 20, "X-Herald-Signature"))
    assert cfg.dispatch == DispatchSettings(workers=4, max_attempts=3, backoff_base=60.0, backoff_max=7200.0,
                                            poll_interval=5.0, receipt_interval=300.0)
    assert cfg.tracking == TrackingSettings("s" * 40, "Europe/Berlin")
    assert cfg.alerts == AlertSettings("hr", ("13800000000",), 300.0)
    for section in (cfg.server, cfg.server.auth, cfg.dispatch, cfg.tracking, cfg.alerts):
        with pytest.raises(dataclasses.FrozenInstanceError):
            section.__setattr__("x", 1)


def test_defaults_without_a_file(tmp_path):
    cfg, _ = load_config(root=tmp_path, env={})
    assert cfg.server == ServerSettings() and cfg.server.port == 8025 and cfg.server.public_url is None
    assert cfg.dispatch == DispatchSettings() and cfg.tracking.secret is None and cfg.alerts.channel is None


def test_secrets_never_in_repr(tmp_path):
    (tmp_path / "herald.yaml").write_text(YAML, encoding="utf-8")
    cfg, _ = load_config(root=tmp_path, env={"TOK": "tok-SECRET-1", "MAC": "mac-SECRET-2", "TRACK": "trk-SECRET-3"})
    shown = repr(cfg.server) + repr(cfg.tracking)
    assert "SECRET" not in shown


@pytest.mark.parametrize("raw", [None, "x", [], {"port": "80"}, {"port": 0}, {"port": True}, {"host": ""}])
def test_odd_server_values_fall_back_to_defaults(raw):
    got = ServerSettings.parse(raw)
    assert (got.host, got.port) == ("127.0.0.1", 8025)


def test_unreadable_durations_keep_their_defaults():
    got = DispatchSettings.parse({"backoff_base": "soon", "poll_interval": 3, "workers": 0})
    assert (got.backoff_base, got.poll_interval, got.workers) == (30.0, 1.0, 2)
    assert AlertSettings.parse({"channel": "hr", "interval": "whenever"}).interval == 60.0
