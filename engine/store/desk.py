"""What the operator's desk (engine/desk) reads and changes in the store: keyset-paged listings (outcomes by
status, the notification queue by state and time, dead letters, candidates found by id, name, e-mail or phone,
replies), a candidate's replies and audit entries, the audit log itself (append-only), sending pauses (all
channels or one; claim_due and next_due_time honour them on every replica), and the operator's changes to a
queued notification (reschedule, send now). Schema in migrations_desk.py and pg_migrations.py.

Paging: each listing takes `after`, the sort key of the last row of the previous page (None: from the start),
and returns at most `limit` rows in that order; engine/desk turns the key into an opaque cursor.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from engine.store._base import SqlStore, _event, _j, _notification, _now, _outcome, _row, _unj
from engine.store.errors import StoreError
from engine.store.rows import DeadLetterRow, EventRow, Instant, NotificationRow, OutcomeRow, ReplyRow, epoch

ALL_CHANNELS = "*"  # the pause row that stops every channel
MAX_PAGE = 1000


@dataclass(frozen=True)
class AuditRow:
    """One recorded action: who did what to which outcome / notification / other target, when, and why."""

    id: int
    at: float
    actor: str
    action: str
    outcome_id: str | None
    notification_id: str | None
    target: str | None
    reason: str | None
    detail: Mapping[str, Any] | None


@dataclass(frozen=True)
class PauseRow:
    """Sending paused on `channel` ('*': every channel) by `actor`, since `at`."""

    channel: str
    actor: str
    reason: str | None
    at: float


def _limit(limit: int) -> int:
    if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_PAGE:
        raise StoreError(f"limit must be 1..{MAX_PAGE}, got {limit!r}")
    return limit


def _like(text: str) -> str:
    """`text` as a LIKE pattern matching it anywhere, its wildcards escaped (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def _dead(r: Mapping[str, Any]) -> DeadLetterRow:
    return _row(DeadLetterRow, r, raw=bytes(r["raw"]))


def _audit(r: Mapping[str, Any]) -> AuditRow:
    return _row(AuditRow, r, detail=_unj(r["detail"]))


class Desk(SqlStore):
    """Listings, audit log, pauses and queue changes for the operator's desk."""

    def _search(self, texts: Sequence[str]) -> tuple[list[str], list[Any]]:
        """Conditions on outcomes, one per text, true when the outcome's search text (name and e-mail in lower
        case, phone digits: migrations_console.py) holds it: a LIKE on the trigram table, which reads its index
        (a text shorter than a trigram, or holding a LIKE wildcard, is looked up with instr instead: a scan)."""
        conds, params = [], []  # type: list[str], list[Any]
        for text in texts:
            if len(text) < 3 or any(c in text for c in "%_\\"):
                conds.append("rowid IN (SELECT rowid FROM outcome_search WHERE instr(who, ?) > 0)")
                params.append(text)
            else:
                conds.append("rowid IN (SELECT rowid FROM outcome_search WHERE who LIKE ?)")
                params.append(f"%{text}%")
        return conds, params

    # -- listings

    def outcomes_page(self, statuses: Sequence[str], *, after: tuple[float, str] | None = None, limit: int = 50,
                      unhandled: bool = False, since: Instant | None = None) -> list[OutcomeRow]:
        """Active outcomes whose status is one of `statuses`, oldest received first (key: received_at, id);
        `unhandled`: only those no person has routed yet; `since`: received at or after it."""
        if not statuses:
            raise StoreError("outcomes_page needs at least one status")
        marks = ", ".join("?" * len(statuses))
        where = [f"status IN ({marks})", "state = 'active'"]
        params: list[Any] = list(statuses)
        if unhandled:
            where.append("handled_at IS NULL")
        if since is not None:
            where.append("received_at >= ?")
            params.append(epoch(since))
        if after is not None:
            where.append("(received_at > ? OR (received_at = ? AND id > ?))")
            params += [float(after[0]), float(after[0]), str(after[1])]
        rows = self._all(f"SELECT * FROM outcomes WHERE {' AND '.join(where)} ORDER BY received_at, id LIMIT ?",
                         (*params, _limit(limit)))
        return [_outcome(r) for r in rows]

    def notifications_page(self, *, states: Sequence[str] = (), since: Instant | None = None,
                           until: Instant | None = None, channel: str | None = None,
                           after: tuple[float, str] | None = None, limit: int = 50) -> list[NotificationRow]:
        """Notifications by when they go (or went) out: the next attempt of a pending one, else the planned send
        time; in [since, until) when given, of `states` and `channel` when given (key: that time, id)."""
        due = "coalesce(next_attempt_at, send_at)"
        where, params = ["1 = 1"], []  # type: list[str], list[Any]
        if channel:
            where.append("channel = ?")
            params.append(channel)
        if since is not None:
            where.append(f"{due} >= ?")
            params.append(epoch(since))
        if until is not None:
            where.append(f"{due} < ?")
            params.append(epoch(until))
        if after is not None:
            where.append(f"({due} > ? OR ({due} = ? AND id > ?))")
            params += [float(after[0]), float(after[0]), str(after[1])]
        n = _limit(limit)
        if len(states) <= 1:
            cond = " AND ".join(where + ["state = ?"] * len(states))
            rows = self._all(f"SELECT * FROM notifications WHERE {cond} ORDER BY {due}, id LIMIT ?",
                             (*params, *states, n))
        else:  # each state read in order on its (state, due time) index, merged: never a sort of all of them
            part = (f"SELECT * FROM (SELECT *, {due} AS due_key FROM notifications WHERE state = ? AND "
                    f"{' AND '.join(where)} ORDER BY {due}, id LIMIT ?) AS s{{}}")
            rows = self._all(" UNION ALL ".join(part.format(i) for i in range(len(states)))
                             + " ORDER BY due_key, id LIMIT ?",
                             tuple(v for st in states for v in (st, *params, n)) + (n,))
        return [_notification(r) for r in rows]

    def dead_letters_page(self, *, after: int | None = None, limit: int = 50,
                          resolved: bool = False) -> list[DeadLetterRow]:
        """Dead letters, newest first (key: id); resolved ones (resubmitted and taken) only with `resolved`."""
        where = ["1 = 1" if resolved else "resolved_at IS NULL"]
        params: list[Any] = []
        if after is not None:
            where.append("id < ?")
            params.append(int(after))
        rows = self._all(f"SELECT * FROM dead_letters WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                         (*params, _limit(limit)))
        return [_dead(r) for r in rows]

    def get_dead_letter(self, dead_letter_id: int) -> DeadLetterRow | None:
        r = self._one("SELECT * FROM dead_letters WHERE id = ?", (int(dead_letter_id),))
        return None if r is None else _dead(r)

    def resolve_dead_letter(self, dead_letter_id: int, outcome_id: str, at: Instant | None = None) -> bool:
        """Marks a dead letter resubmitted and taken as outcome `outcome_id`; False when unknown or resolved."""
        with self._write() as conn:
            cur = self._x(conn, "UPDATE dead_letters SET resolved_at = ?, resolved_as = ? "
                                "WHERE id = ? AND resolved_at IS NULL", (_now(at), outcome_id, int(dead_letter_id)))
            return bool(cur.rowcount)

    def find_outcomes(self, query: str, *, after: tuple[float, str] | None = None,
                      limit: int = 50) -> list[OutcomeRow]:
        """Outcomes (any state) of the candidate `query` names: the outcome id exactly, or a part of the
        candidate's name or e-mail (case-insensitive), or of the phone number's digits; newest first
        (key: received_at, id)."""
        q = query.strip()
        if not q:
            raise StoreError("a search needs some text")
        texts = [q.lower()]
        digits = "".join(c for c in q if c.isdigit())
        if len(digits) >= 4 and all(c.isdigit() or c in "+-() ." for c in q):
            texts.append(digits.lstrip("0") or digits)
        conds, found = self._search(texts)
        params: list[Any] = [q, *found]
        where = f"(id = ? OR {' OR '.join(conds)})"
        if after is not None:
            where += " AND (received_at < ? OR (received_at = ? AND id < ?))"
            params += [float(after[0]), float(after[0]), str(after[1])]
        rows = self._all(f"SELECT * FROM outcomes WHERE {where} ORDER BY received_at DESC, id DESC LIMIT ?",
                         (*params, _limit(limit)))
        return [_outcome(r) for r in rows]

    def replies_page(self, *, unhandled: bool = True, after: int | None = None, limit: int = 50) -> list[ReplyRow]:
        """Replies oldest first (key: id); only those not handled yet by default."""
        where, params = ["handled_at IS NULL" if unhandled else "1 = 1"], []  # type: list[str], list[Any]
        if after is not None:
            where.append("id > ?")
            params.append(int(after))
        rows = self._all(f"SELECT * FROM replies WHERE {' AND '.join(where)} ORDER BY id LIMIT ?",
                         (*params, _limit(limit)))
        return [_row(ReplyRow, r) for r in rows]

    def replies_for(self, outcome_id: str) -> list[ReplyRow]:
        """Replies to any notification of the outcome, oldest first."""
        rows = self._all("SELECT r.* FROM replies r JOIN notifications n ON n.id = r.notification_id "
                         "WHERE n.outcome_id = ? ORDER BY r.id", (outcome_id,))
        return [_row(ReplyRow, r) for r in rows]

    def get_reply(self, reply_id: int) -> ReplyRow | None:
        r = self._one("SELECT * FROM replies WHERE id = ?", (int(reply_id),))
        return None if r is None else _row(ReplyRow, r)

    # -- the audit log

    def record_action(self, action: str, actor: str, *, at: Instant | None = None, outcome_id: str | None = None,
                      notification_id: str | None = None, target: str | None = None, reason: str | None = None,
                      detail: Mapping[str, Any] | None = None) -> int:
        """Appends one entry to the audit log; its id. The caller keeps credentials out of every field."""
        if not action or not actor:
            raise StoreError("an audit entry needs an action and an actor")
        with self._write() as conn:
            rows = self._q(conn, "INSERT INTO audit_log (at, actor, action, outcome_id, notification_id, target, "
                                 "reason, detail) VALUES (?,?,?,?,?,?,?,?) RETURNING id",
                           (_now(at), actor, action, outcome_id, notification_id, target, reason,
                            _j(dict(detail)) if detail else None))
            return int(rows[0]["id"])

    def audit_for(self, outcome_id: str) -> list[AuditRow]:
        """The audit entries about an outcome (or one of its notifications), oldest first."""
        rows = self._all("SELECT * FROM audit_log WHERE outcome_id = ? ORDER BY id", (outcome_id,))
        return [_audit(r) for r in rows]

    def audit_page(self, *, after: int | None = None, limit: int = 50, action: str | None = None) -> list[AuditRow]:
        """The audit log, newest first (key: id), of one action kind when given."""
        where, params = ["1 = 1"], []  # type: list[str], list[Any]
        if action:
            where.append("action = ?")
            params.append(action)
        if after is not None:
            where.append("id < ?")
            params.append(int(after))
        rows = self._all(f"SELECT * FROM audit_log WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
                         (*params, _limit(limit)))
        return [_audit(r) for r in rows]

    # -- pauses

    def pause_sending(self, channel: str | None, actor: str, reason: str | None = None,
                      at: Instant | None = None) -> bool:
        """Stops claims on `channel` (None: every channel) until resume_sending; False when it already was.
        Intake and planning go on; a send already claimed finishes."""
        with self._write() as conn:
            cur = self._x(conn, "INSERT INTO sending_pauses (channel, actor, reason, at) VALUES (?, ?, ?, ?) "
                                "ON CONFLICT (channel) DO NOTHING", (channel or ALL_CHANNELS, actor, reason, _now(at)))
            return bool(cur.rowcount == 1)

    def resume_sending(self, channel: str | None) -> bool:
        """Lifts the pause of `channel` (None: the pause of every channel); False when there was none."""
        with self._write() as conn:
            return bool(self._x(conn, "DELETE FROM sending_pauses WHERE channel = ?",
                                (channel or ALL_CHANNELS,)).rowcount)

    def pauses(self) -> list[PauseRow]:
        """The pauses in force, '*' (every channel) first."""
        return [_row(PauseRow, r) for r in self._all("SELECT * FROM sending_pauses ORDER BY channel")]

    # -- changing a queued notification

    def reschedule(self, notification_id: str, when: Instant, at: Instant | None = None,
                   reason: str | None = None, kind: str = "rescheduled",
                   detail: Mapping[str, Any] | None = None) -> bool:
        """A scheduled notification's next attempt moves to `when` (a `kind` event records it, with `detail`
        added); False when it is not scheduled (already claimed, sent or ended)."""
        t, w = _now(at), epoch(when)
        with self._write() as conn:
            cur = self._x(conn, "UPDATE notifications SET next_attempt_at = ?, updated_at = ? "
                                "WHERE id = ? AND state = 'scheduled'", (w, t, notification_id))
            if not cur.rowcount:
                return False
            self._add_event(conn, notification_id, kind, t, None, {"until": w, "reason": reason, **(detail or {})})
            return True

    def outcome_events(self, outcome_id: str) -> list[EventRow]:
        """Every event of the outcome's notifications, oldest first."""
        rows = self._all("SELECT * FROM events WHERE outcome_id = ? ORDER BY id", (outcome_id,))
        return [_event(r) for r in rows]
