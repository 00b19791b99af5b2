"""`make run`'s clock: it starts at the next opening of the window most rules use, so messages flow on any day."""
from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from engine.config.deployment import load_deployment
from engine.cli.demo import demo_start


REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ruleset():
    dep = load_deployment([str(REPO)], check_templates=False)
    assert dep.ruleset is not None
    return dep.ruleset


@pytest.mark.parametrize("now, start, says", [
    # Sunday 03:00 in Shanghai: Monday 09:00
    ("2026-12-06T03:00:00+08:00", "2026-12-07T09:00:00+08:00", "is closed now"),
    # National Day (1-7 October): the first working day after it
    ("2026-10-01T10:00:00+08:00", "2026-10-08T09:00:00+08:00", "is closed now"),
    # a Monday morning: open for hours, the clock starts now
    ("2026-12-07T10:00:00+08:00", "2026-12-07T10:00:00+08:00", "is open now"),
    # 17:00 on a Monday: closes within two hours, so the next morning
    ("2026-12-07T17:00:00+08:00", "2026-12-08T09:00:00+08:00", "closes within 2h"),
    # Berlin's DST change night, 02:30 CET in Berlin = 09:30 in Shanghai on a Sunday
    ("2026-10-25T02:30:00+01:00", "2026-10-26T09:00:00+08:00", "is closed now"),
])
def test_demo_clock_starts_at_the_next_open_window(ruleset, now, start, says):
    got, why = demo_start(ruleset, datetime.fromisoformat(now))
    assert got == datetime.fromisoformat(start)
    assert 'window "business-hours"' in why and says in why


def test_demo_clock_starts_now_without_windows():
    now = datetime.fromisoformat("2026-12-06T03:00:00+08:00")
    assert demo_start(None, now) == (now, "no rule uses a send window: the clock starts now")


def test_demo_clock_waits_for_the_examples_to_be_in_the_past(ruleset):
    # on China's National Day 2026 the examples (November 2026) still lie ahead: the clock starts after them
    from engine.cli.demo import latest_occurred

    latest = latest_occurred(str(REPO / "examples" / "outcomes.jsonl"))
    now = datetime.fromisoformat("2026-10-01T10:00:00+08:00")
    got, why = demo_start(ruleset, max(now, latest))
    assert latest > now and got >= latest and "clock starts at its next opening" in why


_DAEMON = """
import os, signal, time
seen = []
def on_term(sig, frame):
    seen.append(sig)
    print(f"SIGTERM {len(seen)}", flush=True)
    if len(seen) == EXIT_ON:
        os._exit(143)  # as herald serve on its second SIGTERM: gives up its sends, exits at once
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(60)
"""


@pytest.mark.slow
@pytest.mark.parametrize(("exit_on", "code", "killed"), [(2, 143, False), (0, -9, True)])
def test_a_second_ctrl_c_while_the_daemon_stops_sends_the_second_sigterm_without_a_traceback(
        capsys, exit_on, code, killed):
    """`make run`: the first Ctrl-C sends SIGTERM and waits for the daemon to finish its sends; a second one
    in that wait used to end the demo with a KeyboardInterrupt traceback and leave the daemon running. Now it
    sends the second SIGTERM (herald serve then exits at once), and kills a daemon that still does not stop."""
    import subprocess
    import sys
    import threading

    from engine.cli.demo import _stop

    daemon = subprocess.Popen([sys.executable, "-c", _DAEMON.replace("EXIT_ON", str(exit_on))],
                              stdout=subprocess.PIPE, text=True)
    real_wait = daemon.wait

    def wait(timeout=None):
        if daemon.wait is wait:  # the first wait, for the sends: the daemon has the first SIGTERM, then Ctrl-C
            daemon.wait = real_wait  # type: ignore[method-assign]
            assert daemon.stdout is not None and daemon.stdout.readline() == "SIGTERM 1\n"
            raise KeyboardInterrupt
        return real_wait(timeout)

    try:
        assert daemon.stdout is not None and daemon.stdout.readline() == "ready\n"
        daemon.wait = wait  # type: ignore[method-assign]
        reader = threading.Thread(target=lambda: None)
        reader.start()
        try:
            got = _stop(daemon, reader, hurry=2.0)
        except KeyboardInterrupt:
            pytest.fail("the second Ctrl-C escaped the demo's stop (a traceback for the user)")
        assert got == 1
        assert daemon.poll() == code  # stopped by the second SIGTERM, or killed: never left behind
        out = capsys.readouterr().out
        assert "a second Ctrl-C: stopping herald serve now (a second SIGTERM)" in out
        assert ("killing herald serve (SIGKILL)" in out) is killed
        assert f"herald serve exited with {code}" in out
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
