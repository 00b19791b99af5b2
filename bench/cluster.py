"""Cluster benchmark: several `herald serve` replicas on one PostgreSQL (issue 14), beside SQLite in the same run.

- durable intake, batches of 100, one replica: PostgreSQL beside SQLite (both fsync on);
- dispatch to a loopback webhook sink with 1, 2 and 3 replicas: total sends/s, CPU of each replica, duplicate
  deliveries and duplicate attempts (both must be 0); the notifications are ingested first, then the replicas
  start together and the rate is taken at the sink, first delivery to last;
- dispatch lag at 200 notifications/s posted round-robin to 3 replicas: POST to delivery at the sink, p50/p99;
- `herald report` over 1,000,000 notifications and 5,000,000 events on PostgreSQL (generated with
  generate_series, not through the API), in process and as the command;
- the hot queue: a claim with 1,000,000 finished notifications in the table, against an empty table.

The webhook sink is the replica tests' receiver (tests/store/cluster_support.py, every delivery counted).

PostgreSQL is a throwaway cluster (tests/store/pg_cluster.py, fsync on) in a temporary directory. This machine has
2 cores shared with other jobs: compare the ratios inside one run. `--quick` is a smaller run (about 2 minutes).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), *(str(ROOT / "tests" / d) for d in ("store", "daemon", "channels"))]

import pg_cluster  # noqa: E402
from cluster_support import Receiver  # noqa: E402 - the replica tests' webhook receiver: counts every delivery
from loopback import Serving  # noqa: E402
from daemon import HERALD, TEMPLATE, Serve, bodies, cpu_seconds, example_records, post_all  # noqa: E402

RULES = """version: 1
rules:
  - id: bench-cluster
    match: {decision: [reject, pass, offer, hold]}
    template: bench/now
    channels: [email]
    locale: en
    timezone: UTC
    timing: {delay: DELAY}
"""


class Sink(Receiver):
    """The replica tests' receiver (every delivery counted in Receiver.got, no dedup), over HTTP/1.1 with keep-alive,
    as a receiver usually is (each sending thread of a replica keeps its connection), and TCP_NODELAY as servers set
    it: without it the body of each answer, written after its headers, waits for the client's delayed ACK (about
    40 ms) on a kept connection."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True


def deployment(root: Path, store: str, hook: str, delay: str) -> Path:
    (root / "rules").mkdir(parents=True)
    (root / "templates" / "bench").mkdir(parents=True)
    (root / "rules" / "10-now.yaml").write_text(RULES.replace("DELAY", delay))
    (root / "templates" / "bench" / "now.j2").write_text(TEMPLATE)
    where = f'url: "{store}"' if store.startswith("postgresql://") else f"path: {store}"
    (root / "herald.yaml").write_text(
        f"store: {{{where}}}\noutbox: outbox\nchannels:\n  email: {{transport: webhook, url: \"{hook}/in\"}}\n"
        "dispatch: {workers: 2, poll_interval: 0.1s, lease: 30s}\n")
    return root


def records() -> list[dict]:
    out = []
    for rec in example_records():  # due at once (no occurred_at), every candidate with an e-mail address
        rec.pop("occurred_at", None)
        rec["candidate"] = dict(rec["candidate"], email=rec["candidate"].get("email") or "x@example.com")
        out.append(rec)
    return out


def process_cpu() -> float:
    """CPU seconds of this process (the load generator and the sink)."""
    t = os.times()
    return t.user + t.system


def wait_until(cond, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


# ------------------------------------------------------------------------------------------------ intake

def bench_intake(tmp: Path, pg, hook: str, n: int) -> dict:
    out = {}
    recs = records()
    for name, store in (("sqlite", "herald.db"), ("postgresql", pg.create_database("intake"))):
        root = deployment(tmp / f"intake-{name}", store, hook, "2d")  # nothing falls due during the run
        serve = Serve(root, "--upgrade-store")
        try:
            httpx.post(serve.url + "/v1/outcomes", content=bodies(recs, "warm", 1)[0], timeout=60)
            items = bodies(recs, f"b-{name}", n)
            lists = [b"[" + b",".join(items[i:i + 100]) + b"]" for i in range(0, len(items), 100)]
            secs, acked = post_all(serve.url, lists, clients=2)
        finally:
            serve.stop()
        out[name] = acked / secs
    return out


# ---------------------------------------------------------------------------------------------- dispatch

def ingest_template(tmp: Path, pg, hook: str, n: int) -> str:
    """A database with `n` notifications due now (ingested through `herald ingest`), to copy for each run."""
    url = pg.create_database("tmpl")
    root = deployment(tmp / "ingest", url, hook, "0s")
    (root / "in.jsonl").write_bytes(b"\n".join(bodies(records(), "d", n)) + b"\n")
    subprocess.run([HERALD, "db", "upgrade"], cwd=root, check=True, capture_output=True)
    subprocess.run([HERALD, "ingest", "in.jsonl"], cwd=root, check=True, capture_output=True)
    return url.split("@/", 1)[1].split("?")[0]


def bench_dispatch(tmp: Path, pg, hook: str, template_db: str, n: int, replicas: int) -> dict:
    import psycopg

    name = f"disp{replicas}"
    with psycopg.connect(pg.url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    url = pg.url(name)
    root = deployment(tmp / f"dispatch-{replicas}", url, hook, "0s")
    Receiver.reset(delay=0)
    serves = [Serve(root) for _ in range(replicas)]
    cpu0 = [cpu_seconds(s.proc.pid) for s in serves]
    t0 = time.monotonic()
    try:
        done = wait_until(lambda: len({g[0] for g in Receiver.got}) >= n, timeout=600)
        wall = time.monotonic() - t0
        cpu = [(cpu_seconds(s.proc.pid) - c) / wall for s, c in zip(serves, cpu0, strict=True)]
        time.sleep(0.5)  # a straggling repeat would arrive now
    finally:
        for s in serves:
            s.stop()
    got = list(Receiver.got)
    times = sorted(t for _, _, t in got)
    per_notification = Counter(nid for nid, _, _ in got)
    with psycopg.connect(url) as conn:
        dup_attempts = conn.execute("SELECT count(*) FROM (SELECT notification_id FROM attempts "
                                    "GROUP BY notification_id HAVING count(*) > 1) d").fetchone()[0]
    span = times[-1] - times[0] if len(times) > 1 else float("nan")
    return {"replicas": replicas, "sent": len(per_notification), "done": done, "rate": (len(times) - 1) / span,
            "cpu": cpu, "dup_deliveries": sum(c - 1 for c in per_notification.values()),
            "dup_attempts": dup_attempts}


def bench_lag(tmp: Path, pg, hook: str, rate: float, seconds: float) -> dict:
    url = pg.create_database("lag")
    root = deployment(tmp / "lag", url, hook, "0s")
    Receiver.reset(delay=0)
    serves = [Serve(root, "--upgrade-store")]
    serves += [Serve(root) for _ in range(2)]
    payloads = bodies(records(), "lag", int(rate * seconds))
    posted: dict[str, float] = {}
    senders = 9  # one POST waits for its commit (fsync): paced posts from 9 threads (3 a replica, under its
    # server.max_concurrent_bodies of 4) keep `rate` going; a 503 is retried after its Retry-After

    def post(k: int, start: float) -> None:
        with httpx.Client(timeout=30, headers={"Content-Type": "application/json"}) as c:
            for i in range(k, len(payloads), senders):  # item i is due at start + i / rate, round-robin replicas
                wait = start + i / rate - time.perf_counter()
                if wait > 0:
                    time.sleep(wait)
                posted[f"lag-{i}#1"] = time.monotonic()  # the receiver's clock
                for _ in range(50):
                    r = c.post(serves[i % len(serves)].url + "/v1/outcomes", content=payloads[i])
                    if r.status_code != 503:
                        break
                    time.sleep(min(float(r.headers.get("Retry-After", "0.05") or 0.05), 0.2))
                assert r.status_code == 202 and r.json()["items"][0]["status"] == "matched", r.text

    cpu0 = [cpu_seconds(s.proc.pid) for s in serves] + [pg.cpu_seconds(), process_cpu()]
    try:
        start = time.perf_counter()
        threads = [threading.Thread(target=post, args=(k, start)) for k in range(senders)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        achieved = len(payloads) / (time.perf_counter() - start)
        wait_until(lambda: len({g[0] for g in Receiver.got}) >= len(payloads), timeout=120)
        wall = time.perf_counter() - start
        cpu1 = [cpu_seconds(s.proc.pid) for s in serves] + [pg.cpu_seconds(), process_cpu()]
    finally:
        for s in serves:
            s.stop()
    first: dict[str, float] = {}
    for nid, _, t in Receiver.got:
        first.setdefault(nid, t)
    lags = sorted(first[k] - posted[k] for k in first if k in posted)
    q = statistics.quantiles(lags, n=100)
    return {"n": len(payloads), "sent": len(lags), "p50": q[49], "p99": q[98], "max": lags[-1], "achieved": achieved,
            "cpu": [(b - a) / wall for a, b in zip(cpu0, cpu1, strict=True)]}


# ------------------------------------------------------------------------------------------------ report

GEN = """
INSERT INTO outcomes (id, raw, rev, received_at, occurred_at, decision, stage, role, status, state, updated_at)
SELECT 'o' || g, '{"id": "o' || g || '"}', 1, {t0} + g * 2.5, {t0} + g * 2.5 - 60, 'reject',
       (ARRAY['first_round', 'second_round', 'final'])[1 + g % 3], 'role-' || (g % 40), 'matched', 'active',
       {t0} + g * 2.5
FROM generate_series(1, {n}) g;
INSERT INTO notifications (id, outcome_id, outcome_rev, rule_id, ruleset_version, variant, template, locale, channels,
                           channel_count, channel, messages, send_at, state, sent_at, created_at, updated_at)
SELECT 'o' || g || '#1', 'o' || g, 1, 'rule-' || (g % 40), 'v' || (g % 3),
       CASE WHEN g % 40 < 8 THEN (ARRAY['a', 'b'])[1 + g % 2] END, 'reject/t', 'zh-CN', '["email"]', 1, 'email', '[]',
       {t0} + g * 2.5, CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'delivered' END, {t0} + g * 2.5 + 30,
       {t0} + g * 2.5, {t0} + g * 2.5 + 90
FROM generate_series(1, {n}) g;
INSERT INTO events (notification_id, outcome_id, kind, channel, at, detail, rule_id, ruleset_version, template, variant)
SELECT 'o' || g || '#1', 'o' || g,
       (ARRAY['queued', 'sent', CASE WHEN g % 50 = 0 THEN 'failed' ELSE 'delivered' END,
              CASE WHEN g % 5 < 3 THEN 'opened' ELSE 'clicked' END,
              CASE WHEN g % 7 = 0 THEN 'rated' WHEN g % 7 = 1 THEN 'late' ELSE 'replied' END])[k],
       'email', {t0} + g * 2.5 + k * 30,
       CASE WHEN k = 5 AND g % 7 = 0 THEN '{"score": ' || (1 + g % 5) || '}'
            WHEN k = 3 AND g % 50 = 0 THEN '{"reason": "550 mailbox unavailable"}' END,
       'rule-' || (g % 40), 'v' || (g % 3), 'reject/t', CASE WHEN g % 40 < 8 THEN (ARRAY['a', 'b'])[1 + g % 2] END
FROM generate_series(1, {n}) g, generate_series(1, {per}) k;
INSERT INTO report_facts (rule_id, ruleset_version, variant, notification_id, outcome_id, template, role, stage,
                          occurred_at, queued_at, channel, sent_at, sends, delivered_at, delivered_channel,
                          opened_at, clicked_at, replied_at, replies, rated_at, score, late, failed_at, failed_reason)
SELECT 'rule-' || (g % 40), 'v' || (g % 3), coalesce(CASE WHEN g % 40 < 8 THEN (ARRAY['a', 'b'])[1 + g % 2] END, ''),
       'o' || g || '#1', 'o' || g, 'reject/t', 'role-' || (g % 40),
       (ARRAY['first_round', 'second_round', 'final'])[1 + g % 3], {t0} + g * 2.5 - 60, {t0} + g * 2.5 + 30, 'email',
       {t0} + g * 2.5 + 60, 1, CASE WHEN g % 50 <> 0 THEN {t0} + g * 2.5 + 90 END,
       CASE WHEN g % 50 <> 0 THEN 'email' END,
       CASE WHEN g % 5 < 3 THEN {t0} + g * 2.5 + 120 END, CASE WHEN g % 5 >= 3 THEN {t0} + g * 2.5 + 120 END,
       CASE WHEN g % 7 > 1 THEN {t0} + g * 2.5 + 150 END, (g % 7 > 1)::int,
       CASE WHEN g % 7 = 0 THEN {t0} + g * 2.5 + 150 END, CASE WHEN g % 7 = 0 THEN 1 + g % 5 END, (g % 7 = 1)::int,
       CASE WHEN g % 50 = 0 THEN {t0} + g * 2.5 + 90 END, CASE WHEN g % 50 = 0 THEN '550 mailbox unavailable' END
FROM generate_series(1, {n}) g;
"""


def build_report_db(pg, n: int, per: int) -> tuple[str, float]:
    """`n` notifications with `per` events each and their report facts, loaded with SQL (the facts triggers off);
    returns the URL and the seconds it took. (The facts are generated beside the events they summarise: rebuilding
    them with BACKFILL takes minutes at this size and is not what is measured.)"""
    import psycopg

    from engine.store import open_store
    from engine.store.pg_report_facts import set_trigger

    url = pg.create_database("report")
    open_store(url).close()
    t = time.perf_counter()
    with psycopg.connect(url) as conn:
        set_trigger(conn, False)
        conn.execute(GEN.replace("{t0}", "1780000000").replace("{n}", str(n)).replace("{per}", str(per)))
        set_trigger(conn, True)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return url, time.perf_counter() - t


def bench_report(url: str, tmp: Path) -> dict:
    from engine.report import Filters, build_report

    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        rep = build_report(url, Filters())
        best = min(best, time.perf_counter() - t)
    t = time.perf_counter()
    r = subprocess.run([HERALD, "--store", url, "report"], cwd=tmp, capture_output=True, text=True)
    cli = time.perf_counter() - t
    assert r.returncode == 0, r.stderr
    return {"in_process": best, "cli": cli, "matched": rep.total.counts["matched"]}


def bench_claim(url: str, due: int = 200, rounds: int = 20) -> float:
    """Median seconds of claim_due(limit 10) with `due` notifications scheduled beside whatever the table holds."""
    import psycopg

    from engine.store import open_store

    with psycopg.connect(url) as conn:
        conn.execute("INSERT INTO outcomes (id, raw, received_at, status, updated_at) "
                     "SELECT 'q' || g, '{}', 0, 'matched', 0 FROM generate_series(1, %s) g", (due,))
        conn.execute("INSERT INTO notifications (id, outcome_id, outcome_rev, channels, channel_count, channel, "
                     "messages, send_at, next_attempt_at, state, created_at, updated_at) "
                     "SELECT 'q' || g || '#1', 'q' || g, 1, '[\"email\"]', 1, 'email', '[]', g, g, 'scheduled', 0, 0 "
                     "FROM generate_series(1, %s) g", (due,))
    times = []
    with open_store(url) as store:
        for _ in range(rounds):
            t = time.perf_counter()
            rows = store.claim_due(10_000.0, 10, "bench", 60)
            times.append(time.perf_counter() - t)
            assert len(rows) == 10
            with psycopg.connect(url) as conn:
                conn.execute("UPDATE notifications SET state = 'scheduled', lease_owner = NULL, lease_until = NULL "
                             "WHERE id LIKE 'q%%'")
    return statistics.median(times)


# -------------------------------------------------------------------------------------------------- main

def verdict(ok: bool) -> str:
    return "target met" if ok else "TARGET MISSED"


PARTS = ("intake", "dispatch", "lag", "report")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="a smaller run (about 2 minutes)")
    ap.add_argument("--only", action="append", choices=PARTS, metavar="PART",
                    help=f"run only this part (repeatable; one of {', '.join(PARTS)}; `--only lag` takes about a "
                         "minute); the others are left out of the table")
    ap.add_argument("--lag-seconds", type=float, default=None, help="how long the lag run posts (default 20, quick 5)")
    args = ap.parse_args()
    q = args.quick
    parts = set(args.only or PARTS)
    intake_n, disp_n, lag_s = (2000, 1000, 5.0) if q else (10_000, 4000, 20.0)
    lag_s = args.lag_seconds or lag_s
    rep_n = 100_000 if q else 1_000_000
    if pg_cluster.find_bin() is None:
        raise SystemExit("PostgreSQL (initdb, pg_ctl) is not installed: apt-get install postgresql")
    print(f"herald cluster benchmark ({os.cpu_count()} CPUs{', quick' if q else ''}; PostgreSQL {pg_cluster.find_bin()}, "
          f"fsync on; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())})", flush=True)
    pg = pg_cluster.start(durable=True)
    assert pg is not None
    rows = []
    intake = runs = lag = report = None
    try:
        with Serving(Sink) as sink, tempfile.TemporaryDirectory(prefix="herald-cluster-") as d:
            hook = sink.url
            tmp = Path(d)
            if "intake" in parts:
                intake = bench_intake(tmp, pg, hook, intake_n)
                print(f"intake done: {intake}", flush=True)
            if "dispatch" in parts:
                tmpl = ingest_template(tmp, pg, hook, disp_n)
                runs = [bench_dispatch(tmp, pg, hook, tmpl, disp_n, k) for k in (1, 2, 3)]
                print(f"dispatch done: {[round(r['rate']) for r in runs]}", flush=True)
            if "lag" in parts:
                lag = bench_lag(tmp, pg, hook, 200.0, lag_s)
                print(f"lag done: p99 {lag['p99']:.3f} s", flush=True)
            if "report" in parts:
                empty = pg.create_database("claim")
                from engine.store import open_store

                open_store(empty).close()
                claim_empty = bench_claim(empty)
                url, gen_s = build_report_db(pg, rep_n, 5)
                print(f"report data generated in {gen_s:.0f} s", flush=True)
                report = bench_report(url, tmp)
                claim_full = bench_claim(url)
    finally:
        pg.stop()
    if intake is not None:
        rows.append(("durable intake, batches of 100, SQLite (1 daemon)", f"{intake['sqlite']:,.0f} outcomes/s", "", ""))
        rows.append(("durable intake, batches of 100, PostgreSQL (1 replica)",
                     f"{intake['postgresql']:,.0f} outcomes/s", ">= 2,000/s", verdict(intake["postgresql"] >= 2000)))
        rows.append(("  PostgreSQL / SQLite", f"{intake['postgresql'] / intake['sqlite']:.2f}x", "", ""))
    if runs is not None:
        one = runs[0]["rate"]
        for r in runs:
            cpu = " ".join(f"{c * 100:.0f}%" for c in r["cpu"])
            rows.append((f"dispatch to a webhook sink, {r['replicas']} replica(s) ({r['sent']:,} sent)",
                         f"{r['rate']:,.0f} sends/s", "", f"CPU per replica: {cpu}"))
            if r["replicas"] > 1:
                rows.append((f"  {r['replicas']} replicas / 1", f"{r['rate'] / one:.2f}x",
                             ">= 0.8x" if r["replicas"] == 3 else "",
                             verdict(r["rate"] >= 0.8 * one) if r["replicas"] == 3 else ""))
        dups = sum(r["dup_deliveries"] + r["dup_attempts"] for r in runs)
        rows.append(("  duplicate claims (deliveries, attempts) over the 3 runs", f"{dups}", "0",
                     verdict(dups == 0 and all(r["done"] for r in runs))))
    if lag is not None:
        rows.append((f"dispatch lag at 200/s over 3 replicas ({lag['sent']:,} of {lag['n']:,}; posted at "
                     f"{lag['achieved']:.0f}/s): p50", f"{lag['p50'] * 1000:,.0f} ms", "", ""))
        rows.append(("  p99 (POST to delivery)", f"{lag['p99'] * 1000:,.0f} ms", "< 1 s",
                     verdict(lag["p99"] < 1.0 and lag["sent"] >= lag["n"])))
        rows.append(("  CPU over the lag run: replicas, PostgreSQL, this process (load and sink)",
                     " ".join(f"{c * 100:.0f}%" for c in lag["cpu"]), "", ""))
    if report is not None:
        rows.append((f"herald report, {rep_n:,} notifications / {rep_n * 5:,} events, in process",
                     f"{report['in_process']:.2f} s", "< 5 s", verdict(report["in_process"] < 5)))
        rows.append(("  the same as the command (`herald --store URL report`, the table)", f"{report['cli']:.2f} s",
                     "< 5 s", verdict(report["cli"] < 5)))
        rows.append(("claim of 10 due beside 0 finished notifications (median)", f"{claim_empty * 1000:.1f} ms", "",
                     ""))
        rows.append((f"claim of 10 due beside {rep_n:,} finished notifications", f"{claim_full * 1000:.1f} ms", "",
                     f"{claim_full / claim_empty:.2f}x the empty table"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure':<{width}}  {'value':>18}  {'target':<11}  result")
    for name, value, target, v in rows:
        print(f"{name:<{width}}  {value:>18}  {target:<11}  {v}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
