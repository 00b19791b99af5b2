"""The daemon's clock: real time, or time running N times faster from a start instant (for demos and tests);
published beside the store so that CLI commands on the same store use the same time."""
from __future__ import annotations

import contextlib
import json
import os
import time
from datetime import UTC, datetime
from pathlib import Path


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


# ------------------------------------------------------------------- the daemon's clock, shared with the CLI

def clock_file(store_path: Path) -> Path:
    """Where a daemon with its own clock (--time-scale, --start-at) publishes it: beside its SQLite store."""
    return store_path.with_name(store_path.name + ".clock")


def publish_clock(store_path: Path, clock: Clock) -> Path | None:
    """Writes the daemon's clock beside the store (pid, scale, and one instant with the wall time it was read),
    so that CLI commands on the same store read the same time; None (nothing written) for the wall clock."""
    if isinstance(clock, RealClock):
        return None
    path = clock_file(store_path)
    data = {"pid": os.getpid(), "scale": clock.scale, "at": clock.now(), "real": time.time()}
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)
    return path


def withdraw_clock(path: Path | None) -> None:
    """Removes a published clock (the daemon stops)."""
    if path is not None:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def store_clock(store_path: Path | str | None) -> Clock:
    """The clock for commands that read or write a store: the running daemon's when it published one (time
    scaled or shifted), else the wall clock. A clock left by a daemon that died is ignored."""
    if store_path is None:
        return RealClock()
    try:
        data = json.loads(clock_file(Path(store_path)).read_text())
        pid, scale, at, real = int(data["pid"]), float(data["scale"]), float(data["at"]), float(data["real"])
    except (OSError, ValueError, KeyError, TypeError):
        return RealClock()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return RealClock()
    except PermissionError:
        pass  # alive, another user's
    if not scale > 0:
        return RealClock()
    return Clock(scale, at + (time.time() - real) * scale)
