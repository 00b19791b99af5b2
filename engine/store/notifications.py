"""Notifications, the state machine: claiming due ones under a lease, taking back expired leases, the
transitions (sent, retry, fallback/escalation to the next channel, failed, cancelled, expired), escalations due,
the next instant with work, and reading notifications with their attempts and events.

    scheduled --claim_due--> sending --mark_sent--> sent --receipt--> delivered --receipt--> read
    sending --schedule_retry/defer--> scheduled;  sending/sent --advance_channel--> scheduled (next channel)
    scheduled/sending --cancel/mark_expired--> cancelled/expired;  sending --mark_suppressed--> suppressed;  ... --mark_failed--> failed
"""
from __future__ import annotations

from typing import Any
from collections.abc import Mapping, Sequence

from engine.model import ACCEPTED, PERMANENT, RECOVERABLE, SendResult
from engine.store._base import (
    _LIVE,
    _NOT_PAUSED,
    LEASE_HELD,
    SqlStore,
    _event,
    _j,
    _notification,
    _now,
    _row,
    lease_params,
)
from engine.store.rows import (
    NOTIFICATION_STATES,
    AttemptRow,
    Instant,
    NotificationDetail,
    NotificationRow,
    epoch,
)


class Notifications(SqlStore):
    """The notification state machine."""

    def claim_due(self, now: Instant, limit: int, owner: str, lease_seconds: float) -> list[NotificationRow]:
        """Atomically moves up to `limit` due notifications (approved, active outcome, channel not paused) to
        'sending', leased to `owner` until now + lease_seconds, each with its claim number (`claims`, one more than
        before).

        Returns the claimed rows, earliest due first.
        """
        t = epoch(now)
        with self._write() as conn:
            rows = self._q(conn, f"""UPDATE notifications SET state = 'sending', lease_owner = ?, lease_until = ?,
                claims = claims + 1, updated_at = ?
                WHERE id IN (SELECT n.id FROM notifications n JOIN outcomes o ON o.id = n.outcome_id
                             WHERE n.state = 'scheduled' AND n.next_attempt_at <= ? AND {_LIVE} AND o.approved = 1
                               AND {_NOT_PAUSED}
                             ORDER BY n.next_attempt_at LIMIT ?{self._SKIP_LOCKED})
                RETURNING *""", (owner, t + float(lease_seconds), t, t, int(limit)), prepared=True)
        return sorted((_notification(r) for r in rows), key=lambda n: (n.next_attempt_at or 0.0, n.id))

    def release_expired_leases(self, now: Instant) -> int:
        """Takes back claims whose lease ran out (their dispatcher crashed or hung); returns how many.

        An accepted attempt on the current channel means it was sent (crash after the provider took it):
        marked sent. An outcome withdrawn or amended meanwhile: cancelled. Otherwise: scheduled again,
        keeping its pending attempt, which the next begin_attempt() returns with the SAME attempt_key.
        """
        t = epoch(now)
        with self._write() as conn:
            if not self._sole_sweeper(conn):
                return 0
            return self._give_back(conn, t, "n.lease_until <= ?", (t,))

    def release_leases(self, owners: Sequence[str], now: Instant, keep: Sequence[str] = ()) -> int:
        """A dispatcher stopping cleanly gives back the claims of `owners` (its workers) at once, instead of leaving
        them to expire; `keep`: notification ids whose send is still in flight (left to their lease). As
        release_expired_leases for each: sent (an accepted attempt), cancelled (outcome changed) or scheduled."""
        if not owners:
            return 0
        t = epoch(now)
        where = f"n.lease_owner IN ({', '.join('?' * len(owners))})"
        params: tuple = tuple(owners)
        if keep:
            where += f" AND n.id NOT IN ({', '.join('?' * len(keep))})"
            params += tuple(keep)
        with self._write() as conn:
            return self._give_back(conn, t, where, params)

    def extend_leases(self, claims: Sequence[tuple[str, str, int]], until: Instant) -> int:
        """The heartbeat: each (notification id, owner, claim number) still held gets its lease extended to `until`;
        returns how many were (a claim missing from the count was lost: its lease ran out and it was taken back)."""
        if not claims:
            return 0
        u, n = epoch(until), 0
        with self._write() as conn:
            for nid, owner, claim in claims:
                n += self._x(conn, f"UPDATE notifications SET lease_until = CASE WHEN lease_until < ? THEN ? "
                                   f"ELSE lease_until END WHERE id = ? AND {LEASE_HELD}",
                                   (u, u, nid, *lease_params(owner, claim))).rowcount
        return n

    def _give_back(self, conn: Any, t: float, where: str, params: Sequence[Any]) -> int:
        rows = self._q(conn, f"""SELECT n.id, n.channel_index, ({_LIVE}) AS live,
            (SELECT a.id FROM attempts a WHERE a.notification_id = n.id AND a.channel_index = n.channel_index
               AND a.status = 'accepted' ORDER BY a.id DESC LIMIT 1) AS accepted
            FROM notifications n JOIN outcomes o ON o.id = n.outcome_id
            WHERE n.state = 'sending' AND {where}{self._SKIP_LOCKED}""", tuple(params))
        for r in rows:
            if r["accepted"] is not None:
                a = self._q(conn, "SELECT provider_id, finished_at FROM attempts WHERE id = ?", (r["accepted"],))[0]
                self._sent(conn, r["id"], a["finished_at"] or t, a["provider_id"], None, recovered=True)
            elif not r["live"]:
                self._terminate(conn, r["id"], "cancelled", "cancelled", t, "outcome changed", ("sending",))
            else:
                self._x(conn, "UPDATE notifications SET state = 'scheduled', lease_owner = NULL, lease_until = NULL, "
                             "updated_at = ? WHERE id = ? AND state = 'sending'", (t, r["id"]))
        if rows:
            self._hint(conn)
        return len(rows)

    def still_sendable(self, notification_id: str) -> bool:
        """True while the notification may be sent: scheduled or sending, outcome active, approved, same revision."""
        return self._one(f"""SELECT 1 FROM notifications n JOIN outcomes o ON o.id = n.outcome_id
            WHERE n.id = ? AND n.state IN ('scheduled', 'sending') AND {_LIVE} AND o.approved = 1""",
                         (notification_id,)) is not None

    def _sent(self, conn: Any, nid: str, t: float, provider_id: str | None, await_read: bool | None,
              recovered: bool = False, from_state: str = "sending", owner: str | None = None,
              claim: int | None = None) -> Mapping[str, Any] | None:
        """'sent' from `from_state` (with an owner: only under its claim), its events; the row's channel and index
        (None: nothing changed)."""
        held = " AND lease_owner = ? AND (CAST(? AS INTEGER) IS NULL OR claims = ?)" if owner is not None else ""
        rows = self._q(conn, f"""UPDATE notifications SET state = 'sent', sent_at = ?, lease_owner = NULL,
            lease_until = NULL, next_attempt_at = NULL, last_error = NULL, updated_at = ?,
            await_read = coalesce(?, await_read),
            escalate_at = CASE WHEN escalate_after_s IS NOT NULL AND channel_index + 1 < channel_count
                               THEN ? + escalate_after_s END,
            late = CASE WHEN deadline_at IS NOT NULL AND ? > deadline_at THEN 1 ELSE late END
            WHERE id = ? AND state = ?{held} RETURNING channel, channel_index, late""",
                       (t, t, None if await_read is None else int(await_read), t, t, nid, from_state,
                        *((owner, claim, claim) if owner is not None else ())), prepared=True)
        if not rows:
            return None
        r = rows[0]
        detail = {"provider_id": provider_id, **({"recovered": True} if recovered else {})}
        self._add_event(conn, nid, "sent", t, r["channel"], detail, f"sent:{nid}:{r['channel_index']}")
        if r["late"]:
            self._add_event(conn, nid, "late", t, r["channel"], None, f"late:{nid}")
        return r

    def mark_sent(self, notification_id: str, at: Instant | None = None, provider_id: str | None = None, *,
                  attempt_id: int | None = None, result: SendResult | None = None,
                  await_read: bool = False, owner: str | None = None, claim: int | None = None,
                  assumed: Mapping[str, Any] | None = None) -> bool:
        """The provider took it: 'sending' -> 'sent', the attempt accepted, a 'sent' event, all in one transaction.

        await_read: the channel reports reads, so only a read (not a delivery) stops escalation to the next
        channel. Marks the notification late when sent after its deadline. False when it was not 'sending'
        (cancelled meanwhile): its state stays, and with attempt_id a 'sent' event still records what went out.

        owner and claim (the claim's lease owner and number): conditional on still holding that claim. A lease
        that ran out and was returned but not claimed again is finished all the same (from 'scheduled', on the
        attempt's channel: the provider has it, sending it again would be a duplicate); one claimed again (by
        another dispatcher, or by the same owner under a later claim number) is left to that claim, and a
        'possible_duplicate' event records this attempt (False).

        assumed (with attempt_id and a provider id): the transport reports no receipts, so its delivery is recorded
        in the same transaction, with this detail, as record_receipt(provider id, 'delivered') would record it.
        """
        t = _now(at)
        pid = provider_id or (result.provider_id if result else None)
        with self._write() as conn:
            self._finish_result(conn, attempt_id, result, ACCEPTED, t, provider_id=pid)
            if (assumed is not None and attempt_id is not None and pid and owner is not None
                    and self._sent_delivered(conn, notification_id, t, pid, await_read, owner, claim, attempt_id,
                                             assumed)):
                return True
            sent, where = self._mark_sent(conn, notification_id, t, pid, attempt_id, await_read, owner, claim)
            if assumed is not None and attempt_id is not None and pid:
                if where is None:
                    where = self._q(conn, "SELECT channel, channel_index FROM attempts WHERE id = ?", (attempt_id,))[0]
                self._receipt(conn, attempt_id, notification_id, where["channel"], where["channel_index"], pid,
                              "delivered", t, assumed, None)
        return sent

    def _sent_delivered(self, conn: Any, nid: str, t: float, pid: str, await_read: bool, owner: str,
                        claim: int | None, attempt_id: int, assumed: Mapping[str, Any]) -> bool:
        """mark_sent with its assumed delivery, the common case (still under the claim) in two statements instead of
        four: ONE UPDATE from 'sending' to 'delivered' (sent_at and delivered_at now; escalation kept only where a
        read is awaited, as 'sent' then 'delivered' would leave it), then ONE INSERT of its events in their order
        ('sent', 'late' when past the deadline, 'delivered'), with the keys and details of _sent and _receipt.
        False (nothing changed) when the claim is not held: mark_sent goes the general way."""
        reads = None if await_read is None else int(await_read)
        rows = self._q(conn, """UPDATE notifications SET state = 'delivered', sent_at = ?,
            delivered_at = coalesce(delivered_at, ?), lease_owner = NULL, lease_until = NULL, next_attempt_at = NULL,
            last_error = NULL, updated_at = ?, await_read = coalesce(?, await_read),
            escalate_at = CASE WHEN coalesce(?, await_read) = 1 AND escalate_after_s IS NOT NULL
                                    AND channel_index + 1 < channel_count THEN ? + escalate_after_s END,
            late = CASE WHEN deadline_at IS NOT NULL AND ? > deadline_at THEN 1 ELSE late END
            WHERE id = ? AND state = 'sending' AND lease_owner = ? AND (CAST(? AS INTEGER) IS NULL OR claims = ?)
            RETURNING channel_index""", (t, t, t, reads, reads, t, t, nid, owner, claim, claim), prepared=True)
        if not rows:
            return False
        idx = rows[0]["channel_index"]
        self._x(conn, """INSERT OR IGNORE INTO events (notification_id, outcome_id, kind, channel, at, detail, rule_id,
                ruleset_version, template, variant, dedupe_key)
            SELECT n.id, n.outcome_id, k.column2, n.channel, CAST(? AS DOUBLE PRECISION), k.column3, n.rule_id,
                   n.ruleset_version, n.template, n.variant, k.column4
            FROM notifications n, (VALUES (1, 'sent', CAST(? AS TEXT), CAST(? AS TEXT)),
                                          (2, 'late', NULL, CAST(? AS TEXT)),
                                          (3, 'delivered', CAST(? AS TEXT), CAST(? AS TEXT))) k
            WHERE n.id = ? AND (k.column2 <> 'late' OR n.late = 1) ORDER BY k.column1""",
                (t, _j({"provider_id": pid}), f"sent:{nid}:{idx}", f"late:{nid}",
                 _j(dict(assumed, provider_id=pid)), f"receipt:{attempt_id}:delivered", nid), prepared=True)
        return True

    def _mark_sent(self, conn: Any, nid: str, t: float, pid: str | None, attempt_id: int | None, await_read: bool,
                   owner: str | None, claim: int | None) -> tuple[bool, Mapping[str, Any] | None]:
        """mark_sent's transition: whether it was marked sent, and the row's channel and index when known."""
        if owner is None:
            if (row := self._sent(conn, nid, t, pid, await_read)) is not None:
                return True, row
        elif (row := self._sent(conn, nid, t, pid, await_read, owner=owner, claim=claim)) is not None:
            return True, row  # still under its claim: one UPDATE, the common case
        elif (lost := self._sent_by_owner(conn, nid, t, pid, await_read, owner, claim, attempt_id)) is None:
            return True, None
        elif lost:
            return False, None
        st = self._q(conn, "SELECT state FROM notifications WHERE id = ?", (nid,))
        if attempt_id is not None and st and st[0]["state"] in ("cancelled", "expired"):
            # it went out although it was stopped meanwhile: keep that on record
            self._add_event(conn, nid, "sent", t, None, {"provider_id": pid, "after": st[0]["state"]},
                            f"sent:attempt:{attempt_id}")
        return False, None

    def _sent_by_owner(self, conn: Any, nid: str, t: float, pid: str | None, await_read: bool, owner: str,
                       claim: int | None, attempt_id: int | None) -> bool | None:
        """mark_sent under `owner`'s lease: None when marked sent, True when another dispatcher holds the claim
        (a 'possible_duplicate' event recorded), False otherwise (not sendable any more: the caller goes on)."""
        rows = self._q(conn, f"SELECT state, lease_owner, claims, channel_index FROM notifications WHERE id = ?"
                             f"{self._FOR_UPDATE}", (nid,))
        if not rows:
            return False
        state, holder, idx = rows[0]["state"], rows[0]["lease_owner"], rows[0]["channel_index"]
        if state == "sending" and holder == owner and (claim is None or rows[0]["claims"] == claim):
            return None if self._sent(conn, nid, t, pid, await_read) is not None else False
        a = self._q(conn, "SELECT channel_index FROM attempts WHERE id = ?", (attempt_id,)) if attempt_id else []
        if state == "scheduled" and a and a[0]["channel_index"] == idx:  # lease returned, not claimed again
            sent = self._sent(conn, nid, t, pid, await_read, recovered=True, from_state="scheduled")
            return None if sent is not None else False
        if state == "sending" or (state in ("sent", "delivered", "read") and attempt_id is not None):
            self._add_event(conn, nid, "possible_duplicate", t, None,
                            {"provider_id": pid, "owner": owner, "claim": claim, "holder": holder,
                             "holder_claim": rows[0]["claims"], "attempt_id": attempt_id},
                            f"possible_duplicate:{attempt_id}:{owner}")
            return True
        return False

    def schedule_retry(self, notification_id: str, next_attempt_at: Instant, error: str | None = None, *,
                       attempt_id: int | None = None, result: SendResult | None = None,
                       at: Instant | None = None, owner: str | None = None, claim: int | None = None) -> bool:
        """A recoverable failure: 'sending' -> 'scheduled' at next_attempt_at on the same channel.

        False when it was not 'sending' (with `owner` and `claim`: not under that claim, so a dispatcher whose
        lease ran out never reschedules another's claim), or when its outcome was withdrawn or amended meanwhile
        (then cancelled).
        """
        t = _now(at)
        with self._write() as conn:
            self._finish_result(conn, attempt_id, result, RECOVERABLE, t, error)
            if not self._is_live(conn, notification_id):
                self._terminate(conn, notification_id, "cancelled", "cancelled", t, "outcome changed", ("sending",),
                                owner, claim)
                return False
            cur = self._x(conn, f"UPDATE notifications SET state = 'scheduled', next_attempt_at = ?, last_error = ?, "
                                f"lease_owner = NULL, lease_until = NULL, updated_at = ? WHERE id = ? "
                                f"AND state = 'sending' AND {LEASE_HELD}",
                          (epoch(next_attempt_at), error or (result.error if result else None), t, notification_id,
                           *lease_params(owner, claim)))
            return bool(cur.rowcount)

    def defer(self, notification_id: str, until: Instant, reason: str, at: Instant | None = None, *,
              owner: str | None = None, claim: int | None = None) -> bool:
        """A claimed notification whose send window is closed: 'sending' -> 'scheduled' at `until` (the window's
        next opening), claim released, a 'deferred' event; marked late (once, with a 'late' event) when `until`
        is past its deadline. False when it was not 'sending' (with owner and claim: under that claim)."""
        t, until_t = _now(at), epoch(until)
        with self._write() as conn:
            rows = self._q(conn, "UPDATE notifications SET state = 'scheduled', next_attempt_at = ?, lease_owner = NULL, "
                                 "lease_until = NULL, late = CASE WHEN deadline_at IS NOT NULL AND ? > deadline_at "
                                 f"THEN 1 ELSE late END, updated_at = ? WHERE id = ? AND state = 'sending' AND {LEASE_HELD} "
                                 "RETURNING late", (until_t, until_t, t, notification_id, *lease_params(owner, claim)))
            if not rows:
                return False
            self._add_event(conn, notification_id, "deferred", t, None, {"reason": reason, "until": until_t})
            if rows[0]["late"]:
                self._add_event(conn, notification_id, "late", t, None, None, f"late:{notification_id}")
        return True

    def advance_channel(self, notification_id: str, next_index: int, next_attempt_at: Instant, reason: str, *,
                        attempt_id: int | None = None, result: SendResult | None = None,
                        at: Instant | None = None, owner: str | None = None, claim: int | None = None) -> bool:
        """Falls back (permanent failure, no address) or escalates (no delivery/read in time) to channels[next_index].

        Moves the notification to 'scheduled' on that channel with a fresh attempt count and an 'escalated'
        event. Only forward: a second call for the same step is a no-op returning False, so two daemons can
        race on an escalation safely. An outcome withdrawn or amended meanwhile: cancelled instead, False.
        With owner and claim (a dispatcher's fallback): only from that claim ('sending', leased to it).
        """
        t = _now(at)
        with self._write() as conn:
            self._finish_result(conn, attempt_id, result, PERMANENT, t, reason)
            if not self._is_live(conn, notification_id):
                self._terminate(conn, notification_id, "cancelled", "cancelled", t, "outcome changed",
                                ("scheduled", "sending"), owner, claim)
                return False
            rows = self._q(conn, f"""UPDATE notifications SET state = 'scheduled', channel_index = ?,
                channel = {self._JSON_ITEM.format("channels")}, attempt_count = 0, next_attempt_at = ?,
                escalate_at = NULL, await_read = 0, lease_owner = NULL, lease_until = NULL, last_error = ?,
                updated_at = ?
                WHERE id = ? AND state IN ('scheduled', 'sending', 'sent', 'delivered') AND channel_index < ?
                  AND ? < channel_count AND {LEASE_HELD}
                RETURNING channel""", (next_index, next_index, epoch(next_attempt_at), reason, t,
                                       notification_id, next_index, next_index, *lease_params(owner, claim)))
            if rows:
                self._add_event(conn, notification_id, "escalated", t, rows[0]["channel"],
                                {"to_index": next_index, "reason": reason})
                self._hint(conn)
            return bool(rows)

    def mark_failed(self, notification_id: str, reason: str, at: Instant | None = None, *,
                    attempt_id: int | None = None, result: SendResult | None = None,
                    owner: str | None = None, claim: int | None = None) -> bool:
        """No channel left (or retries exhausted on the last one): -> 'failed' with a 'failed' event (with owner
        and claim: only from that claim)."""
        t = _now(at)
        with self._write() as conn:
            self._finish_result(conn, attempt_id, result, PERMANENT, t, reason)
            return self._terminate(conn, notification_id, "failed", "failed", t, reason,
                                   ("scheduled", "sending", "sent", "delivered"), owner, claim)

    def mark_suppressed(self, notification_id: str, reason: str, at: Instant | None = None, *,
                        owner: str | None = None, claim: int | None = None) -> bool:
        """Every channel left is suppressed (the candidate unsubscribed): a claimed notification -> 'suppressed'."""
        t = _now(at)
        with self._write() as conn:
            return self._terminate(conn, notification_id, "suppressed", "suppressed", t, reason, ("sending",),
                                   owner, claim)

    def cancel(self, notification_id: str, at: Instant | None = None, reason: str = "cancelled", *,
               owner: str | None = None, claim: int | None = None) -> bool:
        """Stops a scheduled or claimed notification (e.g. still_sendable() said no): -> 'cancelled' (with owner
        and claim: only from that claim)."""
        t = _now(at)
        with self._write() as conn:
            return self._terminate(conn, notification_id, "cancelled", "cancelled", t, reason, ("scheduled", "sending"),
                                   owner, claim)

    def mark_expired(self, notification_id: str, at: Instant | None = None, reason: str = "expired") -> bool:
        """Gives up on a scheduled or claimed notification that is no longer worth sending: -> 'expired'."""
        t = _now(at)
        with self._write() as conn:
            return self._terminate(conn, notification_id, "expired", "expired", t, reason, ("scheduled", "sending"))

    def due_escalations(self, now: Instant, limit: int = 100) -> list[NotificationRow]:
        """Sent notifications whose channel's escalate_after passed with no delivery (or no read where awaited),
        or that were reported undelivered, and that have a next channel. Call advance_channel() on each."""
        rows = self._all(f"""SELECT n.* FROM notifications n JOIN outcomes o ON o.id = n.outcome_id
            WHERE n.state IN ('sent', 'delivered') AND n.escalate_at <= ? AND n.channel_index + 1 < n.channel_count
              AND {_LIVE} ORDER BY n.escalate_at LIMIT ?""", (epoch(now), int(limit)))
        return [_notification(r) for r in rows]

    def next_due_time(self) -> float | None:
        """The earliest instant at which claim_due, due_escalations or release_expired_leases can find work."""
        join = f"FROM notifications n JOIN outcomes o ON o.id = n.outcome_id WHERE {_LIVE} AND"
        queries = [f"SELECT n.next_attempt_at AS t {join} n.state = 'scheduled' AND o.approved = 1 AND {_NOT_PAUSED} "
                   f"ORDER BY n.next_attempt_at LIMIT 1"]
        queries += [f"SELECT n.escalate_at AS t {join} n.state = '{s}' AND n.escalate_at IS NOT NULL "
                    f"ORDER BY n.escalate_at LIMIT 1" for s in ("sent", "delivered")]
        queries.append("SELECT min(lease_until) AS t FROM notifications WHERE state = 'sending'")
        with self._read() as conn:
            rows = [r for q in queries for r in self._q(conn, q)]
        vals = [r["t"] for r in rows if r["t"] is not None]
        return min(vals) if vals else None

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
        rows = self._all("SELECT * FROM notifications WHERE outcome_id = ? ORDER BY outcome_rev",
                       (outcome_id,))
        return [_notification(r) for r in rows]

    def lease_counts(self, owners: Sequence[str], now: Instant) -> dict[str, int]:
        """Claims now: {mine (leased to one of `owners`), sending (by anyone), expired (lease ran out, not yet
        taken back)}."""
        mine = f"lease_owner IN ({', '.join('?' * len(owners))})" if owners else "0 = 1"
        r = self._all(f"SELECT count(*) AS sending, coalesce(sum(CASE WHEN {mine} THEN 1 ELSE 0 END), 0) AS mine, "
                      f"coalesce(sum(CASE WHEN lease_until <= ? THEN 1 ELSE 0 END), 0) AS expired "
                      f"FROM notifications WHERE state = 'sending'", (*owners, epoch(now)))[0]
        return {"mine": int(r["mine"]), "sending": int(r["sending"]), "expired": int(r["expired"])}

    def notification_counts_by_state(self) -> dict[str, int]:
        """Notifications per state, every state present (0 when none), for /metrics."""
        counts = dict.fromkeys(NOTIFICATION_STATES, 0)
        counts.update((r["state"], int(r["n"]))
                      for r in self._all("SELECT state, count(*) AS n FROM notifications GROUP BY state"))
        return counts
