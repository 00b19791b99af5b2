"""Tests for engine.schedule.timing: durations, hours, windows, holiday calendars, DST, next_open and schedule."""
from __future__ import annotations

from datetime import date, datetime, timedelta, UTC
from zoneinfo import ZoneInfo

import holidays
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.model import Timing, Window
from engine.schedule.timing import (
    steady_offset,
    Schedule, check_holidays, check_timezone, format_duration, in_window, is_open_day, load_timezone,
    next_open, parse_duration, parse_hours, parse_instant, parse_window, schedule,
)

UTC = UTC
SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
LH = ZoneInfo("Australia/Lord_Howe")
MINUTE = timedelta(minutes=1)


def at(text: str) -> datetime:
    got = parse_instant(text)
    assert got is not None, text
    return got


def utc(t: datetime | None) -> datetime | None:
    """In UTC: equality of aware datetimes across zones is always False inside a DST fold (PEP 495)."""
    return t.astimezone(UTC) if t is not None else None


def window(spec: dict, name: str = "w") -> Window:
    got, errors = parse_window(name, spec)
    assert not errors, errors
    assert got is not None
    return got


BUSINESS = {"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-18:00", "holidays": "CN"}

# ---------------------------------------------------------------- durations


@pytest.mark.parametrize("text, expected", [
    ("90s", timedelta(seconds=90)),
    ("30m", timedelta(minutes=30)),
    ("2h", timedelta(hours=2)),
    ("3d", timedelta(days=3)),
    ("1h30m", timedelta(hours=1, minutes=30)),
    ("1d2h", timedelta(days=1, hours=2)),
    ("1d2h3m4s", timedelta(days=1, hours=2, minutes=3, seconds=4)),
    ("0s", timedelta(0)),
    ("0m", timedelta(0)),
    ("1h90m", timedelta(hours=2, minutes=30)),
    ("007m", timedelta(minutes=7)),
])
def test_duration_valid(text, expected):
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", [
    "", " ", "1", "h", "2H", "1.5h", "-1h", "+1h", "1h 30m", " 1h", "1h ", "30m1h", "1h1h", "1m1d",
    "1w", "1y", "1ms", "1 h", "1h30", "１h", "99999999999999d", None, 5, 2.0, True, ["1h"],
])
def test_duration_invalid(text):
    assert parse_duration(text) is None


@pytest.mark.parametrize("td, text", [
    (timedelta(0), "0s"), (timedelta(seconds=90), "1m30s"), (timedelta(hours=1, minutes=30), "1h30m"),
    (timedelta(days=2), "2d"), (timedelta(days=1, seconds=1), "1d1s"), (timedelta(hours=-2), "-2h"),
    (timedelta(seconds=59, microseconds=999999), "59s"),
])
def test_format_duration(td, text):
    assert format_duration(td) == text


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**9))
def test_duration_round_trip(seconds):
    td = timedelta(seconds=seconds)
    assert parse_duration(format_duration(td)) == td


# ---------------------------------------------------------------- hours


@pytest.mark.parametrize("text, expected", [
    ("09:00-18:00", ((540, 1080),)),
    ("00:00-24:00", ((0, 1440),)),
    ("23:59-24:00", ((1439, 1440),)),
    ("00:00-00:01", ((0, 1),)),
    ("09:00 - 18:00", ((540, 1080),)),
    (["09:00-12:00", "13:30-18:00"], ((540, 720), (810, 1080))),
    (["13:30-18:00", "09:00-12:00"], ((540, 720), (810, 1080))),  # sorted
    (["09:00-12:00", "12:00-13:00"], ((540, 720), (720, 780))),  # touching is not overlapping
    (("08:00-09:00",), ((480, 540),)),
])
def test_hours_valid(text, expected):
    assert parse_hours(text) == expected


@pytest.mark.parametrize("text, fragment", [
    ("22:00-06:00", "two ranges"),
    ("18:00-00:00", "24:00"),
    ("09:00-09:00", "empty"),
    ("9:00-18:00", "HH:MM"),
    ("09:00", "HH:MM"),
    ("09:00-18:00-19:00", "HH:MM"),
    ("24:00-24:00", "start"),
    ("09:60-18:00", "start"),
    ("09:00-24:01", "end"),
    ("09:00-25:00", "end"),
    ("nine to six", "HH:MM"),
    ("", "HH:MM"),
    (900, "text"),
    ([], "no time range"),
    (["09:00-12:00", "11:00-13:00"], "overlap"),
    (["09:00-12:00", "bad"], "bad"),
])
def test_hours_invalid(text, fragment):
    got = parse_hours(text)
    assert isinstance(got, str) and fragment in got, got


# ---------------------------------------------------------------- names


def test_check_holidays():
    assert check_holidays("CN") is None
    assert check_holidays("US") is None
    assert "did you mean \"CN\"" in check_holidays("cn")
    assert "unknown holiday calendar" in check_holidays("XX")
    assert check_holidays(None) is not None and check_holidays(False) is not None


@pytest.mark.parametrize("name", ["Asia/Shanghai", "UTC", "America/New_York", "Australia/Lord_Howe"])
def test_check_timezone_valid(name):
    assert check_timezone(name) is None and load_timezone(name) == ZoneInfo(name)


@pytest.mark.parametrize("name, hint", [
    ("asia/shanghai", "Asia/Shanghai"), ("Europe/Berln", "Europe/Berlin"), ("../x", None), ("", None),
    ("/etc/passwd", None), ("zone.tab", None), ("localtime", None), ("Asia/Shanghai\x00", None),
    ("a" * 400, None), (None, None), (8, None),
])
def test_check_timezone_invalid(name, hint):
    got = check_timezone(name)
    assert got is not None
    if hint:
        assert f'did you mean "{hint}"' in got
    if isinstance(name, str):
        assert load_timezone(name) is None


# ---------------------------------------------------------------- windows


def test_parse_window_defaults():
    w = window({})
    assert w.days == frozenset(range(7)) and w.ranges == ((0, 1440),) and w.holidays is None
    w = window(BUSINESS, "business-hours")
    assert w == Window("business-hours", frozenset({0, 1, 2, 3, 4}), ((540, 1080),), "CN")


@pytest.mark.parametrize("spec, expected", [
    ({"days": ["tues"]}, [("days", "bad-weekday", 'did you mean "tue"')]),
    ({"days": ["Mon", "fri"]}, [("days", "bad-weekday", 'did you mean "mon"')]),
    ({"days": []}, [("days", "bad-weekday", "non-empty")]),
    ({"days": "mon"}, [("days", "bad-weekday", "list")]),
    ({"hours": "18:00-09:00"}, [("hours", "bad-hours", "two ranges")]),
    ({"hours": ["09:00-12:00", "10:00-11:00"]}, [("hours", "bad-hours", "overlap")]),
    ({"holidays": "CHINA"}, [("holidays", "bad-holidays", "unknown holiday calendar")]),
    ({"holidays": "cn"}, [("holidays", "bad-holidays", 'did you mean "CN"')]),
    ({"day": ["mon"]}, [("day", "unknown-key", 'did you mean "days"')]),
    ({"days": ["mon", "xyz"], "hours": "x", "holidays": "ZZ"},
     [("days", "bad-weekday", "xyz"), ("hours", "bad-hours", "x"), ("holidays", "bad-holidays", "ZZ")]),
])
def test_parse_window_errors(spec, expected):
    got, errors = parse_window("w", spec)
    assert got is None
    assert [(k, c) for k, c, _ in errors] == [(k, c) for k, c, _ in expected]
    for (_, _, message), (_, _, fragment) in zip(errors, expected, strict=False):
        assert fragment in message, message


def test_parse_window_not_a_mapping():
    got, errors = parse_window("w", ["mon"])
    assert got is None and errors[0][1] == "bad-window"


# Alertmanager timeinterval style: instants that must fall inside or outside a window.
WINDOW_CASES = [
    # business hours, China, CN holiday calendar
    (BUSINESS, SH, "2026-11-20T09:00:00+08:00", True),   # Friday, start included
    (BUSINESS, SH, "2026-11-20T17:59:59.999999+08:00", True),
    (BUSINESS, SH, "2026-11-20T18:00:00+08:00", False),  # end excluded
    (BUSINESS, SH, "2026-11-20T08:59:59+08:00", False),
    (BUSINESS, SH, "2026-11-20T01:00:00Z", True),        # 09:00 in Shanghai
    (BUSINESS, SH, "2026-11-20T00:59:00Z", False),
    (BUSINESS, SH, "2026-11-21T10:00:00+08:00", False),  # Saturday
    (BUSINESS, SH, "2026-11-22T10:00:00+08:00", False),  # Sunday
    *[(BUSINESS, SH, f"2026-10-0{d}T10:00:00+08:00", False) for d in range(1, 8)],  # National Day week
    (BUSINESS, SH, "2026-10-08T10:00:00+08:00", True),
    (BUSINESS, SH, "2026-10-10T10:00:00+08:00", True),   # Saturday, make-up working day
    (BUSINESS, SH, "2026-10-10T18:30:00+08:00", False),  # ... but hours still apply
    (BUSINESS, SH, "2026-10-11T10:00:00+08:00", False),
    (BUSINESS, SH, "2026-01-04T10:00:00+08:00", True),   # Sunday, make-up working day
    (BUSINESS, SH, "2026-01-02T10:00:00+08:00", False),  # Friday, day off
    (BUSINESS, SH, "2026-01-01T10:00:00+08:00", False),  # New Year's Day
    (BUSINESS, SH, "2026-02-17T10:00:00+08:00", False),  # Spring Festival
    # a holiday closes even a day the window lists; a make-up day opens even one it does not
    ({"days": ["thu"], "holidays": "CN"}, SH, "2026-10-01T12:00:00+08:00", False),
    ({"days": ["mon"], "holidays": "CN"}, SH, "2026-10-10T12:00:00+08:00", True),
    ({"days": ["thu"]}, SH, "2026-10-01T12:00:00+08:00", True),  # no calendar: weekday decides
    # several ranges in a day
    ({"hours": ["09:00-12:00", "13:30-18:00"]}, SH, "2026-11-20T12:30:00+08:00", False),
    ({"hours": ["09:00-12:00", "13:30-18:00"]}, SH, "2026-11-20T13:30:00+08:00", True),
    # US calendar, New York: local wall clock across DST
    ({"days": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-17:00", "holidays": "US"}, NY,
     "2026-07-03T10:00:00-04:00", False),  # Independence Day (observed)
    ({"hours": "09:00-17:00"}, NY, "2026-01-15T14:00:00Z", True),   # 09:00 EST
    ({"hours": "09:00-17:00"}, NY, "2026-07-15T13:00:00Z", True),   # 09:00 EDT
    ({"hours": "09:00-17:00"}, NY, "2026-07-15T21:00:00Z", False),  # 17:00 EDT
    ({"hours": "09:00-17:00"}, NY, "2026-01-15T21:00:00Z", True),   # 16:00 EST
    # fall-back: 01:00-02:00 occurs twice on 2026-11-01 in New York; both count
    ({"hours": "01:00-01:30"}, NY, "2026-11-01T05:15:00Z", True),   # 01:15 EDT
    ({"hours": "01:00-01:30"}, NY, "2026-11-01T06:15:00Z", True),   # 01:15 EST
    ({"hours": "01:00-01:30"}, NY, "2026-11-01T05:45:00Z", False),  # 01:45 EDT
]


@pytest.mark.parametrize("spec, tz, instant, inside", WINDOW_CASES)
def test_window_instants(spec, tz, instant, inside):
    w, t = window(spec), at(instant)
    assert in_window(t, w, tz) is inside
    got = next_open(t, w, tz)
    assert (utc(got) == utc(t)) is inside
    assert got >= t and in_window(got, w, tz)


def test_is_open_day_calendar():
    w = window(BUSINESS)
    assert [is_open_day(date(2026, 10, d), w) for d in range(1, 12)] == \
        [False] * 7 + [True, True, True, False]
    assert is_open_day(date(2026, 1, 4), w) and not is_open_day(date(2026, 1, 2), w)


@pytest.mark.parametrize("spec, tz, start, expected", [
    (BUSINESS, SH, "2026-11-20T10:30:00+08:00", "2026-11-20T10:30:00+08:00"),  # inside: itself
    (BUSINESS, SH, "2026-11-20T02:30:00Z", "2026-11-20T10:30:00+08:00"),       # ... converted to tz
    (BUSINESS, SH, "2026-11-20T07:15:00+08:00", "2026-11-20T09:00:00+08:00"),
    (BUSINESS, SH, "2026-11-20T18:00:00+08:00", "2026-11-23T09:00:00+08:00"),  # over the weekend
    (BUSINESS, SH, "2026-09-30T18:00:00+08:00", "2026-10-08T09:00:00+08:00"),  # over National Day
    (BUSINESS, SH, "2026-10-09T19:00:00+08:00", "2026-10-10T09:00:00+08:00"),  # to a make-up Saturday
    (BUSINESS, SH, "2026-12-31T18:00:00+08:00", "2027-01-04T09:00:00+08:00"),  # New Year's Day, weekend
    (BUSINESS, SH, "2025-12-31T18:00:00+08:00", "2026-01-04T09:00:00+08:00"),  # make-up Sunday
    ({"hours": ["09:00-12:00", "13:30-18:00"]}, SH, "2026-11-20T12:00:00+08:00", "2026-11-20T13:30:00+08:00"),
    ({"hours": "09:00-10:00"}, SH, "2026-11-20T09:59:59.999999+08:00", "2026-11-20T09:59:59.999999+08:00"),
    ({"hours": "09:00-10:00"}, SH, "2026-11-20T10:00:00.000001+08:00", "2026-11-21T09:00:00+08:00"),
    # New York spring forward 2026-03-08 02:00 EST -> 03:00 EDT: 02:00-03:00 does not exist
    ({"hours": "02:30-03:30"}, NY, "2026-03-08T01:00:00-05:00", "2026-03-08T03:00:00-04:00"),
    ({"hours": "02:00-02:30"}, NY, "2026-03-08T01:00:00-05:00", "2026-03-09T02:00:00-04:00"),
    ({"hours": "01:59-02:30"}, NY, "2026-03-08T01:00:00-05:00", "2026-03-08T01:59:00-05:00"),
    # New York fall back 2026-11-01 02:00 EDT -> 01:00 EST: the second 01:00 counts
    ({"hours": "01:00-01:30"}, NY, "2026-11-01T01:45:00-04:00", "2026-11-01T01:00:00-05:00"),
    ({"hours": "01:00-01:30"}, NY, "2026-11-01T01:15:00-05:00", "2026-11-01T01:15:00-05:00"),
    ({"hours": "01:00-01:30"}, NY, "2026-11-01T01:45:00-05:00", "2026-11-02T01:00:00-05:00"),
    # Lord Howe: 30-minute DST. 2026-10-04 02:00 -> 02:30; 2026-04-05 02:00 -> 01:30
    ({"hours": "02:10-02:40"}, LH, "2026-10-04T01:00:00+10:30", "2026-10-04T02:30:00+11:00"),
    ({"hours": "02:00-02:30"}, LH, "2026-10-04T01:00:00+10:30", "2026-10-05T02:00:00+11:00"),
    ({"hours": "01:30-01:45"}, LH, "2026-04-05T01:50:00+11:00", "2026-04-05T01:30:00+10:30"),
])
def test_next_open(spec, tz, start, expected):
    got = next_open(at(start), window(spec), tz)
    want = at(expected)
    assert utc(got) == utc(want) and got.utcoffset() == want.utcoffset() and got.tzinfo is tz


def test_next_open_never():
    closed = Window("never", frozenset(), ((540, 1080),))
    assert next_open(at("2026-11-20T10:00:00+08:00"), closed, SH) is None
    empty = Window("empty", frozenset(range(7)), ())
    assert next_open(at("2026-11-20T10:00:00+08:00"), empty, SH) is None


def test_next_open_rejects_naive():
    with pytest.raises(ValueError):
        next_open(datetime(2026, 1, 1), window({}), SH)


# ---------------------------------------------------------------- instants


@pytest.mark.parametrize("text, expected", [
    ("2026-11-20T10:30:00+08:00", datetime(2026, 11, 20, 2, 30, tzinfo=UTC)),
    ("2026-11-20T02:30:00Z", datetime(2026, 11, 20, 2, 30, tzinfo=UTC)),
    ("2026-11-20t02:30:00z", datetime(2026, 11, 20, 2, 30, tzinfo=UTC)),
    ("2026-11-20T02:30:00.250+00:00", datetime(2026, 11, 20, 2, 30, 0, 250000, tzinfo=UTC)),
    ("2026-11-20 10:30:00+08:00", datetime(2026, 11, 20, 2, 30, tzinfo=UTC)),
])
def test_parse_instant(text, expected):
    got = parse_instant(text)
    assert got == expected and got.utcoffset() is not None


@pytest.mark.parametrize("text", ["2026-11-20T10:30:00", "2026-11-20", "", "yesterday", "2026-13-01T00:00:00Z",
                                  None, 1700000000])
def test_parse_instant_invalid(text):
    assert parse_instant(text) is None


# ---------------------------------------------------------------- schedule

WINDOWS = {"business-hours": window(BUSINESS, "business-hours")}


def test_schedule_delay_crosses_weekend():
    s = schedule(Timing(delay=timedelta(hours=2), window="business-hours"), WINDOWS,
                 at("2026-11-20T17:30:00+08:00"), SH, now=at("2026-11-20T17:30:00+08:00"))
    assert isinstance(s, Schedule)
    assert s.start == at("2026-11-20T19:30:00+08:00") and s.start.tzinfo is SH
    assert s.send_at == at("2026-11-23T09:00:00+08:00") and s.send_at.tzinfo is SH
    assert s.deadline_at is None and not s.late and s.escalations == () and s.error is None


def test_schedule_inside_window_and_spec_example():
    s = schedule(Timing(delay=timedelta(hours=2), window="business-hours", deadline=timedelta(hours=24)),
                 WINDOWS, at("2026-11-20T10:30:00+08:00"), SH, now=at("2026-11-20T10:30:00+08:00"))
    assert s.send_at.isoformat() == "2026-11-20T12:30:00+08:00"
    assert s.deadline_at == at("2026-11-21T10:30:00+08:00") and not s.late


def test_schedule_late():
    s = schedule(Timing(delay=timedelta(minutes=30), window="business-hours", deadline=timedelta(hours=24)),
                 WINDOWS, at("2026-09-30T17:45:00+08:00"), SH, now=at("2026-09-30T17:45:00+08:00"))
    assert s.send_at == at("2026-10-08T09:00:00+08:00")
    assert s.deadline_at == at("2026-10-01T17:45:00+08:00") and s.late


def test_schedule_not_late_at_deadline_exactly():
    s = schedule(Timing(delay=timedelta(hours=1), deadline=timedelta(hours=1)), WINDOWS,
                 at("2026-11-20T10:00:00+08:00"), SH, now=at("2026-11-20T10:00:00+08:00"))
    assert s.send_at == s.deadline_at and not s.late


def test_schedule_now_and_approval():
    occurred = at("2026-11-20T10:00:00+08:00")
    timing = Timing(delay=timedelta(hours=1), window="business-hours")
    later_now = schedule(timing, WINDOWS, occurred, SH, now=at("2026-11-20T15:00:00+08:00"))
    assert later_now.start == at("2026-11-20T11:00:00+08:00")
    assert later_now.send_at == at("2026-11-20T15:00:00+08:00")
    approved = schedule(timing, WINDOWS, occurred, SH, now=occurred, approved_at=at("2026-11-20T17:30:00+08:00"))
    assert approved.start == at("2026-11-20T18:30:00+08:00")
    assert approved.send_at == at("2026-11-23T09:00:00+08:00")
    early_approval = schedule(timing, WINDOWS, occurred, SH, now=occurred,
                              approved_at=at("2026-11-19T10:00:00+08:00"))
    assert early_approval.start == at("2026-11-20T11:00:00+08:00")


def test_schedule_no_window():
    s = schedule(Timing(delay=timedelta(minutes=30)), WINDOWS, at("2026-11-21T03:00:00+08:00"), SH,
                 now=at("2026-11-20T00:00:00Z"))
    assert s.send_at == at("2026-11-21T03:30:00+08:00") and s.send_at.tzinfo is SH


def test_schedule_escalations():
    timing = Timing(window="business-hours", escalate_after=timedelta(hours=2))
    s = schedule(timing, WINDOWS, at("2026-11-20T14:00:00+08:00"), SH, now=at("2026-11-20T14:00:00+08:00"),
                 channels=4)
    assert s.send_at == at("2026-11-20T14:00:00+08:00")
    assert s.escalations == (at("2026-11-20T16:00:00+08:00"),   # inside the window
                             at("2026-11-23T09:00:00+08:00"),   # 18:00 Friday: moved to Monday
                             at("2026-11-23T11:00:00+08:00"))
    assert all(e.tzinfo is SH for e in s.escalations)
    assert schedule(timing, WINDOWS, at("2026-11-20T14:00:00+08:00"), SH,
                    now=at("2026-11-20T14:00:00+08:00"), channels=1).escalations == ()
    no_escalation = Timing(window="business-hours")
    assert schedule(no_escalation, WINDOWS, at("2026-11-20T14:00:00+08:00"), SH,
                    now=at("2026-11-20T14:00:00+08:00"), channels=3).escalations == ()


def test_schedule_durations_are_elapsed_time_across_dst():
    s = schedule(Timing(delay=timedelta(hours=3), escalate_after=timedelta(hours=1)), {},
                 at("2026-03-08T00:30:00-05:00"), NY, now=at("2026-03-08T00:00:00-05:00"), channels=2)
    assert s.send_at == at("2026-03-08T04:30:00-04:00")  # 3 real hours, not 03:30 on the wall clock
    assert s.escalations == (at("2026-03-08T05:30:00-04:00"),)


def test_schedule_unknown_window_is_a_value():
    s = schedule(Timing(window="busines-hours"), WINDOWS, at("2026-11-20T14:00:00+08:00"), SH,
                 now=at("2026-11-20T14:00:00+08:00"))
    assert s.send_at is None and 'did you mean "business-hours"' in s.error


# ---------------------------------------------------------------- properties: next_open against brute force

ZONES = ["America/New_York", "Europe/Berlin", "Australia/Lord_Howe", "America/Sao_Paulo", "Asia/Shanghai", "UTC"]
SCAN_DAYS = 20
_REF_CAL: dict = {}


def _ref_open_day(day: date, days: frozenset, code: str | None) -> bool:
    if code:
        if (code, day.year) not in _REF_CAL:
            cal = holidays.country_holidays(code, years=day.year)
            _REF_CAL[(code, day.year)] = (set(cal), set(getattr(cal, "weekend_workdays", ())))
        off, work = _REF_CAL[(code, day.year)]
        if day in off:
            return False
        if day in work:
            return True
    return day.weekday() in days


def _ref_inside(u: datetime, w: Window, tz: ZoneInfo) -> bool:
    loc = u.astimezone(tz)
    m = loc.hour * 60 + loc.minute
    return any(a <= m < b for a, b in w.ranges) and _ref_open_day(loc.date(), w.days, w.holidays)


def _brute(start: datetime, w: Window, tz: ZoneInfo) -> datetime | None:
    """Minute by minute: every offset and transition is on whole minutes, so membership is constant per minute."""
    u = start.astimezone(UTC)
    floor = u.replace(second=0, microsecond=0)
    if _ref_inside(floor, w, tz):
        return u
    u = floor + MINUTE
    for _ in range(SCAN_DAYS * 1440):
        if _ref_inside(u, w, tz):
            return u
        u += MINUTE
    return None


def _transitions() -> list[datetime]:
    found = []
    for name in ZONES:
        tz = ZoneInfo(name)
        u = datetime(2025, 1, 1, tzinfo=UTC)
        while u < datetime(2028, 1, 1, tzinfo=UTC):
            nxt = u + timedelta(days=1)
            if u.astimezone(tz).utcoffset() != nxt.astimezone(tz).utcoffset():
                lo, hi = u, nxt
                while hi - lo > MINUTE:
                    mid = lo + (hi - lo) / 2
                    mid = mid.replace(second=0, microsecond=0)
                    if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                        lo = mid if mid > lo else lo + MINUTE
                    else:
                        hi = mid
                found.append(hi)
            u = nxt
    return found


TRANSITIONS = _transitions()

minute_of_day = st.one_of(st.integers(0, 1440), st.sampled_from([0, 60, 90, 120, 150, 180, 210, 540, 1080, 1440]))


@st.composite
def windows(draw) -> Window:
    days = draw(st.frozensets(st.integers(0, 6), min_size=1))
    points = sorted(draw(st.lists(minute_of_day, min_size=2, max_size=6, unique=True)))
    if len(points) % 2:
        points = points[:-1]
    ranges = tuple(zip(points[::2], points[1::2], strict=False))
    return Window("p", days, ranges, draw(st.sampled_from([None, "CN", "US"])))


@st.composite
def starts(draw) -> datetime:
    if draw(st.booleans()):
        base = draw(st.datetimes(datetime(2025, 1, 1), datetime(2027, 12, 31))).replace(tzinfo=UTC)
        base = base.replace(second=0, microsecond=0)
    else:
        near = st.one_of(st.integers(-1500, 300), st.integers(-3 * 1440, 3 * 1440))  # mostly just before
        base = draw(st.sampled_from(TRANSITIONS)) + draw(near) * MINUTE
    if draw(st.integers(0, 3)) == 0:  # now and then, a start inside a minute
        base += timedelta(seconds=draw(st.integers(0, 59)), microseconds=draw(st.integers(0, 999999)))
    return base


def test_transitions_found():
    assert len(TRANSITIONS) == 3 * 2 * 3  # NY, Berlin, Lord Howe: two a year (Sao Paulo, Shanghai, UTC: none)
    assert datetime(2026, 3, 8, 7, 0, tzinfo=UTC) in TRANSITIONS  # New York spring forward
    assert datetime(2026, 10, 3, 15, 30, tzinfo=UTC) in TRANSITIONS  # Lord Howe 02:00 -> 02:30 on Oct 4


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(start=starts(), w=windows(), zone=st.sampled_from(ZONES))
def test_next_open_is_earliest(start, w, zone):
    tz = ZoneInfo(zone)
    got = next_open(start, w, tz)
    want = _brute(start, w, tz)
    if want is None:  # nothing within the scan: the answer lies beyond it
        assert got is None or got >= start + timedelta(days=SCAN_DAYS)
        return
    assert got is not None
    assert got >= start
    assert utc(got) == want, (got, want)
    assert got.tzinfo is tz
    again = got.astimezone(UTC).astimezone(tz)
    assert again.replace(tzinfo=None) == got.replace(tzinfo=None) and again.utcoffset() == got.utcoffset()
    assert in_window(got, w, tz) and _ref_inside(got.astimezone(UTC).replace(second=0, microsecond=0), w, tz)
    assert utc(next_open(got, w, tz)) == utc(got)


@settings(max_examples=100, deadline=None)
@given(start=starts(), delay=st.integers(0, 3 * 86400), esc=st.integers(60, 86400), channels=st.integers(1, 4),
       zone=st.sampled_from(ZONES))
def test_schedule_invariants(start, delay, esc, channels, zone):
    tz = ZoneInfo(zone)
    windows_ = {"bh": window(BUSINESS, "bh")}
    s = schedule(Timing(delay=timedelta(seconds=delay), window="bh", deadline=timedelta(days=1),
                        escalate_after=timedelta(seconds=esc)), windows_, start, tz, now=start, channels=channels)
    assert s.send_at >= start + timedelta(seconds=delay) and in_window(s.send_at, windows_["bh"], tz)
    assert s.late == (s.send_at > start + timedelta(days=1))
    assert len(s.escalations) == channels - 1
    prev = s.send_at
    for e in s.escalations:
        assert e >= prev + timedelta(seconds=esc) and in_window(e, windows_["bh"], tz) and e.tzinfo is tz
        prev = e


# ---------------------------------------------------------------- the per-stretch cache of next_open

@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(base=starts(), w=windows(), zone=st.sampled_from(ZONES + ["Asia/Kolkata", "Asia/Kathmandu"]),
       steps=st.lists(st.integers(-2 * 86400 * 10**6, 2 * 86400 * 10**6), min_size=1, max_size=30))
def test_cached_next_open_equals_the_exact_answer(base, w, zone, steps):
    """Many starts near each other (so most share a cached 15-minute stretch): the cached answer is
    always the one worked out from scratch, same instant and same zone."""
    from engine.schedule.timing import _next_open_exact

    tz = ZoneInfo(zone)
    for micros in [0, *steps]:
        start = base + timedelta(microseconds=micros)
        got, want = next_open(start, w, tz), _next_open_exact(start, w, tz)
        assert utc(got) == utc(want), (start, got, want)
        assert got is None or (got.tzinfo is tz and got.utcoffset() == want.utcoffset())
        # a start in UTC (what the Scheduler passes) finds its stretch from its calendar fields
        got = next_open(start.astimezone(UTC), w, tz)
        assert utc(got) == utc(want), (start, got, want)
        assert got is None or (got.tzinfo is tz and got.utcoffset() == want.utcoffset())


def test_a_closed_stretch_shares_one_opening_and_an_open_one_gives_the_start():
    w = window(BUSINESS)
    # Saturday night in Shanghai: every start in the stretch waits for Monday 09:00
    for minute in (0, 7, 14):
        got = next_open(at(f"2026-11-21T23:{minute:02d}:00+08:00"), w, SH)
        assert got == at("2026-11-23T09:00:00+08:00")
    inside = at("2026-11-23T10:07:31.5+08:00")
    assert next_open(inside, w, SH) == inside
    # a window that opens mid-stretch (09:10) is answered exactly on both sides of the opening
    odd = window({"days": ["mon"], "hours": "09:10-09:20"})
    assert next_open(at("2026-11-23T09:05:00+08:00"), odd, SH) == at("2026-11-23T09:10:00+08:00")
    assert next_open(at("2026-11-23T09:12:00+08:00"), odd, SH) == at("2026-11-23T09:12:00+08:00")
    assert next_open(at("2026-11-23T09:20:00+08:00"), odd, SH) == at("2026-11-30T09:10:00+08:00")


@settings(max_examples=300, deadline=None)
@given(start=st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=st.sampled_from([UTC, SH])))
def test_a_start_finds_its_own_fifteen_minute_stretch(start):
    """The stretch a start falls in, worked out from a UTC start's calendar fields (no timedelta arithmetic),
    is the one of (start - epoch) // 15 minutes: the first verdict a fresh cache stores is under that number."""
    from engine.schedule.timing import _BUCKET, _EPOCH, _next_open_cached

    verdicts: dict = {}
    _next_open_cached(start, window(BUSINESS), SH, verdicts)
    assert next(iter(verdicts)) == (start - _EPOCH) // _BUCKET


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(zone=st.sampled_from([*ZONES, "Africa/Monrovia", "Asia/Kathmandu"]),
       day=st.one_of(st.sampled_from(TRANSITIONS).map(lambda t: t.toordinal()),
                     st.integers(date(1900, 1, 1).toordinal(), date(2040, 1, 1).toordinal())),
       near=st.integers(-3, 3))
def test_a_steady_offset_is_the_offset_of_every_wall_time_of_the_day(zone, day, near):
    """steady_offset(tz, day) is what utcoffset() gives for every wall time of that date (each quarter hour, both
    folds) whenever it answers; it does not answer on a day the offset changes."""
    tz = ZoneInfo(zone)
    day += near
    got = steady_offset(tz, day)
    start = datetime.combine(date.fromordinal(day), datetime.min.time())
    offsets = {(start + k * 15 * MINUTE).replace(tzinfo=tz, fold=fold).utcoffset() for k in range(96) for fold in (0, 1)}
    if got is not None:
        assert offsets == {got}
    if len(offsets) > 1:
        assert got is None


def test_steady_offset_near_the_ends_of_the_calendar_is_no_answer():
    tz = ZoneInfo("Europe/Berlin")
    assert steady_offset(tz, date.max.toordinal()) is None
    assert steady_offset(tz, date.min.toordinal()) is None
    assert steady_offset(tz, date(2026, 3, 29).toordinal()) is None  # spring forward
    assert steady_offset(tz, date(2026, 7, 1).toordinal()) == timedelta(hours=2)
