"""Outcomes and their revisions: durable intake (idempotent on the outcome id), approval, withdrawal, supersession,
amendment (a new revision, its old notifications cancelled), status and routing by hand, queueing a revision's
notification; the append-only outcome history."""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping, Sequence

from engine.store._base import (
    _EV_INSERT,
    _N_INSERT,
    SqlStore,
    _j,
    _notification_values,
    _now,
    _opt,
    _outcome,
    _queued_events,
    _row,
    _unj,
)
from engine.store.errors import StoreError
from engine.store.sources import _SE_INSERT, SourceDelivery, _delivery_values
from engine.store.rows import (
    Accepted,
    Instant,
    OutcomeChange,
    OutcomeRow,
    PlannedNotification,
)


class Outcomes(SqlStore):
    """Outcomes and revisions."""

    def accept_outcomes(self, items: Sequence[Accepted], at: Instant | None = None,
                        deliveries: Sequence[SourceDelivery] = ()) -> list[str]:
        """Stores a batch in ONE transaction; per item 'accepted' (new; its notification queued) or 'duplicate'.
        Each outcome keeps its values outside the vocabulary (`outside_vocabulary`) for the report.

        Idempotent on the outcome id, within the batch and across batches: a duplicate changes nothing.
        When this returns, the batch is durable; if the process dies before, none of it is stored.
        `deliveries` (the ATS events the items came from) are kept in the same transaction: one commit.
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
            occurred = now if it.occurred_at is None else _opt(it.occurred_at)  # missing: the time of receipt
            rows.append((it.id, raw, now, occurred, it.decision, it.stage, it.role, it.reason,
                         int(approved), now if approved else None, it.status, it.source, now,
                         _j(it.outside_vocabulary or None)))
        with self._write() as conn:
            inserted = self._insert_outcomes(conn, rows)
            for it, values in zip(items, rows, strict=False):
                if it.id not in inserted:  # stored before, or earlier in this batch
                    out.append("duplicate")
                    continue
                inserted.discard(it.id)
                out.append("accepted")
                changes.append((it.id, "received", now, values[1], _j({"status": it.status, "source": it.source})))
                if it.notification is not None:
                    nv = _notification_values(it.id, 1, it.notification, now)
                    notes.append(nv)
                    events.extend(_queued_events(nv, now))
            self._xm(conn, "INSERT INTO outcome_changes (outcome_id, kind, at, body, detail) VALUES (?,?,?,?,?)",
                             changes)
            self._xm(conn, _N_INSERT, notes)
            self._xm(conn, _EV_INSERT, events)
            if notes:
                self._hint(conn)
            if deliveries:
                self._xm(conn, _SE_INSERT, [_delivery_values(d, now) for d in deliveries])
        return out

    def _insert_outcomes(self, conn: Any, rows: Sequence[tuple]) -> set[str]:
        """INSERTs new outcomes, many per statement; returns the ids inserted. Of two rows with one id in the batch
        the first is inserted, as one at a time would. The ids are then read back in one query (an INSERT ...
        RETURNING of many rows would have PostgreSQL quote every value client-side, as its _q binds)."""
        ids = [row[0] for row in rows]
        before = self._stored_ids(conn, ids)
        fresh, seen = [], set(before)
        for row in rows:
            if row[0] not in seen:
                seen.add(row[0])
                fresh.append(row)
        self._xm(conn, "INSERT OR IGNORE INTO outcomes (id, raw, received_at, occurred_at, decision, stage, role, "
                       "reason, approved, approved_at, status, source, updated_at, outside_vocabulary) "
                       "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", fresh)
        return {row[0] for row in fresh}

    def _stored_ids(self, conn: Any, ids: Sequence[str]) -> set[str]:
        out: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            got = self._q(conn, f"SELECT id FROM outcomes WHERE id IN ({', '.join('?' * len(chunk))})", chunk)
            out.update(r["id"] for r in got)
        return out

    def get_outcome(self, outcome_id: str) -> OutcomeRow | None:
        r = self._one("SELECT * FROM outcomes WHERE id = ?", (outcome_id,))
        return None if r is None else _outcome(r)

    def get_outcomes(self, outcome_ids: Sequence[str]) -> dict[str, OutcomeRow]:
        """The stored outcomes among `outcome_ids`, by id (one query per 500 ids; unknown ids are left out)."""
        ids = list(dict.fromkeys(outcome_ids))
        out: dict[str, OutcomeRow] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i:i + 500]
            for r in self._all(f"SELECT * FROM outcomes WHERE id IN ({', '.join('?' * len(chunk))})", chunk):
                out[r["id"]] = _outcome(r)
        return out

    def outcome_history(self, outcome_id: str) -> list[OutcomeChange]:
        """Every recorded change of an outcome, oldest first."""
        rows = self._all("SELECT * FROM outcome_changes WHERE outcome_id = ? ORDER BY id", (outcome_id,))
        return [_row(OutcomeChange, r, detail=_unj(r["detail"])) for r in rows]

    def approve(self, outcome_id: str, at: Instant | None = None,
                detail: Mapping[str, Any] | None = None) -> OutcomeRow | None:
        """Releases a held outcome (idempotent; the change is recorded once, with `detail`: reason, actor);
        None when the id is unknown.

        The caller then routes it and calls add_notification (which is idempotent per outcome revision).
        """
        now = _now(at)
        with self._write() as conn:
            cur = self._x(conn, "UPDATE outcomes SET approved = 1, approved_at = ?, updated_at = ? "
                               "WHERE id = ? AND approved = 0", (now, now, outcome_id))
            if cur.rowcount:
                self._x(conn, "INSERT INTO outcome_changes (outcome_id, kind, at, detail) VALUES (?, 'approved', ?, ?)",
                             (outcome_id, now, _j(detail) if detail else None))
            r = self._q(conn, "SELECT * FROM outcomes WHERE id = ?", (outcome_id,))
        return _outcome(r[0]) if r else None

    def _stop_outcome(self, conn: Any, outcome_id: str, now: float, reason: str) -> int:
        """Cancels the outcome's scheduled notifications and stops pending escalations; returns how many were cancelled."""
        rows = self._q(conn, "UPDATE notifications SET state = 'cancelled', next_attempt_at = NULL, escalate_at = NULL, "
                             "last_error = ?, updated_at = ? WHERE outcome_id = ? AND state = 'scheduled' RETURNING id",
                       (reason, now, outcome_id))
        for r in rows:
            self._add_event(conn, r["id"], "cancelled", now, detail={"reason": reason})
        self._x(conn, "UPDATE notifications SET escalate_at = NULL, updated_at = ? WHERE outcome_id = ? "
                     "AND state IN ('sent', 'delivered') AND escalate_at IS NOT NULL", (now, outcome_id))
        return len(rows)

    def _end_outcome(self, outcome_id: str, state: str, at: Instant | None, detail: Mapping[str, Any]) -> int | None:
        now = _now(at)
        with self._write() as conn:
            if not self._q(conn, "SELECT 1 FROM outcomes WHERE id = ?", (outcome_id,)):
                return None
            cur = self._x(conn, "UPDATE outcomes SET state = ?, updated_at = ? WHERE id = ? AND state = 'active'",
                               (state, now, outcome_id))
            if not cur.rowcount:
                return 0
            self._x(conn, "INSERT INTO outcome_changes (outcome_id, kind, at, detail) VALUES (?, ?, ?, ?)",
                         (outcome_id, state, now, _j(detail)))
            return self._stop_outcome(conn, outcome_id, now, state)

    def withdraw(self, outcome_id: str, at: Instant | None = None, reason: str | None = None,
                 actor: str | None = None) -> int | None:
        """The decision changed: the outcome becomes withdrawn, its scheduled notifications cancelled (returns how many).

        A notification claimed by a dispatcher is left to it: its begin_attempt() re-checks the outcome in the
        transaction that records the attempt (after this withdraw commits, it cancels instead of sending); an
        expired lease on it is cancelled, not retried.
        None when the id is unknown; 0 when it was not active.
        """
        return self._end_outcome(outcome_id, "withdrawn", at, {"reason": reason, "actor": actor})

    def supersede(self, outcome_id: str, at: Instant | None = None, by: str | None = None) -> int | None:
        """Like withdraw, for an outcome replaced by another one (`by`, its id)."""
        return self._end_outcome(outcome_id, "superseded", at, {"by": by})

    def amend(self, item: Accepted, at: Instant | None = None, delivery: SourceDelivery | None = None) -> int | None:
        """Replaces an outcome's body and fields (a new revision, active again, with this revision's values outside
        the vocabulary); its scheduled notifications are cancelled.

        A notification of the old revision being sent now fails still_sendable(). If `item.notification` is
        given it is queued for the new revision in the same transaction, and so is `delivery` kept (the ATS
        event the revision came from). Returns how many were cancelled, None when the id is unknown (and
        nothing is written).
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
            occurred = now if item.occurred_at is None else _opt(item.occurred_at)  # missing: the time of receipt
            self._x(conn, "UPDATE outcomes SET raw = ?, rev = ?, occurred_at = ?, decision = ?, stage = ?, role = ?, "
                         "reason = ?, approved = ?, approved_at = CASE WHEN ? = 1 AND approved_at IS NULL THEN ? "
                         "WHEN ? = 1 THEN approved_at END, state = 'active', status = ?, updated_at = ?, "
                         "outside_vocabulary = ? WHERE id = ?",
                         (raw, rev, occurred, item.decision, item.stage, item.role, item.reason,
                          int(item.approved), int(item.approved), now, int(item.approved), item.status, now,
                          _j(item.outside_vocabulary or None), item.id))
            self._x(conn, "INSERT INTO outcome_changes (outcome_id, kind, at, body, detail) VALUES (?, 'amended', ?, ?, ?)",
                         (item.id, now, raw, _j({"rev": rev, "status": item.status, "cancelled": cancelled})))
            if item.notification is not None:
                nv = _notification_values(item.id, rev, item.notification, now)
                self._x(conn, _N_INSERT, nv)
                self._xm(conn, _EV_INSERT, _queued_events(nv, now))
                self._hint(conn)
            if delivery is not None:
                self._x(conn, _SE_INSERT, _delivery_values(delivery, now))
        return cancelled

    def set_status(self, outcome_id: str, status: str, at: Instant | None = None,
                   handled_by: str | None = None) -> bool:
        """Sets an outcome's status (e.g. unmatched after a rule edit); handled_by records a person's routing."""
        now = _now(at)
        with self._write() as conn:
            return self._set_status(conn, outcome_id, status, now, handled_by)

    def _set_status(self, conn: Any, outcome_id: str, status: str, now: float,
                    handled_by: str | None) -> bool:
        cur = self._x(conn, "UPDATE outcomes SET status = ?, handled_by = coalesce(?, handled_by), "
                           "handled_at = CASE WHEN ? IS NULL THEN handled_at ELSE ? END, updated_at = ? WHERE id = ?",
                           (status, handled_by, handled_by, now, now, outcome_id))
        if cur.rowcount and handled_by is not None:
            self._x(conn, "INSERT INTO outcome_changes (outcome_id, kind, at, detail) VALUES (?, 'routed', ?, ?)",
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
            if self._x(conn, _N_INSERT, nv).rowcount == 1:
                self._xm(conn, _EV_INSERT, _queued_events(nv, now))
                self._set_status(conn, outcome_id, status, now, handled_by)
                self._hint(conn)
            return nv[0]

    def unmatched(self, limit: int = 100) -> list[OutcomeRow]:
        """Active outcomes that no rule matched and no person has routed yet, oldest first."""
        rows = self._all("SELECT * FROM outcomes WHERE status = 'unmatched' AND state = 'active' "
                                        "AND handled_at IS NULL ORDER BY received_at, id LIMIT ?", (limit,))
        return [_outcome(r) for r in rows]

    def outcomes_with_status(self, status: str, limit: int = 100) -> list[OutcomeRow]:
        """Active outcomes with `status` (e.g. held), oldest first."""
        rows = self._all("SELECT * FROM outcomes WHERE status = ? AND state = 'active' "
                                        "ORDER BY received_at, id LIMIT ?", (status, limit))
        return [_outcome(r) for r in rows]

    def count_status(self, status: str) -> int:
        """How many active outcomes have `status` (held, unmatched...), through the (status, state) index."""
        return int(self._all("SELECT count(*) AS n FROM outcomes WHERE status = ? AND state = 'active'",
                             (status,))[0]["n"])

    def outcome_counts(self) -> dict[str, int]:
        """Outcomes by status (active ones) plus 'withdrawn' and 'superseded' ones, for /metrics."""
        rows = self._all("SELECT CASE WHEN state = 'active' THEN status ELSE state END AS k, count(*) AS n "
                         "FROM outcomes GROUP BY 1")
        return {r["k"]: int(r["n"]) for r in rows}
