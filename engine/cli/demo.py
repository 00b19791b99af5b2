"""`make run`: start `herald serve` on the defaults with time x600, post the examples, show what it sends; Ctrl-C stops it.

The daemon's clock starts at the next opening of the send window most rules use (now, when it is open for
a while), so messages flow within seconds on any day, a Sunday night or a public holiday included.
"""
from __future__ import annotations

import argparse
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from engine.config.deployment import load_deployment
from engine.config.settings import Config, load_config
from engine.daemon.client import Poster, wait_healthy
from engine.intake.decode import read_items
from engine.model import RuleSet
from engine.schedule.timing import in_window, load_timezone, next_open

_URL = re.compile(r"listening on (http://\S+)")
OPEN_FOR = timedelta(hours=2)  # starting inside a window that closes sooner than this waits for the next opening


def demo_start(ruleset: RuleSet | None, now: datetime) -> tuple[datetime, str]:
    """The instant the demo's clock starts at, and a sentence saying why.

    The window most rules use (in their time zone) decides: now when it stays open for OPEN_FOR,
    else its next opening. Without windows (or one that never opens), now."""
    rules, windows = (ruleset.rules, ruleset.windows) if ruleset else ((), {})
    uses = Counter((r.timing.window, r.timezone) for r in rules if r.timing.window in windows)
    if not uses:
        return now, "no rule uses a send window: the clock starts now"
    (name, zone), count = uses.most_common(1)[0]
    window, tz = windows[name], load_timezone(zone)
    if tz is None:
        return now, f"the time zone {zone} is unknown here: the clock starts now"
    if in_window(now, window, tz) and in_window(now + OPEN_FOR, window, tz):
        return now, f'the window "{name}" ({count} rules, {zone}) is open now: the clock starts now'
    closing = in_window(now, window, tz)
    start = next_open(now + OPEN_FOR if closing else now, window, tz)
    if start is None:
        return now, f'the window "{name}" never opens: the clock starts now'
    state = f"closes within {OPEN_FOR.seconds // 3600}h" if closing else "is closed now"
    return start, (f'the window "{name}" ({count} rules, {zone}) {state}: the clock starts at its next '
                   f'opening, {start:%a %Y-%m-%d %H:%M} {zone}')


def latest_occurred(path: str) -> datetime:
    """The latest occurred_at of the outcomes to post (epoch 0 when none has one): before it, the examples
    would lie in the demo's future and nothing would be due."""
    from engine.schedule.timing import parse_instant

    times = [parse_instant(it.record.get("occurred_at")) for it in read_items(path)
             if it.error is None and isinstance(it.record, dict) and it.record.get("occurred_at")]
    return max((t for t in times if t is not None), default=datetime.fromtimestamp(0, UTC))


def _free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _herald() -> list[str]:
    script = Path(sys.executable).with_name("herald")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--outcomes", default="examples/outcomes.jsonl")
    ap.add_argument("--time-scale", type=float, default=600.0)
    ap.add_argument("--config", default=None)
    args = ap.parse_args(argv)
    cfg = load_config(args.config)[0]
    start, why = demo_start(load_deployment(config_path=args.config).ruleset,
                            max(datetime.now(UTC), latest_occurred(args.outcomes)))
    host, port = cfg.server.host, cfg.server.port
    if not _free(host, port):
        print(f"port {port} is in use: using a free one", flush=True)
        port = 0
    cmd = _herald() + ["serve", "--host", host, "--port", str(port), "--time-scale", f"{args.time_scale:g}",
                      "--start-at", start.isoformat()]
    if args.config:
        cmd += ["--config", args.config]
    print(why, flush=True)
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True)
    found = threading.Event()
    url: list[str] = []

    def pump() -> None:
        for line in proc.stderr or ():  # (a pipe: stderr=PIPE above)
            m = _URL.search(line)
            if m and not url:
                url.append(m.group(1))
                found.set()
            sys.stdout.write("  | " + line)
            sys.stdout.flush()
        found.set()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        if not found.wait(60) or not url:
            print("herald serve did not start (see above)", flush=True)
            return proc.wait() or 1
        wait_healthy(url[0])
        print(_where(cfg, url[0], args.time_scale), flush=True)
        poster = Poster(url[0], token=cfg.server.auth.token)
        counts = poster.post_items(read_items(args.outcomes))
        poster.close()
        print(f"posted {args.outcomes}: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())), flush=True)
        if counts.get("duplicate"):
            print("  (duplicate: an id already in the store, from an earlier run or repeated in the file: "
                  "never sent twice)", flush=True)
        return _wait(proc, reader)
    except KeyboardInterrupt:
        return _stop(proc, reader)


def _where(cfg: Config, url: str, scale: float) -> str:
    outbox, store = cfg.outbox, cfg.store_path
    sqlite = "sqlite3" if shutil.which("sqlite3") else f"{Path(sys.executable).name} -m sqlite3"
    return f"""
  daemon   {url}   (time runs x{scale:g}: a minute passes every {60 / scale:.2f} s; windows are real windows)
  outbox   {outbox}/<channel>/<outcome>_<revision>_<channel index>_<attempt>.json   (one file per message sent)
  store    {store}
           {sqlite} {store} "select id, state, channel, datetime(send_at, 'unixepoch') from notifications order by send_at"
  API      curl -s {url}/v1/notifications/ats-98001-r1%231     curl -s {url}/metrics | grep ^herald_
  rules    edit rules/*.yaml or templates/ while it runs: the new set is validated and swapped in

  Messages appear below as they fall due, in send_at order. Ctrl-C stops the daemon cleanly.
"""


def _wait(proc: subprocess.Popen, reader: threading.Thread) -> int:
    """Waits for the daemon in slices (as `herald serve` waits for its stop): Ctrl-C is turned into
    KeyboardInterrupt only when the main thread runs, and a wait in waitpid(2) wakes only if the signal is handed
    to the main thread, not to the reader thread."""
    try:
        while True:
            try:
                code = proc.wait(0.5)
                break
            except subprocess.TimeoutExpired:
                continue
    except KeyboardInterrupt:
        return _stop(proc, reader)
    reader.join(2)
    return code


def _stop(proc: subprocess.Popen, reader: threading.Thread, grace: float = 40.0, hurry: float = 5.0) -> int:
    """Stop the daemon: SIGTERM, then up to `grace` seconds for it to finish its sends. A second Ctrl-C in
    that time sends the second SIGTERM, on which `herald serve` gives up its sends and exits at once (they are
    sent again on the next start, with the same idempotency key); a daemon still running `hurry` seconds
    later, or after `grace`, is killed."""
    print("\nstopping herald serve (SIGTERM; Ctrl-C again to stop it now) ...", flush=True)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            code = proc.wait(grace)
        except subprocess.TimeoutExpired:
            code = _kill(proc, f"still running after {grace:g} s")
        except KeyboardInterrupt:
            print("a second Ctrl-C: stopping herald serve now (a second SIGTERM)", flush=True)
            proc.send_signal(signal.SIGTERM)
            try:
                code = proc.wait(hurry)
            except subprocess.TimeoutExpired:
                code = _kill(proc, f"still running {hurry:g} s after the second SIGTERM")
    else:
        code = proc.returncode
    reader.join(2)
    print(f"herald serve exited with {code}", flush=True)
    return 0 if code == 0 else 1


def _kill(proc: subprocess.Popen, why: str) -> int:
    print(f"{why}: killing herald serve (SIGKILL); anything it was sending is sent again on the next start",
          flush=True)
    proc.kill()
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
