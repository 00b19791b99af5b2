"""Fixtures for the daemon tests: a deployment per test, an in-process daemon stopped at teardown."""
from __future__ import annotations

import pytest

from daemon_support import SECRET, TOKEN, make_deployment, start_daemon


@pytest.fixture
def auth_env(monkeypatch):
    monkeypatch.setenv("HERALD_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("HERALD_TEST_SECRET", SECRET)


@pytest.fixture
def deploy(tmp_path):
    return make_deployment(tmp_path)


@pytest.fixture
def daemons():
    """Starts daemons with start(root, ...) and shuts every one down at teardown."""
    started = []

    def start(root, **kw):
        d = start_daemon(root, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.shutdown()
