"""Tests for engine.schedule.timing.Scheduler: one kept per (timing, windows, zone) and called for many outcomes,
it gives the same Schedule as the plain code it replaced (kept here as the reference)."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone, UTC
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.model import Timing
from engine.rules.suggest import did_you_mean
from engine.schedule.timing import Schedule, Scheduler, next_open, schedule
from test_timing import BUSINESS, ZONES, starts, window, windows


def plain_schedule(timing, windows_, occurred_at, tz, now, approved_at=None, channels=1) -> Schedule:
    """schedule() as it was written before Scheduler: everything looked up and worked out on each call."""
    for t in (occurred_at, now, approved_at):
        if t is not None and t.utcoffset() is None:
            raise ValueError("schedule needs aware datetimes")
    try:
        occurred = occurred_at.astimezone(UTC)
        base = occurred if approved_at is None else max(occurred, approved_at.astimezone(UTC))
        if timing.delay:
            base = base + timing.delay
        start = base.astimezone(tz)
        deadline_utc = occurred + timing.deadline if timing.deadline is not None else None
        deadline_at = deadline_utc.astimezone(tz) if deadline_utc is not None else None
        win = None
        if timing.window is not None:
            win = windows_.get(timing.window)
            if win is None:
                return Schedule(start, None, deadline_at,
                                error=f'unknown window "{timing.window}"{did_you_mean(timing.window, windows_)}')

        def place(t):
            return next_open(t, win, tz) if win is not None else t.astimezone(tz)

        send_at = place(max(base, now.astimezone(UTC)))
        late = send_at is not None and deadline_utc is not None and send_at.astimezone(UTC) > deadline_utc
        escalations = []
        prev = send_at
        if timing.escalate_after is not None:
            for _ in range(1, channels):
                if prev is None:
                    break
                prev = place(prev.astimezone(UTC) + timing.escalate_after)
                if prev is not None:
                    escalations.append(prev)
        return Schedule(start, send_at, deadline_at, late, tuple(escalations))
    except OverflowError:
        return Schedule(occurred_at, None, None, error="the time is out of range (beyond year 9999)")


def same(got: Schedule, want: Schedule) -> None:
    """Equal instants (compared in UTC: aware equality across zones is False inside a DST fold), each in the
    same zone with the same offset, and equal flags and errors."""
    def norm(t):
        return None if t is None else (t.astimezone(UTC), t.tzinfo, t.utcoffset())
    assert norm(got.start) == norm(want.start)
    assert norm(got.send_at) == norm(want.send_at)
    assert norm(got.deadline_at) == norm(want.deadline_at)
    assert [norm(e) for e in got.escalations] == [norm(e) for e in want.escalations]
    assert (got.late, got.error) == (want.late, want.error)


durations = st.one_of(st.none(), st.integers(0, 4 * 86400).map(lambda s: timedelta(seconds=s)))
offsets = st.sampled_from([UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-3, minutes=-30)),
                           ZoneInfo("Europe/Berlin")])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=windows(), zone=st.sampled_from(ZONES), name=st.sampled_from([None, "p", "bh", "missing"]),
       delay=durations, deadline=durations, escalate=durations, data=st.data())
def test_a_kept_scheduler_gives_the_plain_schedule(w, zone, name, delay, deadline, escalate, data):
    tz = ZoneInfo(zone)
    windows_ = {"p": w, "bh": window(BUSINESS, "bh")}
    timing = Timing(delay=delay or timedelta(0), window=name, deadline=deadline, escalate_after=escalate)
    kept = Scheduler(timing, windows_, tz)
    for _ in range(data.draw(st.integers(1, 6))):  # one scheduler, many outcomes (as the pipeline keeps it)
        occurred = data.draw(starts()).astimezone(data.draw(offsets))
        now = occurred + timedelta(minutes=data.draw(st.integers(-3 * 1440, 3 * 1440)))
        approved = data.draw(st.one_of(st.none(), st.just(now - timedelta(hours=1)),
                                       st.just(occurred + timedelta(days=2))))
        channels = data.draw(st.integers(1, 4))
        want = plain_schedule(timing, windows_, occurred, tz, now, approved, channels)
        same(kept(occurred, now, approved, channels), want)
        # the same `now` object again (a dry-run's fixed clock: the scheduler keeps it in UTC), another outcome
        later = occurred + timedelta(minutes=data.draw(st.integers(0, 3 * 1440)))
        same(kept(later, now, approved, channels), plain_schedule(timing, windows_, later, tz, now, approved, channels))
        # times(), as the pipeline asks (no start): its stretch now judged, send_at is read inline
        for t in (occurred, later):
            want_t = plain_schedule(timing, windows_, t, tz, now, approved, channels)
            same(Schedule(want_t.start, *kept.times(t, now, approved, channels)), want_t)
        same(schedule(timing, windows_, occurred, tz, now, approved_at=approved, channels=channels), want)


def test_out_of_range_and_unknown_window_are_values_as_before():
    tz = ZoneInfo("Asia/Shanghai")
    far = datetime(9999, 12, 31, 23, 0, tzinfo=UTC)
    timing = Timing(delay=timedelta(days=2), window="bh")
    windows_ = {"bh": window(BUSINESS, "bh")}
    same(Scheduler(timing, windows_, tz)(far, far), plain_schedule(timing, windows_, far, tz, far))
    odd = Timing(window="bussines-hours")
    got = Scheduler(odd, windows_, tz)(far - timedelta(days=9), far - timedelta(days=9))
    assert got.send_at is None and got.error.startswith('unknown window "bussines-hours"')
    same(got, plain_schedule(odd, windows_, far - timedelta(days=9), tz, far - timedelta(days=9)))


def test_late_across_a_repeated_hour_is_judged_on_the_instants():
    """`late` compares send_at and deadline_at on the zone's wall clock only when neither is the second pass
    through a repeated hour (fold=1): Berlin's 2026-10-25 02:00-03:00 runs twice, and a send at 02:50 (first
    pass) is before a deadline at 02:20 (second pass)."""
    tz = ZoneInfo("Europe/Berlin")
    occurred = datetime(2026, 10, 25, 0, 40, tzinfo=UTC)  # 02:40 CEST
    now = occurred - timedelta(hours=1)
    cases = [(timedelta(minutes=10), timedelta(minutes=40), False),  # send 02:50 (fold 0), deadline 02:20 (fold 1)
             (timedelta(minutes=50), timedelta(minutes=40), True),   # send 02:30 (fold 1), deadline 02:20 (fold 1)
             (timedelta(minutes=40), timedelta(minutes=10), True),   # send 02:20 (fold 1), deadline 02:50 (fold 0)
             (timedelta(minutes=5), timedelta(minutes=15), False)]   # both in the first pass
    for delay, deadline, late in cases:
        timing = Timing(delay=delay, deadline=deadline)
        got = Scheduler(timing, {}, tz)(occurred, now)
        same(got, plain_schedule(timing, {}, occurred, tz, now))
        assert got.late is late
        assert Scheduler(timing, {}, tz).times(occurred, now) == (got.send_at, got.deadline_at, got.late,
                                                                   got.escalations, got.error)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(w=windows(), zone=st.sampled_from(ZONES), name=st.sampled_from([None, "p", "missing"]), delay=durations,
       deadline=durations, escalate=durations, data=st.data())
def test_times_are_the_schedules_fields(w, zone, name, delay, deadline, escalate, data):
    """Scheduler.times (what the pipeline reads) equals the Schedule's fields, instant for instant."""
    tz = ZoneInfo(zone)
    timing = Timing(delay=delay or timedelta(0), window=name, deadline=deadline, escalate_after=escalate)
    kept = Scheduler(timing, {"p": w}, tz)
    occurred = data.draw(starts()).astimezone(data.draw(offsets))
    now = occurred + timedelta(minutes=data.draw(st.integers(-3 * 1440, 3 * 1440)))
    channels = data.draw(st.integers(1, 4))
    want = kept(occurred, now, None, channels)
    send_at, deadline_at, late, escalations, error = kept.times(occurred, now, None, channels)
    same(Schedule(want.start, send_at, deadline_at, late, escalations, error), want)
