"""The store contract suite's fixtures: `store` (and `target`, what opened it) for each backend, SQLite and
PostgreSQL; PostgreSQL is the session's throwaway cluster (the `pg` fixture of tests/conftest.py), a fresh
database per test.
"""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.store import Store, open_store

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(params=BACKENDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """What open_store() takes for a fresh, empty store of each backend: a file path or a postgresql:// URL."""
    if request.param == "sqlite":
        return str(tmp_path / "herald.db")
    return request.getfixturevalue("pg").create_database()


@pytest.fixture
def store(target: str) -> Iterator[Store]:
    s = open_store(target)
    yield s
    s.close()
