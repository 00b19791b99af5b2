"""Send-rate limits a provider enforces per sender (a DingTalk robot: 20 a minute, 10 minutes' penalty past it).

A `RateLimiter` is asked before each send (`reserve`) and told when the provider refused for speed (`block`).
Its keys name the limited sender, never a secret (`limit_key` hashes a token). `LocalRateLimiter` holds the
state in this process: every transport of the same sender shares it (HR alerts of every kind, notifications on
a robot channel, and the transport built anew after a reload), so the limit holds across them. Across replicas
on PostgreSQL the same two calls are backed by the store (engine/store/pg_ratelimit.py: a row per key with the send
times of the last window and the blocked-until time, read and written in one transaction), handed to the transport
by build_transport; nothing else changes then.
"""
from __future__ import annotations

import hashlib
import threading
from collections import deque
from typing import Protocol


class RateLimiter(Protocol):
    """Paces sends per key; thread-safe. Times are seconds on the caller's clock."""

    def reserve(self, key: str, now: float) -> float:
        """0.0 when a send may go now (its slot is taken); else the seconds to wait (nothing is taken)."""
        ...

    def block(self, key: str, seconds: float, now: float) -> None:
        """The provider refused for speed: no send on `key` for `seconds` from `now` (a limiter shared by replicas
        counts them from its own clock, the database's, so every replica agrees on the end)."""
        ...


def limit_key(kind: str, token: str) -> str:
    """A key naming one sender without holding its token (keys may be logged or stored)."""
    return f"{kind}:{hashlib.sha256(token.encode('utf-8')).hexdigest()[:16]}"


class LocalRateLimiter:
    """At most `limit` sends per sliding `window` seconds per key, and provider blocks, in this process."""

    def __init__(self, limit: int, window: float) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a rate limit needs limit >= 1 and window > 0")
        self.limit, self.window = limit, window
        self._lock = threading.Lock()
        self._sent: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}

    def reserve(self, key: str, now: float) -> float:
        with self._lock:
            until = self._blocked.get(key, 0.0)
            if now < until:
                return until - now
            sent = self._sent.setdefault(key, deque())
            while sent and now - sent[0] >= self.window:
                sent.popleft()
            if len(sent) >= self.limit:
                return max(sent[0] + self.window - now, 0.001)
            sent.append(now)
            return 0.0

    def block(self, key: str, seconds: float, now: float) -> None:
        with self._lock:
            self._blocked[key] = max(self._blocked.get(key, 0.0), now + seconds)
