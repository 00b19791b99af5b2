"""Console benchmark: each /console page and each /v1 list endpoint of the desk, timed against a real daemon over a SQLite store
holding 1,000,000 notifications and 5,000,000 events (target: p99 < 200 ms per page).

The store is bulk-loaded as bench/report.py loads it (executemany with sqlite3 directly, indexes rebuilt after),
plus 10,000 held outcomes, 10,000 unmatched ones, 10,000 dead letters (the desk's queues) and 10,000 audit entries. A daemon runs on
that store in this process (its clock set inside the generated period, sending paused so it only serves), and
each page is fetched `--repeat` times over loopback HTTP: the figures are wall times seen by the client, an upper
bound of the server's time. The console has no accounts here (loopback), so no sign-in is needed.

    .venv/bin/python bench/console.py [--notifications N --events N] [--db PATH --keep | --reuse]
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
from starlette.routing import compile_path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import DAY, T0, build

TARGET_MS = 200.0
EXTRA = 10_000  # held outcomes, unmatched outcomes and dead letters each
RULES = """version: 1
defaults: {locale: zh-CN, timezone: Asia/Shanghai, channels: [email], timing: {delay: 0s}}
rules:
  - id: rule-00-backend
    match: {decision: reject}
    template: reject/generic
"""
TEMPLATE = """{# herald: decisions=[reject, pass, offer, hold] #}
{% block subject %}面试结果{% endblock %}
{% block email %}{{ candidate.name }}您好，感谢您参加面试。{% endblock %}
{% block sms %}{{ candidate.name }}您好，感谢您参加面试。{% endblock %}
{% block dingtalk %}{{ candidate.name }}您好，感谢您参加面试。{% endblock %}
{% block webhook %}{{ candidate.name }}您好。{% endblock %}
"""


def add_queues(path: Path, n: int) -> None:
    """Held and unmatched outcomes and dead letters, spread over the same period."""
    conn = sqlite3.connect(str(path), isolation_level=None)
    conn.execute("BEGIN")
    ins = ("INSERT INTO outcomes (id, raw, received_at, occurred_at, decision, stage, role, reason, approved, "
           "approved_at, status, source, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,'http',?)")
    rows = []
    for i in range(n):
        at = T0 + 90 * DAY * i / n
        for kind, approved in (("held", 0), ("unmatched", 1)):
            oid = f"{kind}-{i:06d}"
            raw = (f'{{"id":"{oid}","decision":"reject","stage":"first_round","role":"backend",'
                   f'"candidate":{{"name":"候选人{i}","email":"c{i}@example.com"}}}}')
            rows.append((oid, raw, at, at, "reject", "first_round", "backend", None, approved,
                         None if not approved else at, kind, at))
    conn.executemany(ins, rows)
    conn.executemany("INSERT INTO dead_letters (received_at, source, reason, field, raw, remote) VALUES (?,?,?,?,?,?)",
                     [(T0 + 90 * DAY * i / n, "http", "decision: 'maybe' is not one of ['pass', 'reject']",
                       "decision", b'{"id":"x","decision":"maybe"}', "127.0.0.1") for i in range(n)])
    conn.executemany("INSERT INTO audit_log (at, actor, action, outcome_id, notification_id, reason) "
                     "VALUES (?,?,?,?,?,?)", [(T0 + 90 * DAY * i / n, "li.wei", ("approve", "cancel", "send_now")[i % 3],
                                                f"ats-{i:07d}", f"ats-{i:07d}#1", "bench") for i in range(n)])
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    conn.close()


def deployment(root: Path, db: Path) -> Path:
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "templates" / "reject").mkdir(parents=True, exist_ok=True)
    (root / "rules" / "10.yaml").write_text(RULES)
    (root / "templates" / "reject" / "generic.j2").write_text(TEMPLATE)
    (root / "herald.yaml").write_text(f"store: {{path: {db}}}\noutbox: outbox\ntracking: {{timezone: Asia/Shanghai}}\n"
                                      "channels:\n  email: {transport: outbox}\n  sms: {transport: outbox}\n"
                                      "  dingtalk: {transport: outbox}\n")
    return root


def pages(notifications: int) -> list[str]:
    mid = notifications // 2
    return ["/console/today", "/console/approvals", "/console/unmatched", "/console/dead-letters",
            "/console/dead-letters/5000", f"/console/candidates?q=ats-{mid:07d}", f"/console/candidates?q=%2B86138{mid:08d}",
            "/console/candidates?q=c5000%40example.com", f"/console/candidates/ats-{mid:07d}", "/console/replies",
            "/console/rules", "/console/preview?rule=rule-00-backend&outcome=held-005000", "/console/report",
            "/console/report/view", "/console/unmatched?outcome=unmatched-005000&rule=rule-00-backend"]


def api_lists(notifications: int, now: float) -> list[str]:
    """The desk's /v1 list endpoints, each with the filters the CLI uses (today's queue, the failures of the
    week, a candidate by id, phone and e-mail), and a candidate's history."""
    mid = notifications // 2
    day = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(now))
    week = time.strftime("%Y-%m-%dT00:00:00Z", time.gmtime(now - 6 * DAY))
    return ["/v1/held", "/v1/unmatched", "/v1/dead-letters", "/v1/queue", "/v1/queue?today=true",
            f"/v1/queue?state=failed&since={week}&until={day}", "/v1/queue?state=scheduled&state=sending",
            f"/v1/candidates?q=ats-{mid:07d}", f"/v1/candidates?q=%2B86138{mid:08d}",
            "/v1/candidates?q=c5000%40example.com", f"/v1/history/ats-{mid:07d}", "/v1/inbox", "/v1/audit",
            "/v1/audit?action=approve", "/v1/pauses", "/v1/outcomes/held-005000/preview"]


def check_covered(client: httpx.Client, paths: list[str]) -> None:
    """Every GET endpoint of the desk in the daemon's OpenAPI document is timed (a new one cannot be missed)."""
    doc = client.get("/openapi.json").json()
    timed = {p.split("?")[0] for p in paths}
    for path, ops in doc.get("paths", {}).items():
        if "get" not in ops or "desk" not in ops["get"].get("tags", []):
            continue
        assert any(template_matches(path, t) for t in timed), f"not timed: {path}"


def template_matches(template: str, path: str) -> bool:
    """Whether `path` is an instance of the OpenAPI path `template` (each `{name}` one whole segment), as the
    daemon's router (Starlette's compile_path) matches it: `/v1/notifications/x` is one of
    `/v1/notifications/{id}`, not of `/v1/notifications/{id}/events`."""
    return compile_path(template)[0].match(path) is not None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--notifications", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--db", type=Path)
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--reuse", action="store_true")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="herald-bench-console-"))
    db = args.db or work / "herald.db"
    if not (args.reuse and db.exists()):
        if db.exists():
            db.unlink()
        t = time.perf_counter()
        counts = build(db, args.notifications, args.events)
        add_queues(db, EXTRA)
        print(f"store: {counts['notifications']:,} notifications, {counts['events']:,} events, "
              f"{counts['replies']:,} replies, {EXTRA:,} held, {EXTRA:,} unmatched, {EXTRA:,} dead letters "
              f"(built in {time.perf_counter() - t:.0f} s)")
    from engine.config.deployment import load_deployment
    from engine.daemon import Daemon

    root = deployment(work / "site", db)
    dep = load_deployment([str(root)])
    assert dep.ok, [d.format() for d in dep.diagnostics]
    now = T0 + 60 * DAY + 11 * 3600  # a working day inside the period
    daemon = Daemon(dep, paths=[str(root)], host="127.0.0.1", port=0, start_at=now, watch=False)
    daemon.runtime.store.pause_sending(None, "bench", "the benchmark only reads")
    daemon.start()
    rows = []
    try:
        with httpx.Client(base_url=daemon.url, timeout=120) as client:
            apis = api_lists(args.notifications, now)
            check_covered(client, apis)
            for path in pages(args.notifications) + apis:
                first = client.get(path)
                assert first.status_code == 200, (path, first.status_code, first.text[:300])
                times = []
                for _ in range(args.repeat):
                    t = time.perf_counter()
                    r = client.get(path)
                    times.append((time.perf_counter() - t) * 1000)
                    assert r.status_code == 200
                times.sort()
                p99 = times[min(len(times) - 1, round(0.99 * (len(times) - 1)))]
                rows.append((path, statistics.median(times), p99))
    finally:
        daemon.shutdown()
    print(f"\n| page or endpoint | p50 ms | p99 ms | < {TARGET_MS:.0f} ms |\n|---|---:|---:|---|")
    for path, p50, p99 in rows:
        print(f"| `{path}` | {p50:.1f} | {p99:.1f} | {'yes' if p99 < TARGET_MS else 'NO'} |")
    missed = [p for p, _, p99 in rows if p99 >= TARGET_MS]
    print("\ntarget met" if not missed else f"\nTARGET MISSED on {len(missed)}: {', '.join(missed)}")
    if not args.keep and args.db is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
