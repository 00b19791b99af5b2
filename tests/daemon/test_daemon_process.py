"""`herald serve` as a process: SIGHUP reload, SIGTERM with a send in flight, a second signal while stopping, and
SIGKILL in a stream of outcomes."""
from __future__ import annotations

import collections
import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler

import httpx
import pytest

from loopback import Serving
from daemon_support import RULES, TEMPLATE, ServeProcess, make_deployment, outbox, outcome, wait_for
from engine.store import SQLiteStore


HOOKED_RULES = ("version: 1\nrules:\n  - id: hooked\n    match: {decision: reject}\n    template: any/generic\n"
                "    channels: [webhook]\n    locale: en\n    timezone: UTC\n")


def hook_handler(arrived: threading.Event, wait: Callable[[], object]) -> type[BaseHTTPRequestHandler]:
    """A loopback webhook receiver's handler: takes the POST, sets `arrived`, calls `wait`, then answers 200."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            arrived.set()
            wait()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"id": "hook-1"}')

        def log_message(self, *args):
            pass

    return Handler


@pytest.fixture
def slow_hook():
    """A loopback webhook receiver that takes 1.5 s to answer 200."""
    arrived = threading.Event()
    with Serving(hook_handler(arrived, lambda: time.sleep(1.5))) as server:
        yield server.url + "/hook", arrived


@pytest.mark.slow
def test_sighup_reloads_and_sigterm_finishes_the_send_in_flight(tmp_path, slow_hook):
    url, arrived = slow_hook
    root = make_deployment(tmp_path, rules=HOOKED_RULES, channels=f"  webhook: {{transport: webhook, url: '{url}'}}")
    proc = ServeProcess(root)
    try:
        base = proc.wait_ready()
        old = httpx.get(base + "/healthz").json()["ruleset"]
        (root / "templates" / "any" / "generic.j2").write_text(TEMPLATE.replace("MARK", "v2"))
        proc.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "(SIGHUP" in proc.log() or "changed:" in proc.log(), timeout=15)
        assert httpx.get(base + "/healthz").json()["ruleset"] != old
        r = httpx.post(base + "/v1/outcomes", json=outcome("term-1"))
        assert r.status_code == 202
        assert arrived.wait(10), proc.log()
        proc.proc.send_signal(signal.SIGTERM)  # while the webhook is still answering
        assert proc.proc.wait(30) == 0, proc.log()
    finally:
        proc.stop()
    assert "stopped" in proc.log() and "still running" not in proc.log()
    with SQLiteStore(root / "herald.db") as s:
        n = s.get_notification("term-1#1")
        assert n.notification.state in ("sent", "delivered"), proc.log()
        assert [a.status for a in n.attempts] == ["accepted"] and n.attempts[0].provider_id == "hook-1"


def _worker_thread(pid: int) -> int:
    """The id of one of the process's threads other than its main thread (Linux: /proc/PID/task)."""
    return next(int(t) for t in sorted(os.listdir(f"/proc/{pid}/task")) if int(t) != pid)


@pytest.mark.slow
@pytest.mark.parametrize("sig,to_thread", [(signal.SIGTERM, False), (signal.SIGINT, False), (signal.SIGTERM, True)],
                         ids=["SIGTERM", "SIGINT", "SIGTERM-at-a-worker-thread"])
def test_a_second_signal_while_stopping_stops_at_once(tmp_path, sig, to_thread):
    """The first signal stops cleanly, waiting (up to 30 s) for the send in flight; a second one, while it waits,
    ends the process at once with 128 + the signal's number, and says so.
    Python runs the handler in the main thread only once that thread runs again, and a main thread asleep in a
    join wakes only if the signal interrupts its own wait: not when the kernel hands the signal to another thread,
    nor when it lands just before the wait begins (CI saw that once). `to_thread` sends the second signal by a
    worker thread's id (kill(2) then offers it to that thread first), which makes the first case certain."""
    arrived, release = threading.Event(), threading.Event()
    with Serving(hook_handler(arrived, lambda: release.wait(60))) as hook:
        root = make_deployment(tmp_path, rules=HOOKED_RULES,
                               channels=f"  webhook: {{transport: webhook, url: '{hook.url}/hook', timeout: 60}}")
        proc = ServeProcess(root)
        try:
            base = proc.wait_ready()
            assert httpx.post(base + "/v1/outcomes", json=outcome("hang-1")).status_code == 202
            assert arrived.wait(15), proc.log()
            proc.proc.send_signal(sig)
            wait_for(lambda: "waiting for sends in flight" in proc.log(), timeout=15)
            assert proc.proc.poll() is None, proc.log()  # the first signal waits for the send
            if to_thread:
                os.kill(_worker_thread(proc.proc.pid), sig)
            else:
                proc.proc.send_signal(sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.proc.wait(10)
            assert proc.proc.returncode == 128 + sig, proc.log()
            said = f"second {signal.Signals(sig).name} while stopping: exiting now"
            wait_for(lambda: said in proc.log(), timeout=10)  # (the last lines may still be on their way)
        finally:
            release.set()
            proc.stop()
    assert "stopped" not in proc.log().split("exiting now", 1)[1]


def _stream(base: str, start: int, acked: list, stop: threading.Event) -> None:
    """Posts outcomes one by one (every fifth request a list of 5) until stopped or the daemon is gone."""
    client = httpx.Client(timeout=5)
    i = start
    try:
        while not stop.is_set():
            batch = [outcome(f"crash-{i + k}") for k in range(5 if i % 25 == 0 else 1)]
            try:
                r = client.post(base + "/v1/outcomes", json=batch if len(batch) > 1 else batch[0])
            except httpx.HTTPError:
                return
            if r.status_code == 202:
                acked.extend(item["id"] for item in r.json()["items"] if item["status"] == "matched")
            i += len(batch)
    finally:
        client.close()



@contextlib.contextmanager
def _streaming(base: str, starts: list[int], acked: list[str]):
    """One client per id in `starts` posting outcomes (_stream) until the block ends; then stopped and joined."""
    stop = threading.Event()
    threads = [threading.Thread(target=_stream, args=(base, start, acked, stop)) for start in starts]
    for t in threads:
        t.start()
    try:
        yield
    finally:
        stop.set()
        for t in threads:
            t.join(10)

@pytest.mark.slow
def test_kill_9_mid_stream_loses_nothing_and_sends_nothing_twice(tmp_path):
    # every message waits 1 s, so a burst of 800 falls due at once and the kill lands mid-dispatch
    root = make_deployment(tmp_path, rules=RULES.replace("  timing: {delay: 0s}", "  timing: {delay: 1s}"))
    acked: list[str] = []
    first = ServeProcess(root)
    try:
        base = first.wait_ready()
        with _streaming(base, [0], acked):
            for b in range(8):
                r = httpx.post(base + "/v1/outcomes", json=[outcome(f"burst-{b}-{i}") for i in range(100)], timeout=30)
                acked += [item["id"] for item in r.json()["items"] if item["status"] == "matched"]
            wait_for(lambda: len(list((root / "outbox").rglob("*.json"))) >= 200, timeout=30, step=0.005)
            first.proc.kill()  # SIGKILL: intake and dispatch both busy
            first.proc.wait(10)
    finally:
        first.stop()
    with SQLiteStore(root / "herald.db") as s:
        at_kill = s.notification_counts_by_state()
    assert at_kill["scheduled"] + at_kill["sending"] > 0, at_kill  # the kill came with work left
    before = len(acked)
    second = ServeProcess(root)
    try:
        base = second.wait_ready()
        with _streaming(base, [100_000], acked):
            wait_for(lambda: len(acked) > before, timeout=30)  # the restarted daemon takes intake again
        with SQLiteStore(root / "herald.db") as s:
            wait_for(lambda: _all_sent(s), timeout=60)
    finally:
        second.stop()
    files = collections.Counter(m["notification"] for m in outbox(root))
    assert max(files.values()) == 1, [k for k, v in files.items() if v > 1]
    missing = [oid for oid in acked if files.get(f"{oid}#1") != 1]
    assert not missing, missing[:10]
    with SQLiteStore(root / "herald.db") as s:
        counts = s.notification_counts_by_state()
        assert counts["delivered"] + counts["sent"] == sum(counts.values()) == len(files), counts
        sent_twice = s._db().conn.execute(
            "SELECT notification_id FROM events WHERE kind = 'sent' GROUP BY 1 HAVING count(*) > 1").fetchall()
        assert sent_twice == []
        stored = s._db().conn.execute("SELECT count(*) FROM outcomes").fetchone()[0]
    assert stored == len(files) >= len(acked)  # committed but killed before the 202: sent as well


@pytest.mark.slow
def test_kill_9_among_group_committed_single_posts_loses_no_acknowledged_outcome(tmp_path):
    """Four clients posting one outcome a request share commits (engine/intake/group.py): a 202 still means
    stored, so after SIGKILL every acknowledged outcome is in the store."""
    root = make_deployment(tmp_path, rules=RULES.replace("  timing: {delay: 0s}", "  timing: {delay: 1h}"))
    acked: list[str] = []
    serve = ServeProcess(root)
    try:
        base = serve.wait_ready()
        with _streaming(base, [1 + k * 100_000 for k in range(4)], acked):
            wait_for(lambda: len(acked) >= 200, timeout=60, step=0.005)
            serve.proc.kill()
            serve.proc.wait(10)
    finally:
        serve.stop()
    with SQLiteStore(root / "herald.db") as s:
        missing = [oid for oid in acked if s.get_outcome(oid) is None]
    assert len(acked) >= 200 and not missing, missing[:10]


def _all_sent(s: SQLiteStore) -> bool:
    counts = s.notification_counts_by_state()
    return counts["scheduled"] == 0 and counts["sending"] == 0


@pytest.mark.slow
def test_make_run_demo_sends_and_stops_cleanly_on_ctrl_c(tmp_path):
    import os
    import re
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    for part in ("rules", "templates", "examples"):
        shutil.copytree(repo / part, tmp_path / part)
    # SIGINT back to its default in the child: a test runner started in the background inherits it ignored, and
    # Python then never turns Ctrl-C into KeyboardInterrupt
    demo = subprocess.Popen([sys.executable, "-m", "engine.cli.demo"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(demo.stdout), daemon=True).start()
    try:
        wait_for(lambda: any(line.startswith("posted ") for line in lines), timeout=60)
        # the daemon's own "sent" log lines only (the demo's explanations may say "sent" too)
        sent = re.compile(r"^\s*\|\s+\d\d:\d\d:\d\d\s+INFO\s+sent\s")
        wait_for(lambda: sum(bool(sent.match(line)) for line in list(lines)) >= 5, timeout=10)
        # Ctrl-C, handed to the demo's reader thread (kill(2) by its thread id): the main thread waits for the
        # daemon in slices, so it takes the KeyboardInterrupt though the signal did not interrupt its own wait
        os.kill(_worker_thread(demo.pid), signal.SIGINT)
        assert demo.wait(60) == 0, "".join(lines)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
        for pid in re.findall(r"Started server process \[(\d+)\]", "".join(lines)):
            with contextlib.suppress(ProcessLookupError):  # only if the demo left its daemon behind
                os.kill(int(pid), signal.SIGKILL)
    text = "".join(lines)
    assert "herald serve exited with 0" in text and re.search(r"posted examples/outcomes.jsonl: .*\d+ matched", text)
    assert re.search(r'the window "business-hours" .*(open now|clock starts at its next opening)', text)
    assert (tmp_path / "herald.db").exists() and len(outbox(tmp_path)) >= 5
