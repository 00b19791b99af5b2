"""The durable store: outcomes, notifications, attempts, events, rule sets, dead letters; the only module that writes SQL.

Backend: SQLite through sqlite-utils, WAL, synchronous=FULL (a call that returned has been fsynced: it
survives kill -9 and power loss), busy_timeout, foreign keys on. Schema: engine/store/migrations.py.

Times: every instant is stored as epoch seconds (REAL, UTC) and every row returns floats. Methods take
an `Instant`: a float (epoch seconds) or an aware datetime; a naive datetime is refused. `utc()` turns
a stored float back into an aware datetime.

Threads and processes: one sqlite3 connection per thread (threading.local), opened on first use and
closed by `close()`. Every call that changes state is one `BEGIN IMMEDIATE` transaction, so calls from
several threads or processes on the same file serialise on SQLite's write lock (waiting up to
`busy_timeout`); `claim_due` is one UPDATE ... RETURNING under that lock, so no two dispatchers claim the
same notification. Open one Store per process (never carry one across fork).

The dispatcher's protocol (crash-safe at every step):
    rows = claim_due(now, limit, owner, lease_seconds)          # scheduled -> sending, leased
    for n in rows:
        if not still_sendable(n.id): cancel(n.id, now, "withdrawn"); continue
        a = begin_attempt(n.id, n.channel, transport)           # committed first; reuses a crashed pending one
        r = transport.send(envelope with a.attempt_key)
        accepted    -> mark_sent(n.id, now, attempt_id=a.id, result=r, await_read=...)
        recoverable -> schedule_retry(n.id, backoff, attempt_id=a.id, result=r)
        permanent   -> advance_channel(n.id, n.channel_index + 1, now, ..., attempt_id=a.id, result=r)
                       or mark_failed(...) on the last channel
    release_expired_leases(now); due_escalations(now) -> advance_channel(...); sleep until next_due_time()

Interface rules (a PostgreSQL backend will implement the same class): callers see frozen row
dataclasses, str notification ids, int attempt/event ids, floats for times, never sqlite objects.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
import weakref
from contextlib import contextmanager, suppress
from dataclasses import dataclass, fields
from datetime import datetime, timedelta, UTC
from pathlib import Path
from typing import Any
from collections.abc import Iterator, Mapping, Sequence

from sqlite_utils import Database

from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, SendResult
from engine.store.migrations import MIGRATIONS, Migration, SchemaVersionError, StoreError, current_version, migrate
from engine.model import Message, Plan

__all__ = [
    "NOTIFICATION_STATES",
    "Accepted",
    "AttemptRow",
    "DeadLetterRow",
    "EventCount",
    "EventRow",
    "Instant",
    "NotificationDetail",
    "NotificationRow",
    "OutcomeChange",
    "OutcomeRow",
    "PlannedNotification",
    "ReplyRow",
    "RulesetRow",
    "SchemaVersionError",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "epoch",
    "utc",
]

if sqlite3.sqlite_version_info < (3, 35, 0):  # RETURNING
    raise ImportError(f"herald's store needs SQLite 3.35 or newer, this Python has {sqlite3.sqlite_version}")

Instant = float | int | datetime
NOTIFICATION_STATES = ("scheduled", "sending", "sent", "delivered", "read", "failed", "cancelled", "expired")
PENDING = "pending"
_TRANSIENT = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_FULL", "SQLITE_IOERR", "SQLITE_READONLY", "SQLITE_CANTOPEN",
              "SQLITE_PROTOCOL")
_LIVE = "o.state = 'active' AND o.rev = n.outcome_rev"  # the notification belongs to the outcome as it stands


class StoreUnavailable(StoreError):
    """The database could not be written now (locked past busy_timeout, disk full, I/O error): try again later."""


def epoch(t: Instant) -> float:
    """Epoch seconds from a float or an aware datetime."""
    if isinstance(t, datetime):
        if t.tzinfo is None or t.utcoffset() is None:
            raise StoreError(f"naive datetime {t.isoformat()}: give a time zone")
        return t.timestamp()
    if isinstance(t, (int, float)) and not isinstance(t, bool):
        return float(t)
    raise StoreError(f"not a time: {t!r}")


def _opt(t: Instant | None) -> float | None:
    return None if t is None else epoch(t)


def _now(t: Instant | None) -> float:
    return time.time() if t is None else epoch(t)


def utc(ts: float | None) -> datetime | None:
    """An aware UTC datetime from stored epoch seconds."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def _seconds(d: float | timedelta | None) -> float | None:
    return d.total_seconds() if isinstance(d, timedelta) else (None if d is None else float(d))


def _j(v: Any) -> str | None:
    return None if v is None else json.dumps(v, ensure_ascii=False, separators=(",", ":"), default=str)


def _unj(s: str | None, default: Any = None) -> Any:
    return default if s is None else json.loads(s)


# ---------------------------------------------------------------------------------------------- inputs

@dataclass(frozen=True)
class PlannedNotification:
    """What to send for one outcome: rule, template, channel order, rendered messages, schedule."""

    channels: tuple
    messages: tuple  # (Message or mapping with Message's fields, ...): one per channel
    send_at: Instant
    rule: str | None = None
    ruleset_version: str | None = None
    template: str | None = None
    variant: str | None = None
    locale: str | None = None
    deadline_at: Instant | None = None
    escalate_after: float | timedelta | None = None  # seconds, or a timedelta
    late: bool = False  # already past its deadline when planned

    @classmethod
    def from_plan(cls, plan: Plan, escalate_after: float | timedelta | None = None) -> PlannedNotification:
        """From a matched Plan; escalate_after defaults to the gap between send_at and the plan's first escalation."""
        if not plan.channels or plan.send_at is None:
            raise StoreError(f"plan for {plan.outcome_id!r} has no channel or no send_at: nothing to schedule")
        if escalate_after is None and plan.escalations:
            escalate_after = plan.escalations[0] - plan.send_at
        return cls(channels=tuple(plan.channels), messages=tuple(plan.messages), send_at=plan.send_at,
                   rule=plan.rule, ruleset_version=plan.rule_version, template=plan.template, variant=plan.variant,
                   locale=plan.locale, deadline_at=plan.deadline_at, escalate_after=escalate_after, late=plan.late)


@dataclass(frozen=True)
class Accepted:
    """One outcome that passed the gate: its id, the body as received, routing fields, status, optional plan."""

    id: str
    raw: str  # the JSON body exactly as received
    status: str = "matched"  # matched | unmatched | held | ...
    approved: bool = True
    decision: str | None = None
    stage: str | None = None
    role: str | None = None
    reason: str | None = None
    occurred_at: Instant | None = None
    source: str | None = None  # http | file | cli
    notification: PlannedNotification | None = None

    @classmethod
    def from_plan(cls, raw: str, plan: Plan, source: str | None = None,
                  escalate_after: float | timedelta | None = None) -> Accepted:
        """From the pipeline's Plan for this outcome (its `outcome` mapping gives the routing fields)."""
        o = dict(plan.outcome or {})
        occurred = o.get("occurred_at")
        if isinstance(occurred, str):
            try:
                occurred = datetime.fromisoformat(occurred.replace("Z", "+00:00"))
                occurred = occurred if occurred.tzinfo else None
            except ValueError:
                occurred = None
        note = None
        if plan.status == "matched" and plan.channels and plan.send_at is not None:
            note = PlannedNotification.from_plan(plan, escalate_after)
        return cls(id=str(plan.outcome_id), raw=raw, status=plan.status, approved=o.get("approved", True) is not False,
                   decision=o.get("decision"), stage=o.get("stage"), role=o.get("role"), reason=o.get("reason"),
                   occurred_at=occurred if isinstance(occurred, datetime) else None, source=source,
                   notification=note)


# ------------------------------------------------------------------------------------------------ rows

@dataclass(frozen=True)
class OutcomeRow:
    """An outcome as stored (raw is the latest body as received; rev counts amendments from 1)."""

    id: str
    raw: str
    rev: int
    received_at: float
    occurred_at: float | None
    decision: str | None
    stage: str | None
    role: str | None
    reason: str | None
    approved: bool
    approved_at: float | None
    state: str  # active | withdrawn | superseded
    status: str
    source: str | None
    handled_by: str | None
    handled_at: float | None
    updated_at: float

    def data(self) -> Any:
        """The body, parsed."""
        return json.loads(self.raw)


@dataclass(frozen=True)
class OutcomeChange:
    """One entry of an outcome's append-only history."""

    id: int
    outcome_id: str
    kind: str  # received | approved | withdrawn | superseded | amended | routed
    at: float
    body: str | None
    detail: Mapping[str, Any] | None


@dataclass(frozen=True)
class NotificationRow:
    """A notification: its plan, where it is in the channel order, its schedule and state."""

    id: str
    outcome_id: str
    outcome_rev: int
    rule_id: str | None
    ruleset_version: str | None
    variant: str | None
    template: str | None
    locale: str | None
    channels: tuple
    channel_index: int
    channel: str  # channels[channel_index]
    messages: tuple  # (Message, ...)
    send_at: float
    deadline_at: float | None
    escalate_after_s: float | None
    escalate_at: float | None
    await_read: bool
    next_attempt_at: float | None
    attempt_count: int  # attempts started on the current channel
    state: str
    lease_owner: str | None
    lease_until: float | None
    late: bool
    sent_at: float | None
    delivered_at: float | None
    read_at: float | None
    last_error: str | None
    created_at: float
    updated_at: float

    @property
    def has_next_channel(self) -> bool:
        return self.channel_index + 1 < len(self.channels)

    def message(self, channel: str | None = None) -> Message | None:
        """The rendered message for `channel` (default: the current one)."""
        want = channel or self.channel
        return next((m for m in self.messages if m.channel == want), None)


@dataclass(frozen=True)
class AttemptRow:
    """One try of one channel; attempt_key is the idempotency key handed to the provider."""

    id: int
    notification_id: str
    channel: str
    channel_index: int
    transport: str
    attempt_key: str
    provider_id: str | None
    status: str  # pending | accepted | recoverable | permanent
    error: str | None
    code: str | None
    started_at: float
    finished_at: float | None


@dataclass(frozen=True)
class EventRow:
    """Something that happened to a notification, with the rule fields copied for reporting."""

    id: int
    notification_id: str | None
    outcome_id: str | None
    kind: str
    channel: str | None
    at: float
    detail: Mapping[str, Any] | None
    rule_id: str | None
    ruleset_version: str | None
    template: str | None
    variant: str | None


@dataclass(frozen=True)
class NotificationDetail:
    """A notification with its attempts and events, oldest first."""

    notification: NotificationRow
    attempts: tuple  # (AttemptRow, ...)
    events: tuple  # (EventRow, ...)


@dataclass(frozen=True)
class RulesetRow:
    """A rule-set version that was loaded (ok) or refused (ok False, with its errors)."""

    version: str
    files: Mapping[str, str]
    loaded_at: float
    last_loaded_at: float
    ok: bool
    errors: tuple


@dataclass(frozen=True)
class DeadLetterRow:
    """A refused input, its raw body byte-exact."""

    id: int
    received_at: float
    source: str
    reason: str
    field: str | None
    raw: bytes
    remote: str | None

    @property
    def text(self) -> str:
        """The body as text; bytes that are not UTF-8 become U+FFFD."""
        return self.raw.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class ReplyRow:
    """A candidate's reply to a notification."""

    id: int
    notification_id: str | None
    channel: str | None
    at: float
    content: str
    handled_at: float | None


@dataclass(frozen=True)
class EventCount:
    """How many events of one kind one rule (version, template, variant, channel) produced."""

    rule_id: str | None
    ruleset_version: str | None
    template: str | None
    variant: str | None
    channel: str | None
    kind: str
    count: int


def _row(cls: type, r: Mapping[str, Any], **override: Any) -> Any:
    return cls(**{f.name: override[f.name] if f.name in override else r[f.name] for f in fields(cls)})


def _outcome(r: Mapping[str, Any]) -> OutcomeRow:
    return _row(OutcomeRow, r, approved=bool(r["approved"]))


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


# ----------------------------------------------------------------------------------------------- store

class Store:
    """The herald store over one SQLite file; see the module docstring for time, thread and process rules."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0,
                 migrations: Sequence[Migration] = MIGRATIONS):
        """Opens (creating if needed) and migrates the store at `path`; SchemaVersionError if it is newer than us."""
        if str(path) == ":memory:":
            raise StoreError("the store needs a file: each thread has its own connection")
        self.path = Path(path)
        self.busy_timeout = float(busy_timeout)
        self._local = threading.local()
        self._dbs: weakref.WeakSet = weakref.WeakSet()  # every thread's Database; a dead thread's is freed (closed)
        self._lock = threading.Lock()
        self._closed = False
        db = self._db()
        try:
            for attempt in range(50):  # switching a fresh file to WAL needs a moment alone with it
                try:
                    db.execute("PRAGMA journal_mode=WAL")
                    break
                except sqlite3.OperationalError as e:
                    if "locked" not in str(e) or attempt == 49:
                        raise
                    time.sleep(0.05)
            migrate(db, migrations, where=str(self.path))
        except BaseException:
            self.close()
            raise

    @classmethod
    def open(cls, path: str | Path, **kwargs: Any) -> Store:
        return cls(path, **kwargs)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Closes every thread's connection; the Store cannot be used afterwards."""
        with self._lock:
            self._closed = True
            dbs, self._dbs = list(self._dbs), weakref.WeakSet()
        for db in dbs:
            with suppress(sqlite3.Error):
                db.conn.close()

    # -- plumbing

    def _db(self) -> Database:
        db = getattr(self._local, "db", None)
        if db is not None and not self._closed:
            return db
        with self._lock:
            if self._closed:
                raise StoreError("store is closed")
            conn = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=False)  # still used by its own thread only; closed by close()
            db = Database(conn, execute_plugins=False)
            self._dbs.add(db)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA temp_store = MEMORY")  # statement journals of the report triggers stay off disk
        self._local.db = db
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One IMMEDIATE transaction: the write lock is taken up front, so read-then-write never deadlocks."""
        conn = self._db().conn
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except sqlite3.OperationalError as e:
            if str(getattr(e, "sqlite_errorname", "")).startswith(_TRANSIENT):
                raise StoreUnavailable(f"store {self.path}: {e}") from e
            raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot across several SELECTs."""
        conn = self._db().conn
        conn.execute("BEGIN")
        try:
            yield conn
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")

    @staticmethod
    def _q(conn: sqlite3.Connection, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        cur = conn.cursor()
        cur.row_factory = sqlite3.Row
        return cur.execute(sql, params).fetchall()

    def _one(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Row | None:
        rows = self._q(self._db().conn, sql, params)
        return rows[0] if rows else None

    def schema_version(self) -> int:
        return current_version(self._db())

    def _add_event(self, conn: sqlite3.Connection, nid: str, kind: str, at: float, channel: str | None = None,
                   detail: Mapping[str, Any] | None = None, dedupe_key: str | None = None) -> bool:
        cur = conn.execute(
            "INSERT OR IGNORE INTO events (notification_id, outcome_id, kind, channel, at, detail, rule_id, "
            "ruleset_version, template, variant, dedupe_key) SELECT id, outcome_id, ?, coalesce(?, channel), ?, ?, "
            "rule_id, ruleset_version, template, variant, ? FROM notifications WHERE id = ?",
            (kind, channel, at, _j(detail), dedupe_key, nid))
        return cur.rowcount == 1

    def _finish(self, conn: sqlite3.Connection, attempt_id: int | None, status: str, at: float,
                provider_id: str | None = None, error: str | None = None, code: str | None = None) -> None:
        if attempt_id is None:
            return
        if status not in (ACCEPTED, RECOVERABLE, PERMANENT):
            raise StoreError(f"attempt status {status!r}: use accepted, recoverable or permanent")
        conn.execute("UPDATE attempts SET status = ?, provider_id = coalesce(?, provider_id), error = ?, code = ?, "
                     "finished_at = ? WHERE id = ? AND status = 'pending'",
                     (status, provider_id, error, code, at, attempt_id))

    def _finish_result(self, conn: sqlite3.Connection, attempt_id: int | None, result: SendResult | None,
                       default: str, at: float, error: str | None = None, code: str | None = None,
                       provider_id: str | None = None) -> None:
        if result is not None:
            self._finish(conn, attempt_id, result.status, at, result.provider_id or provider_id,
                         result.error or error, result.code or code)
        else:
            self._finish(conn, attempt_id, default, at, provider_id, error, code)

    # -- rule sets

    def record_ruleset(self, version: str, files: Mapping[str, str], ok: bool, errors: Sequence[str] = (),
                       at: Instant | None = None) -> RulesetRow:
        """Records a rule-set version (a content hash) as loaded now; loading the same version again updates its time."""
        now = _now(at)
        with self._write() as conn:
            conn.execute("INSERT INTO rulesets (version, files, loaded_at, last_loaded_at, ok, errors) "
                         "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (version) DO UPDATE SET last_loaded_at = excluded.last_loaded_at",
                         (version, _j(dict(files)), now, now, int(bool(ok)), _j([str(e) for e in errors])))
            r = self._q(conn, "SELECT * FROM rulesets WHERE version = ?", (version,))[0]
        return self._ruleset(r)

    @staticmethod
    def _ruleset(r: Mapping[str, Any]) -> RulesetRow:
        return _row(RulesetRow, r, files=json.loads(r["files"]), ok=bool(r["ok"]), errors=tuple(json.loads(r["errors"])))

    def latest_ruleset(self, ok: bool | None = True) -> RulesetRow | None:
        """The most recently loaded rule set (only good ones by default; ok=None: any)."""
        where = "" if ok is None else f"WHERE ok = {int(ok)}"
        r = self._one(f"SELECT * FROM rulesets {where} ORDER BY last_loaded_at DESC, rowid DESC LIMIT 1")
        return None if r is None else self._ruleset(r)

    def get_ruleset(self, version: str) -> RulesetRow | None:
        r = self._one("SELECT * FROM rulesets WHERE version = ?", (version,))
        return None if r is None else self._ruleset(r)

    # -- intake

    def accept_outcomes(self, items: Sequence[Accepted], at: Instant | None = None) -> list[str]:
        """Stores a batch in ONE transaction; per item 'accepted' (new; its notification queued) or 'duplicate'.

        Idempotent on the outcome id, within the batch and across batches: a duplicate changes nothing.
        When this returns, the batch is durable; if the process dies before, none of it is stored.
        """
        now = _now(at)
        out: list[str] = []
        changes: list[tuple] = []
        notes: list[tuple] = []
        events: list[tuple] = []
        rows = []
        for it in items:  # validate before taking the write lock
            if not isinstance(it.id, str) or not it.id:
                raise StoreError(f"outcome id must be a non-empty string, got {it.id!r}")
            raw = it.raw.decode("utf-8") if isinstance(it.raw, (bytes, bytearray)) else it.raw
            approved = bool(it.approved)
            if it.notification is not None and not approved:
                raise StoreError(f"outcome {it.id!r} is not approved: schedule it after approve()")
            rows.append((it.id, raw, now, _opt(it.occurred_at), it.decision, it.stage, it.role, it.reason,
                         int(approved), now if approved else None, it.status, it.source, now))
        with self._write() as conn:
            for it, values in zip(items, rows, strict=False):
                cur = conn.execute(
                    "INSERT OR IGNORE INTO outcomes (id, raw, received_at, occurred_at, decision, stage, role, reason, "
                    "approved, approved_at, status, source, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)", values)
                if cur.rowcount != 1:
                    out.append("duplicate")
                    continue
                out.append("accepted")
                changes.append((it.id, "received", now, values[1], _j({"status": it.status, "source": it.source})))
                if it.notification is not None:
                    nv = _notification_values(it.id, 1, it.notification, now)
                    notes.append(nv)
                    events.extend(_queued_events(nv, now))
            conn.executemany("INSERT INTO outcome_changes (outcome_id, kind, at, body, detail) VALUES (?,?,?,?,?)",
                             changes)
            conn.executemany(_N_INSERT, notes)
            conn.executemany(_EV_INSERT, events)
        return out

    def dead_letter(self, source: str, reason: str, field: str | None, raw: bytes | str,
                    remote: str | None = None, at: Instant | None = None) -> int:
        """Keeps a refused input with its raw body byte-exact (bytes, or str: surrogate escapes give bytes back)."""
        with self._write() as conn:
            cur = conn.execute("INSERT INTO dead_letters (received_at, source, reason, field, raw, remote) "
                               "VALUES (?,?,?,?,?,?)", (_now(at), source, reason, field, _raw_bytes(raw), remote))
            return int(cur.lastrowid)

    def dead_letters(self, limit: int = 100) -> list[DeadLetterRow]:
        """The newest dead letters first."""
        rows = self._q(self._db().conn, "SELECT * FROM dead_letters ORDER BY id DESC LIMIT ?", (limit,))
        return [_row(DeadLetterRow, r, raw=bytes(r["raw"])) for r in rows]

    # -- outcome lifecycle

    def get_outcome(self, outcome_id: str) -> OutcomeRow | None:
        r = self._one("SELECT * FROM outcomes WHERE id = ?", (outcome_id,))
        return None if r is None else _outcome(r)

    def outcome_history(self, outcome_id: str) -> list[OutcomeChange]:
        """Every recorded change of an outcome, oldest first."""
        rows = self._q(self._db().conn, "SELECT * FROM outcome_changes WHERE outcome_id = ? ORDER BY id", (outcome_id,))
        return [_row(OutcomeChange, r, detail=_unj(r["detail"])) for r in rows]

    def approve(self, outcome_id: str, at: Instant | None = None) -> OutcomeRow | None:
        """Releases a held outcome (idempotent; the change is recorded once); None when the id is unknown.

        The caller then routes it and calls add_notification (which is idempotent per outcome revision).
        """
        now = _now(at)
        with self._write() as conn:
            cur = conn.execute("UPDATE outcomes SET approved = 1, approved_at = ?, updated_at = ? "
                               "WHERE id = ? AND approved = 0", (now, now, outcome_id))
            if cur.rowcount:
                conn.execute("INSERT INTO outcome_changes (outcome_id, kind, at) VALUES (?, 'approved', ?)",
                             (outcome_id, now))
            r = self._q(conn, "SELECT * FROM outcomes WHERE id = ?", (outcome_id,))
        return _outcome(r[0]) if r else None

    def _stop_outcome(self, conn: sqlite3.Connection, outcome_id: str, now: float, reason: str) -> int:
        """Cancels the outcome's scheduled notifications and stops pending escalations; returns how many were cancelled."""
        rows = self._q(conn, "UPDATE notifications SET state = 'cancelled', next_attempt_at = NULL, escalate_at = NULL, "
                             "last_error = ?, updated_at = ? WHERE outcome_id = ? AND state = 'scheduled' RETURNING id",
                       (reason, now, outcome_id))
        for r in rows:
            self._add_event(conn, r["id"], "cancelled", now, detail={"reason": reason})
        conn.execute("UPDATE notifications SET escalate_at = NULL, updated_at = ? WHERE outcome_id = ? "
                     "AND state IN ('sent', 'delivered') AND escalate_at IS NOT NULL", (now, outcome_id))
        return len(rows)

    def _end_outcome(self, outcome_id: str, state: str, at: Instant | None, detail: Mapping[str, Any]) -> int | None:
        now = _now(at)
        with self._write() as conn:
            if not self._q(conn, "SELECT 1 FROM outcomes WHERE id = ?", (outcome_id,)):
                return None
            cur = conn.execute("UPDATE outcomes SET state = ?, updated_at = ? WHERE id = ? AND state = 'active'",
                               (state, now, outcome_id))
            if not cur.rowcount:
                return 0
            conn.execute("INSERT INTO outcome_changes (outcome_id, kind, at, detail) VALUES (?, ?, ?, ?)",
                         (outcome_id, state, now, _j(detail)))
            return self._stop_outcome(conn, outcome_id, now, state)

    def withdraw(self, outcome_id: str, at: Instant | None = None, reason: str | None = None) -> int | None:
        """The decision changed: the outcome becomes withdrawn, its scheduled notifications cancelled (returns how many).

        A notification being sent right now is left to its dispatcher, which must call still_sendable() just
        before the transport and cancel() when it is False; an expired lease on it is cancelled, not retried.
        None when the id is unknown; 0 when it was not active.
        """
        return self._end_outcome(outcome_id, "withdrawn", at, {"reason": reason})

    def supersede(self, outcome_id: str, at: Instant | None = None, by: str | None = None) -> int | None:
        """Like withdraw, for an outcome replaced by another one (`by`, its id)."""
        return self._end_outcome(outcome_id, "superseded", at, {"by": by})

    def amend(self, item: Accepted, at: Instant | None = None) -> int | None:
        """Replaces an outcome's body and fields (a new revision, active again); its scheduled notifications are cancelled.

        A notification of the old revision being sent now fails still_sendable(). If `item.notification` is
        given it is queued for the new revision in the same transaction. Returns how many were cancelled,
        None when the id is unknown.
        """
        now = _now(at)
        raw = item.raw.decode("utf-8") if isinstance(item.raw, (bytes, bytearray)) else item.raw
        if item.notification is not None and not item.approved:
            raise StoreError(f"outcome {item.id!r} is not approved: schedule it after approve()")
        with self._write() as conn:
            old = self._q(conn, "SELECT rev, approved FROM outcomes WHERE id = ?", (item.id,))
            if not old:
                return None
            cancelled = self._stop_outcome(conn, item.id, now, "amended")
            rev = old[0]["rev"] + 1
            conn.execute("UPDATE outcomes SET raw = ?, rev = ?, occurred_at = ?, decision = ?, stage = ?, role = ?, "
                         "reason = ?, approved = ?, approved_at = CASE WHEN ? AND approved_at IS NULL THEN ? "
                         "WHEN ? THEN approved_at END, state = 'active', status = ?, updated_at = ? WHERE id = ?",
                         (raw, rev, _opt(item.occurred_at), item.decision, item.stage, item.role, item.reason,
                          int(item.approved), int(item.approved), now, int(item.approved), item.status, now, item.id))
            conn.execute("INSERT INTO outcome_changes (outcome_id, kind, at, body, detail) VALUES (?, 'amended', ?, ?, ?)",
                         (item.id, now, raw, _j({"rev": rev, "status": item.status, "cancelled": cancelled})))
            if item.notification is not None:
                nv = _notification_values(item.id, rev, item.notification, now)
                conn.execute(_N_INSERT, nv)
                conn.executemany(_EV_INSERT, _queued_events(nv, now))
        return cancelled

    def set_status(self, outcome_id: str, status: str, at: Instant | None = None,
                   handled_by: str | None = None) -> bool:
        """Sets an outcome's status (e.g. unmatched after a rule edit); handled_by records a person's routing."""
        now = _now(at)
        with self._write() as conn:
            return self._set_status(conn, outcome_id, status, now, handled_by)

    def _set_status(self, conn: sqlite3.Connection, outcome_id: str, status: str, now: float,
                    handled_by: str | None) -> bool:
        cur = conn.execute("UPDATE outcomes SET status = ?, handled_by = coalesce(?, handled_by), "
                           "handled_at = CASE WHEN ? IS NULL THEN handled_at ELSE ? END, updated_at = ? WHERE id = ?",
                           (status, handled_by, handled_by, now, now, outcome_id))
        if cur.rowcount and handled_by is not None:
            conn.execute("INSERT INTO outcome_changes (outcome_id, kind, at, detail) VALUES (?, 'routed', ?, ?)",
                         (outcome_id, now, _j({"by": handled_by, "status": status})))
        return bool(cur.rowcount)

    def add_notification(self, outcome_id: str, plan: PlannedNotification, at: Instant | None = None, *,
                         status: str = "matched", handled_by: str | None = None) -> str | None:
        """Queues a notification for an active outcome's current revision (after approval or routing by hand).

        Idempotent: an outcome revision has at most one notification; a second call returns the first one's id.
        Sets the outcome's status (and handled_by/handled_at when a person routed it). None when the outcome is
        unknown or not active; StoreError when it is not approved yet.
        """
        now = _now(at)
        with self._write() as conn:
            o = self._q(conn, "SELECT rev, state, approved FROM outcomes WHERE id = ?", (outcome_id,))
            if not o or o[0]["state"] != "active":
                return None
            if not o[0]["approved"]:
                raise StoreError(f"outcome {outcome_id!r} is not approved: schedule it after approve()")
            nv = _notification_values(outcome_id, o[0]["rev"], plan, now)
            if conn.execute(_N_INSERT, nv).rowcount == 1:
                conn.executemany(_EV_INSERT, _queued_events(nv, now))
                self._set_status(conn, outcome_id, status, now, handled_by)
            return nv[0]

    def unmatched(self, limit: int = 100) -> list[OutcomeRow]:
        """Active outcomes that no rule matched and no person has routed yet, oldest first."""
        rows = self._q(self._db().conn, "SELECT * FROM outcomes WHERE status = 'unmatched' AND state = 'active' "
                                        "AND handled_at IS NULL ORDER BY received_at, id LIMIT ?", (limit,))
        return [_outcome(r) for r in rows]

    def outcomes_with_status(self, status: str, limit: int = 100) -> list[OutcomeRow]:
        """Active outcomes with `status` (e.g. held), oldest first."""
        rows = self._q(self._db().conn, "SELECT * FROM outcomes WHERE status = ? AND state = 'active' "
                                        "ORDER BY received_at, id LIMIT ?", (status, limit))
        return [_outcome(r) for r in rows]

    # -- dispatch

    def claim_due(self, now: Instant, limit: int, owner: str, lease_seconds: float) -> list[NotificationRow]:
        """Atomically moves up to `limit` due notifications (approved, active outcome) to 'sending', leased to `owner`.

        Returns the claimed rows, earliest due first.
        """
        t = epoch(now)
        with self._write() as conn:
            rows = self._q(conn, f"""UPDATE notifications SET state = 'sending', lease_owner = ?, lease_until = ?,
                updated_at = ?
                WHERE id IN (SELECT n.id FROM notifications n JOIN outcomes o ON o.id = n.outcome_id
                             WHERE n.state = 'scheduled' AND n.next_attempt_at <= ? AND {_LIVE} AND o.approved = 1
                             ORDER BY n.next_attempt_at LIMIT ?)
                RETURNING *""", (owner, t + float(lease_seconds), t, t, int(limit)))
        return sorted((_notification(r) for r in rows), key=lambda n: (n.next_attempt_at or 0.0, n.id))

    def release_expired_leases(self, now: Instant) -> int:
        """Takes back claims whose lease ran out (their dispatcher crashed or hung); returns how many.

        An accepted attempt on the current channel means it was sent (crash after the provider took it):
        marked sent. An outcome withdrawn or amended meanwhile: cancelled. Otherwise: scheduled again,
        keeping its pending attempt, which the next begin_attempt() returns with the SAME attempt_key.
        """
        t = epoch(now)
        with self._write() as conn:
            rows = self._q(conn, f"""SELECT n.id, n.channel_index, ({_LIVE}) AS live,
                (SELECT a.id FROM attempts a WHERE a.notification_id = n.id AND a.channel_index = n.channel_index
                   AND a.status = 'accepted' ORDER BY a.id DESC LIMIT 1) AS accepted
                FROM notifications n JOIN outcomes o ON o.id = n.outcome_id
                WHERE n.state = 'sending' AND n.lease_until <= ?""", (t,))
            for r in rows:
                if r["accepted"] is not None:
                    a = self._q(conn, "SELECT provider_id, finished_at FROM attempts WHERE id = ?", (r["accepted"],))[0]
                    self._sent(conn, r["id"], a["finished_at"] or t, a["provider_id"], None, recovered=True)
                elif not r["live"]:
                    self._terminate(conn, r["id"], "cancelled", "cancelled", t, "outcome changed", ("sending",))
                else:
                    conn.execute("UPDATE notifications SET state = 'scheduled', lease_owner = NULL, lease_until = NULL, "
                                 "updated_at = ? WHERE id = ? AND state = 'sending'", (t, r["id"]))
        return len(rows)

    def _is_live(self, conn: sqlite3.Connection, nid: str) -> bool:
        return bool(self._q(conn, f"SELECT 1 FROM notifications n JOIN outcomes o ON o.id = n.outcome_id "
                                  f"WHERE n.id = ? AND {_LIVE}", (nid,)))

    def still_sendable(self, notification_id: str) -> bool:
        """True while the notification may be sent: scheduled or sending, outcome active, approved, same revision."""
        return self._one(f"""SELECT 1 FROM notifications n JOIN outcomes o ON o.id = n.outcome_id
            WHERE n.id = ? AND n.state IN ('scheduled', 'sending') AND {_LIVE} AND o.approved = 1""",
                         (notification_id,)) is not None

    def begin_attempt(self, notification_id: str, channel: str, transport: str, attempt_key: str | None = None,
                      at: Instant | None = None) -> AttemptRow:
        """Records an attempt on the current channel, committed BEFORE the transport is called.

        With attempt_key None: a pending attempt left on this channel by a crash is returned as it is (resend it
        with the same key); else a new one keyed "<notification id>:<channel index>:<n>". With an explicit key
        that exists already, that attempt is returned unchanged (check its status).
        """
        now = _now(at)
        with self._write() as conn:
            n = self._q(conn, "SELECT channel_index, channel, attempt_count FROM notifications WHERE id = ?",
                        (notification_id,))
            if not n:
                raise StoreError(f"no notification {notification_id!r}")
            idx, current, count = n[0]["channel_index"], n[0]["channel"], n[0]["attempt_count"]
            if channel != current:
                raise StoreError(f"notification {notification_id!r} is on channel {current!r}, not {channel!r}")
            if attempt_key is None:
                old = self._q(conn, "SELECT * FROM attempts WHERE notification_id = ? AND channel_index = ? "
                                    "AND status = 'pending' ORDER BY id LIMIT 1", (notification_id, idx))
                k = count + 1
                while not old:
                    key = f"{notification_id}:{idx}:{k}"
                    if not self._q(conn, "SELECT 1 FROM attempts WHERE attempt_key = ?", (key,)):
                        attempt_key = key
                        break
                    k += 1
            else:
                old = self._q(conn, "SELECT * FROM attempts WHERE attempt_key = ?", (attempt_key,))
            if old:
                return _row(AttemptRow, old[0])
            r = self._q(conn, "INSERT INTO attempts (notification_id, channel, channel_index, transport, attempt_key, "
                              "started_at) VALUES (?,?,?,?,?,?) RETURNING *",
                        (notification_id, channel, idx, transport, attempt_key, now))[0]
            conn.execute("UPDATE notifications SET attempt_count = attempt_count + 1, updated_at = ? WHERE id = ?",
                         (now, notification_id))
        return _row(AttemptRow, r)

    def pending_attempt(self, notification_id: str) -> AttemptRow | None:
        """The attempt on the current channel that was begun and never finished (a crash mid-send), if any."""
        r = self._one("SELECT a.* FROM attempts a JOIN notifications n ON n.id = a.notification_id "
                      "WHERE a.notification_id = ? AND a.channel_index = n.channel_index AND a.status = 'pending' "
                      "ORDER BY a.id LIMIT 1", (notification_id,))
        return None if r is None else _row(AttemptRow, r)

    def finish_attempt(self, attempt_id: int, status: str, provider_id: str | None = None, error: str | None = None,
                       code: str | None = None, at: Instant | None = None) -> AttemptRow | None:
        """Records an attempt's result (only once: a finished attempt keeps its first result)."""
        with self._write() as conn:
            self._finish(conn, attempt_id, status, _now(at), provider_id, error, code)
            r = self._q(conn, "SELECT * FROM attempts WHERE id = ?", (attempt_id,))
        return _row(AttemptRow, r[0]) if r else None

    def _sent(self, conn: sqlite3.Connection, nid: str, t: float, provider_id: str | None, await_read: bool | None,
              recovered: bool = False) -> bool:
        rows = self._q(conn, """UPDATE notifications SET state = 'sent', sent_at = ?, lease_owner = NULL,
            lease_until = NULL, next_attempt_at = NULL, last_error = NULL, updated_at = ?,
            await_read = coalesce(?, await_read),
            escalate_at = CASE WHEN escalate_after_s IS NOT NULL AND channel_index + 1 < channel_count
                               THEN ? + escalate_after_s END,
            late = CASE WHEN deadline_at IS NOT NULL AND ? > deadline_at THEN 1 ELSE late END
            WHERE id = ? AND state = 'sending' RETURNING channel, channel_index, late""",
                       (t, t, None if await_read is None else int(await_read), t, t, nid))
        if not rows:
            return False
        r = rows[0]
        detail = {"provider_id": provider_id, **({"recovered": True} if recovered else {})}
        self._add_event(conn, nid, "sent", t, r["channel"], detail, f"sent:{nid}:{r['channel_index']}")
        if r["late"]:
            self._add_event(conn, nid, "late", t, r["channel"], None, f"late:{nid}")
        return True

    def mark_sent(self, notification_id: str, at: Instant | None = None, provider_id: str | None = None, *,
                  attempt_id: int | None = None, result: SendResult | None = None,
                  await_read: bool = False) -> bool:
        """The provider took it: 'sending' -> 'sent', the attempt accepted, a 'sent' event, all in one transaction.

        await_read: the channel reports reads, so only a read (not a delivery) stops escalation to the next
        channel. Marks the notification late when sent after its deadline. False when it was not 'sending'
        (cancelled meanwhile): its state stays, and with attempt_id a 'sent' event still records what went out.
        """
        t = _now(at)
        pid = provider_id or (result.provider_id if result else None)
        with self._write() as conn:
            self._finish_result(conn, attempt_id, result, ACCEPTED, t, provider_id=pid)
            if self._sent(conn, notification_id, t, pid, await_read):
                return True
            st = self._q(conn, "SELECT state FROM notifications WHERE id = ?", (notification_id,))
            if attempt_id is not None and st and st[0]["state"] in ("cancelled", "expired"):
                # it went out although it was stopped meanwhile: keep that on record
                self._add_event(conn, notification_id, "sent", t, None, {"provider_id": pid, "after": st[0]["state"]},
                                f"sent:attempt:{attempt_id}")
            return False

    def schedule_retry(self, notification_id: str, next_attempt_at: Instant, error: str | None = None, *,
                       attempt_id: int | None = None, result: SendResult | None = None,
                       at: Instant | None = None) -> bool:
        """A recoverable failure: 'sending' -> 'scheduled' at next_attempt_at on the same channel.

        False when it was not 'sending', or when its outcome was withdrawn or amended meanwhile (then cancelled).
        """
        t = _now(at)
        with self._write() as conn:
            self._finish_result(conn, attempt_id, result, RECOVERABLE, t, error)
            if not self._is_live(conn, notification_id):
                self._terminate(conn, notification_id, "cancelled", "cancelled", t, "outcome changed", ("sending",))
                return False
            cur = conn.execute("UPDATE notifications SET state = 'scheduled', next_attempt_at = ?, last_error = ?, "
                               "lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? AND state = 'sending'",
                               (epoch(next_attempt_at), error or (result.error if result else None), t, notification_id))
            return bool(cur.rowcount)

    def advance_channel(self, notification_id: str, next_index: int, next_attempt_at: Instant, reason: str, *,
                        attempt_id: int | None = None, result: SendResult | None = None,
                        at: Instant | None = None) -> bool:
        """Falls back (permanent failure, no address) or escalates (no delivery/read in time) to channels[next_index].

        Moves the notification to 'scheduled' on that channel with a fresh attempt count and an 'escalated'
        event. Only forward: a second call for the same step is a no-op returning False, so two daemons can
        race on an escalation safely. An outcome withdrawn or amended meanwhile: cancelled instead, False.
        """
        t = _now(at)
        with self._write() as conn:
            self._finish_result(conn, attempt_id, result, PERMANENT, t, reason)
            if not self._is_live(conn, notification_id):
                self._terminate(conn, notification_id, "cancelled", "cancelled", t, "outcome changed",
                                ("scheduled", "sending"))
                return False
            rows = self._q(conn, """UPDATE notifications SET state = 'scheduled', channel_index = ?,
                channel = json_extract(channels, '$[' || ? || ']'), attempt_count = 0, next_attempt_at = ?,
                escalate_at = NULL, await_read = 0, lease_owner = NULL, lease_until = NULL, last_error = ?,
                updated_at = ?
                WHERE id = ? AND state IN ('scheduled', 'sending', 'sent', 'delivered') AND channel_index < ?
                  AND ? < channel_count
                RETURNING channel""", (next_index, next_index, epoch(next_attempt_at), reason, t,
                                       notification_id, next_index, next_index))
            if rows:
                self._add_event(conn, notification_id, "escalated", t, rows[0]["channel"],
                                {"to_index": next_index, "reason": reason})
            return bool(rows)

    def _terminate(self, conn: sqlite3.Connection, nid: str, state: str, kind: str, t: float, reason: str | None,
                   from_states: Sequence[str]) -> bool:
        marks = ", ".join("?" * len(from_states))
        cur = conn.execute(f"UPDATE notifications SET state = ?, next_attempt_at = NULL, escalate_at = NULL, "
                           f"lease_owner = NULL, lease_until = NULL, last_error = coalesce(?, last_error), "
                           f"updated_at = ? WHERE id = ? AND state IN ({marks})",
                           (state, reason, t, nid, *from_states))
        if cur.rowcount:
            self._add_event(conn, nid, kind, t, None, {"reason": reason}, f"{kind}:{nid}")
        return bool(cur.rowcount)

    def mark_failed(self, notification_id: str, reason: str, at: Instant | None = None, *,
                    attempt_id: int | None = None, result: SendResult | None = None) -> bool:
        """No channel left (or retries exhausted on the last one): -> 'failed' with a 'failed' event."""
        t = _now(at)
        with self._write() as conn:
            self._finish_result(conn, attempt_id, result, PERMANENT, t, reason)
            return self._terminate(conn, notification_id, "failed", "failed", t, reason,
                                   ("scheduled", "sending", "sent", "delivered"))

    def cancel(self, notification_id: str, at: Instant | None = None, reason: str = "cancelled") -> bool:
        """Stops a scheduled or claimed notification (e.g. still_sendable() said no): -> 'cancelled'."""
        t = _now(at)
        with self._write() as conn:
            return self._terminate(conn, notification_id, "cancelled", "cancelled", t, reason, ("scheduled", "sending"))

    def mark_expired(self, notification_id: str, at: Instant | None = None, reason: str = "expired") -> bool:
        """Gives up on a scheduled or claimed notification that is no longer worth sending: -> 'expired'."""
        t = _now(at)
        with self._write() as conn:
            return self._terminate(conn, notification_id, "expired", "expired", t, reason, ("scheduled", "sending"))

    def due_escalations(self, now: Instant, limit: int = 100) -> list[NotificationRow]:
        """Sent notifications whose channel's escalate_after passed with no delivery (or no read where awaited),
        or that were reported undelivered, and that have a next channel. Call advance_channel() on each."""
        rows = self._q(self._db().conn, f"""SELECT n.* FROM notifications n JOIN outcomes o ON o.id = n.outcome_id
            WHERE n.state IN ('sent', 'delivered') AND n.escalate_at <= ? AND n.channel_index + 1 < n.channel_count
              AND {_LIVE} ORDER BY n.escalate_at LIMIT ?""", (epoch(now), int(limit)))
        return [_notification(r) for r in rows]

    def next_due_time(self) -> float | None:
        """The earliest instant at which claim_due, due_escalations or release_expired_leases can find work."""
        join = f"FROM notifications n JOIN outcomes o ON o.id = n.outcome_id WHERE {_LIVE} AND"
        queries = [f"SELECT n.next_attempt_at {join} n.state = 'scheduled' AND o.approved = 1 "
                   f"ORDER BY n.next_attempt_at LIMIT 1"]
        queries += [f"SELECT n.escalate_at {join} n.state = '{s}' AND n.escalate_at IS NOT NULL "
                    f"ORDER BY n.escalate_at LIMIT 1" for s in ("sent", "delivered")]
        queries.append("SELECT min(lease_until) FROM notifications WHERE state = 'sending'")
        with self._read() as conn:
            rows = [conn.execute(q).fetchone() for q in queries]
        vals = [r[0] for r in rows if r is not None and r[0] is not None]
        return min(vals) if vals else None

    # -- tracking

    def add_event(self, notification_id: str, kind: str, at: Instant | None = None, channel: str | None = None,
                  detail: Mapping[str, Any] | None = None, dedupe_key: str | None = None) -> bool:
        """Records an event (channel defaults to the current one); with a dedupe_key, only once. True if recorded."""
        with self._write() as conn:
            return self._add_event(conn, notification_id, kind, _now(at), channel, detail, dedupe_key)

    def record_receipt(self, provider_id: str, kind: str, at: Instant | None = None,
                       detail: Mapping[str, Any] | None = None, *, channel: str | None = None,
                       dedupe_key: str | None = None) -> str | None:
        """A provider's report on an earlier send, found by its provider id; returns the notification id (None: unknown).

        Idempotent: delivered/undelivered/read count once per attempt; other kinds (opened, clicked, replied,
        rated) once per (attempt, kind, at) unless a dedupe_key says otherwise. On the current channel,
        delivered/read move the state forward (never back) and stop escalation as due; undelivered makes the
        next channel due now, or fails the notification on its last channel. Receipts for an earlier channel
        are recorded as events only.
        """
        t = _now(at)
        with self._write() as conn:
            sql = "SELECT id, notification_id, channel, channel_index FROM attempts WHERE provider_id = ?"
            params: tuple = (provider_id,)
            if channel is not None:
                sql, params = sql + " AND channel = ?", (provider_id, channel)
            a = self._q(conn, sql + " ORDER BY id DESC LIMIT 1", params)
            if not a:
                return None
            aid, nid, ch, idx = a[0]["id"], a[0]["notification_id"], a[0]["channel"], a[0]["channel_index"]
            key = dedupe_key or (f"receipt:{aid}:{kind}" if kind in ("delivered", "undelivered", "read")
                                 else f"receipt:{aid}:{kind}:{t!r}")
            if not self._add_event(conn, nid, kind, t, ch, dict(detail or {}, provider_id=provider_id), key):
                return nid
            cur = f"id = ? AND channel_index = {int(idx)}"
            if kind == "delivered":
                conn.execute(f"UPDATE notifications SET state = 'delivered', delivered_at = coalesce(delivered_at, ?), "
                             f"escalate_at = CASE WHEN await_read = 1 THEN escalate_at END, updated_at = ? "
                             f"WHERE {cur} AND state IN ('sent', 'failed')", (t, t, nid))
            elif kind == "read":
                conn.execute(f"UPDATE notifications SET state = 'read', read_at = coalesce(read_at, ?), "
                             f"delivered_at = coalesce(delivered_at, ?), escalate_at = NULL, updated_at = ? "
                             f"WHERE {cur} AND state IN ('sent', 'delivered', 'failed')", (t, t, t, nid))
            elif kind == "undelivered":
                more = conn.execute(f"UPDATE notifications SET escalate_at = ?, updated_at = ? WHERE {cur} "
                                    f"AND state = 'sent' AND channel_index + 1 < channel_count", (t, t, nid)).rowcount
                if not more and self._q(conn, f"SELECT 1 FROM notifications WHERE {cur} AND state = 'sent'", (nid,)):
                    self._terminate(conn, nid, "failed", "failed", t, "undelivered on the last channel", ("sent",))
            return nid

    def awaiting_receipts(self, since: Instant, channels: Sequence[str] | None = None,
                          limit: int = 500) -> list[tuple[str, str]]:
        """(provider_id, channel) of accepted attempts still waiting for a receipt, newest first: the attempt is on
        its notification's current channel, the notification 'sent' (or 'delivered' while a read is awaited), and
        it was sent since `since`. `channels` limits the answer to those channels (an empty list: none)."""
        if channels is not None and not channels:
            return []
        sql = ("SELECT a.provider_id, a.channel FROM notifications n JOIN attempts a ON a.notification_id = n.id "
               "WHERE (n.state = 'sent' OR (n.state = 'delivered' AND n.await_read = 1)) AND n.sent_at >= ? "
               "AND a.channel_index = n.channel_index AND a.status = 'accepted' AND a.provider_id IS NOT NULL")
        params: list = [epoch(since)]
        if channels is not None:
            sql += f" AND a.channel IN ({', '.join('?' * len(channels))})"
            params += list(channels)
        rows = self._db().conn.execute(sql + " ORDER BY a.id DESC LIMIT ?", (*params, int(limit))).fetchall()
        return [(r[0], r[1]) for r in rows]

    def attempt_by_key(self, attempt_key: str) -> AttemptRow | None:
        """The attempt with this idempotency key (e.g. the OutId an SMS receipt echoes), or None."""
        r = self._one("SELECT * FROM attempts WHERE attempt_key = ?", (attempt_key,))
        return _row(AttemptRow, r) if r is not None else None

    def add_reply(self, notification_id: str | None, content: str, at: Instant | None = None,
                  channel: str | None = None) -> int:
        """Keeps a candidate's reply (and a 'replied' event when the notification is known)."""
        t = _now(at)
        with self._write() as conn:
            rid = conn.execute("INSERT INTO replies (notification_id, channel, at, content) VALUES (?,?,?,?)",
                               (notification_id, channel, t, content)).lastrowid
            if notification_id is not None:
                self._add_event(conn, notification_id, "replied", t, channel, {"reply_id": rid})
            return int(rid)

    def replies(self, unhandled: bool = True, limit: int = 100) -> list[ReplyRow]:
        where = "WHERE handled_at IS NULL" if unhandled else ""
        rows = self._q(self._db().conn, f"SELECT * FROM replies {where} ORDER BY id LIMIT ?", (limit,))
        return [_row(ReplyRow, r) for r in rows]

    def mark_reply_handled(self, reply_id: int, at: Instant | None = None) -> bool:
        with self._write() as conn:
            return bool(conn.execute("UPDATE replies SET handled_at = ? WHERE id = ? AND handled_at IS NULL",
                                     (_now(at), reply_id)).rowcount)

    # -- reading

    def get_notification(self, notification_id: str) -> NotificationDetail | None:
        """A notification with its attempts and events (one consistent snapshot)."""
        with self._read() as conn:
            n = self._q(conn, "SELECT * FROM notifications WHERE id = ?", (notification_id,))
            if not n:
                return None
            atts = self._q(conn, "SELECT * FROM attempts WHERE notification_id = ? ORDER BY id", (notification_id,))
            evs = self._q(conn, "SELECT * FROM events WHERE notification_id = ? ORDER BY id", (notification_id,))
        return NotificationDetail(_notification(n[0]), tuple(_row(AttemptRow, a) for a in atts),
                                  tuple(_event(e) for e in evs))

    def notifications_for(self, outcome_id: str) -> list[NotificationRow]:
        """Every notification of an outcome, oldest revision first."""
        rows = self._q(self._db().conn, "SELECT * FROM notifications WHERE outcome_id = ? ORDER BY outcome_rev",
                       (outcome_id,))
        return [_notification(r) for r in rows]

    def outcome_counts(self) -> dict[str, int]:
        """Outcomes by status (active ones) plus 'withdrawn' and 'superseded' ones, for /metrics."""
        rows = self._db().conn.execute(
            "SELECT CASE WHEN state = 'active' THEN status ELSE state END, count(*) FROM outcomes GROUP BY 1").fetchall()
        return dict(rows)

    def notification_counts_by_state(self) -> dict[str, int]:
        """Notifications per state, every state present (0 when none), for /metrics."""
        counts = dict.fromkeys(NOTIFICATION_STATES, 0)
        counts.update(self._db().conn.execute("SELECT state, count(*) FROM notifications GROUP BY state").fetchall())
        return counts

    def dead_letter_count(self) -> int:
        return int(self._db().conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0])

    def event_counts(self, since: Instant | None = None) -> list[EventCount]:
        """Events grouped by rule, rule-set version, template, variant, channel and kind (for `herald report`)."""
        rows = self._q(self._db().conn, "SELECT rule_id, ruleset_version, template, variant, channel, kind, "
                       "count(*) AS count FROM events WHERE at >= ? GROUP BY 1, 2, 3, 4, 5, 6 ORDER BY 1, 2, 3, 4, 5, 6",
                       (_opt(since) if since is not None else float("-inf"),))
        return [_row(EventCount, r) for r in rows]
