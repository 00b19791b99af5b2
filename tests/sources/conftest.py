"""Fixtures for the source tests: the daemon helpers (tests/daemon) and the fake ATS on the path."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

import pytest


@pytest.fixture
def daemons():
    """Starts in-process daemons with start(root) and shuts every one down at teardown."""
    from daemon_support import start_daemon

    started = []

    def start(root, **kw):
        d = start_daemon(root, **kw)
        started.append(d)
        return d

    yield start
    for d in started:
        d.shutdown()
