"""The daemon's clock: real time, or time running N times faster from a start instant (for demos and tests)."""
from __future__ import annotations

import time
from datetime import datetime, UTC


class Clock:
    """`now()` in epoch seconds; with scale N, N seconds pass for every real second from the start instant.

    Every time the daemon reads (intake, scheduling, claims, attempts, events) comes from one Clock, so a
    scaled run is consistent: a message due in two hours goes out after 12 real seconds at scale 600.
    Durations the daemon waits for in real time (sleeps, leases) are converted with `real()` / `virtual()`.
    """

    def __init__(self, scale: float = 1.0, start: float | None = None):
        if not scale > 0:
            raise ValueError(f"time scale must be positive, got {scale!r}")
        self.scale = float(scale)
        self._mono0 = time.monotonic()
        self._start = time.time() if start is None else float(start)

    @property
    def scaled(self) -> bool:
        return self.scale != 1.0

    def now(self) -> float:
        """The current instant (epoch seconds)."""
        return self._start + (time.monotonic() - self._mono0) * self.scale

    def now_dt(self) -> datetime:
        """The current instant as an aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), UTC)

    def real(self, seconds: float) -> float:
        """Real seconds that `seconds` of clock time take."""
        return seconds / self.scale

    def virtual(self, seconds: float) -> float:
        """Clock seconds that pass in `seconds` of real time."""
        return seconds * self.scale


class RealClock(Clock):
    """Wall-clock time (time.time()), scale 1."""

    def __init__(self) -> None:
        super().__init__(1.0, 0.0)

    def now(self) -> float:
        return time.time()


def make_clock(scale: float = 1.0, start: float | None = None) -> Clock:
    """RealClock for scale 1 without a start instant, else a scaled Clock."""
    if scale == 1.0 and start is None:
        return RealClock()
    return Clock(scale, start)
