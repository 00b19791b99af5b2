"""receive() in process: a source event that becomes an outcome costs ONE write transaction (its source_events
row rides in the outcome's), a replay none, and every other answer still keeps its delivery."""
from __future__ import annotations

import json

import pytest

from engine.config.deployment import load_deployment
from engine.intake.batch import intake
from engine.pipeline import Pipeline
from engine.sources.base import SourceRequest
from engine.sources.greenhouse import sign
from engine.sources.receive import receive
from engine.store import open_store
from fake_ats import payload_json
from sources_support import SECRET, source_deployment


@pytest.fixture
def setup(tmp_path, monkeypatch):
    monkeypatch.setenv("GH_SECRET", SECRET)
    dep = load_deployment([str(source_deployment(tmp_path))])
    assert dep.ok, [d.format() for d in dep.diagnostics]
    with open_store(tmp_path / "herald.db") as store:
        writes = []
        real = store._write

        def counted():
            writes.append(1)
            return real()

        monkeypatch.setattr(store, "_write", counted)
        pipe = Pipeline(dep)

        def deliver(body: dict, event_id: str):
            raw = json.dumps(body).encode()
            writes.clear()
            got = receive(dep.config.sources["greenhouse"],
                          SourceRequest(raw, {"signature": sign(SECRET, raw), "greenhouse-event-id": event_id}),
                          store=store, intake=lambda items, origin, delivery=None: intake(
                              items, pipe, store, origin, deliveries=[delivery]), withdraw=None)
            return got, len(writes)

        yield store, deliver


def test_an_event_that_becomes_an_outcome_is_one_transaction(setup):
    store, deliver = setup
    stage = payload_json("greenhouse_candidate_stage_change.json")
    got, writes = deliver(stage, "e1")
    assert (got.status, writes) == ("matched", 1)
    row = store.source_event("greenhouse", "e1")
    assert (row.status, row.outcome_id, row.action) == ("matched", "greenhouse:770001", "candidate_stage_change")
    assert deliver(stage, "e1") == (got.__class__(200, "duplicate", "greenhouse:770001", "e1"), 0)
    got, writes = deliver(payload_json("greenhouse_reject_candidate.json"), "e2")
    assert (got.status, writes) == ("amended", 1)
    assert store.source_event("greenhouse", "e2").status == "amended"


def test_the_same_content_under_a_new_event_id_is_kept_once_as_a_duplicate(setup):
    store, deliver = setup
    stage = payload_json("greenhouse_candidate_stage_change.json")
    assert deliver(stage, "e1")[0].status == "matched"
    got, writes = deliver(stage, "e9")  # the ATS re-sent the same change under a new delivery id
    assert (got.status, writes) == ("duplicate", 1)
    assert store.source_event("greenhouse", "e9").status == "duplicate"


def test_events_group_committed_together_each_keep_their_delivery_and_status(tmp_path, monkeypatch):
    """Five events stored by one group commit (the daemon's path): one transaction, every delivery kept with
    its own item's status, a repeated content inside the group answered duplicate and still kept."""
    import threading
    import time

    from engine.intake.group import GroupCommit

    monkeypatch.setenv("GH_SECRET", SECRET)
    dep = load_deployment([str(source_deployment(tmp_path))])
    pipe = Pipeline(dep)
    src = dep.config.sources["greenhouse"]
    first, release, writes = threading.Event(), threading.Event(), []
    with open_store(tmp_path / "herald.db") as store:
        real = store._write
        monkeypatch.setattr(store, "_write", lambda: writes.append(1) or real())

        def run(items, deliveries):
            if not first.is_set():
                first.set()
                release.wait(10)
            return intake(items, pipe, store, "source:greenhouse", deliveries=deliveries)

        group = GroupCommit(run)
        answers = {}

        def deliver(n: int, app: int) -> None:
            body = payload_json("greenhouse_candidate_stage_change.json")
            body["payload"]["application"]["id"] = app
            raw = json.dumps(body).encode()
            req = SourceRequest(raw, {"signature": sign(SECRET, raw), "greenhouse-event-id": f"g{n}"})
            answers[n] = receive(src, req, store=store, withdraw=None,
                                 intake=lambda items, origin, d=None: [group.submit(items[0], d)])

        threads = [threading.Thread(target=deliver, args=(n, app)) for n, app in enumerate([1, 2, 3, 4, 3, 5])]
        threads[0].start()
        first.wait(10)
        for t in threads[1:]:
            t.start()
        deadline = time.monotonic() + 10
        while len(group._queue) < 5:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        writes.clear()
        release.set()
        for t in threads:
            t.join(10)
        statuses = {n: a.status for n, a in answers.items()}
        assert sorted(statuses.values()) == ["duplicate"] + ["matched"] * 5, statuses
        dup = next(n for n, s in statuses.items() if s == "duplicate")
        assert len(writes) == 3, "the first event, then the group of five in one transaction, the duplicate's delivery"
        for n in range(6):
            row = store.source_event("greenhouse", f"g{n}")
            assert row.status == statuses[n] and row.outcome_id == answers[n].outcome_id
        assert dup in (2, 4)
