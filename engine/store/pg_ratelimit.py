"""Provider send-rate limits shared by every replica on one PostgreSQL database (engine.channels.ratelimit's
RateLimiter interface): a row per key in `rate_limits` holds the send times of the last window and a
blocked-until time, read under a row lock and written in one transaction, so two replicas asking at once are
served one after the other and the limit holds for all of them together. The semantics are exactly those of
LocalRateLimiter (at most `limit` sends in any sliding `window`), the send times read from the database's clock
under the row lock (so they are in the order the slots were given), and so is a provider block (`block(key,
seconds, now)`: blocked until the database's now + seconds, compared with the database's clock by every
replica, so replicas whose clocks disagree still agree on it; the callers' `now` is not used). When the database
cannot be reached no slot is given (the send waits a second and is paced again), so an outage never lets a burst
through."""
from __future__ import annotations

from typing import Any

from engine.store.errors import StoreError

UNREACHABLE_WAIT = 1.0  # seconds a send waits when the limit cannot be read


class StoreRateLimiter:
    """At most `limit` sends per sliding `window` seconds per key, across every replica of the store."""

    def __init__(self, store: Any, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self.store, self.limit, self.window = store, limit, window

    def reserve(self, key: str, now: float) -> float:
        try:
            with self.store._write() as conn:
                conn.execute("INSERT INTO rate_limits (key) VALUES (%s) ON CONFLICT DO NOTHING", (key,))
                row = conn.execute("SELECT sent, blocked_until FROM rate_limits WHERE key = %s FOR UPDATE",
                                   (key,)).fetchone()
                # the send times are the database's clock read under the row lock: in the order the slots are
                # given, whatever the callers' clocks and however long each waited for the lock
                t = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8 AS t").fetchone()["t"]
                if t < row["blocked_until"]:
                    return float(row["blocked_until"] - t)
                sent = sorted(x for x in row["sent"] if t - x < self.window)
                wait = max(sent[0] + self.window - t, 0.001) if len(sent) >= self.limit else 0.0
                if not wait:
                    sent.append(t)
                conn.execute("UPDATE rate_limits SET sent = %s WHERE key = %s", (sent, key))
                return wait
        except StoreError:
            return UNREACHABLE_WAIT

    def block(self, key: str, seconds: float, now: float) -> None:
        try:
            with self.store._write() as conn:
                conn.execute("INSERT INTO rate_limits (key, blocked_until) "
                             "VALUES (%s, extract(epoch FROM clock_timestamp())::float8 + %s) ON CONFLICT (key) DO UPDATE "
                             "SET blocked_until = GREATEST(rate_limits.blocked_until, EXCLUDED.blocked_until)",
                             (key, float(seconds)))
        except StoreError:
            pass  # the provider's own penalty still applies; the next reserve() waits while unreachable
