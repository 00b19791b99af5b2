"""Daemon benchmark: durable intake throughput (single POSTs, batches of 100), dispatch lag at 100 notifications/s,
and a backlog: 10,000 notifications falling due when a send window opens (lag from the opening, dispatch rate).

The load comes from this process; the daemon is a real `herald serve` subprocess on a temporary deployment
(the example rules and templates; every channel on the outbox transport, in the temporary directory).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HERALD = str(Path(sys.executable).with_name("herald"))
TEMPLATE = """{# herald: decisions=[reject, pass, offer, hold] #}
{% block subject %}Interview result{% endblock %}
{% block email %}Hello {{ candidate.name }}, thank you for your time.{% endblock %}
"""
NOW_RULES = """version: 1
rules:
  - id: bench-now
    match: {decision: [reject, pass, offer, hold]}
    template: bench/now
    channels: [email]
    locale: en
    timezone: UTC
    timing: {delay: 0s}
"""


BACKLOG_RULES = """version: 1
windows:
  office: {days: [mon, tue, wed, thu, fri, sat, sun], hours: "HOURS"}
rules:
  - id: bench-backlog
    match: {decision: [reject, pass, offer, hold]}
    template: bench/now
    channels: [email]
    locale: en
    timezone: UTC
    timing: {delay: 0s, window: office}
"""


class Serve:
    """`herald serve` on a free port in `root`; stopped with SIGTERM."""

    def __init__(self, root: Path, *args: str):
        self.proc = subprocess.Popen([HERALD, "serve", "--port", "0", "--log-level", "WARNING", *args], cwd=root,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.url = None
        self.lines: list[str] = []
        found = threading.Event()

        def pump() -> None:
            for line in self.proc.stderr:
                self.lines.append(line)
                if self.url is None and "listening on " in line:
                    self.url = line.split("listening on ")[1].split()[0]
                    found.set()
            found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(60) or self.url is None:
            self.stop()
            raise SystemExit("herald serve did not start:\n" + "".join(self.lines))

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process `pid` so far (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def example_records() -> list[dict]:
    """The valid records of examples/outcomes.jsonl, approved (so each is routed, rendered and scheduled)."""
    from engine.intake.gate import OK, check_record

    out = []
    for line in (ROOT / "examples" / "outcomes.jsonl").read_text("utf-8").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if check_record(rec).status == OK:
            rec["approved"] = True
            out.append(rec)
    return out


def bodies(records: list[dict], prefix: str, n: int) -> list[bytes]:
    out = []
    for i in range(n):
        rec = dict(records[i % len(records)], id=f"{prefix}-{i}")
        out.append(json.dumps(rec, ensure_ascii=False).encode())
    return out


def post_all(url: str, payloads: list[bytes], clients: int) -> tuple[float, int]:
    """POSTs every payload from `clients` threads; (seconds, outcomes acknowledged with 202)."""
    acked = [0] * clients
    chunks = [payloads[i::clients] for i in range(clients)]

    def worker(k: int) -> None:
        with httpx.Client(timeout=120, headers={"Content-Type": "application/json"}) as c:
            for body in chunks[k]:
                r = c.post(url + "/v1/outcomes", content=body)
                if r.status_code != 202:
                    raise SystemExit(f"HTTP {r.status_code}: {r.text[:200]}")
                acked[k] += sum(1 for it in r.json()["items"] if it["status"] != "invalid")

    return run_clients(worker, clients), sum(acked)


def run_clients(worker: Callable[[int], None], clients: int) -> float:
    """Seconds for `clients` threads running worker(0) .. worker(clients - 1) side by side, until the last ends."""
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def bench_intake(tmp: Path, singles: int, batched: int) -> dict:
    root = tmp / "intake"
    root.mkdir()
    shutil.copytree(ROOT / "rules", root / "rules")
    shutil.copytree(ROOT / "templates", root / "templates")
    records = example_records()
    serve = Serve(root)
    try:
        httpx.post(serve.url + "/v1/outcomes", content=bodies(records, "warm", 1)[0])
        single = bodies(records, "single", singles)
        s_secs, s_acked = post_all(serve.url, single, clients=4)
        items = bodies(records, "batch", batched)
        lists = [b"[" + b",".join(items[i:i + 100]) + b"]" for i in range(0, len(items), 100)]
        b_secs, b_acked = post_all(serve.url, lists, clients=2)
    finally:
        serve.stop()
    db = sqlite3.connect(root / "herald.db")
    stored = db.execute("SELECT count(*) FROM outcomes WHERE id LIKE 'single-%' OR id LIKE 'batch-%'").fetchone()[0]
    db.close()
    assert stored == s_acked + b_acked, (stored, s_acked, b_acked)
    return {"single": s_acked / s_secs, "batch": b_acked / b_secs, "single_n": s_acked, "batch_n": b_acked}


def bench_lag(tmp: Path, rate: float, seconds: float) -> dict:
    root = tmp / "lag"
    (root / "rules").mkdir(parents=True)
    (root / "templates" / "bench").mkdir(parents=True)
    (root / "rules" / "10-now.yaml").write_text(NOW_RULES)
    (root / "templates" / "bench" / "now.j2").write_text(TEMPLATE)
    records = example_records()
    for rec in records:  # due now: no occurred_at (delays count from receipt), every candidate reachable
        rec.pop("occurred_at", None)
        rec["candidate"] = dict(rec["candidate"], email=rec["candidate"].get("email") or "x@example.com")
    payloads = bodies(records, "lag", int(rate * seconds))
    serve = Serve(root)
    try:
        with httpx.Client(timeout=30, headers={"Content-Type": "application/json"}) as c:
            start = time.perf_counter()
            for i, body in enumerate(payloads):  # paced single POSTs: `rate` new notifications a second
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                r = c.post(serve.url + "/v1/outcomes", content=body)
                assert r.status_code == 202 and r.json()["items"][0]["status"] == "matched", r.text
        deadline = time.monotonic() + 60
        files: list[Path] = []
        while time.monotonic() < deadline:
            files = list((root / "outbox").rglob("*.json"))
            if len(files) >= len(payloads):
                break
            time.sleep(0.2)
    finally:
        serve.stop()
    lags = []
    for f in files:
        meta = json.loads(f.read_text("utf-8"))["meta"]
        lags.append(meta["called_at"] - meta["due_at"])
    lags.sort()
    q = statistics.quantiles(lags, n=100)
    return {"n": len(lags), "sent": len(files), "p50": q[49], "p99": q[98], "max": lags[-1]}


def bench_backlog(tmp: Path, n: int) -> dict:
    """`n` outcomes ingested while the window is closed (all due at its next opening), then a daemon started with
    its clock 5 s before the opening: lag of each send from the opening, and the dispatch rate."""
    from datetime import UTC, datetime, timedelta

    from engine.schedule.timing import next_open, parse_window

    root = tmp / "backlog"
    (root / "rules").mkdir(parents=True)
    (root / "templates" / "bench").mkdir(parents=True)
    h = (datetime.now(UTC).hour + 2) % 24  # a window closed now (ingest plans from the real now), opening within 2 h
    hours = f"{h:02d}:00-{h + 1:02d}:00"
    (root / "rules" / "10-backlog.yaml").write_text(BACKLOG_RULES.replace("HOURS", hours))
    (root / "templates" / "bench" / "now.j2").write_text(TEMPLATE)
    records = example_records()
    for rec in records:
        rec.pop("occurred_at", None)
        rec.pop("candidate", None)
        rec["candidate"] = {"name": "Bench", "email": "x@example.com"}
    window, _ = parse_window("office", {"days": ["mon", "tue", "wed", "thu", "fri", "sat", "sun"], "hours": hours})
    assert window is not None
    opening = next_open(datetime.now(UTC), window, UTC)
    (root / "backlog.jsonl").write_bytes(b"\n".join(bodies(records, "backlog", n)) + b"\n")
    subprocess.run([HERALD, "ingest", "backlog.jsonl"], cwd=root, check=True, capture_output=True)
    db = sqlite3.connect(root / "herald.db")
    due = db.execute("SELECT count(*), min(send_at), max(send_at) FROM notifications").fetchone()
    db.close()
    assert due[0] == n and due[1] == due[2] == opening.timestamp(), (due, opening)
    start = (opening - timedelta(seconds=5)).isoformat()
    serve = Serve(root, "--start-at", start)
    try:
        deadline = time.monotonic() + 300
        files: list[Path] = []
        while time.monotonic() < deadline:
            files = list((root / "outbox").rglob("*.json"))
            if len(files) >= n:
                break
            time.sleep(0.5)
    finally:
        serve.stop()
    called = sorted(json.loads(f.read_text("utf-8"))["meta"]["called_at"] for f in files)
    lags = [c - opening.timestamp() for c in called]
    q = statistics.quantiles(lags, n=100)
    span = called[-1] - called[0] if len(called) > 1 else 0.0
    return {"n": n, "sent": len(files), "p50": q[49], "p99": q[98], "max": lags[-1], "early": sum(x < 0 for x in lags),
            "rate": (len(called) - 1) / span if span > 0 else float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--singles", type=int, default=3000, help="outcomes posted one per request")
    ap.add_argument("--batched", type=int, default=30000, help="outcomes posted in lists of 100")
    ap.add_argument("--rate", type=float, default=100.0, help="notifications a second for the lag run")
    ap.add_argument("--seconds", type=float, default=20.0, help="length of the lag run")
    ap.add_argument("--backlog", type=int, default=10000, help="notifications falling due when the window opens")
    args = ap.parse_args()
    print(f"herald daemon benchmark ({os.cpu_count()} CPUs; load from this process, daemon in a subprocess)",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as d:
        tmp = Path(d)
        intake = bench_intake(tmp, args.singles, args.batched)
        lag = bench_lag(tmp, args.rate, args.seconds)
        backlog = bench_backlog(tmp, args.backlog)
    rows = [
        (f"durable intake, single POSTs ({intake['single_n']}, 4 clients)", f"{intake['single']:,.0f} outcomes/s",
         "", ""),
        (f"durable intake, batches of 100 ({intake['batch_n']}, 2 clients)", f"{intake['batch']:,.0f} outcomes/s",
         ">= 2,000 outcomes/s", "target met" if intake["batch"] >= 2000 else "target MISSED"),
        (f"dispatch lag p50 at {args.rate:g}/s ({lag['n']} sent)", f"{lag['p50'] * 1000:,.1f} ms", "", ""),
        (f"dispatch lag p99 at {args.rate:g}/s", f"{lag['p99'] * 1000:,.1f} ms", "< 1 s",
         "target met" if lag["p99"] < 1.0 and lag["sent"] >= lag["n"] else "target MISSED"),
        ("dispatch lag max", f"{lag['max'] * 1000:,.1f} ms", "", ""),
        (f"backlog of {backlog['n']:,} at a window's opening: lag p50", f"{backlog['p50']:,.1f} s", "", ""),
        ("backlog: lag p99 from the opening", f"{backlog['p99']:,.1f} s", "< 30 s",
         "target met" if backlog["p99"] < 30 and backlog["sent"] >= backlog["n"] else "target MISSED"),
        ("backlog: dispatch rate (dispatch: 2 workers, batches of 10)", f"{backlog['rate']:,.0f} sends/s", "", ""),
        ("backlog: sent before the opening", f"{backlog['early']}", "0",
         "target met" if backlog["early"] == 0 else "target MISSED"),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':>20}  {'target':<20}  result")
    for name, value, target, verdict in rows:
        print(f"{name:<{width}}  {value:>20}  {target:<20}  {verdict}")


if __name__ == "__main__":
    main()
