"""Under --time-scale (and --start-at) the CLI uses the daemon's clock: what `ingest`, `route` and `replies`
write or show is on the daemon's time, not the wall clock's; a daemon that stopped leaves the wall clock."""
from __future__ import annotations

import json
import time
from datetime import datetime

import pytest

from daemon_support import make_deployment, outcome, post
from engine.schedule.clock import clock_file, store_clock

pytestmark = pytest.mark.slow
START = datetime.fromisoformat("2031-03-03T10:00:00+00:00").timestamp()  # years from any real "now"


def test_cli_commands_use_the_daemon_clock(tmp_path, daemons, run_cli):
    root = make_deployment(tmp_path)
    d = daemons(root, time_scale=600.0, start_at=START)
    cfg = str(root / "herald.yaml")
    assert clock_file(root / "herald.db").is_file()
    assert abs(store_clock(root / "herald.db").now() - d.runtime.clock.now()) < 600 * 2  # within 2 real seconds

    # ingest plans on the daemon's clock: its notification is due in 2031, not today
    (root / "in.jsonl").write_text(json.dumps(outcome("ck-1", decision="hold")) + "\n")
    assert run_cli(["ingest", str(root / "in.jsonl"), "--config", cfg]).exit_code == 0
    n = d.runtime.store.get_notification("ck-1#1").notification
    assert START <= n.send_at - 3600 <= START + 86400  # the `later` rule: an hour after the daemon's now

    # route by hand on the daemon's clock
    post(d.url, outcome("ck-2", decision="pass"))  # no rule for pass: unmatched
    assert run_cli(["route", "ck-2", "--rule", "now", "--config", cfg]).exit_code == 0
    assert d.runtime.store.get_notification("ck-2#1").notification.send_at >= START

    # replies: "waiting" measured on the daemon's clock, never negative
    d.runtime.store.add_reply("ck-1#1", "thanks", d.runtime.clock.now(), "email")
    shown = run_cli(["replies", "--config", cfg])
    assert shown.exit_code == 0 and "waiting -" not in shown.stdout and "waiting" in shown.stdout

    d.shutdown()
    assert not clock_file(root / "herald.db").exists()
    assert abs(store_clock(root / "herald.db").now() - time.time()) < 5
