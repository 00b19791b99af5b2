"""POST /v1/outcomes under concurrency: requests arriving while a commit is under way are stored together, in one
transaction (engine/intake/group.py, shared with the ATS sources), and each still gets its own items' statuses."""
from __future__ import annotations

import threading
import time
import warnings

from daemon_support import TOKEN, make_deployment, outcome

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
        return 1_790_000_000.0


def test_concurrent_posts_are_stored_in_one_transaction_and_answered_each_with_its_own_items(tmp_path, auth_env,
                                                                                             monkeypatch):
    root = make_deployment(tmp_path, auth=True)
    with open_store(tmp_path / "herald.db") as store:
        rt = Runtime(load_deployment([str(root)]), store, Frozen())
        client = TestClient(create_app(rt), headers={"Authorization": f"Bearer {TOKEN}"})
        first, release, calls = threading.Event(), threading.Event(), []
        real = store.accept_outcomes

        def accept(items, *a, **k):  # the first request's commit is held until the others are waiting
            calls.append([i.id for i in items])
            if not first.is_set():
                first.set()
                assert release.wait(10)
            return real(items, *a, **k)

        monkeypatch.setattr(store, "accept_outcomes", accept)
        answers: dict[int, list] = {}

        def post(k: int) -> None:
            items = [outcome(f"g{k}-{j}") for j in range(k % 3 + 1)] + ([outcome("g0-0")] if k == 3 else [])
            r = client.post("/v1/outcomes", json=items)
            assert r.status_code == 202, r.text
            answers[k] = [(i["id"], i["status"]) for i in r.json()["items"]]

        threads = [threading.Thread(target=post, args=(k,)) for k in range(4)]
        threads[0].start()
        assert first.wait(10)
        for t in threads[1:]:
            t.start()
        deadline = time.monotonic() + 10
        while sum(len(g._queue) for g in rt._groups.values()) < 3:  # the 3 others (max_concurrent_bodies: 4) wait
            assert time.monotonic() < deadline
            time.sleep(0.005)
        release.set()
        for t in threads:
            t.join(10)
    assert len(calls) == 2, calls  # the first request, then the three waiting ones in ONE transaction
    for k in range(4):
        want = [(f"g{k}-{j}", "matched") for j in range(k % 3 + 1)]
        assert answers[k] == want + ([("g0-0", "duplicate")] if k == 3 else []), answers
