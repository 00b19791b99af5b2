"""The durable store: outcomes and revisions, notifications (the state machine), attempts and receipts, events and
replies, rule sets and dead letters, and the versioned migrations. The only package that writes SQL (the report
reads through its own queries).

`Store` is the interface every caller (daemon, CLI, report, intake) types against; `open_store(target)` opens
the backend a target names (a file path: SQLite, the embedded default). Callers import from here, never from a
backend module. The contract of each method is written on its aggregate's implementation (outcomes.py,
notifications.py, attempts.py, events.py, rulesets.py) and pinned by tests/store/, which runs against every
backend.

Interface rules: callers see frozen row dataclasses (rows.py), str notification ids, int attempt/event ids,
floats (epoch seconds, UTC) for times, never driver objects. Methods take an `Instant` (float or aware
datetime). Errors: StoreError (bad argument), SchemaVersionError (a newer schema), StoreUnavailable (try later).

The dispatcher's protocol (crash-safe at every step); a claim is (owner, lease_until, claim number n.claims) and
every transition after it passes owner=n.lease_owner, claim=n.claims, so it applies only under that claim:
    rows = claim_due(now, limit, owner, lease_seconds)          # scheduled -> sending, leased
    for n in rows:
        if not still_sendable(n.id): cancel(n.id, now, "withdrawn", owner=..., claim=...); continue
        a = begin_attempt(n.id, n.channel, transport, owner=..., claim=...)  # committed first; reuses a crashed
                      # pending one; re-checks the outcome in the same transaction (NotSendable: cancelled)
        r = transport.send(envelope with a.attempt_key)         # meanwhile extend_leases() heartbeats the claim
        accepted    -> mark_sent(n.id, now, attempt_id=a.id, result=r, await_read=..., owner=..., claim=...)
                       (False with a 'possible_duplicate' event when another claim holds it now)
        recoverable -> schedule_retry(n.id, backoff, attempt_id=a.id, result=r, owner=..., claim=...)
        permanent   -> advance_channel(n.id, n.channel_index + 1, now, ..., attempt_id=a.id, result=r, ...)
                       or mark_failed(...) on the last channel
    (engine/daemon/send.py puts each result and the next row's begin_attempt in one `with batch():`, one commit
    per send; the heartbeat extends every claim of the worker's batch until its result is recorded)
    on a clean stop: release_leases(its owners, now)            # not left to expire
    one replica at a time (is_leader()): release_expired_leases(now); due_escalations(now) -> advance_channel(...);
    receipt polling; prune_events on a schedule; HR alerts (every replica puts its lines in alert_queue()).
    Sleep until next_due_time() (or a wake-up).
"""
from __future__ import annotations

from pathlib import Path
from contextlib import AbstractContextManager
from typing import Any, Protocol
from collections.abc import Mapping, Sequence

from engine.model import SendResult
from engine.store.errors import LeaseLost, NotSendable, SchemaVersionError, StoreError, StoreUnavailable
from engine.store.rows import (
    NOTIFICATION_STATES,
    Accepted,
    AttemptRow,
    DeadLetterRow,
    EventCount,
    EventRow,
    Instant,
    NotificationDetail,
    NotificationRow,
    OutcomeChange,
    OutcomeRow,
    PlannedNotification,
    ReplyRow,
    RulesetRow,
    epoch,
    utc,
)
from engine.store.desk import ALL_CHANNELS, AuditRow, PauseRow
from engine.store.sources import SourceDelivery, SourceEventRow
from engine.store.suppressions import SuppressionRow
from engine.store.sqlite import SQLiteStore

__all__ = [
    "ALL_CHANNELS",
    "NOTIFICATION_STATES",
    "Accepted",
    "AttemptRow",
    "AuditRow",
    "DeadLetterRow",
    "EventCount",
    "EventRow",
    "Instant",
    "LeaseLost",
    "NotSendable",
    "NotificationDetail",
    "NotificationRow",
    "OutcomeChange",
    "OutcomeRow",
    "PauseRow",
    "PlannedNotification",
    "ReplyRow",
    "RulesetRow",
    "SQLiteStore",
    "SchemaVersionError",
    "SourceDelivery",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "epoch",
    "open_store",
    "utc",
]


class Store(Protocol):
    """What herald needs from a durable store; SQLiteStore implements it."""

    @property
    def path(self) -> Path | str:
        """What messages name the store by: the SQLite file, or the URL with its password masked."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Store: ...

    def __exit__(self, *exc: Any) -> None: ...

    def schema_version(self) -> int: ...

    def ensure_search_index(self) -> str: ...

    def batch(self) -> AbstractContextManager[None]: ...

    # -- outcomes and revisions (outcomes.py)

    def accept_outcomes(self, items: Sequence[Accepted], at: Instant | None = None,
                        deliveries: Sequence[SourceDelivery] = ()) -> list[str]: ...

    def get_outcome(self, outcome_id: str) -> OutcomeRow | None: ...

    def get_outcomes(self, outcome_ids: Sequence[str]) -> dict[str, OutcomeRow]: ...

    def outcome_history(self, outcome_id: str) -> list[OutcomeChange]: ...

    def approve(self, outcome_id: str, at: Instant | None = None,
                detail: Mapping[str, Any] | None = None) -> OutcomeRow | None: ...

    def withdraw(self, outcome_id: str, at: Instant | None = None, reason: str | None = None,
                 actor: str | None = None) -> int | None: ...

    def supersede(self, outcome_id: str, at: Instant | None = None, by: str | None = None) -> int | None: ...

    def amend(self, item: Accepted, at: Instant | None = None, delivery: SourceDelivery | None = None) -> int | None: ...

    def set_status(self, outcome_id: str, status: str, at: Instant | None = None,
                   handled_by: str | None = None) -> bool: ...

    def add_notification(self, outcome_id: str, plan: PlannedNotification, at: Instant | None = None, *,
                         status: str = "matched", handled_by: str | None = None) -> str | None: ...

    def unmatched(self, limit: int = 100) -> list[OutcomeRow]: ...

    def outcomes_with_status(self, status: str, limit: int = 100) -> list[OutcomeRow]: ...

    def outcome_counts(self) -> dict[str, int]: ...

    def count_status(self, status: str) -> int: ...

    # -- the notification state machine (notifications.py)

    def claim_due(self, now: Instant, limit: int, owner: str, lease_seconds: float) -> list[NotificationRow]: ...

    def release_expired_leases(self, now: Instant) -> int: ...

    def release_leases(self, owners: Sequence[str], now: Instant, keep: Sequence[str] = ()) -> int: ...

    def extend_leases(self, claims: Sequence[tuple[str, str, int]], until: Instant) -> int: ...

    def is_leader(self) -> bool: ...

    def wakeups(self, callback: Any) -> Any: ...

    def rate_limiter(self, limit: int, window: float) -> Any: ...

    def alert_queue(self) -> Any: ...

    def lease_counts(self, owners: Sequence[str], now: Instant) -> dict[str, int]: ...

    def still_sendable(self, notification_id: str) -> bool: ...

    def mark_sent(self, notification_id: str, at: Instant | None = None, provider_id: str | None = None, *,
                  attempt_id: int | None = None, result: SendResult | None = None,
                  await_read: bool = False, owner: str | None = None, claim: int | None = None,
                  assumed: Mapping[str, Any] | None = None) -> bool: ...

    def schedule_retry(self, notification_id: str, next_attempt_at: Instant, error: str | None = None, *,
                       attempt_id: int | None = None, result: SendResult | None = None,
                       at: Instant | None = None, owner: str | None = None, claim: int | None = None) -> bool: ...

    def defer(self, notification_id: str, until: Instant, reason: str, at: Instant | None = None, *,
              owner: str | None = None, claim: int | None = None) -> bool: ...

    def advance_channel(self, notification_id: str, next_index: int, next_attempt_at: Instant, reason: str, *,
                        attempt_id: int | None = None, result: SendResult | None = None,
                        at: Instant | None = None, owner: str | None = None, claim: int | None = None) -> bool: ...

    def mark_failed(self, notification_id: str, reason: str, at: Instant | None = None, *,
                    attempt_id: int | None = None, result: SendResult | None = None,
                    owner: str | None = None, claim: int | None = None) -> bool: ...

    def mark_suppressed(self, notification_id: str, reason: str, at: Instant | None = None, *,
                        owner: str | None = None, claim: int | None = None) -> bool: ...

    def cancel(self, notification_id: str, at: Instant | None = None, reason: str = "cancelled", *,
               owner: str | None = None, claim: int | None = None) -> bool: ...

    def mark_expired(self, notification_id: str, at: Instant | None = None, reason: str = "expired") -> bool: ...

    def due_escalations(self, now: Instant, limit: int = 100) -> list[NotificationRow]: ...

    def next_due_time(self) -> float | None: ...

    def get_notification(self, notification_id: str) -> NotificationDetail | None: ...

    def notifications_for(self, outcome_id: str) -> list[NotificationRow]: ...

    def notification_counts_by_state(self) -> dict[str, int]: ...

    # -- attempts and receipts (attempts.py)

    def begin_attempt(self, notification_id: str, channel: str, transport: str, attempt_key: str | None = None,
                      at: Instant | None = None, *, owner: str | None = None, claim: int | None = None,
                      lease_seconds: float | None = None, template_hash: str | None = None) -> AttemptRow: ...

    def pending_attempt(self, notification_id: str) -> AttemptRow | None: ...

    def finish_attempt(self, attempt_id: int, status: str, provider_id: str | None = None, error: str | None = None,
                       code: str | None = None, at: Instant | None = None) -> AttemptRow | None: ...

    def record_receipt(self, provider_id: str, kind: str, at: Instant | None = None,
                       detail: Mapping[str, Any] | None = None, *, channel: str | None = None,
                       dedupe_key: str | None = None) -> str | None: ...

    def awaiting_receipts(self, since: Instant, channels: Sequence[str] | None = None,
                          limit: int = 500) -> list[tuple[str, str]]: ...

    def attempt_by_key(self, attempt_key: str) -> AttemptRow | None: ...

    # -- events and replies (events.py)

    def add_event(self, notification_id: str, kind: str, at: Instant | None = None, channel: str | None = None,
                  detail: Mapping[str, Any] | None = None, dedupe_key: str | None = None) -> bool: ...

    def add_reply(self, notification_id: str | None, content: str, at: Instant | None = None,
                  channel: str | None = None) -> int: ...

    def replies(self, unhandled: bool = True, limit: int = 100) -> list[ReplyRow]: ...

    def mark_reply_handled(self, reply_id: int, at: Instant | None = None) -> bool: ...

    def event_counts(self, since: Instant | None = None) -> list[EventCount]: ...

    def prune_events(self, before: Instant, limit: int = 10_000) -> int: ...

    def event_counts_between(self, kinds: Sequence[str], since: Instant, until: Instant) -> list[EventCount]: ...

    # -- rule sets and dead letters (rulesets.py)

    def record_ruleset(self, version: str, files: Mapping[str, str], ok: bool, errors: Sequence[str] = (),
                       at: Instant | None = None) -> RulesetRow: ...

    def latest_ruleset(self, ok: bool | None = True) -> RulesetRow | None: ...

    def get_ruleset(self, version: str) -> RulesetRow | None: ...

    def dead_letter(self, source: str, reason: str, field: str | None, raw: bytes | str,
                    remote: str | None = None, at: Instant | None = None) -> int: ...

    def dead_letters(self, limit: int = 100) -> list[DeadLetterRow]: ...

    def dead_letter_count(self) -> int: ...

    # -- ATS source events (sources.py)

    def source_event(self, source: str, event_id: str) -> SourceEventRow | None: ...

    def record_source_event(self, source: str, event_id: str, status: str, raw: bytes | str, *,
                            action: str | None = None, outcome_id: str | None = None, error: str | None = None,
                            field: str | None = None, at: Instant | None = None) -> bool: ...

    def record_delivery(self, delivery: SourceDelivery, at: Instant | None = None) -> bool: ...

    def unmapped_source_events(self, limit: int = 100, source: str | None = None) -> list[SourceEventRow]: ...

    def resolve_source_event(self, row_id: int, status: str, outcome_id: str | None = None,
                             at: Instant | None = None) -> bool: ...

    # -- consent (suppressions.py)

    def suppress(self, channel: str, address: str, *, reason: str | None = None, actor: str | None = None,
                 notification_id: str | None = None, at: Instant | None = None) -> bool: ...

    def unsuppress(self, channel: str, address: str) -> bool: ...

    def suppression(self, channel: str, address: str) -> SuppressionRow | None: ...

    def suppressed_among(self, pairs: Sequence[tuple[str, str]]) -> set[tuple[str, str]]: ...

    def suppressions(self, channel: str | None = None, limit: int = 1000) -> list[SuppressionRow]: ...

    # -- the operator's desk (desk.py): paged listings, the audit log, sending pauses, queue changes

    def outcomes_page(self, statuses: Sequence[str], *, after: tuple[float, str] | None = None, limit: int = 50,
                      unhandled: bool = False, since: Instant | None = None) -> list[OutcomeRow]: ...

    def notifications_page(self, *, states: Sequence[str] = (), since: Instant | None = None,
                           until: Instant | None = None, channel: str | None = None,
                           after: tuple[float, str] | None = None, limit: int = 50) -> list[NotificationRow]: ...

    def dead_letters_page(self, *, after: int | None = None, limit: int = 50,
                          resolved: bool = False) -> list[DeadLetterRow]: ...

    def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRow | None: ...

    def resolve_dead_letter(self, dead_letter_id: int, outcome_id: str, at: Instant | None = None) -> bool: ...

    def find_outcomes(self, query: str, *, after: tuple[float, str] | None = None,
                      limit: int = 50) -> list[OutcomeRow]: ...

    def replies_page(self, *, unhandled: bool = True, after: int | None = None, limit: int = 50) -> list[ReplyRow]: ...

    def replies_for(self, outcome_id: str) -> list[ReplyRow]: ...

    def get_reply(self, reply_id: int) -> ReplyRow | None: ...

    def record_action(self, action: str, actor: str, *, at: Instant | None = None, outcome_id: str | None = None,
                      notification_id: str | None = None, target: str | None = None, reason: str | None = None,
                      detail: Mapping[str, Any] | None = None) -> int: ...

    def audit_for(self, outcome_id: str) -> list[AuditRow]: ...

    def audit_page(self, *, after: int | None = None, limit: int = 50,
                   action: str | None = None) -> list[AuditRow]: ...

    def pause_sending(self, channel: str | None, actor: str, reason: str | None = None,
                      at: Instant | None = None) -> bool: ...

    def resume_sending(self, channel: str | None) -> bool: ...

    def pauses(self) -> list[PauseRow]: ...

    def reschedule(self, notification_id: str, when: Instant, at: Instant | None = None,
                   reason: str | None = None, kind: str = "rescheduled",
                   detail: Mapping[str, Any] | None = None) -> bool: ...

    def outcome_events(self, outcome_id: str) -> list[EventRow]: ...


def open_store(target: str | Path, *, upgrade: bool = True, listen: bool = True) -> Store:
    """The store `target` names: a postgresql:// URL opens PostgreSQL (psycopg 3, a connection pool; migrated with
    `upgrade`, else refused when behind: `herald db upgrade`; `listen`: wake-up hints between replicas, False to poll
    only), a file path SQLite (created and migrated if needed).
    A schema newer than this herald is always refused (SchemaVersionError)."""
    from engine.store.postgres import PostgresStore, is_url

    if is_url(target):
        return PostgresStore(str(target), upgrade=upgrade, listen=listen)
    return SQLiteStore(target)
