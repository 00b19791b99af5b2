"""examples/replicas/ (README "Running several replicas"): the shared herald.yaml loads clean and names PostgreSQL
and a retention, the compose file has PostgreSQL, two replicas and a proxy, and the systemd units call commands
that exist with options they take. (Docker and systemd do not run here: this checks the files, not a deployment.)"""
from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parents[2] / "examples" / "replicas"


def test_the_shared_herald_yaml_loads_clean(monkeypatch):
    from engine.config.settings import load_config

    for var in ("PGPASSWORD", "HERALD_TOKEN", "HERALD_TRACKING_SECRET"):
        monkeypatch.setenv(var, "x" * 40)
    cfg, diags = load_config(str(HERE / "herald.yaml"))
    assert [d.format() for d in diags] == []
    assert cfg.store_url == "postgresql://herald:" + "x" * 40 + "@db:5432/herald"
    assert cfg.event_retention == "400d" and cfg.server.host == "0.0.0.0"


def test_compose_has_postgresql_two_replicas_and_a_proxy():
    doc = yaml.safe_load((HERE / "docker-compose.yml").read_text())
    services = doc["services"]
    assert set(services) == {"db", "herald-1", "herald-2", "proxy"}
    assert services["herald-1"] == services["herald-2"]
    assert "herald serve" in services["herald-1"]["command"] and "--upgrade-store" in services["herald-1"]["command"]
    assert "herald-1:8025 herald-2:8025" in (HERE / "Caddyfile").read_text()


def _exec(unit: str) -> list[str]:
    p = configparser.ConfigParser(interpolation=None, strict=False)
    p.read_string((HERE / unit).read_text())
    line = p["Service"]["ExecStart"].split("#")[0]
    return shlex.split(line.replace("%i", "8025"))[1:]


def test_the_systemd_units_call_real_commands(run_cli, tmp_path):
    for unit in ("herald@.service", "herald-prune.service"):
        args = _exec(unit)
        words = [a for a in args[:2] if not a.startswith("--")]
        r = run_cli([*words, "--help"], cwd=tmp_path)
        assert r.exit_code == 0, (unit, r.output)
        for opt in (a for a in args if a.startswith("--")):
            assert opt in r.output, (unit, opt)
