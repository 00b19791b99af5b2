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


@pytest.mark.slow
def test_a_second_ctrl_c_while_the_daemon_stops_kills_it_without_a_traceback(capsys):
    """`make run`: the first Ctrl-C sends SIGTERM and waits for the daemon to finish its sends; a second one
    in that wait used to end the demo with a KeyboardInterrupt traceback and leave the daemon running."""
    import _thread
    import subprocess
    import sys
    import threading

    from engine.cli.demo import _stop

    slow = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                             "print('ready', flush=True); time.sleep(120)"], stdout=subprocess.PIPE, text=True)
    try:
        assert slow.stdout is not None and slow.stdout.readline() == "ready\n"  # SIGTERM is ignored from here on
        reader = threading.Thread(target=lambda: None)
        reader.start()
        # the second Ctrl-C: raised in this (the main) thread while _stop waits for the process
        timer = threading.Timer(0.5, _thread.interrupt_main)
        timer.start()
        try:
            code = _stop(slow, reader)
        except KeyboardInterrupt:
            pytest.fail("the second Ctrl-C escaped the demo's stop (a traceback for the user)")
        finally:
            timer.cancel()
        assert code == 1
        assert slow.poll() == -9  # killed, not left behind
        out = capsys.readouterr().out
        assert "a second Ctrl-C: killing herald serve (SIGKILL)" in out
        assert "herald serve exited with -9" in out
    finally:
        if slow.poll() is None:
            slow.kill()
            slow.wait()
