"""Item 3: YAML alias bombs are refused, located; the file watcher outlives any error; a dead one is reported."""
from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

from daemon_support import make_deployment, wait_for
from engine.daemon import reload as reload_mod
from engine.rules.yamlpos import load_yaml


def laughs(levels: int = 9, width: int = 9) -> str:
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_a_located_error_not_a_memory_error() -> None:
    box: list = []
    t = threading.Thread(target=lambda: box.append(load_yaml(laughs(), "rules/bomb.yaml")), daemon=True)
    t.start()
    t.join(20)
    assert box, "loading did not end within 20 s"
    doc, diags = box[0]
    assert doc.data is None
    [d] = diags
    assert d.code == "yaml-alias-bomb" and d.file == "rules/bomb.yaml" and d.line > 1, d.format()


def test_ordinary_aliases_still_work() -> None:
    doc, diags = load_yaml("base: &b {channels: [email, sms]}\nx: *b\ny: *b\n", "ok.yaml")
    assert diags == [] and doc.data["y"] == {"channels": ["email", "sms"]}


def test_validate_names_the_file(tmp_path: Path, run_cli) -> None:
    root = make_deployment(tmp_path)
    (root / "rules" / "20-bomb.yaml").write_text("version: 1\n" + laughs())
    res = run_cli(["validate", str(root)])
    assert res.exit_code == 1 and "20-bomb.yaml:" in res.output and "[yaml-alias-bomb]" in res.output, res.output


@pytest.mark.slow
def test_the_watcher_survives_any_error_and_a_dead_one_is_reported(tmp_path: Path, daemons, monkeypatch) -> None:
    root = make_deployment(tmp_path)
    d = daemons(root, watch=True)
    assert httpx.get(d.url + "/healthz").json()["watcher"] == "ok"
    real_reload = reload_mod.reload
    calls: list = []

    def out_of_memory(runtime, reason="reload", timeout=None):
        calls.append(reason)
        if len(calls) == 1:
            raise MemoryError()
        return real_reload(runtime, reason, timeout)

    def logging_fails_too(*_a, **_k):
        raise MemoryError()

    monkeypatch.setattr(reload_mod, "reload", out_of_memory)
    monkeypatch.setattr(reload_mod.log, "exception", logging_fails_too)
    (root / "rules" / "20-bomb.yaml").write_text("version: 1\n" + laughs())
    wait_for(lambda: calls, timeout=20)
    (root / "rules" / "20-bomb.yaml").write_text("version: 1\nrules: []\n")
    old = d.runtime.version
    (root / "templates" / "any" / "generic.j2").write_text(
        (root / "templates" / "any" / "generic.j2").read_text().replace("v1", "v2"))
    wait_for(lambda: d.runtime.version != old, timeout=20)  # the watcher lived through both failures
    health = httpx.get(d.url + "/healthz").json()
    assert health["watcher"] == "ok" and health["status"] == "ok"

    dead = threading.Thread(target=lambda: None)
    dead.start()
    dead.join()
    d.reloader._thread = dead  # as if it had died
    health = httpx.get(d.url + "/healthz").json()
    assert health["watcher"] == "dead" and health["status"] == "degraded"
    assert "herald_reload_watcher_alive 0.0" in httpx.get(d.url + "/metrics").text
