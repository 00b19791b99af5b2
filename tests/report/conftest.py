"""Fixtures of the report tests: the hand-built scenario store (built once per session, read-only afterwards)."""
from __future__ import annotations

import pytest
from report_support import build_scenario


@pytest.fixture(scope="session")
def scenario(tmp_path_factory):
    return build_scenario(tmp_path_factory.mktemp("report") / "herald.db")
