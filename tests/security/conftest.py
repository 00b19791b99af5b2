"""Fixtures for the security suite: in-process daemons (tests/daemon's harness), stopped at teardown."""
from __future__ import annotations

from daemon_support import daemons  # noqa: F401 - the shared fixture
