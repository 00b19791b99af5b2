"""Fixtures for the console tests: in-process daemons stopped at teardown (tests/daemon's shared fixture)."""
from __future__ import annotations

from daemon_support import daemons  # noqa: F401 - a shared fixture
