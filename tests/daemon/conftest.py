"""Fixtures for the daemon tests: a deployment per test, an in-process daemon stopped at teardown."""
from __future__ import annotations

import pytest

from daemon_support import SECRET, TOKEN, daemons, make_deployment  # noqa: F401 - daemons: a shared fixture


@pytest.fixture
def auth_env(monkeypatch):
    monkeypatch.setenv("HERALD_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("HERALD_TEST_SECRET", SECRET)


@pytest.fixture
def deploy(tmp_path):
    return make_deployment(tmp_path)
