"""Fixtures for the source tests: the daemon helpers (tests/daemon) and the fake ATSes (tests/sources), both
on the path through pytest's `pythonpath` setting (pyproject.toml)."""
from __future__ import annotations

import pytest

from daemon_support import daemons  # noqa: F401 - the shared fixture
from fake_ats import FakeATS
from sources_support import SECRET


@pytest.fixture
def gh(monkeypatch):
    """A fake Greenhouse that signs with the secret the deployment reads from GH_SECRET."""
    monkeypatch.setenv("GH_SECRET", SECRET)
    ats = FakeATS("greenhouse", SECRET)
    yield ats
    ats.close()
