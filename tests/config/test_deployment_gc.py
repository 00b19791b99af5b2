"""Loading a deployment leaves the garbage collector alone (the CLI may pause it; the library must not)."""
from __future__ import annotations

import gc

from engine.config.deployment import load_deployment


def test_load_deployment_does_not_touch_the_collector(monkeypatch, tmp_path):
    calls = []
    for name in ("disable", "enable", "freeze", "unfreeze"):
        monkeypatch.setattr(gc, name, lambda *a, _n=name: calls.append(_n))
    monkeypatch.chdir(tmp_path)
    load_deployment()
    assert calls == []
