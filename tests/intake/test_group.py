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
    answers, errors = _first_alone_then_three(gc, first_started, release)
    assert answers == {0: "ok"} and sorted(errors) == [1, 2, 3]
    assert all(str(e) == "store unavailable" for e in errors.values())
    with pytest.raises(RuntimeError):
        gc.submit(9)
    assert not gc._busy


def _one_group_of_three(gc: GroupCommit, calls: list, first_started: threading.Event,
                        release: threading.Event) -> None:
    """Drives `gc` to a commit of one caller, then one of three (the last group held three)."""
    _answers, errors = _first_alone_then_three(gc, first_started, release)
    assert errors == {} and [sorted(c) for c in calls] == [[0], [1, 2, 3]]


def _first_alone_then_three(gc: GroupCommit, first_started: threading.Event, release: threading.Event) -> tuple:
    """Four callers: the first commits alone (held inside `run` until `release`), the other three queue behind it."""
    answers, errors, threads = _run_concurrently(gc, 4)
    first_started.wait(10)
    for t in threads[1:]:
        t.start()
    _wait(lambda: len(gc._queue) == 3)
    release.set()
    for t in threads:
        t.join(10)
    return answers, errors


def _gated_run(calls: list) -> tuple:
    first_started, release = threading.Event(), threading.Event()

    def run(items, deliveries):
        calls.append(list(items))
        if len(calls) == 1:
            first_started.set()
            release.wait(10)
        return [f"status of {i}" for i in items]

    return run, first_started, release


def test_a_leader_waits_for_as_many_callers_as_the_last_group_had():
    """Callers answered together come back together: the first of them waits (at most as long as a commit took)
    for the others instead of committing alone, so the groups do not settle into 1, 3, 1, 3 ..."""
    calls: list = []
    run, first_started, release = _gated_run(calls)
    gc = GroupCommit(run, max_wait=30.0)
    _one_group_of_three(gc, calls, first_started, release)
    gc._last_s = 30.0  # as if that commit had taken 30 s: the wait's bound is not what this test is about
    answers: dict = {}
    threads = [threading.Thread(target=lambda i=i: answers.update({i: gc.submit(i)})) for i in (10, 11, 12)]
    threads[0].start()
    _wait(lambda: gc._busy and len(gc._queue) == 1)
    threads[1].start()
    threads[2].start()
    for t in threads:
        t.join(10)
    assert answers == {i: f"status of {i}" for i in (10, 11, 12)}
    assert [sorted(c) for c in calls[2:]] == [[10, 11, 12]], "one commit for the three callers"


def test_the_wait_is_bounded_and_sporadic_callers_stop_waiting():
    calls: list = []
    run, first_started, release = _gated_run(calls)
    gc = GroupCommit(run, max_wait=0.05)
    _one_group_of_three(gc, calls, first_started, release)
    gc._last_s = 30.0  # bounded by max_wait, not by how long the last commit took
    assert gc.submit(20) == "status of 20" and calls[2] == [20]
    assert gc._expected == 1  # the next lone caller does not wait at all
    assert gc.submit(21) == "status of 21" and calls[3] == [21]
