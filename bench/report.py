"""Report benchmark: `herald report` over 1,000,000 notifications and 5,000,000 events in SQLite (target < 5 s).

Builds a freshly migrated store file (herald's migrations plus engine/store/migrations_tracking.py: report_facts and its
triggers), bulk-loads synthetic outcomes, notifications, events and replies with sqlite3 directly (executemany in
one transaction; the store's secondary indexes dropped during the load and rebuilt after, as a restore would; the
report_facts triggers stay on, so the facts are kept exactly as the daemon's writes keep them), then times:

- baselines: a bare `SELECT count(*) FROM events` and one GROUP BY over events (kind);
- the in-process report (engine.report.build_report) with no filter and with a role filter;
- the CLI (`herald report --store ... --format json`) as a subprocess, Python start-up included.

The data is seeded: two runs build the same store. `--db PATH --keep` keeps the file to re-run the timings
without rebuilding (`--reuse`).
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from engine.store.migrations import MIGRATIONS, migrate
from engine.store import migrations_tracking

ROOT = Path(__file__).resolve().parent.parent

DAY = 86400.0
T0 = 1_790_000_000.0  # 2026-09-21: the first outcome
ROLES = ("backend", "frontend", "data", "qa", "sales", "product", "finance", "hr")
STAGES = ("phone_screen", "first_round", "second_round", "final")
REASONS = ("lacks_project_experience", "skills_gap", "culture_fit", "position_filled", "other")
CHANNEL_SETS = (("dingtalk", "email"), ("sms", "email"), ("email",), ("dingtalk", "sms", "email"))
VERSIONS = ("3f2a9c1d0b7e", "8d41e0aa55c2", "c09b7f3e1a64")  # three rule-set versions over the period
FAIL_REASONS = ("email: 550 mailbox unavailable", "sms: isv.MOBILE_NUMBER_ILLEGAL",
                "dingtalk: 143106 same content sent today", "undelivered on the last channel")


def make_rules(n: int = 40) -> list[tuple]:
    """(rule id, channels, variants or None, deadline seconds, weight): a skewed mix, a few rules with variants."""
    rng = random.Random(7)
    rules = []
    for i in range(n):
        variants = (f"reject/r{i}-warm", f"reject/r{i}-brief") if i % 8 == 0 else None
        rules.append((f"rule-{i:02d}-{rng.choice(ROLES)}", CHANNEL_SETS[i % len(CHANNEL_SETS)], variants,
                      rng.choice((4, 8, 24, 48)) * 3600.0, 1.0 / (1 + i) ** 0.8))
    return rules


MESSAGE = json.dumps([{"channel": "email", "subject": "关于您应聘后端开发工程师的面试结果",
                       "body": "张伟您好,感谢您参加后端开发工程师的面试。" * 12}], ensure_ascii=False)


def generate(conn: sqlite3.Connection, notifications: int, events: int, seed: int = 1) -> dict:
    """Bulk-loads the synthetic data; returns the counts."""
    rng = random.Random(seed)
    rules = make_rules()
    weights = [r[4] for r in rules]
    span = 90 * DAY
    outcomes: list[tuple] = []
    notes: list[tuple] = []
    evs: list[tuple] = []
    replies: list[tuple] = []
    n_events = 0
    ins_o = ("INSERT INTO outcomes (id, raw, received_at, occurred_at, decision, stage, role, reason, approved, "
             "approved_at, status, source, updated_at) VALUES (?,?,?,?,?,?,?,?,1,?,?,'http',?)")
    ins_n = ("INSERT INTO notifications (id, outcome_id, outcome_rev, rule_id, ruleset_version, variant, template, "
             "locale, channels, channel_count, channel_index, channel, messages, send_at, deadline_at, state, late, "
             "sent_at, delivered_at, read_at, last_error, created_at, updated_at) "
             "VALUES (?,?,1,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
    ins_e = ("INSERT INTO events (notification_id, outcome_id, kind, channel, at, detail, rule_id, ruleset_version, "
             "template, variant) VALUES (?,?,?,?,?,?,?,?,?,?)")
    ins_r = "INSERT INTO replies (notification_id, channel, at, content, handled_at) VALUES (?,?,?,?,?)"
    chosen = rng.choices(range(len(rules)), weights, k=notifications)
    budget = events - notifications  # every notification has its 'queued' event
    per_note = budget / notifications
    for i in range(notifications):
        rid, channels, variants, deadline, _w = rules[chosen[i]]
        oid = f"ats-{i:07d}"
        nid = f"{oid}#1"
        occurred = T0 + span * i / notifications + rng.random() * 600
        created = occurred + 5 + rng.random() * 60
        version = VERSIONS[min(int(3 * i / notifications), 2)]
        variant = variants[rng.random() < 0.5] if variants else None
        template = variant or "reject/generic"
        role, stage = ROLES[i % len(ROLES)], STAGES[(i // 3) % len(STAGES)]
        outcomes.append((oid, f'{{"id":"{oid}","decision":"reject","candidate":{{"phone":"+86138{i:08d}"}}}}',
                         created, occurred, "reject", stage, role, REASONS[i % 5], created, "matched", created))
        keys = (nid, oid)
        tail = (rid, version, template, variant)
        mine = [(*keys, "queued", channels[0], created, None, *tail)]
        idx, state, late, sent_at, delivered_at, read_at, error = 0, "scheduled", 0, None, None, None, None
        # the funnel, tuned so a notification averages per_note further events
        if rng.random() < 0.97:
            t = created + rng.lognormvariate(8.3, 1.0)  # median ~ 67 min after queueing
            sent_at, state = t, "sent"
            ch = channels[0]
            mine.append((*keys, "sent", ch, t, None, *tail))
            if t - occurred > deadline:
                late = 1
                mine.append((*keys, "late", ch, t, None, *tail))
            if len(channels) > 1 and rng.random() < 0.08:  # undelivered: fall back to the next channel
                mine.append((*keys, "undelivered", ch, t + 30, None, *tail))
                idx, ch = 1, channels[1]
                t += 60 + rng.random() * 600
                mine.append((*keys, "escalated", ch, t, '{"to_index":1,"reason":"undelivered"}', *tail))
                mine.append((*keys, "sent", ch, t, None, *tail))
                sent_at = t
            if rng.random() < 0.93:
                t += 1 + rng.random() * 120
                delivered_at, state = t, "delivered"
                mine.append((*keys, "delivered", ch, t, None, *tail))
                if ch == "dingtalk" and rng.random() < 0.7:
                    t += rng.random() * 7200
                    read_at, state = t, "read"
                    mine.append((*keys, "read", ch, t, None, *tail))
                elif ch == "email" and rng.random() < 0.55:
                    t += rng.random() * 7200
                    mine.append((*keys, "opened", ch, t, None, *tail))
                if rng.random() < 0.14 + (0.06 if variant and variant.endswith("warm") else 0):
                    mine.append((*keys, "clicked", ch, t + 30, None, *tail))
                if rng.random() < 0.09:
                    score = rng.choice((3, 4, 4, 5, 5, 5))
                    mine.append((*keys, "rated", ch, t + 90, f'{{"score":{score}}}', *tail))
                if rng.random() < 0.07:
                    at = t + 600
                    replies.append((nid, ch, at, "请问可以得到更多反馈吗?", at + 3600 if rng.random() < 0.8 else None))
                    mine.append((*keys, "replied", ch, at, f'{{"reply_id":{len(replies)}}}', *tail))
            elif rng.random() < 0.5:
                state, error = "failed", rng.choice(FAIL_REASONS)
                mine.append((*keys, "failed", None, t + 300, f'{{"reason":"{error}"}}', *tail))
        else:
            state = "cancelled"
            mine.append((*keys, "cancelled", None, created + 60, '{"reason":"withdrawn"}', *tail))
        # top up (extra opens/clicks/receipt polls) so the store holds exactly `events` events
        want = int(per_note * (i + 1)) + (i + 1) - n_events - len(mine)
        while want > 0 and sent_at is not None:
            mine.append((*keys, rng.choice(("clicked", "delivered", "opened")), channels[idx], sent_at + 3600,
                         None, *tail))
            want -= 1
        while want < 0 and len(mine) > 1 and mine[-1][2] in ("clicked", "opened", "rated", "replied", "read"):
            mine.pop()
            want += 1
        n_events += len(mine)
        evs.extend(mine)
        notes.append((nid, oid, rid, version, variant, template, "zh-CN", json.dumps(channels), len(channels), idx,
                      channels[idx], MESSAGE, created, occurred + deadline, state, late, sent_at, delivered_at,
                      read_at, error, created, created))
        if len(evs) >= 200_000:
            conn.executemany(ins_o, outcomes)
            conn.executemany(ins_n, notes)
            conn.executemany(ins_e, evs)
            outcomes, notes, evs = [], [], []
    conn.executemany(ins_o, outcomes)
    conn.executemany(ins_n, notes)
    conn.executemany(ins_e, evs)
    conn.executemany(ins_r, replies)
    return {"notifications": notifications, "events": n_events, "replies": len(replies)}


def build(path: Path, notifications: int, events: int) -> dict:
    """A freshly migrated store at `path`, bulk-loaded; secondary indexes rebuilt after the load."""
    from sqlite_utils import Database

    conn = sqlite3.connect(str(path), isolation_level=None)
    migrate(Database(conn), MIGRATIONS)
    migrations_tracking.apply(conn)
    indexes = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                           "AND tbl_name IN ('outcomes', 'notifications', 'events', 'replies')").fetchall()
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA cache_size = -400000")
    for name, _sql in indexes:
        conn.execute(f"DROP INDEX {name}")
    conn.execute("BEGIN")
    counts = generate(conn, notifications, events)
    conn.execute("COMMIT")
    for _name, sql in indexes:
        conn.execute(sql)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.close()
    return counts


def timed(fn, repeat: int = 3) -> tuple[float, float]:
    """(first run, best run) in seconds."""
    runs = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return runs[0], min(runs)


def trigger_cost(n: int) -> tuple[float, float]:
    """Seconds to insert n events (5 per notification) with the report_facts triggers off, then on (WAL,
    synchronous OFF: the CPU cost alone; the store's own commits add an fsync each)."""
    from sqlite_utils import Database

    out = []
    with tempfile.TemporaryDirectory() as d:
        for on in (False, True):
            conn = sqlite3.connect(str(Path(d) / f"t{on}.db"), isolation_level=None)
            conn.execute("PRAGMA journal_mode = WAL")  # as the store runs (statement journals: see README)
            migrate(Database(conn), MIGRATIONS)
            migrations_tracking.apply(conn)
            if not on:
                migrations_tracking.drop_triggers(conn)
            conn.execute("PRAGMA synchronous = OFF")
            notes = n // 5
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO outcomes (id, raw, received_at, status, updated_at) VALUES (?, '{}', 0, "
                             "'matched', 0)", ((f"o{i}",) for i in range(notes)))
            conn.executemany("INSERT INTO notifications (id, outcome_id, outcome_rev, rule_id, channels, "
                             "channel_count, channel, messages, send_at, state, created_at, updated_at) VALUES "
                             "(?, ?, 1, 'r', '[\"email\"]', 1, 'email', '[]', 0, 'sent', 0, 0)",
                             ((f"o{i}#1", f"o{i}") for i in range(notes)))
            conn.execute("COMMIT")
            kinds = ("queued", "sent", "delivered", "opened", "clicked")
            rows = [(f"o{i}#1", f"o{i}", k, "email", float(j), "r") for i in range(notes) for j, k in enumerate(kinds)]
            t = time.perf_counter()
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events (notification_id, outcome_id, kind, channel, at, rule_id) "
                             "VALUES (?, ?, ?, ?, ?, ?)", rows)
            conn.execute("COMMIT")
            out.append(time.perf_counter() - t)
            conn.close()
    return out[0], out[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--notifications", type=int, default=1_000_000)
    ap.add_argument("--events", type=int, default=5_000_000)
    ap.add_argument("--db", default=None, help="store file (default: in a temporary directory)")
    ap.add_argument("--reuse", action="store_true", help="use --db as it is, do not rebuild it")
    ap.add_argument("--keep", action="store_true", help="keep --db afterwards")
    ap.add_argument("--trigger-cost", type=int, default=200_000, metavar="N",
                    help="also time N event inserts with and without the report_facts triggers (0: skip)")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    path = Path(args.db) if args.db else Path(tmp.name) / "report-bench.db"
    if not (args.reuse and path.exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        t = time.perf_counter()
        counts = build(path, args.notifications, args.events)
        print(f"built {path} in {time.perf_counter() - t:.1f} s: {counts['notifications']:,} notifications, "
              f"{counts['events']:,} events, {counts['replies']:,} replies, "
              f"{path.stat().st_size / 1e6:,.0f} MB")

    from engine.report import Filters, build_report

    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    _, base_count = timed(lambda: conn.execute("SELECT count(*) FROM events").fetchone())
    _, base_group = timed(lambda: conn.execute("SELECT kind, count(*) FROM events GROUP BY kind").fetchall())
    conn.close()
    first, best = timed(lambda: build_report(path, Filters()))
    _, table_only = timed(lambda: build_report(path, Filters(), with_days=False))
    _, role_s = timed(lambda: build_report(path, Filters(role="backend")))
    herald = str(Path(sys.executable).with_name("herald"))
    cli = {}
    for fmt in ("table", "html"):
        cmd = [herald, "report", "--store", str(path), "--format", fmt, "--output", os.devnull]
        cli[fmt] = timed(lambda cmd=cmd: subprocess.run(cmd, check=True, stderr=subprocess.DEVNULL), repeat=2)

    rep = build_report(path, Filters())
    print(f"baseline SELECT count(*) FROM events:              {base_count:6.3f} s")
    print(f"baseline SELECT kind, count(*) GROUP BY kind:      {base_group:6.3f} s")
    print(f"report in process (build_report), first run:       {first:6.3f} s")
    print(f"report in process, best of 3:                      {best:6.3f} s   x{best / base_count:.0f} count(*), "
          f"x{best / base_group:.1f} GROUP BY kind")
    print(f"report in process, without the per-day series:     {table_only:6.3f} s   (table, csv)")
    print(f"report in process, --role backend:                 {role_s:6.3f} s")
    for fmt, (c_first, c_best) in cli.items():
        print(f"herald report --format {fmt:<5} (subprocess):      {c_best:6.3f} s   first {c_first:.3f} s; "
              f"target < 5 s: {'met' if max(c_first, c_best) < 5 else 'MISSED'}")
    print(f"report covers {rep.total.counts['matched']:,} notifications, {len(rep.rows)} rule/version/variant rows, "
          f"{len(rep.rules)} rules, {len(rep.days)} days")
    if args.trigger_cost:
        off, on = trigger_cost(args.trigger_cost)
        print(f"write cost of the report_facts triggers: {args.trigger_cost:,} event inserts in {off:.2f} s without, "
              f"{on:.2f} s with ({(on - off) / args.trigger_cost * 1e6:.1f} us more per event)")
    if args.keep:
        print(f"kept {path}")
    elif args.db:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
    tmp.cleanup()


if __name__ == "__main__":
    main()
