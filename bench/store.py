"""Store benchmark: durable accept_outcomes throughput (batches of 1 and 100) and claim/send throughput, printed."""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


from engine.model import Message
from engine.store import Accepted, PlannedNotification, SQLiteStore


def _items(prefix: str, n: int, now: float) -> list[Accepted]:
    note = PlannedNotification(channels=("dingtalk", "email"), send_at=now, rule="r", ruleset_version="v",
                               template="reject/generic",
                               messages=(Message("dingtalk", "您好," * 60), Message("email", "Hello " * 80, "Result")))
    return [Accepted(f"{prefix}-{i}", json.dumps({"id": f"{prefix}-{i}", "decision": "reject", "pad": "x" * 600}),
                     decision="reject", notification=note) for i in range(n)]


def bench_accept(store: SQLiteStore, batch: int, total: int) -> float:
    now = time.time()
    batches = [_items(f"b{batch}-{k}", batch, now) for k in range(total // batch)]
    start = time.perf_counter()
    for b in batches:
        store.accept_outcomes(b)
    return total / (time.perf_counter() - start)


def bench_dispatch(store: SQLiteStore, limit: int) -> tuple[float, int]:
    start, sent = time.perf_counter(), 0
    while True:
        rows = store.claim_due(time.time(), limit, "bench", 60)
        if not rows:
            break
        for n in rows:
            a = store.begin_attempt(n.id, n.channel, "outbox")
            store.mark_sent(n.id, provider_id=f"p-{n.id}", attempt_id=a.id)
            sent += 1
    return sent / (time.perf_counter() - start), sent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--total", type=int, default=20000, help="outcomes per batched run")
    ap.add_argument("--dir", default=None, help="where to put the database (default: a temporary directory)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as d, SQLiteStore(Path(d) / "bench.db") as store:
        print(f"store at {d} (synchronous=FULL, WAL)")
        print(f"accept, batches of 100: {bench_accept(store, 100, args.total):10,.0f} outcomes/s")
        print(f"accept, batches of 1:   {bench_accept(store, 1, min(args.total, 1000)):10,.0f} outcomes/s")
        rate, sent = bench_dispatch(store, 50)
        print(f"claim + begin_attempt + mark_sent: {rate:,.0f} notifications/s ({sent} sent, 3 commits each)")


if __name__ == "__main__":
    main()
