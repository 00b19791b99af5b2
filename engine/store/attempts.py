"""Attempts and receipts: an attempt (with its idempotency key) is committed before the transport is called and
finished once; a provider's receipt, found by provider id, moves its notification forward (delivered, read) or
on (undelivered)."""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping, Sequence

from engine.store._base import LEASE_HELD, SqlStore, _now, _row, lease_params
from engine.store.errors import LeaseLost, NotSendable, StoreError
from engine.store.rows import AttemptRow, Instant, epoch


def _stopped(outcome: Mapping[str, Any] | None, rev: int) -> str | None:
    """Why a notification of revision `rev` may no longer be sent for this outcome row (None: it may)."""
    if outcome is None:
        return "withdrawn"
    if outcome["state"] != "active":
        return str(outcome["state"])
    if outcome["rev"] != rev:
        return "amended"
    return None if outcome["approved"] == 1 else "not approved"


class Attempts(SqlStore):
    """Attempts and receipts."""

    def begin_attempt(self, notification_id: str, channel: str, transport: str, attempt_key: str | None = None,
                      at: Instant | None = None, *, owner: str | None = None, claim: int | None = None,
                      lease_seconds: float | None = None, template_hash: str | None = None) -> AttemptRow:
        """Records an attempt on the current channel, committed BEFORE the transport is called.

        With attempt_key None: a pending attempt left on this channel by a crash is returned as it is (resend it
        with the same key); else a new one keyed "<notification id>:<channel index>:<n>". With an explicit key
        that exists already, that attempt is returned unchanged (check its status).

        owner (and claim, the claim number): only under that claim (LeaseLost otherwise: its lease ran out and the
        notification was taken back, so another dispatcher may be sending it), checked in the same transaction;
        lease_seconds then extends the claim from now, so a claim that waited in a batch gets a full lease for its
        send. With an owner the outcome is checked in this transaction too (its row share-locked first, so a
        withdraw or amend either commits before, and is seen, or waits until this attempt is recorded): withdrawn,
        amended or not approved, the notification is cancelled and NotSendable raised; nothing may be sent.
        template_hash: the sha256 of the template file the message is rendered from, kept on the new attempt.
        """
        now = _now(at)
        if owner is not None and attempt_key is None:
            return self._begin_claimed(notification_id, channel, transport, now, owner, claim, lease_seconds,
                                       template_hash)
        with self._write() as conn:
            o = self._q(conn, f"SELECT o.state, o.rev, o.approved FROM outcomes o WHERE o.id = "
                              f"(SELECT outcome_id FROM notifications WHERE id = ?){self._FOR_SHARE}",
                        (notification_id,)) if owner is not None else []
            n = self._claimed_row(conn, notification_id)
            if owner is not None and (n["state"] != "sending" or n["lease_owner"] != owner
                                      or (claim is not None and n["claims"] != claim)):
                raise LeaseLost(f"notification {notification_id!r} is no longer claimed by {owner!r}")
            stopped = None if owner is None else _stopped(o[0] if o else None, n["outcome_rev"])
            if stopped is not None:  # cancelled in this transaction, committed before NotSendable is raised
                self._terminate(conn, notification_id, "cancelled", "cancelled", now,
                                f"outcome {stopped} before sending", ("sending",), owner, claim)
            else:
                r = self._attempt(conn, notification_id, n, channel, transport, attempt_key, now, template_hash)
                self._extend_lease(conn, notification_id, now, owner, lease_seconds)
        if stopped is not None:
            raise NotSendable(f"notification {notification_id!r}: its outcome was {stopped} before the send")
        return r

    def _begin_claimed(self, nid: str, channel: str, transport: str, now: float, owner: str, claim: int | None,
                       lease_seconds: float | None, template_hash: str | None) -> AttemptRow:
        """begin_attempt under a claim with a new key, in three statements where it used to take seven (each a
        round trip on PostgreSQL): the outcome re-checked (share-locked first, as before), then ONE conditional
        UPDATE of the notification (still claimed by `owner`, on `channel`, no attempt pending there) that counts
        the attempt and extends the lease, and the attempt's INSERT. Anything else (no such notification, the claim
        lost, the outcome stopped, a pending attempt to resume, the key taken) goes the general way, in the same
        transaction."""
        until = None if lease_seconds is None else now + float(lease_seconds)
        with self._write() as conn:
            o = self._q(conn, f"SELECT o.state, o.rev, o.approved, (SELECT outcome_rev FROM notifications "
                              f"WHERE id = ?) AS outcome_rev FROM outcomes o WHERE o.id = "
                              f"(SELECT outcome_id FROM notifications WHERE id = ?){self._FOR_SHARE}", (nid, nid),
                        prepared=True)
            # no outcome row: withdrawn (no notification at all: StoreError from _claimed_row)
            rev = o[0]["outcome_rev"] if o else self._claimed_row(conn, nid)["outcome_rev"]
            stopped = _stopped(o[0] if o else None, rev)
            if stopped is not None:  # cancelled in this transaction (if still ours), committed before NotSendable
                if not self._terminate(conn, nid, "cancelled", "cancelled", now, f"outcome {stopped} before sending",
                                       ("sending",), owner, claim):
                    raise LeaseLost(f"notification {nid!r} is no longer claimed by {owner!r}")
            else:
                rows = self._q(conn, f"""UPDATE notifications SET attempt_count = attempt_count + 1, updated_at = ?,
                    lease_until = CASE WHEN lease_until < ? THEN ? ELSE lease_until END
                    WHERE id = ? AND channel = ? AND {LEASE_HELD} AND NOT EXISTS (SELECT 1 FROM attempts a
                      WHERE a.notification_id = notifications.id AND a.channel_index = notifications.channel_index
                        AND a.status = 'pending')
                    RETURNING channel_index, attempt_count""",
                               (now, until, until, nid, channel, *lease_params(owner, claim)), prepared=True)
                got = self._q(conn, "INSERT OR IGNORE INTO attempts (notification_id, channel, channel_index, "
                                    "transport, attempt_key, started_at, template_hash) VALUES (?,?,?,?,?,?,?) "
                                    "RETURNING *", (nid, channel, rows[0]["channel_index"], transport,
                                                    f"{nid}:{rows[0]['channel_index']}:{rows[0]['attempt_count']}",
                                                    now, template_hash), prepared=True) if rows else []
                if got:
                    return _row(AttemptRow, got[0])
                n = self._claimed_row(conn, nid)
                if n["state"] != "sending" or n["lease_owner"] != owner or (claim is not None and n["claims"] != claim):
                    raise LeaseLost(f"notification {nid!r} is no longer claimed by {owner!r}")
                if rows:  # counted above for a key that was taken: the general way counts the one it inserts
                    n = dict(n, attempt_count=n["attempt_count"] - 1)
                    self._x(conn, "UPDATE notifications SET attempt_count = attempt_count - 1 WHERE id = ?", (nid,))
                r = self._attempt(conn, nid, n, channel, transport, None, now, template_hash)
                self._extend_lease(conn, nid, now, owner, lease_seconds)
                return r
        raise NotSendable(f"notification {nid!r}: its outcome was {stopped} before the send")

    def _claimed_row(self, conn: Any, nid: str) -> Mapping[str, Any]:
        """The notification's sending state, row-locked for this transaction (StoreError: there is none)."""
        n = self._q(conn, f"SELECT channel_index, channel, attempt_count, state, lease_owner, claims, outcome_rev "
                          f"FROM notifications WHERE id = ?{self._FOR_UPDATE}", (nid,))
        if not n:
            raise StoreError(f"no notification {nid!r}")
        return n[0]

    def _extend_lease(self, conn: Any, nid: str, now: float, owner: str | None, lease_seconds: float | None) -> None:
        if lease_seconds is not None and owner is not None:
            until = now + float(lease_seconds)  # extended, never shortened (the heartbeat may be ahead)
            self._x(conn, "UPDATE notifications SET lease_until = CASE WHEN lease_until < ? THEN ? "
                          "ELSE lease_until END WHERE id = ?", (until, until, nid))

    def _attempt(self, conn: Any, nid: str, n: Mapping[str, Any], channel: str, transport: str,
                 attempt_key: str | None, now: float, template_hash: str | None) -> AttemptRow:
        idx, current, count = n["channel_index"], n["channel"], n["attempt_count"]
        if channel != current:
            raise StoreError(f"notification {nid!r} is on channel {current!r}, not {channel!r}")
        if attempt_key is None:
            old = self._q(conn, "SELECT * FROM attempts WHERE notification_id = ? AND channel_index = ? "
                                "AND status = 'pending' ORDER BY id LIMIT 1", (nid, idx))
            k = count + 1
            while not old:
                key = f"{nid}:{idx}:{k}"
                if not self._q(conn, "SELECT 1 FROM attempts WHERE attempt_key = ?", (key,)):
                    attempt_key = key
                    break
                k += 1
        else:
            old = self._q(conn, "SELECT * FROM attempts WHERE attempt_key = ?", (attempt_key,))
        if old:
            return _row(AttemptRow, old[0])
        r = self._q(conn, "INSERT INTO attempts (notification_id, channel, channel_index, transport, attempt_key, "
                          "started_at, template_hash) VALUES (?,?,?,?,?,?,?) RETURNING *",
                    (nid, channel, idx, transport, attempt_key, now, template_hash))[0]
        self._x(conn, "UPDATE notifications SET attempt_count = attempt_count + 1, updated_at = ? WHERE id = ?",
                (now, nid))
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
            r = a[0]
            self._receipt(conn, r["id"], r["notification_id"], r["channel"], r["channel_index"], provider_id, kind, t,
                          detail, dedupe_key)
            return str(r["notification_id"])

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
        rows = self._all(sql + " ORDER BY a.id DESC LIMIT ?", (*params, int(limit)))
        return [(r["provider_id"], r["channel"]) for r in rows]

    def attempt_by_key(self, attempt_key: str) -> AttemptRow | None:
        """The attempt with this idempotency key (e.g. the OutId an SMS receipt echoes), or None."""
        r = self._one("SELECT * FROM attempts WHERE attempt_key = ?", (attempt_key,))
        return _row(AttemptRow, r) if r is not None else None
