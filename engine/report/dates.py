"""Periods for the report: --since / --until as dates in a time zone (or exact RFC 3339 instants)."""
from __future__ import annotations

from datetime import date, datetime, time, timedelta, tzinfo, UTC
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

if TYPE_CHECKING:
    from engine.report.queries import Filters


def zone(name: str | None) -> tzinfo | None:
    """A tzinfo for `name` (an IANA zone, UTC, or "local" / None for this machine's zone); ValueError if unknown."""
    if not name or name == "local":
        return datetime.now().astimezone().tzinfo
    if name.upper() == "UTC":
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Asia/Shanghai)") from e


def zone_name(name: str | None) -> str:
    if name and name != "local":
        return name
    tz = datetime.now().astimezone().tzinfo
    return getattr(tz, "key", None) or datetime.now().astimezone().strftime("UTC%z")


def tz_offset(name: str | None, at: datetime | None = None) -> float:
    """Seconds east of UTC of the zone now (days of the time-to-notify chart start there; a DST zone is
    bucketed at its current offset)."""
    tz = zone(name)
    offset = (at or datetime.now(UTC)).astimezone(tz).utcoffset()
    return offset.total_seconds() if offset is not None else 0.0


def _instant(value: str, tz: tzinfo | None, end: bool) -> float:
    text = value.strip()
    try:
        d = date.fromisoformat(text)
    except ValueError:
        d = None
    if d is not None:  # a day: its start, or for `until` the start of the next day (the day is included)
        start = datetime.combine(d + timedelta(days=1) if end else d, time(0), tz)
        return start.timestamp()
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a date (YYYY-MM-DD) or an RFC 3339 time") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=tz)
    return dt.timestamp()


_FIRST, _LAST = 0.0, 253402214400.0  # 1970-01-01 .. 9999-12-31: the instants a report can show


def _bounded(name: str, value: str, tz: tzinfo | None, end: bool) -> float:
    """_instant(), its errors (and out-of-range dates) named after the parameter: `since: ...`."""
    try:
        at = _instant(value, tz, end)
    except (ValueError, OverflowError) as e:
        message = str(e) if isinstance(e, ValueError) else f"{value!r} is out of range"
        raise ValueError(f"{name}: {message}") from None
    if not _FIRST <= at <= _LAST:
        raise ValueError(f"{name}: {value!r} is out of range (1970-01-01 to 9999-12-31)")
    return at


def period(since: str | None, until: str | None, timezone_name: str | None) -> tuple[float | None, float | None]:
    """[since, until) in epoch seconds; a date for `until` includes that whole day."""
    tz = zone(timezone_name)
    lo = _bounded("since", since, tz, False) if since else None
    hi = _bounded("until", until, tz, True) if until else None
    if lo is not None and hi is not None and hi <= lo:
        raise ValueError("--until must come after --since")
    return lo, hi


def report_filters(since: str | None, until: str | None, rules: tuple = (), channel: str | None = None,
                   role: str | None = None, stage: str | None = None, timezone_name: str | None = "UTC") -> Filters:
    """Filters from dates (YYYY-MM-DD: the day's start in the time zone; --until includes its day) or RFC 3339."""
    from engine.report.queries import Filters

    lo, hi = period(since, until, timezone_name)
    return Filters(since=lo, until=hi, rules=tuple(r for r in rules if r), channel=channel or None,
                   role=role or None, stage=stage or None, tz_offset=tz_offset(timezone_name))
