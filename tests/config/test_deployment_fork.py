"""The template check is forked only from a single-threaded process (a fork beside other threads can hang)."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from engine.config.deployment import _start_template_check

REPO = Path(__file__).resolve().parents[2]


def test_no_fork_while_other_threads_run(tmp_path: Path) -> None:
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)
    other.start()
    try:
        assert _start_template_check(tmp_path) is None
    finally:
        stop.set()
        other.join()


def test_a_single_threaded_process_still_checks_in_a_forked_worker(tmp_path: Path) -> None:
    code = ("import sys, os; from engine.config.deployment import _start_template_check as s; "
            "f = s(sys.argv[1]); print('none' if f is None else 'future:' + str(f.result(timeout=60)))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=REPO, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    expected = "none" if (__import__("os").cpu_count() or 1) < 2 else "future:"
    assert out.stdout.startswith(expected), out.stdout
