"""Loaded by every Python process of the faketime runs in .ci/run (PYTHONPATH): works around libfaketime 0.9.10.

With FAKETIME_DONT_FAKE_MONOTONIC=1 (needed: Python's lock and Event timeouts wait on the real monotonic clock
through sem_clockwait, which libfaketime does not intercept, so a faked monotonic clock makes them hang),
libfaketime 0.9.10 hands a negative time to clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME), and
time.sleep() fails with EINVAL (wolfcw/libfaketime#426). time.sleep() here waits on an Event instead.
"""
import os
import threading
import time

if os.environ.get("FAKETIME_DONT_FAKE_MONOTONIC") == "1":
    def _sleep(seconds: float) -> None:
        if seconds < 0:
            raise ValueError("sleep length must be non-negative")
        threading.Event().wait(seconds)

    time.sleep = _sleep
