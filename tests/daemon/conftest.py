"""Fixtures for the daemon tests: a deployment per test, an in-process daemon stopped at teardown, and the API
through FastAPI's TestClient on a Runtime with a frozen clock (no dispatcher)."""
from __future__ import annotations

import warnings

import pytest

from daemon_support import API_NOW, SECRET, TOKEN, daemons, make_deployment  # noqa: F401 - daemons: a shared fixture


@pytest.fixture
def auth_env(monkeypatch):
    monkeypatch.setenv("HERALD_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("HERALD_TEST_SECRET", SECRET)


@pytest.fixture
def deploy(tmp_path):
    return make_deployment(tmp_path)


@pytest.fixture
def api(tmp_path, auth_env):
    """(TestClient with the bearer token and an actor, store) over a deployment with auth; the clock frozen at
    API_NOW, no dispatcher."""
    from engine.config.deployment import load_deployment
    from engine.daemon.app import create_app
    from engine.daemon.runtime import Runtime
    from engine.schedule.clock import Clock
    from engine.store import open_store

    with warnings.catch_warnings():  # starlette's TestClient warns about httpx at import
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    class Frozen(Clock):
        def now(self) -> float:
            return API_NOW

    dep = load_deployment([str(make_deployment(tmp_path, auth=True))])
    store = open_store(tmp_path / "herald.db")
    client = TestClient(create_app(Runtime(dep, store, Frozen())),
                        headers={"Authorization": f"Bearer {TOKEN}", "X-Herald-Actor": "li.wei"})
    yield client, store
    store.close()
