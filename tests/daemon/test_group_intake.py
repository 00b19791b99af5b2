"""Single POSTs to /v1/outcomes are group-committed (engine/intake/group.py): those arriving while a commit is
under way share the next transaction, and each is answered only once its outcome is durable."""
from __future__ import annotations

import threading

import httpx

from daemon_support import outcome, post, wait_for


def _held_store(rt):
    """Wraps the daemon store's accept_outcomes: the first call waits for `release`; every call's ids are kept."""
    store, calls = rt.store, []
    first, release = threading.Event(), threading.Event()
    real = store.accept_outcomes

    def accept(items, *a, **kw):
        calls.append(sorted(i.id for i in items))
        if len(calls) == 1:
            first.set()
            assert release.wait(20)
        return real(items, *a, **kw)

    store.accept_outcomes = accept
    return calls, first, release


def test_single_posts_arriving_during_a_commit_share_the_next_transaction(deploy, daemons):
    d = daemons(deploy)
    calls, first, release = _held_store(d.runtime)
    answers: dict[str, httpx.Response] = {}

    def send(oid: str) -> None:
        answers[oid] = post(d.url, outcome(oid))

    threads = {oid: threading.Thread(target=send, args=(oid,)) for oid in ("g-0", "g-1", "g-2", "g-3")}
    threads["g-0"].start()
    assert first.wait(20)  # g-0's commit is under way
    try:
        for oid in ("g-1", "g-2", "g-3"):
            threads[oid].start()
        wait_for(lambda: sum(len(g._queue) for g in d.runtime._groups.values()) == 3)
        assert answers == {}, "nothing is answered before its commit"
    finally:
        release.set()
        for t in threads.values():
            t.join(20)
    got = {oid: (r.status_code, r.json()["items"][0]["status"]) for oid, r in answers.items()}
    assert got == dict.fromkeys(threads, (202, "matched"))
    assert calls == [["g-0"], ["g-1", "g-2", "g-3"]], "four single POSTs, two transactions"
    for oid in threads:
        assert d.runtime.store.get_outcome(oid) is not None


def test_a_single_post_still_gets_its_own_answer_invalid_and_duplicate_included(deploy, daemons):
    d = daemons(deploy)
    assert post(d.url, outcome("s-1")).json()["items"][0]["status"] == "matched"
    assert post(d.url, outcome("s-1")).json()["items"][0]["status"] == "duplicate"
    bad = post(d.url, dict(outcome("s-2"), decision="maybe"))
    assert bad.status_code == 422 and bad.json()["field"] == "decision" and bad.json()["dead_letter"]
    assert d.runtime.store.dead_letters()[0].remote == "127.0.0.1"
