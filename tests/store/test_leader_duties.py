"""What only the leader of several replicas does, on PostgreSQL: two replicas (two runtimes, each with its own
store on one database, in this process). Old events are pruned on the schedule by the leader alone
(store.retention.events), never by the other; HR alerts raised by any replica are posted by the leader alone."""
from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest
from daemon_support import make_deployment, outcome, wait_for
from loopback import Serving

from engine.config.deployment import load_deployment
from engine.daemon.dispatch import Dispatcher
from engine.daemon.runtime import Runtime
from engine.schedule.clock import Clock
from engine.store import open_store

pytestmark = pytest.mark.slow

NOW = 1_790_000_000.0
DAY = 86400.0


class At(Clock):
    def __init__(self, t: float):
        super().__init__()
        self.t = t

    def now(self) -> float:
        return self.t


def _replica(root: Path, url: str, t: float) -> Runtime:
    return Runtime(load_deployment([str(root)]), open_store(url), At(t))


def test_old_events_are_pruned_on_a_schedule_by_the_leader_only(pg, tmp_path: Path):
    url = pg.create_database()
    root = make_deployment(tmp_path, dispatch="{poll_interval: 0.05s}")
    cfg = (root / "herald.yaml").read_text()
    (root / "herald.yaml").write_text(cfg.replace("store: {path: herald.db}",
                                                  f'store: {{url: "{url}", retention: {{events: 2d}}}}'))
    old = _replica(root, url, NOW - 5 * DAY)  # three outcomes five days ago, their notifications finished then
    old.intake([outcome(f"p-{i}", decision="hold") for i in range(3)], "test")
    for i in range(3):
        assert old.store.cancel(f"p-{i}#1", at=NOW - 5 * DAY, reason="test")
    old.intake([outcome("fresh", decision="hold")], "test")  # still scheduled: its events stay, however old
    old.store.close()
    replicas = [_replica(root, url, NOW) for _ in range(2)]
    dispatchers = [Dispatcher(rt) for rt in replicas]
    store = replicas[0].store
    count = "SELECT count(*) AS n FROM events WHERE notification_id LIKE 'p-%%'"
    assert store._all(count)[0]["n"] == 6  # queued and cancelled, each
    try:
        for d in dispatchers:
            d.start()
        wait_for(lambda: store._all(count)[0]["n"] == 0, timeout=30, step=0.05)
        leaders = [d for d in dispatchers if d.leader()]
        assert len(leaders) == 1
        other = next(d for d in dispatchers if d is not leaders[0])
        assert (leaders[0].pruner.rounds, other.pruner.rounds) == (1, 0)  # once (hourly), by the leader alone
        assert store.get_notification("fresh#1").events  # a scheduled notification's events are kept
    finally:
        for d in dispatchers:
            d.stop(10)
        for rt in replicas:
            rt.store.close()


class Hook(BaseHTTPRequestHandler):
    """The alert channel's webhook: keeps every message body."""

    got: ClassVar[list[str]] = []

    def log_message(self, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        Hook.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["body"])
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")


def test_alerts_raised_by_any_replica_are_posted_by_the_leader_only(pg, tmp_path: Path):
    url = pg.create_database()
    Hook.got = []
    with Serving(Hook) as hook:
        channels = (f'  email: {{transport: outbox}}\n  sms: {{transport: outbox}}\n'
                    f'  hr: {{transport: webhook, url: "{hook.url}/alerts"}}')
        root = make_deployment(tmp_path, channels=channels)
        cfg = (root / "herald.yaml").read_text().replace("store: {path: herald.db}", f'store: {{url: "{url}"}}')
        (root / "herald.yaml").write_text(cfg + "alerts: {channel: hr, interval: 1s}\n")
        replicas = [_replica(root, url, NOW) for _ in range(2)]
        try:
            wait_for(lambda: replicas[0].leads() or replicas[1].leads(), timeout=10, step=0.05)
            leader = next(rt for rt in replicas if rt.leads())
            other = next(rt for rt in replicas if rt is not leader)
            for rt in replicas:
                rt.alerts.start()
            other.alert("failed", "n-1#1 failed on every channel (raised by the other replica)")
            leader.alert("late", "n-2#1 sent late (raised by the leader)")
            wait_for(lambda: "n-1#1" in "".join(Hook.got) and "n-2#1" in "".join(Hook.got), timeout=20, step=0.05)
            # stopped (each thread joined, what it holds flushed): a line the other replica had taken would be
            # posted by now, so the counts below are final, with no fixed wait
            other.alerts.stop(5)
            leader.alerts.stop(5)
        finally:
            for rt in replicas:
                rt.alerts.stop(5)
                rt.store.close()
    assert (leader.alerts.sent, other.alerts.sent) == (len(Hook.got), 0), Hook.got
    assert "".join(Hook.got).count("n-1#1") == 1


def test_alert_lines_a_leader_read_but_did_not_post_are_posted_by_the_next_leader(pg):
    """Leader A reads two queued lines and dies before posting them (its Alerter is dropped, never stopped): they
    are still in the queue, and B, leader next, posts them. A line posted is deleted from the queue; a recoverable
    refusal keeps it; a permanent one (logged) deletes it. Driven by hand: _pull is the thread's look at the queue."""
    from daemon_support import ScriptedTransport

    from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE
    from engine.config.settings import AlertSettings
    from engine.daemon.alerts import Alerter

    url = pg.create_database()
    stores = [open_store(url), open_store(url)]
    settings = AlertSettings("hr", (), 60.0)
    left = "SELECT count(*) AS n FROM alerts"

    def alerter(store, transport, leads) -> Alerter:
        return Alerter(lambda: settings, lambda _name: (transport, None), gather=0.0, queue=store.alert_queue(),
                       leader=lambda: leads[0])
    try:
        a_leads, b_leads = [True], [False]
        a = alerter(stores[0], ScriptedTransport("hr", ACCEPTED), a_leads)
        a.add("failed", "n-1#1 failed on every channel")
        a.add("late", "n-2#1 sent late")
        a._pull()
        assert [p[1] for p in a._pending] == ["n-1#1 failed on every channel", "n-2#1 sent late"]
        a_leads[0], b_leads[0] = False, True  # A dies holding them (never posted); B leads

        hook = ScriptedTransport("hr", RECOVERABLE, ACCEPTED)
        b = alerter(stores[1], hook, b_leads)
        b._pull()
        first = b.flush(force=True)
        assert first is not None, "B found nothing to post: A's reading took the lines out of the queue"
        assert first.status == RECOVERABLE and stores[1]._all(left)[0]["n"] == 2  # kept
        b._pull()  # nothing read twice while held
        assert len(b._pending) == 2
        assert b.flush(force=True).status == ACCEPTED
        assert "n-1#1" in hook.sent[-1].body and "n-2#1" in hook.sent[-1].body
        assert stores[1]._all(left)[0]["n"] == 0  # posted: out of the queue

        a._pull()  # A, back and no longer leader, lets go of what it had read: nothing posted twice by it
        assert a._pending == [] and a.flush(force=True) is None

        refused = alerter(stores[1], ScriptedTransport("hr", PERMANENT), b_leads)
        refused.add("late", "n-3#1 sent late")
        refused._pull()
        assert refused.flush(force=True).status == PERMANENT and stores[1]._all(left)[0]["n"] == 0
    finally:
        for s in stores:
            s.close()
