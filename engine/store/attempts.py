"""Attempts and receipts: an attempt (with its idempotency key) is committed before the transport is called and
finished once; a provider's receipt, found by provider id, moves its notification forward (delivered, read) or
on (undelivered)."""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping, Sequence

from engine.store._base import SqlStore, _now, _row
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
        with self._write() as conn:
            o = self._q(conn, f"SELECT o.state, o.rev, o.approved FROM outcomes o WHERE o.id = "
                              f"(SELECT outcome_id FROM notifications WHERE id = ?){self._FOR_SHARE}",
                        (notification_id,)) if owner is not None else []
            n = self._q(conn, f"SELECT channel_index, channel, attempt_count, state, lease_owner, claims, outcome_rev "
                              f"FROM notifications WHERE id = ?{self._FOR_UPDATE}", (notification_id,))
            if not n:
                raise StoreError(f"no notification {notification_id!r}")
            if owner is not None and (n[0]["state"] != "sending" or n[0]["lease_owner"] != owner
                                      or (claim is not None and n[0]["claims"] != claim)):
                raise LeaseLost(f"notification {notification_id!r} is no longer claimed by {owner!r}")
            stopped = None if owner is None else _stopped(o[0] if o else None, n[0]["outcome_rev"])
            if stopped is not None:  # cancelled in this transaction, committed before NotSendable is raised
                self._terminate(conn, notification_id, "cancelled", "cancelled", now,
                                f"outcome {stopped} before sending", ("sending",), owner, claim)
            else:
                r = self._attempt(conn, notification_id, n[0], channel, transport, attempt_key, now, template_hash)
                if lease_seconds is not None and owner is not None:
                    until = now + float(lease_seconds)  # extended, never shortened (the heartbeat may be ahead)
                    self._x(conn, "UPDATE notifications SET lease_until = CASE WHEN lease_until < ? THEN ? "
                                  "ELSE lease_until END WHERE id = ?", (until, until, notification_id))
        if stopped is not None:
            raise NotSendable(f"notification {notification_id!r}: its outcome was {stopped} before the send")
        return r

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
            aid, nid, ch, idx = a[0]["id"], a[0]["notification_id"], a[0]["channel"], a[0]["channel_index"]
            key = dedupe_key or (f"receipt:{aid}:{kind}" if kind in ("delivered", "undelivered", "read")
                                 else f"receipt:{aid}:{kind}:{t!r}")
            if not self._add_event(conn, nid, kind, t, ch, dict(detail or {}, provider_id=provider_id), key):
                return nid
            cur = f"id = ? AND channel_index = {int(idx)}"
            if kind == "delivered":
                self._x(conn, f"UPDATE notifications SET state = 'delivered', delivered_at = coalesce(delivered_at, ?), "
                             f"escalate_at = CASE WHEN await_read = 1 THEN escalate_at END, updated_at = ? "
                             f"WHERE {cur} AND state IN ('sent', 'failed')", (t, t, nid))
            elif kind == "read":
                self._x(conn, f"UPDATE notifications SET state = 'read', read_at = coalesce(read_at, ?), "
                             f"delivered_at = coalesce(delivered_at, ?), escalate_at = NULL, updated_at = ? "
                             f"WHERE {cur} AND state IN ('sent', 'delivered', 'failed')", (t, t, t, nid))
            elif kind == "undelivered":
                more = self._x(conn, f"UPDATE notifications SET escalate_at = ?, updated_at = ? WHERE {cur} "
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
        rows = self._all(sql + " ORDER BY a.id DESC LIMIT ?", (*params, int(limit)))
        return [(r["provider_id"], r["channel"]) for r in rows]

    def attempt_by_key(self, attempt_key: str) -> AttemptRow | None:
        """The attempt with this idempotency key (e.g. the OutId an SMS receipt echoes), or None."""
        r = self._one("SELECT * FROM attempts WHERE attempt_key = ?", (attempt_key,))
        return _row(AttemptRow, r) if r is not None else None
