"""What the desk reads: held and unmatched outcomes, dead letters, the queue (by state, time range, channel),
candidates found by id / name / e-mail / phone, a candidate's whole history, replies, the audit log and the
pauses in force. Every listing is a `Page` with a cursor (engine/desk/paging.py); nothing here writes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Any

from engine.desk.paging import DEFAULT_LIMIT, DeskError, Page, check_limit, decode, page
from engine.model import Plan
from engine.store import (
    AuditRow,
    DeadLetterRow,
    EventRow,
    NotificationDetail,
    NotificationRow,
    OutcomeChange,
    OutcomeRow,
    PauseRow,
    ReplyRow,
    Store,
    utc,
)

PENDING_STATES = ("scheduled", "sending")  # still to go out


@dataclass(frozen=True)
class Candidate:
    """One outcome as a search finds it: whose it is (name, e-mail, phone) and where it stands."""

    outcome_id: str
    name: str | None
    email: str | None
    phone: str | None
    decision: str | None
    stage: str | None
    role: str | None
    status: str
    state: str
    received_at: float

    @classmethod
    def of(cls, row: OutcomeRow) -> Candidate:
        try:
            who = row.data().get("candidate") or {}
        except ValueError:
            who = {}
        who = who if isinstance(who, dict) else {}

        def text(k: str) -> str | None:
            return None if who.get(k) is None else str(who.get(k))

        return cls(row.id, text("name"), text("email"), text("phone"), row.decision, row.stage, row.role,
                   row.status, row.state, row.received_at)


@dataclass(frozen=True)
class History:
    """Everything about one outcome: the outcome as it stands, its revisions and changes, each notification
    with its attempts and events, the candidate's replies and ratings, and what people did (the audit log)."""

    outcome: OutcomeRow
    changes: tuple[OutcomeChange, ...]
    notifications: tuple[NotificationDetail, ...]
    replies: tuple[ReplyRow, ...]
    ratings: tuple[EventRow, ...]
    actions: tuple[AuditRow, ...]


def _outcome_key(o: OutcomeRow) -> tuple:
    return (o.received_at, o.id)


def held(store: Store, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page[OutcomeRow]:
    """Outcomes waiting for approval (`approved: false` on intake), oldest first."""
    after = decode("held", cursor, (float, str))
    rows = store.outcomes_page(["held"], after=after, limit=check_limit(limit) + 1)
    return page("held", rows, limit, _outcome_key)


def unmatched(store: Store, cursor: str | None = None, limit: int = DEFAULT_LIMIT) -> Page[OutcomeRow]:
    """Outcomes no rule matched and no person has routed yet, oldest first."""
    after = decode("unmatched", cursor, (float, str))
    rows = store.outcomes_page(["unmatched"], after=after, limit=check_limit(limit) + 1,
                               unhandled=True)
    return page("unmatched", rows, limit, _outcome_key)


def dead_letters(store: Store, cursor: str | None = None, limit: int = DEFAULT_LIMIT,
                 resolved: bool = False) -> Page[DeadLetterRow]:
    """Refused inputs, newest first; those resubmitted and taken only with `resolved`."""
    after = decode("dead-letters", cursor, (int,))
    rows = store.dead_letters_page(after=after[0] if after else None, limit=check_limit(limit) + 1,
                                   resolved=resolved)
    return page("dead-letters", rows, limit, lambda d: (d.id,))


def queue(store: Store, *, states: Sequence[str] = (), since: float | None = None, until: float | None = None,
          channel: str | None = None, cursor: str | None = None,
          limit: int = DEFAULT_LIMIT) -> Page[NotificationRow]:
    """Notifications in the order they go (or went) out, in [since, until) when given."""
    if since is not None and until is not None and until <= since:
        raise DeskError("until", "until: must be after since")
    after = decode("queue", cursor, (float, str))
    rows = store.notifications_page(states=tuple(states), since=since, until=until, channel=channel,
                                    after=after, limit=check_limit(limit) + 1)
    return page("queue", rows, limit, lambda n: (n.next_attempt_at if n.next_attempt_at is not None
                                                 else n.send_at, n.id))


def day_bounds(now: float, tz: tzinfo = UTC) -> tuple[float, float]:
    """[start, end) of the day `now` falls on in `tz` (a DST day is 23 or 25 hours long)."""
    day = datetime.fromtimestamp(now, tz).date()
    start = datetime.combine(day, time(0), tz)
    end = datetime.combine(day + timedelta(days=1), time(0), tz)
    return start.timestamp(), end.timestamp()


DAY_KINDS = ("queued", "sent", "delivered", "failed")  # what a day's summary counts


@dataclass(frozen=True)
class DayCounts:
    """A period's events of `kinds` counted by rule and by channel ({name: {kind: count}}; None names: "-"),
    and the outcomes waiting for a person now (held, unmatched) and the dead letters."""

    kinds: tuple[str, ...]
    by_rule: dict[str, dict[str, int]]
    by_channel: dict[str, dict[str, int]]
    held: int
    unmatched: int
    dead_letters: int


def day_counts(store: Store, since: float, until: float, kinds: Sequence[str] = DAY_KINDS) -> DayCounts:
    """What went through in [since, until) (e.g. day_bounds), by rule and channel, and what waits for a person."""
    by_rule: dict[str, dict[str, int]] = {}
    by_channel: dict[str, dict[str, int]] = {}
    for c in store.event_counts_between(tuple(kinds), since, until):
        for table, name in ((by_rule, c.rule_id or "-"), (by_channel, c.channel or "-")):
            row = table.setdefault(name, dict.fromkeys(kinds, 0))
            row[c.kind] += c.count
    return DayCounts(tuple(kinds), dict(sorted(by_rule.items())), dict(sorted(by_channel.items())),
                     store.count_status("held"), store.count_status("unmatched"), store.dead_letter_count())


def candidates(store: Store, query: str, cursor: str | None = None,
               limit: int = DEFAULT_LIMIT) -> Page[Candidate]:
    """Outcomes of the candidate `query` names (outcome id, part of the name, e-mail or phone), newest first."""
    if not query or not query.strip():
        raise DeskError("query", "query: give an outcome id, a name, an e-mail address or a phone number")
    if len(query) > 200:
        raise DeskError("query", "query: at most 200 characters")
    after = decode("candidates", cursor, (float, str))
    rows = store.find_outcomes(query, after=after, limit=check_limit(limit) + 1)
    p = page("candidates", rows, limit, _outcome_key)
    return Page(tuple(Candidate.of(r) for r in p.items), p.next)


def history(store: Store, outcome_id: str) -> History | None:
    """The whole history of one outcome; None when it is unknown."""
    row = store.get_outcome(outcome_id)
    if row is None:
        return None
    details = tuple(d for n in store.notifications_for(outcome_id)
                    if (d := store.get_notification(n.id)) is not None)
    ratings = tuple(e for d in details for e in d.events if e.kind == "rated")
    return History(row, tuple(store.outcome_history(outcome_id)), details, tuple(store.replies_for(outcome_id)),
                   ratings, tuple(store.audit_for(outcome_id)))


def replies(store: Store, unhandled: bool = True, cursor: str | None = None,
            limit: int = DEFAULT_LIMIT) -> Page[ReplyRow]:
    """Candidates' replies, oldest first; only those not handled yet by default."""
    after = decode("replies", cursor, (int,))
    rows = store.replies_page(unhandled=unhandled, after=after[0] if after else None, limit=check_limit(limit) + 1)
    return page("replies", rows, limit, lambda r: (r.id,))


def audit(store: Store, cursor: str | None = None, limit: int = DEFAULT_LIMIT,
          action: str | None = None) -> Page[AuditRow]:
    """The audit log, newest first (of one action kind when given)."""
    after = decode("audit", cursor, (int,))
    rows = store.audit_page(after=after[0] if after else None, limit=check_limit(limit) + 1, action=action)
    return page("audit", rows, limit, lambda a: (a.id,))


def pauses(store: Store) -> list[PauseRow]:
    """The sending pauses in force ('*': every channel)."""
    return store.pauses()


def would_send(store: Store, pipeline: Any, outcome_id: str, now: float) -> Plan | None:
    """What a held (or any stored) outcome would get if approved now: its plan, with the rendered message per
    channel; None when the outcome is unknown. Nothing is stored."""
    row = store.get_outcome(outcome_id)
    if row is None:
        return None
    approved_at = utc(row.approved_at) if row.approved_at is not None else utc(now)
    return pipeline.plan(row.data(), approved_at=approved_at)
