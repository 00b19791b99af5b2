"""Fixtures for the source tests: the daemon helpers (tests/daemon) and the fake ATSes (tests/sources), both
on the path through pytest's `pythonpath` setting (pyproject.toml)."""
from __future__ import annotations

from daemon_support import daemons  # noqa: F401 - the shared fixture
