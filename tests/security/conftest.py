"""Fixtures for the security suite: in-process daemons (tests/daemon's harness), stopped at teardown."""
from __future__ import annotations

import pytest

from daemon_support import start_daemon


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
