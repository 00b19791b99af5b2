"""Chaos on PostgreSQL: three `herald serve` replicas share one database; 2,000 outcomes are posted round-robin
while one replica is killed with kill -9 (and started again) and another is stopped with SIGTERM. A webhook
receiver that does not deduplicate counts deliveries: none lost, a repeat carries the same Idempotency-Key, every
replica sent some. And PostgreSQL itself stopped for 10 s under load: intake answers 503 with Retry-After, nothing
accepted is lost, sending resumes by itself. With PostgreSQL down, a second SIGTERM stops a replica at once."""
from __future__ import annotations

import signal
import threading
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pg_cluster
import pytest
from cluster_support import Receiver, pg_deployment, query
from daemon_support import ServeProcess, outcome, wait_for
from loopback import Serving

TOTAL = 2000
BATCH = 20


def _post(replicas: list[ServeProcess], k: int, items: list[dict]) -> None:
    """Posts one batch to replica k, or to the next live one (a dead replica refuses the connection)."""
    for i in range(len(replicas)):
        r = replicas[(k + i) % len(replicas)]
        if r.proc.poll() is not None:
            continue
        try:
            resp = httpx.post(r.url + "/v1/outcomes", json=items, timeout=30)
        except httpx.TransportError:
            continue
        if resp.status_code < 300:
            return
    raise AssertionError("no replica took the batch")


def _keys() -> dict[str, set[str]]:
    keys: dict[str, set[str]] = defaultdict(set)
    for n, key, _ in Receiver.got:
        keys[n].add(key)
    return keys


@pytest.mark.slow
def test_three_replicas_kill_9_and_sigterm_lose_nothing(pg, tmp_path: Path):
    Receiver.reset()
    url = pg.create_database()
    with Serving(Receiver) as hook:
        root = pg_deployment(tmp_path / "d", url, hook.url,
                             "{max_attempts: 5, backoff_base: 1s, poll_interval: 0.05s, lease: 3s}")
        replicas = [ServeProcess(root, "--upgrade-store") for _ in range(3)]
        started_all = list(replicas)  # every process started, stopped in the teardown (the killed one included)
        killed = stopped = False
        started = time.monotonic()
        try:
            for r in replicas:
                r.wait_ready(60)
            ids = [f"c-{i}" for i in range(TOTAL)]
            for k, start in enumerate(range(0, TOTAL, BATCH)):
                # each step at the first batch at or past its mark (the marks are not multiples of BATCH)
                if start >= TOTAL // 3 and not killed:
                    killed = True
                    replicas[0].proc.kill()  # kill -9 mid-stream: its claims come back after the lease
                    replicas[0].proc.wait(10)
                if start >= TOTAL // 2 and replicas[0].proc.poll() is not None:
                    replicas[0] = ServeProcess(root)
                    started_all.append(replicas[0])
                    replicas[0].wait_ready(60)
                if start >= 2 * TOTAL // 3 and not stopped:
                    stopped = True
                    replicas[1].sigterm()  # SIGTERM: a clean stop, sends in flight finished, claims given back
                _post(replicas, k, [outcome(i) for i in ids[start:start + BATCH]])
            assert killed and stopped and len(started_all) == 4
            expected = {f"{i}#1" for i in ids}
            wait_for(lambda: expected <= set(_keys()), timeout=900, step=0.5)
            done = "SELECT count(*) FROM notifications WHERE state IN ('sent', 'delivered')"
            wait_for(lambda: query(url, done)[0][0] == TOTAL, timeout=60, step=0.2)  # every result recorded
            elapsed = time.monotonic() - started
        finally:
            for r in started_all:
                r.sigterm()  # all stopping at once (a second SIGTERM would cut a stop short)
            for r in started_all:
                r.terminate(30)  # kill -9 after 30 s: never leave a replica running after the test
            logs = [r.log() for r in started_all]
    # the killed one, then the SIGTERMed one (stopped mid-stream, by itself: 0), the third and the restart
    assert [r.proc.returncode for r in started_all] == [-9, 0, 0, 0], logs[1]
    keys = _keys()
    assert set(keys) == expected  # nothing lost, nothing foreign
    assert all(len(k) == 1 for k in keys.values()), {n: k for n, k in keys.items() if len(k) > 1}
    repeats = len(Receiver.got) - len(expected)
    flagged = query(url, "SELECT count(*) FROM events WHERE kind = 'possible_duplicate'")[0][0]
    print(f"\n{len(Receiver.got)} deliveries of {len(expected)} notifications in {elapsed:.1f} s, {repeats} repeat(s) "
          f"(same key each), {flagged} possible_duplicate event(s)")
    sends = [sum(1 for line in log.splitlines() if " sent " in line) for log in logs]
    assert all(s > 0 for s in sends[:3]), sends  # every original replica sent some (the killed one before it died)


@pytest.mark.slow
def test_postgresql_stopped_for_10_s_under_load(tmp_path: Path):
    """Outcomes are posted continuously to two replicas while PostgreSQL is down for 10 s: intake answers 503 with
    Retry-After (the poster retries those batches, as an ATS does), everything answered 2xx is delivered, and the
    replicas send again by themselves once the server is back."""
    Receiver.reset()
    cluster = pg_cluster.start()
    if cluster is None:
        pytest.skip("PostgreSQL is not installed")
    answers: dict[int, int] = defaultdict(int)
    retry_after: set[str | None] = set()
    accepted: list[str] = []
    try:
        url = cluster.create_database()
        with Serving(Receiver) as hook:
            root = pg_deployment(tmp_path / "d", url, hook.url,
                                 "{max_attempts: 10, backoff_base: 1s, backoff_max: 2s, poll_interval: 0.1s, lease: 5s}")
            replicas = [ServeProcess(root, "--upgrade-store") for _ in range(2)]
            stop = threading.Event()

            def poster() -> None:
                n = 0
                while not stop.is_set():
                    items = [outcome(f"o-{n}-{j}") for j in range(20)]
                    for k in range(200):  # a batch refused (503) is posted again after Retry-After
                        try:
                            r = httpx.post(replicas[(n + k) % 2].url + "/v1/outcomes", json=items, timeout=30)
                        except httpx.TransportError:
                            answers[0] += 1
                            time.sleep(0.5)
                            continue
                        answers[r.status_code] += 1
                        if r.status_code < 300:
                            accepted.extend(f"{i['id']}#1" for i in items)
                            break
                        assert r.status_code == 503, r.text
                        retry_after.add(r.headers.get("Retry-After"))
                        time.sleep(float(r.headers.get("Retry-After", "1")))
                    n += 1
                    time.sleep(0.05)

            try:
                for r in replicas:
                    r.wait_ready(60)
                t = threading.Thread(target=poster, daemon=True)
                t.start()
                wait_for(lambda: len(Receiver.got) >= 20, timeout=60, step=0.1)  # under load
                down = time.monotonic()
                cluster.stop_server()
                wait_for(lambda: answers[503] >= 1, timeout=30, step=0.1)
                while time.monotonic() - down < 10:  # (a deadline on a condition: the server stays down 10 s)
                    assert all(r.proc.poll() is None for r in replicas)
                    time.sleep(0.2)
                cluster.start_server()
                back = len(Receiver.got)
                wait_for(lambda: len(Receiver.got) > back + 20, timeout=120,
                         step=0.2)  # sending resumed without a restart
                stop.set()
                t.join(120)
                wait_for(lambda: set(accepted) <= {n for n, _, _ in Receiver.got}, timeout=180, step=0.2)
                healthy = [httpx.get(r.url + "/healthz", timeout=10).json()["store"]["reachable"] for r in replicas]
            finally:
                stop.set()
                for r in replicas:
                    r.terminate(30)  # kill -9 after 30 s: nothing outlives the test
    finally:
        cluster.stop()
    keys = _keys()
    assert set(accepted) <= set(keys)  # nothing accepted is lost
    assert all(len(k) == 1 for k in keys.values())
    assert answers[503] >= 1 and retry_after == {"1"}, (dict(answers), retry_after)
    assert set(answers) <= {0, 200, 201, 202, 503}, dict(answers)  # refused with 503, never a 500
    assert healthy == [True, True]
    print(f"\noutage: {dict(answers)} answers, {len(accepted)} outcomes accepted, {len(Receiver.got)} deliveries")


@pytest.mark.slow
def test_a_second_sigterm_stops_at_once_while_postgresql_is_down(tmp_path: Path):
    """With PostgreSQL down, a clean stop waits on the store (giving claims back) for seconds; a second SIGTERM
    meanwhile ends the replica at once, exit 143, saying so."""
    cluster = pg_cluster.start()
    if cluster is None:
        pytest.skip("PostgreSQL is not installed")
    try:
        url = cluster.create_database()
        Receiver.reset()
        with Serving(Receiver) as hook:
            root = pg_deployment(tmp_path / "d", url, hook.url, "{poll_interval: 0.1s, lease: 30s}")
            replica = ServeProcess(root, "--upgrade-store")
            try:
                replica.wait_ready()
                cluster.stop_server()
                try:
                    replica.proc.send_signal(signal.SIGTERM)
                    wait_for(lambda: "waiting for sends in flight" in replica.log(), timeout=15)
                    replica.proc.send_signal(signal.SIGTERM)
                    started = time.monotonic()
                    assert replica.proc.wait(10) == 128 + signal.SIGTERM, replica.log()
                    assert time.monotonic() - started < 5, replica.log()
                    wait_for(lambda: "second SIGTERM while stopping: exiting now" in replica.log(), timeout=10)
                finally:
                    cluster.start_server()
            finally:
                replica.stop()
        assert "INFO    stopped" not in replica.log()
    finally:
        cluster.stop()
