"""Sources benchmark: verified, mapped and stored ATS events a second with single POSTs, beside herald's own intake.

The daemon is a real `herald serve` subprocess on a temporary deployment (the example rules and templates,
every channel on the outbox transport) with one greenhouse source. The load comes from this process, 4
clients: first N outcomes posted one per request to /v1/outcomes (herald's own intake), then N Greenhouse
`reject_candidate` events, each signed as Greenhouse signs (HMAC-SHA256, `Signature: sha256 <hex>`) and
posted to /v1/sources/greenhouse. Every answer must be 202 with a stored status, and the store must hold
every event (source_events) and its outcome afterwards. An event is one write transaction, as a posted
outcome is (its source_events row is written in the outcome's). Target: >= 500 source events/s; the machine
is shared, so the ratio to herald's own intake, measured in the same run, is the comparable figure.

Both kinds of request carry the time of the run (the events' `rejected_at`, the outcomes' `occurred_at`), as a
live webhook does: every rule delays its notification (10 minutes at least), so nothing falls due while the
bench runs and the dispatcher sends nothing. With the payloads' own dates (two weeks old) every notification
would fall due at once inside the rules' business-hours window and not outside it, so the figures would
depend on the hour and the weekday of the run (the sends take about as much CPU as the intake).

Single POSTs share commits (engine/intake/group.py), yet a client waits for its own event's commit before it
posts the next, so at most `clients` events ride on one fsync, and the disk's fsync latency (shared, it varies
from run to run) bounds the figure: the run also times a durable SQLite commit of one small row on the same
disk (WAL, synchronous=FULL, as the store) and prints its median.

The load generator shares the machine's cores with the daemon, and other work on a shared machine moves the
rates; the daemon's CPU time per request (user + system of the `herald serve` process, all its threads, read
from /proc over each phase) does not depend on the load, and is printed beside each rate.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import hmac
import json
import os
import shutil
import sqlite3
import sys
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from daemon import ROOT, Serve, bodies, cpu_seconds, example_records, run_clients

SECRET = "bench-greenhouse-secret"
PAYLOAD = ROOT / "tests" / "sources" / "payloads" / "greenhouse_reject_candidate.json"
SOURCES = """
sources:
  greenhouse:
    kind: greenhouse
    secret: "${BENCH_GH_SECRET}"
    map:
      stage:  {from: application.current_stage.name, values: {"Phone Screen": first_round, "Onsite": second_round}}
      role:   {from: "application.jobs[0].name", values: {"Backend Engineer": backend}, default: null}
      reason: {from: application.rejection_reason.name, values: {"Lacks experience": lacks_project_experience}}
"""


def events(n: int, at: str) -> list[tuple[bytes, dict]]:
    """n distinct reject_candidate deliveries (application and event ids) rejected `at`, each with its signature
    headers."""
    base = json.loads(PAYLOAD.read_text("utf-8"))
    out = []
    for i in range(n):
        ev = copy.deepcopy(base)
        app = ev["payload"]["application"]
        app["id"] = 1_000_000 + i
        app["rejected_at"] = app["last_activity_at"] = at
        app["current_stage"]["name"] = "Phone Screen" if i % 2 else "Onsite"
        body = json.dumps(ev).encode()
        sig = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        out.append((body, {"Content-Type": "application/json", "Signature": f"sha256 {sig}",
                           "Greenhouse-Event-ID": f"bench-{i}"}))
    return out


def commit_latency(directory: Path, n: int = 200) -> float:
    """Median seconds of one durable SQLite commit (one small row, WAL, synchronous=FULL) in `directory`."""
    db = sqlite3.connect(directory / "probe.db", isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE t (x TEXT)")
    took = []
    for _ in range(n):
        start = time.perf_counter()
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO t VALUES (?)", ("x" * 200,))
        db.execute("COMMIT")
        took.append(time.perf_counter() - start)
    db.close()
    return statistics.median(took)


def post_all(url: str, requests: list[tuple[bytes, dict]], clients: int) -> tuple[float, int]:
    """POSTs every (body, headers) from `clients` threads; (seconds, answers 202 with a stored status)."""
    acked = [0] * clients
    chunks = [requests[i::clients] for i in range(clients)]

    def worker(k: int) -> None:
        with httpx.Client(timeout=120) as c:
            for body, headers in chunks[k]:
                r = c.post(url, content=body, headers=headers)
                status = r.json().get("status") or r.json()["items"][0]["status"] if r.status_code == 202 else None
                if status not in ("matched", "unmatched", "held"):
                    raise SystemExit(f"HTTP {r.status_code}: {r.text[:300]}")
                acked[k] += 1

    return run_clients(worker, clients), sum(acked)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("-n", type=int, default=3000, help="requests of each kind")
    ap.add_argument("--clients", type=int, default=4)
    args = ap.parse_args()
    print(f"herald sources benchmark ({os.cpu_count()} CPUs; load from this process, daemon in a subprocess)",
          flush=True)
    os.environ["BENCH_GH_SECRET"] = SECRET
    with tempfile.TemporaryDirectory(prefix="herald-bench-") as d:
        root = Path(d)
        shutil.copytree(ROOT / "rules", root / "rules")
        shutil.copytree(ROOT / "templates", root / "templates")
        (root / "herald.yaml").write_text("store: {path: herald.db}\noutbox: outbox\n" + SOURCES)
        at = datetime.now(UTC).isoformat(timespec="seconds")
        records = [dict(r, occurred_at=at) for r in example_records()]
        own = [(b, {"Content-Type": "application/json"}) for b in bodies(records, "own", args.n)]
        deliveries = events(args.n, at)
        serve = Serve(root)
        try:
            post_all(serve.url + "/v1/outcomes", own[:1], 1)  # warm-up (counted out below)
            post_all(serve.url + "/v1/sources/greenhouse", deliveries[:1], 1)
            pid = serve.proc.pid
            cpu0 = cpu_seconds(pid)
            o_secs, o_acked = post_all(serve.url + "/v1/outcomes", own[1:], args.clients)
            cpu1 = cpu_seconds(pid)
            s_secs, s_acked = post_all(serve.url + "/v1/sources/greenhouse", deliveries[1:], args.clients)
            cpu2 = cpu_seconds(pid)
        finally:
            serve.stop()
        commit_s = commit_latency(root)
        db = sqlite3.connect(root / "herald.db")
        stored = db.execute("SELECT count(*) FROM outcomes WHERE id LIKE 'greenhouse:%'").fetchone()[0]
        kept = db.execute("SELECT count(*) FROM source_events WHERE source = 'greenhouse'").fetchone()[0]
        sent = db.execute("SELECT count(*) FROM notifications WHERE sent_at IS NOT NULL").fetchone()[0]
        db.close()
    assert stored == kept == s_acked + 1, (stored, kept, s_acked)
    own_rate, src_rate = o_acked / o_secs, s_acked / s_secs
    load = os.getloadavg()[0]
    rows = [(f"herald's own intake, single POSTs ({o_acked}, {args.clients} clients)", f"{own_rate:,.0f} outcomes/s", "",
             ""),
            ("  daemon CPU per outcome", f"{(cpu1 - cpu0) / o_acked * 1000:.2f} ms", "", ""),
            (f"greenhouse events, single POSTs ({s_acked}, {args.clients} clients)", f"{src_rate:,.0f} events/s",
             ">= 500 events/s", "target met" if src_rate >= 500 else "target MISSED"),
            ("  daemon CPU per event", f"{(cpu2 - cpu1) / s_acked * 1000:.2f} ms", "", ""),
            ("source events / own intake", f"{src_rate / own_rate:.2f}x", "", ""),
            ("a durable commit of one small row on this disk (median)", f"{commit_s * 1000:.2f} ms", "", ""),
            ("notifications sent while the bench ran (none fall due)", f"{sent}", "", ""),
            ("load average (1 min) at the end", f"{load:.2f}", "", "")]
    width = max(len(r[0]) for r in rows)
    for name, value, target, verdict in rows:
        print(f"  {name:<{width}}  {value:>18}  {target:<16} {verdict}")


if __name__ == "__main__":
    main()
