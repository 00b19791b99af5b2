"""Scheduling: durations, send windows, holiday calendars, time zones, the send schedule, and the daemon's clock.

The names other packages use are exported here (`__all__`) and imported from their submodule on first use
(engine/exports.py): importing one submodule does not import its siblings, so the CLI's lazy imports stay cheap.
"""
from __future__ import annotations

from typing import Any

from engine.exports import exported, resolve

_EXPORTS = {
    "clock": ("Clock", "RealClock", "make_clock", "publish_clock", "store_clock", "withdraw_clock"),
    "timing": ("Scheduler", "check_timezone", "for_candidate", "in_window", "load_timezone", "next_open",
               "parse_duration", "parse_instant", "parse_instant_text", "parse_window", "windows_for"),
}
__all__ = exported(_EXPORTS)


def __getattr__(name: str) -> Any:
    return resolve(__name__, _EXPORTS, name)
