"""Fixtures for the security suite: the daemon tests' helpers (tests/daemon) on the path, daemons stopped at teardown."""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from daemon_support import start_daemon  # noqa: E402


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
