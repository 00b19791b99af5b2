"""Time: durations, send windows (days, hours, holiday calendars), time zones, and the send schedule."""
from __future__ import annotations

import re
import zoneinfo
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta, timezone, UTC
from functools import lru_cache
from typing import Any
from collections.abc import Mapping
from zoneinfo import ZoneInfo

from engine.rules.suggest import did_you_mean
from engine.model import DAYS, Timing, Window, quick_init
import itertools

UTC = UTC
HORIZON_DAYS = 800  # next_open gives up (None) when a window does not open within this many days
_DAY = timedelta(days=1)
_SECOND = timedelta(seconds=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_EPOCH_ORDINAL = _EPOCH.toordinal()
_US_PER_MIN = 60_000_000
_WINDOW_KEYS = ("days", "hours", "holidays")

# ---------------------------------------------------------------- durations

_DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")


def parse_duration(text: Any) -> timedelta | None:
    """'90s', '30m', '2h', '3d', '1h30m', '1d2h', '0s' (units d>h>m>s, each once, no spaces); None if invalid."""
    if not isinstance(text, str) or not text:
        return None
    m = _DURATION.fullmatch(text)
    if m is None:
        return None
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    try:
        return timedelta(days=d, hours=h, minutes=mi, seconds=s)
    except OverflowError:
        return None


def format_duration(td: timedelta) -> str:
    """The inverse of parse_duration: '1h30m', '2d', '0s'; sub-second parts are dropped, negatives get '-'."""
    total = td // _SECOND if td >= timedelta(0) else -((-td) // _SECOND)
    sign, total = ("-", -total) if total < 0 else ("", total)
    d, rem = divmod(total, 86400)
    h, rem = divmod(rem, 3600)
    mi, s = divmod(rem, 60)
    out = "".join(f"{v}{u}" for v, u in ((d, "d"), (h, "h"), (mi, "m"), (s, "s")) if v)
    return sign + (out or "0s")


# ---------------------------------------------------------------- hours

_RANGE = re.compile(r"([0-9]{2}):([0-9]{2})\s*-\s*([0-9]{2}):([0-9]{2})")


def _parse_range(text: Any) -> tuple[int, int] | str:
    if not isinstance(text, str):
        return f'a time range is text like "09:00-18:00", not {text!r}'
    m = _RANGE.fullmatch(text.strip())
    if m is None:
        return f'"{text}" is not a time range like "09:00-18:00" (HH:MM-HH:MM, 24-hour clock)'
    h1, m1, h2, m2 = (int(g) for g in m.groups())
    if h1 > 23 or m1 > 59:
        return f'"{text}": the start must be a time of day from 00:00 to 23:59'
    if h2 > 24 or m2 > 59 or (h2 == 24 and m2):
        return f'"{text}": the end must be a time of day from 00:00 to 24:00'
    a, b = h1 * 60 + m1, h2 * 60 + m2
    start, end = text.strip()[:5], text.strip()[-5:]
    if a == b:
        return f'"{text}" is empty: start and end are equal (the whole day is "00:00-24:00")'
    if b == 0:
        return f'"{text}" ends at midnight: write the end as 24:00 ("{start}-24:00")'
    if a > b:
        return (f'"{text}" runs past midnight, which one range cannot: write two ranges, '
                f'hours: ["00:00-{end}", "{start}-24:00"] (both apply on every listed day)')
    return a, b


def parse_hours(text: str | list | tuple) -> tuple[tuple[int, int], ...] | str:
    """'HH:MM-HH:MM' or a list of them -> sorted minute ranges ((540, 1080),), or an error message."""
    items = list(text) if isinstance(text, (list, tuple)) else [text]
    if not items:
        return "hours lists no time range; the whole day is \"00:00-24:00\""
    ranges: list[tuple[int, int, str]] = []
    for item in items:
        got = _parse_range(item)
        if isinstance(got, str):
            return got
        ranges.append((got[0], got[1], str(item).strip()))
    ranges.sort()
    for (_a1, b1, t1), (a2, _b2, t2) in itertools.pairwise(ranges):
        if a2 < b1:
            return f'time ranges "{t1}" and "{t2}" overlap'
    return tuple((a, b) for a, b, _ in ranges)


# ---------------------------------------------------------------- names: holidays, time zones

@lru_cache(maxsize=1)
def _countries() -> dict:
    """{country code: (its subdivision codes)} of the `holidays` package."""
    import holidays
    return {c: tuple(s) for c, s in holidays.list_supported_countries().items()}


def check_holidays(code: Any) -> str | None:
    """None when the `holidays` package knows this calendar (a country, "CN", or a country and one of its
    subdivisions, "DE-BE"), else an error message with a suggestion."""
    if not isinstance(code, str):
        return f'holidays takes a calendar code such as "CN" or "DE-BE", not {code!r}'
    known = _countries()
    country, dash, sub = code.partition("-")
    if country not in known:
        hint = f' (did you mean "{code.upper()}"?)' if country.upper() in known else did_you_mean(country, known)
        return (f'unknown holiday calendar "{code}"{hint}; use a country code the holidays package knows, e.g. "CN", '
                f'or a country and subdivision, e.g. "DE-BE"')
    if not dash or sub in known[country]:
        return None
    subs = known[country]
    hint = f' (did you mean "{country}-{sub.upper()}"?)' if sub.upper() in subs else did_you_mean(sub, subs)
    listed = ", ".join(subs[:12]) + (", ..." if len(subs) > 12 else "") if subs else "none"
    return f'unknown subdivision "{sub}" of {country} in "{code}"{hint}; {country} has: {listed}'


_NOT_PORTABLE = frozenset({"localtime", "posixrules"})  # files that mean something else on each machine


@lru_cache(maxsize=1)
def _zone_names() -> dict:
    """Every IANA zone name, keyed by its lower-case form (for suggestions)."""
    return {n.lower(): n for n in zoneinfo.available_timezones() if n not in _NOT_PORTABLE}


@lru_cache(maxsize=1024)
def load_timezone(name: str) -> ZoneInfo | None:
    """The ZoneInfo for `name`, or None when it is not a usable IANA time zone name."""
    if not isinstance(name, str) or not name or name in _NOT_PORTABLE:
        return None
    try:
        return ZoneInfo(name)
    except Exception:  # noqa: BLE001 - ZoneInfoNotFoundError, ValueError ('../x', ''), OSError, malformed data...
        return None


def check_timezone(name: Any) -> str | None:
    """None when `name` is an IANA time zone, else an error message with a suggestion."""
    if isinstance(name, str) and load_timezone(name) is not None:
        return None
    if not isinstance(name, str):
        return f'a time zone is a name such as "Asia/Shanghai", not {name!r}'
    folded = _zone_names()
    hint = f' (did you mean "{folded[name.lower()]}"?)' if name.lower() in folded else did_you_mean(name, folded.values())
    return f'unknown time zone "{name}"{hint}; use an IANA name such as "Asia/Shanghai"'


# ---------------------------------------------------------------- windows

def parse_window(name: str, spec: Any) -> tuple[Window | None, list[tuple[str, str, str]]]:
    """A Window from its YAML mapping, or None and (field_key, code, message) errors ('' = the whole spec)."""
    if not isinstance(spec, Mapping):
        return None, [("", "bad-window", f'window "{name}" must be a mapping with days, hours and holidays')]
    errors: list[tuple[str, str, str]] = [
        (str(key), "unknown-key", f'window "{name}" has no setting "{key}"{did_you_mean(str(key), _WINDOW_KEYS)}')
        for key in spec if key not in _WINDOW_KEYS]
    days = spec.get("days")
    day_set: set[int] = set(range(7))
    if days is not None:
        if not isinstance(days, (list, tuple)) or not days:
            errors.append(("days", "bad-weekday", "days must be a non-empty list of weekdays, e.g. [mon, tue]"))
        else:
            day_set = set()
            for d in days:
                if isinstance(d, str) and d in DAYS:
                    day_set.add(DAYS.index(d))
                else:
                    hint = did_you_mean(d.lower(), DAYS) if isinstance(d, str) else ""
                    errors.append(("days", "bad-weekday",
                                   f'"{d}" is not a weekday{hint}; use mon, tue, wed, thu, fri, sat, sun'))
    hours = spec.get("hours")
    ranges = parse_hours("00:00-24:00" if hours is None else hours)
    if isinstance(ranges, str):
        errors.append(("hours", "bad-hours", ranges))
        ranges = ()
    code, source = None, None
    if spec.get("holidays") is not None:
        code, source, problems = parse_holidays(spec["holidays"])
        errors += [("holidays", "bad-holidays", p) for p in problems]
    if errors:
        return None, errors
    return Window(name=name, days=frozenset(day_set), ranges=ranges, holidays=code, holidays_from=source), []


CANDIDATE = "candidate"


def parse_holidays(spec: Any) -> tuple[str | tuple | None, str | None, list[str]]:
    """`holidays:` -> (calendar code(s), "candidate" or None, problems). Takes "CN", "DE-BE", a list of codes,
    "candidate", or {from: candidate, default: CODE or [CODES]}."""
    source = None
    if spec == CANDIDATE:
        return None, CANDIDATE, []
    if isinstance(spec, Mapping):
        problems = [f'holidays has no setting "{k}"{did_you_mean(str(k), ("from", "default"))}'
                    for k in spec if k not in ("from", "default")]
        if spec.get("from") != CANDIDATE:
            problems.append(f'holidays: from takes "{CANDIDATE}" (the calendar of the candidate\'s country), '
                            f'not {spec.get("from")!r}')
        source, spec = CANDIDATE, spec.get("default")
        if spec is None:
            return None, source, problems
    else:
        problems = []
    codes = list(spec) if isinstance(spec, (list, tuple)) else [spec]
    if not codes:
        problems.append('holidays lists no calendar; write a code such as "CN", or leave holidays out')
    problems += [p for p in (check_holidays(c) for c in codes) if p]
    if isinstance(spec, (list, tuple)):
        return tuple(codes), source, problems
    return spec, source, problems


_CALENDARS: dict[tuple[str, int], tuple[frozenset, frozenset]] = {}


def _calendar(code: str | tuple, year: int) -> tuple[frozenset, frozenset]:
    """(official days off, make-up working days) of one calendar ("CN", "DE-BE") or several (their days off
    together) and year; built once, then a dict lookup."""
    if isinstance(code, tuple):
        parts = [_calendar(c, year) for c in code]
        closed = frozenset().union(*(c for c, _ in parts))
        return closed, frozenset().union(*(o for _, o in parts)) - closed
    got = _CALENDARS.get((code, year))
    if got is None:
        try:
            import holidays
            country, _, sub = code.partition("-")
            cal = holidays.country_holidays(country, subdiv=sub or None, years=year)
            closed = frozenset(d for d in cal if d.year == year)
            extra = getattr(cal, "weekend_workdays", None) or ()
            opened = frozenset(d for d in extra if d.year == year) - closed
        except Exception:  # noqa: BLE001 - an unknown code or year: no calendar (validation reports unknown codes)
            closed = opened = frozenset()
        got = _CALENDARS[(code, year)] = (closed, opened)
    return got


def is_open_day(day: date, window: Window) -> bool:
    """Whether the window opens on this local date: days off closed, make-up working days open, else `days`."""
    if window.holidays:
        closed, opened = _calendar(window.holidays, day.year)
        if day in closed:
            return False
        if day in opened:
            return True
    return day.weekday() in window.days


def for_candidate(window: Window, outcome: Mapping | None) -> Window:
    """The window with the calendar that applies to this candidate: for `holidays: candidate` (holidays_from),
    candidate.country with candidate.subdivision when the holidays package knows them, else the window's
    default calendar (or none). Other windows come back as they are. The same object for the same calendar,
    so next_open's per-window cache keeps working."""
    if window.holidays_from != CANDIDATE:
        return window
    cand = outcome.get("candidate") if isinstance(outcome, Mapping) else None
    country = cand.get("country") if isinstance(cand, Mapping) else None
    sub = cand.get("subdivision") if isinstance(cand, Mapping) else None
    code: str | tuple | None = window.holidays
    if isinstance(country, str) and check_holidays(country) is None:
        code = country
        if isinstance(sub, str) and check_holidays(f"{country}-{sub}") is None:
            code = f"{country}-{sub}"
    return _derived(window, code)


@lru_cache(maxsize=4096)
def _derived(window: Window, code: str | tuple | None) -> Window:
    return replace(window, holidays=code, holidays_from=None)


def windows_for(windows: Mapping[str, Window], name: str | None, outcome: Mapping | None) -> Mapping[str, Window]:
    """`windows` with window `name` resolved for the candidate (for_candidate); unchanged when nothing depends
    on the candidate."""
    window = windows.get(name) if name is not None else None
    if name is None or window is None or window.holidays_from != CANDIDATE:
        return windows
    return {**windows, name: for_candidate(window, outcome)}


def in_window(instant: datetime, window: Window, tz: ZoneInfo) -> bool:
    """Whether an aware instant lies inside the window, judged on the local clock of tz."""
    loc = instant.astimezone(tz)
    if not is_open_day(loc.date(), window):
        return False
    tod = ((loc.hour * 60 + loc.minute) * 60 + loc.second) * 1_000_000 + loc.microsecond
    return any(a * _US_PER_MIN <= tod < b * _US_PER_MIN for a, b in window.ranges)


def _wall_next(w: datetime, window: Window) -> datetime | None:
    """The first naive local wall time at or after `w` inside the window (no time zone involved)."""
    day = w.date()
    if window.ranges and is_open_day(day, window):
        tod = ((w.hour * 60 + w.minute) * 60 + w.second) * 1_000_000 + w.microsecond
        best = None
        for a, b in window.ranges:
            if a < b and tod < b * _US_PER_MIN:  # (a >= b never comes from parse_hours; ignored)
                cand = max(tod, a * _US_PER_MIN)
                best = cand if best is None or cand < best else best
        if best is not None:
            return w if best == tod else datetime.combine(day, time()) + timedelta(microseconds=best)
    first = min((a for a, b in window.ranges if a < b), default=None)
    if first is None:
        return None
    for k in range(1, HORIZON_DAYS + 1):
        nxt = day + timedelta(days=k)
        if is_open_day(nxt, window):
            return datetime.combine(nxt, time()) + timedelta(minutes=first)
    return None


def _offset(u: datetime, tz: ZoneInfo) -> timedelta:
    return _utcoffset(u.astimezone(tz))


def _utcoffset(aware: datetime) -> timedelta:
    """The offset of an aware datetime (a ZoneInfo always has one; None only for a naive one, read as UTC)."""
    return aware.utcoffset() or timedelta(0)


@lru_cache(maxsize=4096)
def _year_transitions(tz: ZoneInfo, year: int) -> tuple:
    """Every UTC instant in [year-01-01, year+1-01-01) UTC where tz's offset changes, found once per year.

    Probes a day at a time and bisects to the second; assumes a zone's offset does not change and
    change back within one day (true of every real zone)."""
    lo = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC)
    out = []
    off = _offset(lo - _SECOND, tz)
    while lo < end:
        hi = min(lo + _DAY, end)
        if _offset(hi, tz) != off:
            a = (lo - _EPOCH) // _SECOND - 1  # offset(a) == off
            b = -((_EPOCH - hi) // _SECOND)  # ceil: offset(b) != off
            while b - a > 1:
                mid = (a + b) // 2
                if _offset(_EPOCH + mid * _SECOND, tz) != off:
                    b = mid
                else:
                    a = mid
            change = _EPOCH + b * _SECOND
            if change < end:
                out.append(change)
            off = _offset(hi, tz)
        lo = hi
    return tuple(out)


def _transition(u: datetime, until: datetime, tz: ZoneInfo, off: timedelta) -> datetime | None:
    """The first UTC instant in (u, until] where tz's offset leaves `off` (the offset at u)."""
    for year in range(u.year, until.year + 1):
        for change in _year_transitions(tz, year):
            if change > until:
                return None
            if change > u:
                return change
    return None


def steady_offset(tz: ZoneInfo, day: int) -> timedelta | None:
    """The UTC offset of every wall time on the local date whose ordinal is `day` (date.toordinal()) in tz, when
    no change of offset falls within two days of it (a wall time is then neither skipped nor repeated, and its
    offset is the one around it, fold or not); None when one does, or near the ends of the calendar.

    Offsets are less than a day, so the date's wall times are instants within (day - 1, day + 2) in UTC;
    rests on _year_transitions' assumption (no change and change back within one day)."""
    try:
        lo = datetime.combine(date.fromordinal(day - 2), time(), UTC)
        hi = datetime.combine(date.fromordinal(day + 3), time(), UTC)
        for year in range(lo.year, hi.year + 1):
            for change in _year_transitions(tz, year):
                if lo <= change <= hi:
                    return None
        return _offset(lo + 2 * _DAY, tz)
    except (OverflowError, ValueError):
        return None


# A 15-minute stretch of UTC time is, for a given window and zone, almost always wholly open or wholly
# closed (windows open on whole or half hours, offsets are multiples of 15 minutes). next_open caches
# that per stretch: open -> the start itself, closed -> the one instant the window next opens. Stretches
# with an opening, a closing, a day change or an offset change inside them are answered exactly, uncached.
_BUCKET = timedelta(minutes=15)
_BUCKET_LIMIT = 100_000          # stretches kept per (window, zone) before the cache starts over
_FILL = 3_000                     # closed stretches filled at once (a month)
_OPEN, _MIXED = object(), object()
_BUCKETS: dict[tuple[int, int], tuple] = {}  # (id(window), id(tz)) -> (window, tz, {stretch: verdict})


def _bucket_verdict(b0: datetime, window: Window, tz: ZoneInfo) -> Any:
    """_OPEN, _MIXED, or the opening instant (in tz) shared by every start in [b0, b0 + _BUCKET)."""
    try:
        b1 = b0 + _BUCKET
        first = _next_open_exact(b0, window, tz)
        if first is None:
            return _MIXED
        if first >= b1:  # closed all through: every start in the stretch waits for the same opening
            return first
        if first != b0:
            return _MIXED
        # open at b0: wholly open when the offset holds and the last microsecond is in the same range
        if _transition(b0, b1, tz, _utcoffset(first)) is not None:
            return _MIXED
        a = first.replace(tzinfo=None)
        z = (b1 - timedelta(microseconds=1)).astimezone(tz).replace(tzinfo=None)
        if a.date() != z.date():
            return _MIXED
        ta, tz_ = a.hour * 60 + a.minute, z.hour * 60 + z.minute
        if any(lo <= ta and tz_ < hi for lo, hi in window.ranges):
            return _OPEN
        return _MIXED
    except OverflowError:
        return _MIXED


def _verdicts(window: Window, tz: ZoneInfo) -> dict:
    """The per-stretch cache of next_open for one window and zone (made on first use)."""
    slot = _BUCKETS.get((id(window), id(tz)))
    if slot is None or slot[0] is not window or slot[1] is not tz:
        if len(_BUCKETS) >= 4096:  # old rule sets' windows after many reloads
            _BUCKETS.clear()
        slot = _BUCKETS[(id(window), id(tz))] = (window, tz, {})
    return slot[2]


def next_open(start: datetime, window: Window, tz: ZoneInfo) -> datetime | None:
    """The earliest instant at or after aware `start` inside the window on tz's wall clock, in tz; None if
    it does not open within HORIZON_DAYS. Spring-forward gaps are skipped; in fall-back both occurrences count."""
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("next_open needs an aware datetime")
    return _next_open_cached(start, window, tz, _verdicts(window, tz))


def _next_open_cached(start: datetime, window: Window, tz: ZoneInfo, verdicts: dict,
                      local: datetime | None = None) -> datetime | None:
    """next_open for an aware `start`, with `verdicts` the (window, tz) cache (_verdicts); `local`: start in tz,
    when the caller has it (start.astimezone(tz))."""
    if start.tzinfo is UTC:  # the stretch's number from the calendar fields: no timedelta arithmetic
        n = (start.toordinal() - _EPOCH_ORDINAL) * 96 + start.hour * 4 + start.minute // 15
    else:
        n = (start - _EPOCH) // _BUCKET
    got = verdicts.get(n)
    if got is None:
        if len(verdicts) >= _BUCKET_LIMIT:
            verdicts.clear()
        got = verdicts[n] = _bucket_verdict(_EPOCH + n * _BUCKET, window, tz)  # never raises OverflowError
        if got.__class__ is datetime:  # every stretch up to the opening shares it (a weekend: ~250)
            last = min((got - _EPOCH) // _BUCKET, n + _FILL)
            for k in range(n + 1, last):
                verdicts[k] = got
    if got is _OPEN:
        return start.astimezone(tz) if local is None else local
    if got is _MIXED:
        return _next_open_exact(start, window, tz)
    return got


def _next_open_exact(start: datetime, window: Window, tz: ZoneInfo) -> datetime | None:
    """next_open worked out from scratch (no cache)."""
    try:
        u = start.astimezone(UTC)
        limit = u + timedelta(days=HORIZON_DAYS)
        while True:  # each pass handles one stretch of constant UTC offset; ends at limit
            loc = u.astimezone(tz)
            off = _utcoffset(loc)
            w = loc.replace(tzinfo=None)
            target = _wall_next(w, window)
            if target is None:
                return None
            if target == w:
                return loc
            cand = (target - off).replace(tzinfo=UTC)
            if cand > limit:
                return None
            change = _transition(u, cand, tz, off)
            if change is None:
                return cand.astimezone(tz)
            u = change  # the offset changes before the candidate: look again from the transition
    except OverflowError:
        return None


# ---------------------------------------------------------------- instants and the schedule

def parse_instant(text: Any) -> datetime | None:
    """An RFC 3339 / ISO 8601 instant with an offset ('Z' accepted); None when invalid or naive."""
    if text.__class__ is str:
        return parse_instant_text(text)  # memoised: the gate and the scheduler both ask for each outcome
    if isinstance(text, datetime):
        return text if text.utcoffset() is not None else None
    if not isinstance(text, str):
        return None
    return parse_instant_text.__wrapped__(text)


@lru_cache(maxsize=8192)
def parse_instant_text(text: str) -> datetime | None:
    """parse_instant for a str (memoised): the schema checks' `date-time` verdict, a datetime or None. The gate's
    date-time check parses an outcome's occurred_at; Pipeline.plan's call for the same text is a cache hit."""
    try:  # the usual form, as it comes
        got = datetime.fromisoformat(text)
        if got.utcoffset() is not None:
            return got
    except ValueError:
        pass
    s = text.strip()
    if len(s) > 10 and s[10] == "t":
        s = s[:10] + "T" + s[11:]
    if s.endswith("z"):
        s = s[:-1] + "Z"
    try:
        got = datetime.fromisoformat(s)
    except ValueError:
        return None
    return got if got.utcoffset() is not None else None


@quick_init
@dataclass(frozen=True)
class Schedule:
    """When one notification goes out, all aware in the window's zone.

    Durations are elapsed time (3d is 72 hours, whatever DST does). start: max(occurred_at, approved_at)
    + delay. send_at: the first instant in the window at or after max(start, now) (None: the window never
    opens, or `error`). deadline_at: occurred_at + deadline.
    late: send_at is after deadline_at. escalations: when channel 2, 3, ... would be tried: each is the
    previous attempt + escalate_after, moved into the send window too (a fallback SMS is as unwelcome at
    3 a.m. as the first message).
    """

    start: datetime
    send_at: datetime | None
    deadline_at: datetime | None = None
    late: bool = False
    escalations: tuple = ()
    error: str | None = None


def schedule(timing: Timing, windows: Mapping[str, Window], occurred_at: datetime, tz: ZoneInfo,
             now: datetime, approved_at: datetime | None = None, channels: int = 1) -> Schedule:
    """The Schedule of one notification (see Schedule); an unknown window name, or an instant so near the end
    of the calendar that the delay runs past year 9999, gives `error`, not an exception."""
    return Scheduler(timing, windows, tz)(occurred_at, now, approved_at, channels)


class Scheduler:
    """schedule() for one timing, set of windows and time zone, with what does not depend on the instants
    worked out once: the window looked up (or the unknown-window error), the durations, next_open's cache
    for the window and zone. The pipeline keeps one per (rule, time zone, calendar) and calls it for every
    outcome of that kind; schedule() makes one for a single call."""

    __slots__ = ("deadline", "delay", "error", "escalate_after", "now", "tz", "verdicts", "window")

    def __init__(self, timing: Timing, windows: Mapping[str, Window], tz: ZoneInfo) -> None:
        self.tz = tz
        self.delay = timing.delay or None
        self.deadline = timing.deadline
        self.escalate_after = timing.escalate_after
        self.window = windows.get(timing.window) if timing.window is not None else None
        self.error = None if timing.window is None or self.window is not None else \
            f'unknown window "{timing.window}"{did_you_mean(timing.window, windows)}'
        self.verdicts = _verdicts(self.window, tz) if self.window is not None else None
        self.now: tuple[datetime, datetime] | None = None  # (now, now in UTC) of the last call: a dry-run's is fixed

    def __call__(self, occurred_at: datetime, now: datetime, approved_at: datetime | None = None,
                 channels: int = 1) -> Schedule:
        """The Schedule of one notification (see schedule())."""
        send_at, deadline_at, late, escalations, error, start = self.times(occurred_at, now, approved_at, channels,
                                                                          True)
        return Schedule(start, send_at, deadline_at, late, escalations, error)

    def times(self, occurred_at: datetime, now: datetime, approved_at: datetime | None = None,
              channels: int = 1, with_start: bool = False) -> tuple:
        """(send_at, deadline_at, late, escalations, error) of the Schedule __call__ gives, without making it, nor
        its `start` unless with_start (then start comes last): the pipeline's plan reads these, once per outcome."""
        # each of the three aware (or None); a fixed-offset one (what parse_instant gives) known so without a call
        if ((occurred_at is not None and occurred_at.tzinfo.__class__ is not timezone and occurred_at.utcoffset() is None)
                or (now is not None and now.tzinfo.__class__ is not timezone and now.utcoffset() is None)
                or (approved_at is not None and approved_at.tzinfo.__class__ is not timezone
                    and approved_at.utcoffset() is None)):
            raise ValueError("schedule needs aware datetimes")
        try:
            # arithmetic on UTC: durations are elapsed time, DST or not
            tz = self.tz
            occurred = occurred_at if occurred_at.tzinfo is UTC else occurred_at.astimezone(UTC)
            base = occurred if approved_at is None else max(occurred, approved_at.astimezone(UTC))
            if self.delay is not None:
                base = base + self.delay
            # the start in the zone, when asked for or when there is no window to place it in (it is send_at then)
            start = base.astimezone(tz) if with_start or self.window is None else None
            deadline_utc = occurred + self.deadline if self.deadline is not None else None
            deadline_at = deadline_utc.astimezone(tz) if deadline_utc is not None else None
            if self.error is not None:
                return (None, deadline_at, False, (), self.error, start) if with_start else \
                    (None, deadline_at, False, (), self.error)
            kept = self.now
            if kept is not None and kept[0] is now:
                now_utc = kept[1]
            else:
                now_utc = now if now.tzinfo is UTC else now.astimezone(UTC)
                self.now = (now, now_utc)
            window, verdicts = self.window, self.verdicts
            send_at: datetime | None
            if window is None or verdicts is None:  # self._place, inline (once per outcome)
                send_at = (base.astimezone(tz) if start is None else start) if base >= now_utc else now_utc.astimezone(tz)
            elif base >= now_utc:  # _next_open_cached(base, ...), its stretch already judged: inline (base is UTC)
                got = verdicts.get((base.toordinal() - _EPOCH_ORDINAL) * 96 + base.hour * 4 + base.minute // 15)
                if got is _OPEN:
                    send_at = base.astimezone(tz) if start is None else start
                elif got.__class__ is datetime:
                    send_at = got
                else:  # not judged yet, or mixed
                    send_at = _next_open_cached(base, window, tz, verdicts, start)
            else:
                send_at = _next_open_cached(now_utc, window, tz, verdicts)
            if send_at is None or deadline_at is None or deadline_utc is None:  # (deadline_at is None exactly then)
                late = False
            elif send_at.fold or deadline_at.fold or send_at.tzinfo is not deadline_at.tzinfo:
                late = send_at > deadline_utc  # compared as instants (a UTC side)
            else:
                # both on tz's clock, neither the second pass through a repeated hour: their wall times are in the
                # order of the instants (one zone: Python compares the wall times, no offsets worked out)
                late = send_at > deadline_at
            escalations: tuple = ()
            if self.escalate_after is not None and channels > 1:
                steps: list[datetime] = []
                prev: datetime | None = send_at
                for _ in range(1, channels):
                    if prev is None:
                        break
                    prev = self._place(prev.astimezone(UTC) + self.escalate_after)
                    if prev is not None:
                        steps.append(prev)
                escalations = tuple(steps)
            if with_start:
                return send_at, deadline_at, late, escalations, None, start
            return send_at, deadline_at, late, escalations, None
        except OverflowError:
            out = None, None, False, (), "the time is out of range (beyond year 9999)"
            return (*out, occurred_at) if with_start else out

    def _place(self, t: datetime, local: datetime | None = None) -> datetime | None:
        """The first instant at or after aware `t` in the window, in the zone (t itself without a window);
        `local`: t.astimezone(self.tz) when the caller has it already."""
        if self.window is None or self.verdicts is None:
            return t.astimezone(self.tz) if local is None else local
        return _next_open_cached(t, self.window, self.tz, self.verdicts, local)
