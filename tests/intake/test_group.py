"""Group commit: single-item intakes arriving while a commit is under way are stored together, each caller
answered with its own item's status (or the group's error)."""
from __future__ import annotations

import threading
import time

import pytest

from engine.intake.group import GroupCommit


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _run_concurrently(gc: GroupCommit, n: int) -> tuple[dict, dict]:
    answers: dict = {}
    errors: dict = {}

    def call(i: int) -> None:
        try:
            answers[i] = gc.submit(i, f"d{i}")
        except Exception as e:  # noqa: BLE001
            errors[i] = e

    threads = [threading.Thread(target=call, args=(i,)) for i in range(n)]
    threads[0].start()
    return answers, errors, threads  # type: ignore[return-value]


def test_callers_arriving_during_a_commit_share_the_next_one():
    calls: list[tuple[list, list]] = []
    first_started, release = threading.Event(), threading.Event()

    def run(items, deliveries):
        calls.append((list(items), list(deliveries)))
        if len(calls) == 1:
            first_started.set()
            release.wait(10)
        return [f"status of {i}" for i in items]

    gc = GroupCommit(run)
    answers, errors, threads = _run_concurrently(gc, 6)
    first_started.wait(10)
    for t in threads[1:]:
        t.start()
    _wait(lambda: len(gc._queue) == 5)  # all five wait while the first commit is under way
    release.set()
    for t in threads:
        t.join(10)
    assert errors == {} and answers == {i: f"status of {i}" for i in range(6)}
    assert [sorted(items) for items, _ in calls] == [[0], [1, 2, 3, 4, 5]], "two commits for six callers"
    assert all(d == [f"d{i}" for i in items] for items, d in calls)
    assert gc.submit(7) == "status of 7" and not gc._busy


def test_a_store_error_reaches_every_caller_of_its_group_and_the_next_group_still_runs():
    first_started, release = threading.Event(), threading.Event()
    calls = []

    def run(items, deliveries):
        calls.append(sorted(items))
        if len(calls) == 1:
            first_started.set()
            release.wait(10)
            return ["ok"]
        raise RuntimeError("store unavailable")

    gc = GroupCommit(run)
    answers, errors, threads = _run_concurrently(gc, 4)
    first_started.wait(10)
    for t in threads[1:]:
        t.start()
    _wait(lambda: len(gc._queue) == 3)
    release.set()
    for t in threads:
        t.join(10)
    assert answers == {0: "ok"} and sorted(errors) == [1, 2, 3]
    assert all(str(e) == "store unavailable" for e in errors.values())
    with pytest.raises(RuntimeError):
        gc.submit(9)
    assert not gc._busy
