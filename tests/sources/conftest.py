"""Fixtures for the source tests: the daemon helpers (tests/daemon) and the fake ATS on the path."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "daemon"))

from daemon_support import daemons  # noqa: F401 - the shared fixture
