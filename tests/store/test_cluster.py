"""Replicas on PostgreSQL at the user's level: real `herald serve` processes on the throwaway cluster, a webhook
receiver that does not deduplicate. Leases: the heartbeat keeps a slow send's claim; a replica that lost its
claim mid-send records a possible duplicate (history and /metrics) instead of overwriting; SIGTERM gives claims
back at once; one leader at a time, another taking over when it dies; a withdraw that lands between a claim and
the attempt's start stops the send."""
from __future__ import annotations

import os
import signal
import threading
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest
from cluster_support import Receiver, health, metric, pg_deployment, query
from daemon_support import ServeProcess, outcome, wait_for
from loopback import Serving

from engine.store.postgres import LEADER_LOCK

pytestmark = pytest.mark.slow


def _stop_all(procs: list[ServeProcess]) -> None:
    for p in procs:
        if p.proc.poll() is None:
            os.kill(p.proc.pid, signal.SIGCONT)
        p.terminate(30)


def _post(url: str, items: list[dict]) -> None:
    r = httpx.post(url + "/v1/outcomes", json=items, timeout=30)
    assert r.status_code < 300, r.text


def test_the_heartbeat_keeps_a_slow_sends_claim_so_no_other_replica_sends_it_again(pg, tmp_path: Path):
    Receiver.reset(delay=2.5)  # every send lasts 2.5 s, well past the 1 s lease
    url = pg.create_database()
    with Serving(Receiver) as hook:
        root = pg_deployment(tmp_path / "d", url, hook.url, "{max_attempts: 3, poll_interval: 0.05s, lease: 1s}")
        replicas = [ServeProcess(root, "--upgrade-store") for _ in range(2)]
        try:
            for r in replicas:
                r.wait_ready(60)
            _post(replicas[0].url, [outcome(f"h-{i}") for i in range(4)])
            wait_for(lambda: query(url, "SELECT count(*) FROM notifications WHERE state IN ('sent', 'delivered')")[0][0] == 4,
                     timeout=60, step=0.1)
        except AssertionError:
            print(query(url, "SELECT id, state, lease_owner, claims FROM notifications"), Receiver.got)
            print(*(r.log() for r in replicas))
            raise
        finally:
            _stop_all(replicas)
    assert Counter(n for n, _, _ in Receiver.got) == Counter(f"h-{i}#1" for i in range(4))  # each exactly once
    assert query(url, "SELECT count(*) FROM events WHERE kind = 'possible_duplicate'")[0][0] == 0


def test_a_replica_that_lost_its_claim_mid_send_records_a_possible_duplicate(pg, tmp_path: Path):
    Receiver.reset(hold=True)  # the first delivery hangs until released
    url = pg.create_database()
    with Serving(Receiver) as hook, psycopg.connect(url, autocommit=True) as lock:
        root = pg_deployment(tmp_path / "d", url, hook.url, "{max_attempts: 3, poll_interval: 0.05s, lease: 2s}")
        lock.execute("SELECT pg_advisory_lock(%s)", (LEADER_LOCK,))  # A must not be the leader: B sweeps
        a = ServeProcess(root, "--upgrade-store")
        procs = [a]
        try:
            a.wait_ready(60)
            _post(a.url, [outcome("dup")])
            assert Receiver.arrived.wait(30)
            os.kill(a.proc.pid, signal.SIGSTOP)  # A hangs mid-send: no heartbeat, its lease runs out
            lock.execute("SELECT pg_advisory_unlock(%s)", (LEADER_LOCK,))
            b = ServeProcess(root)
            procs.append(b)
            b.wait_ready(60)
            wait_for(lambda: len(Receiver.got) == 2, timeout=60, step=0.1)  # B took it back and resent it
            wait_for(lambda: httpx.get(f"{b.url}/v1/notifications/dup%231").json()["state"] in ("sent", "delivered"), timeout=30)
            Receiver.release.set()
            os.kill(a.proc.pid, signal.SIGCONT)  # A's send now returns: accepted, but its claim is gone
            wait_for(lambda: metric(a.url, "herald_possible_duplicates_total") == 1, timeout=30, step=0.1)
            doc = httpx.get(f"{a.url}/v1/notifications/dup%231").json()
        finally:
            _stop_all(procs)
    assert [k for _, k, _ in Receiver.got] == ["dup#1:0:1", "dup#1:0:1"]  # a repeat carries the same key
    assert doc["state"] in ("sent", "delivered") and [e["kind"] for e in doc["events"]].count("sent") == 1  # not overwritten
    [dup] = [e for e in doc["events"] if e["kind"] == "possible_duplicate"]
    assert dup["detail"]["owner"].startswith(health_owner_prefix(a)) and dup["detail"]["holder"] is None


def health_owner_prefix(p: ServeProcess) -> str:
    """The replica id a process logged at start (its lease owners start with it)."""
    import re

    m = re.search(r"; replica ([^)\s]+)\)", p.log())
    assert m, p.log()
    return m.group(1)


def test_sigterm_gives_claims_back_at_once(pg, tmp_path: Path):
    Receiver.reset(delay=0.5)
    url = pg.create_database()
    with Serving(Receiver) as hook:
        root = pg_deployment(tmp_path / "d", url, hook.url,
                             "{workers: 1, max_attempts: 3, poll_interval: 0.05s, lease: 10m}")
        a = ServeProcess(root, "--upgrade-store")
        try:
            a.wait_ready(60)
            _post(a.url, [outcome(f"t-{i}") for i in range(10)])
            assert Receiver.arrived.wait(30)  # a batch of 10 claimed, the first being sent
            a.sigterm()
            assert a.proc.wait(30) == 0
            claimed = query(url, "SELECT count(*) FROM notifications WHERE state = 'sending'")[0][0]
            scheduled = query(url, "SELECT count(*) FROM notifications WHERE state = 'scheduled'")[0][0]
        finally:
            _stop_all([a])
    assert claimed == 0 and scheduled >= 8  # the send in flight finished; the rest wait for any replica now
    assert "gave back" in a.log()


def test_one_leader_at_a_time_and_another_takes_over_after_kill_9(pg, tmp_path: Path):
    Receiver.reset()
    url = pg.create_database()
    with Serving(Receiver) as hook:
        root = pg_deployment(tmp_path / "d", url, hook.url, "{poll_interval: 0.05s, lease: 2s}")
        replicas = [ServeProcess(root, "--upgrade-store") for _ in range(3)]
        try:
            for r in replicas:
                r.wait_ready(60)
            docs = wait_for(lambda: (d := [health(r.url) for r in replicas])
                            and sum(h["store"]["leader"] for h in d) == 1 and d, timeout=20, step=0.2)
            assert len({h["replica"] for h in docs}) == 3
            assert all(h["store"]["reachable"] and h["store"]["backend"] == "postgresql" for h in docs)
            assert all(metric(r.url, "herald_replica_leader") == h["store"]["leader"] for r, h in zip(replicas, docs, strict=True))
            leader = next(r for r, h in zip(replicas, docs, strict=True) if h["store"]["leader"])
            leader.proc.kill()
            leader.proc.wait(10)
            rest = [r for r in replicas if r is not leader]
            wait_for(lambda: sum(health(r.url)["store"]["leader"] for r in rest) == 1, timeout=20, step=0.2)
        finally:
            _stop_all(replicas)


def test_a_withdraw_between_claim_and_attempt_start_sends_nothing(pg, tmp_path: Path, run_cli):
    """The interleaving is forced with row locks held by the test: the notification row keeps the replica from
    claiming until the withdraw is waiting; the outcome row keeps the withdraw waiting until the replica has
    claimed and reached the attempt's start. Then the withdraw commits first."""
    Receiver.reset()
    url = pg.create_database()
    with Serving(Receiver) as hook:
        root = pg_deployment(tmp_path / "d", url, hook.url, "{poll_interval: 0.05s, lease: 30s}")
        (root / "in.jsonl").write_text(__import__("json").dumps(outcome("w")) + "\n")
        r = run_cli(["ingest", "--config", str(root / "herald.yaml"), str(root / "in.jsonl")], cwd=root)
        assert r.exit_code == 0, r.output
        held_n = psycopg.connect(url)
        held_o = psycopg.connect(url)
        a = ServeProcess(root)
        try:
            held_n.execute("SELECT 1 FROM notifications WHERE id = 'w#1' FOR UPDATE")  # no claim yet
            held_o.execute("SELECT 1 FROM outcomes WHERE id = 'w' FOR NO KEY UPDATE")  # as an UPDATE: the withdraw waits
            a.wait_ready(60)
            answer: list = []
            t = threading.Thread(target=lambda: answer.append(
                httpx.post(f"{a.url}/v1/outcomes/w/withdraw", json={"reason": "decision changed"}, timeout=60)))
            t.start()
            waiting = ("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                       "AND datname = current_database()")
            wait_for(lambda: query(url, waiting)[0][0] == 1, timeout=30)  # the withdraw waits on the outcome
            held_n.commit()  # the replica claims now, and gets to the attempt's start
            wait_for(lambda: query(url, waiting)[0][0] == 2 or Receiver.got, timeout=30)
            assert Receiver.got == [], "sent while the withdraw was waiting"
            held_o.commit()  # the withdraw commits first; the attempt's start then sees it
            t.join(60)
            wait_for(lambda: query(url, "SELECT state FROM notifications WHERE id = 'w#1'")[0][0] == "cancelled",
                     timeout=30)
        finally:
            held_n.close()
            held_o.close()
            _stop_all([a])
    assert answer and answer[0].status_code == 200, answer
    assert Receiver.got == []
    assert query(url, "SELECT count(*) FROM attempts")[0][0] == 0


def _ingest(run_cli, root: Path, oid: str) -> None:
    import json

    (root / f"{oid}.jsonl").write_text(json.dumps(outcome(oid)) + "\n")
    r = run_cli(["ingest", "--config", str(root / "herald.yaml"), str(root / f"{oid}.jsonl")], cwd=root)
    assert r.exit_code == 0, r.output


def _listening(url: str) -> int:
    return query(url, "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                      "AND (application_name = 'herald-listen' OR query ILIKE 'LISTEN%')")[0][0]


def test_a_hint_wakes_an_idle_replica_long_before_its_next_poll(pg, tmp_path: Path, run_cli):
    Receiver.reset()
    url = pg.create_database()
    with Serving(Receiver) as hook:
        root = pg_deployment(tmp_path / "d", url, hook.url, "{poll_interval: 60s, lease: 30s}")
        a = ServeProcess(root, "--upgrade-store")
        try:
            a.wait_ready(60)
            wait_for(lambda: _listening(url) == 1, timeout=20)
            _ingest(run_cli, root, "n1")  # another process (the CLI) queues it: the replica hears only the hint
            wait_for(lambda: Receiver.got, timeout=20)  # a third of the 60 s poll
            assert metric(a.url, "herald_wakeup_hints") >= 1
        finally:
            _stop_all([a])
    assert [n for n, _, _ in Receiver.got] == ["n1#1"]


def test_the_poll_only_setting_never_listens_and_polling_still_sends(pg, tmp_path: Path, run_cli):
    Receiver.reset()
    url = pg.create_database()
    with Serving(Receiver) as hook:
        root = pg_deployment(tmp_path / "d", url, hook.url, "{poll_interval: 0.2s, lease: 30s}")
        cfg = root / "herald.yaml"
        cfg.write_text(cfg.read_text().replace(f'store: {{url: "{url}"}}', f'store: {{url: "{url}", listen: false}}'))
        a = ServeProcess(root, "--upgrade-store")
        try:
            a.wait_ready(60)
            _ingest(run_cli, root, "p1")
            wait_for(lambda: Receiver.got, timeout=30)
            assert _listening(url) == 0 and metric(a.url, "herald_wakeup_hints") == 0
        finally:
            _stop_all([a])
    assert [n for n, _, _ in Receiver.got] == ["p1#1"]


def test_two_replicas_together_stay_under_a_robots_rate_limit(pg, tmp_path: Path):
    from daemon_support import make_deployment
    from fake_robot import FakeRobot

    from engine.channels.dingtalk_robot import ROBOT_LIMIT

    url = pg.create_database()
    with FakeRobot(secret=None) as robot:
        channels = (f'  email: {{transport: dingtalk-robot, access_token: "tok-fake-0123456789", base_url: "{robot.url}"}}\n'
                    f'  sms: {{transport: dingtalk-robot, access_token: "tok-fake-0123456789", base_url: "{robot.url}"}}')
        root = make_deployment(tmp_path / "d", channels=channels,
                               dispatch="{max_attempts: 5, backoff_base: 1h, poll_interval: 0.05s, lease: 30s}")
        cfg = root / "herald.yaml"
        cfg.write_text(cfg.read_text().replace("store: {path: herald.db}", f'store: {{url: "{url}"}}'))
        replicas = [ServeProcess(root, "--upgrade-store") for _ in range(2)]
        try:
            for r in replicas:
                r.wait_ready(60)
            for i in range(30):
                _post(replicas[i % 2].url, [outcome(f"q-{i}")])
            tried = "SELECT count(DISTINCT notification_id) FROM attempts WHERE status <> 'pending'"
            wait_for(lambda: query(url, tried)[0][0] == 30, timeout=60, step=0.1)  # each tried: sent or paced
            paced = query(url, "SELECT count(*) FROM attempts WHERE code = 'paced'")[0][0]
        finally:
            _stop_all(replicas)
    assert len(robot.requests) == ROBOT_LIMIT and paced == 30 - ROBOT_LIMIT  # 19 a minute for both together
    assert all(r.log().count(" sent ") > 0 for r in replicas)  # both replicas sent some
