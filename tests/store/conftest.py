"""The store contract suite's fixtures: `store` (and `target`, what opened it) for each backend, SQLite and
PostgreSQL; PostgreSQL is a throwaway cluster for the session (pg_cluster.py), a fresh database per test.

Without PostgreSQL installed its tests skip, saying why, except under CI (CI=true), where they fail:
.ci/run installs Debian's postgresql package, so a missing server there is a broken CI, not a skip.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pg_cluster
import pytest

from engine.store import Store, open_store

BACKENDS = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def pg() -> Iterator[pg_cluster.Cluster]:
    """A running PostgreSQL cluster for the whole session."""
    if pg_cluster.find_bin() is None:
        if os.environ.get("CI") == "true":
            pytest.fail("PostgreSQL (initdb, pg_ctl) is not installed: .ci/run must install Debian's postgresql")
        pytest.skip("PostgreSQL is not installed (initdb, pg_ctl): its store tests are skipped here, never in CI")
    cluster = pg_cluster.start()
    assert cluster is not None
    yield cluster
    cluster.stop()


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
