"""Shared by the SQL backends: argument and column conversions, the notification/event INSERTs, and `SqlStore`,
the base of every aggregate mixin (outcomes, notifications, attempts, events, rule sets).

A backend subclasses the mixins and provides the plumbing below: `_write()` (one transaction that changes
state, taking the locks it needs up front), `_read()` (one consistent snapshot), `_all()` (one standalone
SELECT), and `_x`/`_xm`/`_q` (run one statement inside a transaction). Aggregate SQL is written once, in
SQLite's dialect with `?` placeholders; a backend whose dialect differs translates it in `_sql()`.
Rows come back as mappings addressed by column name.
"""
from __future__ import annotations

import json
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import fields
from datetime import timedelta
from typing import Any
from collections.abc import Iterator, Mapping, Sequence

from engine.model import ACCEPTED, PERMANENT, RECOVERABLE, SendResult
from engine.model import Message
from engine.store.errors import StoreError
from engine.store.rows import (
    EventRow,
    Instant,
    NotificationRow,
    OutcomeRow,
    PlannedNotification,
    epoch,
)

PENDING = "pending"
# With an owner (and a claim number), a transition applies only to the claim that owner holds: state 'sending',
# leased to it, not claimed again since. Without (None): any state listed, as before leases.
LEASE_HELD = ("(CAST(? AS TEXT) IS NULL OR (state = 'sending' AND lease_owner = ?)) "
              "AND (CAST(? AS INTEGER) IS NULL OR claims = ?)")


def lease_params(owner: str | None, claim: int | None) -> tuple:
    """The parameters of LEASE_HELD."""
    return (owner, owner, claim, claim)

_LIVE = "o.state = 'active' AND o.rev = n.outcome_rev"  # the notification belongs to the outcome as it stands
# no pause (engine/store/desk.py) stops the notification's channel, nor every channel
_NOT_PAUSED = "NOT EXISTS (SELECT 1 FROM sending_pauses p WHERE p.channel IN (n.channel, '*'))"


def _opt(t: Instant | None) -> float | None:
    return None if t is None else epoch(t)


def _now(t: Instant | None) -> float:
    return time.time() if t is None else epoch(t)


def _seconds(d: float | timedelta | None) -> float | None:
    return d.total_seconds() if isinstance(d, timedelta) else (None if d is None else float(d))


def _j(v: Any) -> str | None:
    return None if v is None else json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)


def _unj(s: str | None, default: Any = None) -> Any:
    return default if s is None else json.loads(s)


def _row(cls: type, r: Mapping[str, Any], **override: Any) -> Any:
    return cls(**{f.name: override[f.name] if f.name in override else r[f.name] for f in fields(cls)})


def _outcome(r: Mapping[str, Any]) -> OutcomeRow:
    return _row(OutcomeRow, r, approved=bool(r["approved"]), outside_vocabulary=_unj(r["outside_vocabulary"]))


_MESSAGE_FIELDS = tuple(f.name for f in fields(Message))


def _message(d: Mapping[str, Any]) -> Message:
    return Message(**{k: v for k, v in d.items() if k in _MESSAGE_FIELDS})


def _notification(r: Mapping[str, Any]) -> NotificationRow:
    return _row(NotificationRow, r, channels=tuple(json.loads(r["channels"])),
                messages=tuple(_message(m) for m in json.loads(r["messages"])),
                await_read=bool(r["await_read"]), late=bool(r["late"]),
                escalate_after_s=None if r["escalate_after_s"] is None else float(r["escalate_after_s"]))


def _event(r: Mapping[str, Any]) -> EventRow:
    return _row(EventRow, r, detail=_unj(r["detail"]))


def _message_dict(m: Message | Mapping[str, Any]) -> dict:
    if isinstance(m, Message):  # not dataclasses.asdict: its deep copies cost more than the INSERT
        return {k: v for k in _MESSAGE_FIELDS if (v := getattr(m, k)) is not None}
    return dict(m)


def _raw_bytes(raw: bytes | bytearray | memoryview | str) -> bytes:
    if isinstance(raw, str):  # a str decoded with surrogateescape gives its original bytes back
        return raw.encode("utf-8", errors="surrogateescape")
    return bytes(raw)


_N_COLS = ("id", "outcome_id", "outcome_rev", "rule_id", "ruleset_version", "variant", "template", "locale",
           "channels", "channel_count", "channel_index", "channel", "messages", "send_at", "deadline_at",
           "escalate_after_s", "next_attempt_at", "state", "late", "created_at", "updated_at")
_N_INSERT = f"INSERT OR IGNORE INTO notifications ({', '.join(_N_COLS)}) VALUES ({', '.join('?' * len(_N_COLS))})"
_EV_COLS = ("notification_id", "outcome_id", "kind", "channel", "at", "detail",
            "rule_id", "ruleset_version", "template", "variant", "dedupe_key")
_EV_INSERT = f"INSERT OR IGNORE INTO events ({', '.join(_EV_COLS)}) VALUES ({', '.join('?' * len(_EV_COLS))})"


def _notification_values(outcome_id: str, rev: int, p: PlannedNotification, now: float) -> tuple:
    if not p.channels:
        raise StoreError(f"notification for outcome {outcome_id!r} has no channel")
    send_at = epoch(p.send_at)
    return (f"{outcome_id}#{rev}", outcome_id, rev, p.rule, p.ruleset_version, p.variant, p.template, p.locale,
            _j(list(p.channels)), len(p.channels), 0, p.channels[0],
            _j([_message_dict(m) for m in p.messages]), send_at, _opt(p.deadline_at),
            _seconds(p.escalate_after), send_at, "scheduled", int(bool(p.late)), now, now)


def _queued_events(values: tuple, now: float) -> list[tuple]:
    nid, oid, _rev, rule, version, variant, template = values[:7]
    channel, late = values[11], values[18]
    evs = [(nid, oid, "queued", channel, now, None, rule, version, template, variant, f"queued:{nid}")]
    if late:
        evs.append((nid, oid, "late", channel, now, None, rule, version, template, variant, f"late:{nid}"))
    return evs


class SqlStore:
    """Plumbing every SQL backend provides, and the internals several aggregates share."""

    _JSON_ITEM = "json_extract({}, '$[' || ? || ']')"  # the ?-th item of a JSON list column, as text
    _SKIP_LOCKED = ""  # after a claim's SELECT: rows another transaction holds are skipped (SQLite: one writer)
    _FOR_UPDATE = ""  # after a SELECT whose row the transaction goes on to change (SQLite: the write lock is held)
    _FOR_SHARE = ""  # after a SELECT whose row must not change until the transaction ends (SQLite: as above)

    _tx: threading.local  # set by the backend: `conn` is the transaction of this thread's batch() under way

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Every state change this thread makes inside, in ONE transaction: one commit (one fsync) for all of them,
        committed when the block ends, rolled back when it raises. The dispatcher records a batch's attempts, and
        then its results, this way. Nested: part of the outer batch. Reads (`_read`, `_all`) inside still see only
        what was committed. Never call a provider inside: the rows changed stay locked until the end."""
        if getattr(self._tx, "conn", None) is not None:
            yield
            return
        with self._write() as conn:
            self._tx.conn = conn
            try:
                yield
            finally:
                self._tx.conn = None

    def _batched(self) -> Any:
        """The connection of this thread's batch() under way (its `_write()` joins that transaction), or None."""
        return getattr(self._tx, "conn", None)

    def _sole_sweeper(self, conn: Any) -> bool:
        """True when this transaction may return expired leases (one replica at a time; SQLite: always)."""
        return True

    def _hint(self, conn: Any) -> None:
        """Work became due in this transaction: tell other replicas at commit (PostgreSQL's NOTIFY; SQLite: none)."""

    def wakeups(self, callback: Any) -> Any:
        """Started hints from other replicas calling `callback` (an object with stop()), or None (poll only)."""
        return None

    def rate_limiter(self, limit: int, window: float) -> Any:
        """A RateLimiter shared by every process on this store (engine.channels.ratelimit), or None: one process
        per store (SQLite), whose own limiter is enough."""
        return None

    def alert_queue(self) -> Any:
        """Where HR alert lines go so that only the leader posts them (engine.daemon.alerts), or None: one process
        per store (SQLite), which posts its own."""
        return None

    def is_leader(self) -> bool:
        """Whether this process is the one (of the replicas sharing the store) that runs the periodic work: the
        expired-lease sweep, escalations, receipt polling. SQLite: always (one file, one daemon)."""
        return True

    # -- provided by the backend

    def _write(self) -> AbstractContextManager[Any]:
        """One transaction that changes state (inside a batch(): the batch's transaction, committed at its end)."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[Mapping[str, Any]]:
        """One standalone SELECT outside any transaction of ours."""
        raise NotImplementedError

    def _x(self, conn: Any, sql: str, params: Sequence[Any] = (), *, prepared: bool = False) -> Any:
        """Runs one statement in `conn`'s transaction; the result has `.rowcount`.

        prepared: a statement of the send path, run a few times for every notification sent: a backend that can
        (PostgreSQL) binds its parameters server-side and prepares it once per connection, so it is not parsed and
        planned again each time. Its SQL then types every parameter that nothing else types: a parameter only
        compared with NULL is written CAST(? AS TEXT) IS NULL (LEASE_HELD)."""
        raise NotImplementedError

    def _xm(self, conn: Any, sql: str, seq: Sequence[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _q(self, conn: Any, sql: str, params: Sequence[Any] = (), *,
           prepared: bool = False) -> list[Mapping[str, Any]]:
        """Runs one statement in `conn`'s transaction and returns its rows (`prepared`: as for _x)."""
        raise NotImplementedError

    # -- shared internals

    def _one(self, sql: str, params: Sequence[Any] = ()) -> Mapping[str, Any] | None:
        rows = self._all(sql, params)
        return rows[0] if rows else None

    def _add_event(self, conn: Any, nid: str, kind: str, at: float, channel: str | None = None,
                   detail: Mapping[str, Any] | None = None, dedupe_key: str | None = None) -> bool:
        cur = self._x(
            conn,
            "INSERT OR IGNORE INTO events (notification_id, outcome_id, kind, channel, at, detail, rule_id, "
            "ruleset_version, template, variant, dedupe_key) SELECT id, outcome_id, CAST(? AS TEXT), "
            "coalesce(?, channel), CAST(? AS DOUBLE PRECISION), CAST(? AS TEXT), rule_id, ruleset_version, template, "
            "variant, CAST(? AS TEXT) FROM notifications WHERE id = ?",
            (kind, channel, at, _j(detail), dedupe_key, nid), prepared=True)
        return cur.rowcount == 1

    def _finish(self, conn: Any, attempt_id: int | None, status: str, at: float,
                provider_id: str | None = None, error: str | None = None, code: str | None = None) -> None:
        if attempt_id is None:
            return
        if status not in (ACCEPTED, RECOVERABLE, PERMANENT):
            raise StoreError(f"attempt status {status!r}: use accepted, recoverable or permanent")
        self._x(conn, "UPDATE attempts SET status = ?, provider_id = coalesce(?, provider_id), error = ?, code = ?, "
                      "finished_at = ? WHERE id = ? AND status = 'pending'",
                (status, provider_id, error, code, at, attempt_id), prepared=True)

    def _finish_result(self, conn: Any, attempt_id: int | None, result: SendResult | None,
                       default: str, at: float, error: str | None = None, code: str | None = None,
                       provider_id: str | None = None) -> None:
        if result is not None:
            self._finish(conn, attempt_id, result.status, at, result.provider_id or provider_id,
                         result.error or error, result.code or code)
        else:
            self._finish(conn, attempt_id, default, at, provider_id, error, code)

    def _is_live(self, conn: Any, nid: str) -> bool:
        return bool(self._q(conn, f"SELECT 1 FROM notifications n JOIN outcomes o ON o.id = n.outcome_id "
                                  f"WHERE n.id = ? AND {_LIVE}", (nid,)))

    def _terminate(self, conn: Any, nid: str, state: str, kind: str, t: float, reason: str | None,
                   from_states: Sequence[str], owner: str | None = None, claim: int | None = None) -> bool:
        marks = ", ".join("?" * len(from_states))
        cur = self._x(conn, f"UPDATE notifications SET state = ?, next_attempt_at = NULL, escalate_at = NULL, "
                            f"lease_owner = NULL, lease_until = NULL, last_error = coalesce(?, last_error), "
                            f"updated_at = ? WHERE id = ? AND state IN ({marks}) AND {LEASE_HELD}",
                      (state, reason, t, nid, *from_states, *lease_params(owner, claim)))
        if cur.rowcount:
            self._add_event(conn, nid, kind, t, None, {"reason": reason}, f"{kind}:{nid}")
        return bool(cur.rowcount)

    def _receipt(self, conn: Any, aid: int, nid: str, ch: str, idx: int, provider_id: str | None, kind: str, t: float,
                 detail: Mapping[str, Any] | None, dedupe_key: str | None) -> None:
        """record_receipt once its attempt is known (id, notification, channel and its index): the event, and on the
        current channel the state moved forward (or on, for undelivered)."""
        key = dedupe_key or (f"receipt:{aid}:{kind}" if kind in ("delivered", "undelivered", "read")
                             else f"receipt:{aid}:{kind}:{t!r}")
        if not self._add_event(conn, nid, kind, t, ch, dict(detail or {}, provider_id=provider_id), key):
            return
        cur = f"id = ? AND channel_index = {int(idx)}"
        if kind == "delivered":
            self._x(conn, f"UPDATE notifications SET state = 'delivered', delivered_at = coalesce(delivered_at, ?), "
                         f"escalate_at = CASE WHEN await_read = 1 THEN escalate_at END, updated_at = ? "
                         f"WHERE {cur} AND state IN ('sent', 'failed')", (t, t, nid), prepared=True)
        elif kind == "read":
            self._x(conn, f"UPDATE notifications SET state = 'read', read_at = coalesce(read_at, ?), "
                         f"delivered_at = coalesce(delivered_at, ?), escalate_at = NULL, updated_at = ? "
                         f"WHERE {cur} AND state IN ('sent', 'delivered', 'failed')", (t, t, t, nid))
        elif kind == "undelivered":
            more = self._x(conn, f"UPDATE notifications SET escalate_at = ?, updated_at = ? WHERE {cur} "
                                f"AND state = 'sent' AND channel_index + 1 < channel_count", (t, t, nid)).rowcount
            if not more and self._q(conn, f"SELECT 1 FROM notifications WHERE {cur} AND state = 'sent'", (nid,)):
                self._terminate(conn, nid, "failed", "failed", t, "undelivered on the last channel", ("sent",))
