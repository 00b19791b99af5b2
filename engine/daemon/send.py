"""Sending one claimed notification: re-check, envelope, attempt, transport call, and the result recorded in one call."""
from __future__ import annotations

import json
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, UTC
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterator, Mapping, Sequence

from engine.channels.webhook import origin_of as webhook_origin
from engine.channels.capabilities import DELIVERY_RECEIPTS, READ_RECEIPTS
from engine.channels.base import ACCEPTED, PERMANENT, RECOVERABLE, UNANSWERED_CODES, Envelope, SendResult
from engine.errors import Loc
from engine.model import CHANNEL_ADDRESS, Message
from engine.pipeline import previous_view, rule_sender
from engine.routing.router import lookup
from engine.render.locales import candidate_locale, preferences
from engine.render.sandbox import build_context, plain
from engine.render.templates import TemplateFile
from engine.render.sms import SMS_TRANSPORTS, sms_mapping, template_params
from engine.store import AttemptRow, LeaseLost, NotificationRow, NotSendable, OutcomeRow, StoreUnavailable
from engine.schedule.timing import load_timezone
from engine.desk.control import window_overridden
from engine.desk.planning import find_rule, window_opening
from engine.config.settings import DispatchSettings

if TYPE_CHECKING:  # the runtime imports this module
    from engine.daemon.runtime import Runtime, State

log = logging.getLogger("herald.dispatch")

HOLD_RECHECK = 3600.0  # clock seconds: a notification held for its template is looked at again after this
NOT_STARTED = "not_started"  # process_batch's result for a row left claimed by a stop


@dataclass(frozen=True)
class Rendered:
    """The message a send carries, and the template file it was rendered from (None: stored at planning)."""

    message: Message
    file: TemplateFile | None = None


@dataclass(frozen=True)
class Ready:
    """A claimed notification checked and rendered: what its attempt and transport call need."""

    n: NotificationRow
    outcome: Mapping
    transport: Any
    message: Message
    file: TemplateFile | None
    to: str
    params: Mapping[str, Any]
    meta_links: dict
    now: float
    due: float


@dataclass(frozen=True)
class RenderFailed:
    """Why this channel cannot carry the message now, located in what HR must fix.

    `where`: the template file, and its line when known (None when there is no file to point at: the template
    is gone). `code`: the kind, as validate names it (template-render, render-budget, template-unrenderable,
    template-decision, template-gone, empty-body, empty-subject, sms-template-code, no-message). `held`: the
    template is gone or no longer serves the outcome's decision, so the notification is held (looked at again
    hourly) and never sent with another template; otherwise the channel fails and the next one is tried."""

    message: str
    code: str
    where: Loc | None = None
    held: bool = False
    file: TemplateFile | None = None  # the template file it was rendered from (its hash goes on the attempt)

    @property
    def reason(self) -> str:
        """The one line the store records and HR reads: the location first (path:line), then what is wrong."""
        if self.where is None:
            return self.message
        where = f"{self.where.file}:{self.where.line}" if self.where.line else self.where.file
        return self.message if self.message.startswith(where) else f"{where}: {self.message}"


def _prefs(n: NotificationRow, outcome: Mapping) -> tuple:
    """The locale preferences at send time: the candidate's, then the locale of the file chosen at routing."""
    return preferences(candidate_locale(outcome), n.locale)


def reports_delivery(transport: Any) -> bool:
    """Whether the transport can ever tell herald a message was delivered (receipts polled or pushed)."""
    return getattr(transport, "name", "") in DELIVERY_RECEIPTS or callable(getattr(transport, "poll_receipts", None))


def address(channel: str, outcome: Mapping, settings: Mapping[str, Any] | None) -> str | None:
    """Where the message goes: the candidate's address for the channel, or the channel's URL (webhook)."""
    need = CHANNEL_ADDRESS.get(channel)
    if need is not None:
        value = lookup(outcome, need)
        return str(value) if value else None
    settings = settings or {}
    url = settings.get("url")
    if url:  # the origin only: a path or query may carry a token, and `to` is stored and shown
        return webhook_origin(str(url))
    return str(settings.get("directory") or channel)


def next_channel(n: NotificationRow, outcome: Mapping) -> int | None:
    """The index of the next channel the candidate has an address for, after the current one."""
    for i in range(n.channel_index + 1, len(n.channels)):
        need = CHANNEL_ADDRESS.get(n.channels[i])
        if need is None or lookup(outcome, need):
            return i
    return None


def _late_by(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{max(minutes, 1)}m"


def _iso(ts: float, tz: Any = None) -> str:
    return datetime.fromtimestamp(ts, tz or UTC).isoformat(timespec="seconds")


class Sender:
    """Sends claimed notifications for one Runtime; safe to share between worker threads."""

    def __init__(self, runtime: Runtime, settings: DispatchSettings):
        self.rt = runtime
        self.settings = settings
        self._lock = threading.Lock()
        self._in_flight: dict[str, tuple[str, int]] = {}  # notification id -> (owner, claim) of sends under way

    def in_flight(self) -> list[tuple[str, str, int]]:
        """(notification id, owner, claim number) of every send under way: the heartbeat extends their leases."""
        with self._lock:
            return [(nid, owner, claim) for nid, (owner, claim) in self._in_flight.items()]

    @contextmanager
    def _holding(self, rows: Sequence[NotificationRow]) -> Iterator[None]:
        """Every claim of a worker's batch is kept alive by the heartbeat, from the claim until its result is
        recorded (a claim waiting behind slow sends in its batch does not run out)."""
        with self._lock:
            for n in rows:
                self._in_flight[n.id] = (n.lease_owner or "", n.claims)
        try:
            yield
        finally:
            self._let_go([n.id for n in rows])

    def _let_go(self, ids: Sequence[str]) -> None:
        """These claims are no longer held (their results recorded): the heartbeat stops extending them."""
        with self._lock:
            for nid in ids:
                self._in_flight.pop(nid, None)

    # -- a batch of claimed notifications

    def process(self, n: NotificationRow) -> str:
        """Sends `n` (claimed, 'sending') on its current channel and records what happened; returns the result."""
        return self.process_batch([n])[0]

    def process_batch(self, rows: Sequence[NotificationRow], stopping: Callable[[], bool] = lambda: False) -> list[str]:
        """Sends a worker's claimed batch and records what happened; returns each row's result (NOT_STARTED: left
        claimed because `stopping()` turned true; the stop gives those claims back).

        One commit per send: the result of each send (its 'sent' with the assumed delivery of a transport without
        receipts, or its retry or fallback) is recorded in the same transaction as the next row's attempt, which
        re-checks that row's outcome under a share lock (begin_attempt); the last result has a transaction of its
        own. So every attempt is committed before its transport call, and a crash leaves at most the one send in
        flight unrecorded (its claim expires and it goes again under the same attempt key), as before."""
        labels: dict[str, str] = {}
        with self._holding(rows):
            outcomes = self.rt.store.get_outcomes([n.outcome_id for n in rows]) if rows else {}
            suppressed = self._suppressed_among(rows, outcomes)
            ready: list[Ready] = []
            for n in rows:
                if stopping():
                    break
                got = self._prepare(n, outcomes.get(n.outcome_id), suppressed)
                if isinstance(got, str):
                    labels[n.id] = got
                    self._let_go([n.id])
                else:
                    ready.append(got)
            last: tuple[str, Callable[[], Callable[[], str]]] | None = None
            for r in ready:
                if stopping():
                    break  # not begun: the stop gives its claim back
                r = replace(r, now=self.rt.now())  # the attempt starts now, not when the batch was prepared
                attempt = self._step(last, r, labels)
                last = None if attempt is None else (r.n.id, self._call(r, attempt))
            self._step(last, None, labels)
        return [labels.get(n.id, NOT_STARTED) for n in rows]

    def _step(self, last: tuple[str, Callable[[], Callable[[], str]]] | None, r: Ready | None,
              labels: dict[str, str]) -> AttemptRow | None:
        """One transaction: the result of the previous send (`last`: its id and how to record it) and the attempt of
        the next (`r`); both alone when that transaction fails. Then, committed: the previous send logged, alerted
        and counted. Returns r's attempt (None: r may not be sent after all, its label counted)."""
        store, lease = self.rt.store, self.rt.clock.virtual(self.settings.lease)

        def begin() -> AttemptRow | str | None:
            return None if r is None else self._begin_attempt(r.n, r.transport.name, r.now, r.file,
                                                              lease_seconds=lease, count=False)

        try:
            with store.batch():
                done = last[1]() if last is not None else None
                attempt = begin()
        except StoreUnavailable:
            raise
        except Exception:  # rolled back: each alone, so one row's error does not stall the other
            log.exception("recording a result and beginning the next attempt in one transaction failed: each alone")
            done = None
            if last is not None:
                try:
                    done = last[1]()
                except StoreUnavailable:
                    raise
                except Exception:  # its claim expires: sent again under the same key
                    log.exception("recording the result of %s", last[0])
            attempt = begin()
        if last is not None:
            self._let_go([last[0]])
            if done is not None:
                labels[last[0]] = done()
        if isinstance(attempt, str):
            if r is not None:
                labels[r.n.id] = self._count(r.n.channel, attempt)
                self._let_go([r.n.id])
            return None
        return attempt

    def _suppressed_among(self, rows: Sequence[NotificationRow], outcomes: Mapping[str, OutcomeRow]) -> set:
        """The (channel, address) pairs of the batch that are suppressed: one query for the batch, not one a row
        (each is a round trip on PostgreSQL). Looked up where each row used to be, before any send of the batch."""
        pairs = []
        for n in rows:
            row = outcomes.get(n.outcome_id)
            if row is not None and n.channel in CHANNEL_ADDRESS:
                to = lookup(row.data(), CHANNEL_ADDRESS[n.channel])
                if to:
                    pairs.append((n.channel, str(to)))
        return self.rt.store.suppressed_among(pairs) if pairs else set()

    def _prepare(self, n: NotificationRow, row: OutcomeRow | None, suppressed: set) -> Ready | str:
        """A claimed notification checked (still sendable, window open, channel, address, consent: `suppressed`,
        the batch's suppressed (channel, address) pairs) and rendered: ready for its attempt, or the result when it
        is not sent now (recorded here, each in its own transaction)."""
        rt, store = self.rt, self.rt.store
        state = rt.state
        now = rt.now()
        due = n.next_attempt_at if n.next_attempt_at is not None else n.send_at
        rt.metrics.lag.observe(max(0.0, rt.clock.real(now - due)))
        # every transition below passes owner and claim: it applies only under this claim
        if row is None or row.state != "active" or row.rev != n.outcome_rev or not row.approved:
            store.cancel(n.id, at=now, reason="outcome withdrawn or changed before sending", owner=n.lease_owner, claim=n.claims)
            return self._count(n.channel, "cancelled")
        outcome = row.data()
        opens = self.placed(n, outcome, now)
        if opens > now and self._window_overridden(n):  # an operator's "send now" overrode the closed window
            log.info("send    %s %s: window closed until %s, overridden by send now", n.outcome_id, n.id, _iso(opens))
        elif opens > now:  # overdue (downtime, a backlog, a reload) into a closed window: wait for it to open
            store.defer(n.id, opens, f"window of {n.rule_id} closed", at=now, owner=n.lease_owner, claim=n.claims)
            log.info("wait    %s %s: window closed until %s", n.outcome_id, n.id, _iso(opens))
            self.rt.wake()
            return self._count(n.channel, "deferred")
        transport, why = state.transports.get(n.channel)
        if transport is None:
            return self._fallback(n, outcome, why or f"channel {n.channel!r} cannot send", now, "permanent")
        to = address(n.channel, outcome, getattr(state.deployment.config.channels.get(n.channel), "settings", None))
        if not to:
            return self._fallback(n, outcome, f"no {CHANNEL_ADDRESS.get(n.channel)} for {n.channel}", now, "no_address")
        if n.channel in CHANNEL_ADDRESS and (n.channel, to) in suppressed:
            return self._suppressed(n, outcome, to, now)
        rendered = self._render(n, outcome, state)
        if isinstance(rendered, RenderFailed):
            return self._render_failed(n, outcome, rendered, transport.name, now)
        message, file = rendered.message, rendered.file
        params: Mapping[str, Any] = {}
        if transport.name in SMS_TRANSPORTS:
            sms = self._sms_params(n, outcome, state)
            if isinstance(sms, RenderFailed):
                return self._render_failed(n, outcome, sms, None, now)  # a setting, not the message: no attempt
            params = sms
        meta_links: dict = {}
        if rt.public_url and rt.tracking_key:  # clicks and opens come back signed; the stored message stays as is
            from engine.tracking.tokens import links_for, template_links, track_message

            source = state.deployment.templates.source(n.template, _prefs(n, outcome)) if n.template else None
            message = track_message(message, n.id, rt.public_url, rt.tracking_key, links=template_links(source))
            unsubscribe = links_for(n.id, n.channel, rt.public_url, rt.tracking_key)["unsubscribe"]
            if unsubscribe.startswith("https://"):  # List-Unsubscribe one-click needs https
                meta_links["unsubscribe_url"] = unsubscribe
        return Ready(n, outcome, transport, message, file, to, params, meta_links, now, due)

    def _call(self, r: Ready, attempt: AttemptRow) -> Callable[[], Callable[[], str]]:
        """The transport call for an attempt begun under r.n's claim; returns how to record its result (under
        that claim, in the flush's transaction), which returns what to do once that is committed."""
        rt, state = self.rt, self.rt.state
        n, transport, message, file = r.n, r.transport, r.message, r.file
        to, params, meta_links, now, due = r.to, r.params, r.meta_links, r.now, r.due
        source_file = {"template_file": file.path, "template_sha256": file.sha256} if file is not None else {}
        tries = n.attempt_count + (1 if attempt.started_at == now else 0)
        called = rt.now()
        env = Envelope(notification_id=n.id, attempt_key=attempt.attempt_key, channel=n.channel, to=to,
                       body=message.body, subject=message.subject, html=message.html, params=params,
                       sender=rule_sender(find_rule(state.pipeline, n.rule_id) if n.rule_id else None),
                       meta={"outcome": n.outcome_id, "rule": n.rule_id, "ruleset_version": n.ruleset_version,
                             "template": n.template, "variant": n.variant, "locale": n.locale,
                             "send_at": _iso(n.send_at), "due_at": due, "called_at": called,
                             "attempt": tries, **source_file, **meta_links, **self._unanswered(n, attempt, transport, now)})
        try:
            result = transport.send(env)
        except Exception as e:  # a transport bug is a failed attempt, not a dead worker
            log.exception("transport %s raised on %s", transport.name, n.id)
            result = SendResult(RECOVERABLE, error=f"transport raised {type(e).__name__}")
        done = rt.now()
        return lambda: self._record(r, attempt, env, result, done, tries)

    def _record(self, r: Ready, attempt: AttemptRow, env: Envelope, result: SendResult, done: float,
                tries: int) -> Callable[[], str]:
        """Records a send's result under its claim; returns what to do once that is committed (log, alert, count)."""
        rt, store = self.rt, self.rt.store
        n, outcome, transport = r.n, r.outcome, r.transport
        if result.status == ACCEPTED:
            # no receipt will ever come from a transport that reports none: acceptance counts as delivery (recorded
            # with the send), so escalate_after does not fire
            assumed = None if reports_delivery(transport) else {"assumed": True,
                                                                 "why": f"{transport.name} reports no receipts"}
            sent = store.mark_sent(n.id, at=done, attempt_id=attempt.id, result=result,
                                   await_read=transport.name in READ_RECEIPTS, owner=n.lease_owner, claim=n.claims,
                                   assumed=assumed)

            def accepted() -> str:
                if not sent:
                    self._lost_after_send(n, attempt)
                self._log_sent(n, outcome, transport, env, result, done)
                if n.sent_at is None and n.deadline_at is not None and done > n.deadline_at:  # first send only
                    self.rt.alert("late", f"{n.id} ({n.rule_id or 'routed by hand'}) sent on {n.channel} "
                                          f"{_late_by(done - n.deadline_at)} after its deadline")
                return self._count(n.channel, ACCEPTED)
            return accepted
        if result.status == RECOVERABLE and tries < self.settings.max_attempts:
            delay = self.settings.backoff(tries)
            if result.retry_after:
                delay = max(delay, rt.clock.virtual(result.retry_after))
            at = self.placed(n, outcome, done + delay)
            store.schedule_retry(n.id, at, attempt_id=attempt.id, result=result, at=done, owner=n.lease_owner, claim=n.claims)

            def retried() -> str:
                log.info("retry   %s %s on %s in %.0fs: %s", n.outcome_id, n.id, n.channel, at - done, result.error)
                return self._count(n.channel, RECOVERABLE)
            return retried
        reason = result.error or result.status
        if result.status == RECOVERABLE:
            reason = f"gave up after {tries} attempts: {reason}"
        return self._fallback_record(n, outcome, reason, done, result.status, attempt.id, result)

    # -- helpers

    def _render_failed(self, n: NotificationRow, outcome: Mapping, failed: RenderFailed, transport: str | None,
                       now: float) -> str:
        """A message that cannot be rendered for this channel: held for its template, or the channel fails and the
        next one is tried. A message that rendered wrong (empty subject or SMS body, a template error) is a failed
        attempt on `transport` with the reason and the template file's hash; with transport None, no attempt."""
        rt, reason = self.rt, failed.reason
        if failed.held:  # never sent with another template: held (looked at again hourly) until HR fixes it
            rt.store.defer(n.id, now + HOLD_RECHECK, f"held: {reason}", at=now, owner=n.lease_owner,
                           claim=n.claims)
            rt.alert("template", f"{n.id} held, not sent on {n.channel}: {reason}")
            log.warning("held    %s %s: %s", n.outcome_id, n.id, reason)
            return self._count(n.channel, "held")
        if failed.code == "render-budget":  # HR must fix the template: every candidate it renders for is stuck
            rt.alert("template", f"{n.id} cannot be sent on {n.channel}: {reason}")
        if transport is None:
            return self._fallback(n, outcome, reason, now, "permanent")
        attempt = self._begin_attempt(n, transport, now, failed.file)
        if isinstance(attempt, str):
            return attempt
        return self._fallback(n, outcome, reason, now, "permanent", attempt.id,
                              SendResult(PERMANENT, error=reason, code=failed.code))

    def _lost_after_send(self, n: NotificationRow, attempt: Any) -> None:
        """mark_sent refused: the claim was lost during the send. If another claim holds the notification now, the
        store recorded a 'possible_duplicate' event for this attempt: counted and logged here."""
        detail = self.rt.store.get_notification(n.id)
        if detail is not None and any(e.kind == "possible_duplicate" and (e.detail or {}).get("attempt_id") == attempt.id
                                      for e in detail.events):
            self.rt.metrics.possible_duplicates.inc()
            log.warning("possible duplicate %s %s: its lease ran out during the send and another claim holds it "
                        "(same Idempotency-Key %s)", n.outcome_id, n.id, attempt.attempt_key)

    def _begin_attempt(self, n: NotificationRow, transport: str, now: float, file: TemplateFile | None,
                       lease_seconds: float | None = None, count: bool = True) -> AttemptRow | str:
        """The attempt row, or the label (counted with `count`) when the notification may not be sent after all:
        still ours (a claim that waited past its lease was taken back: `lease_lost`), its outcome re-checked in the
        same transaction (withdrawn, amended or unapproved since the claim: `cancelled`), the lease renewed."""
        try:
            return self.rt.store.begin_attempt(n.id, n.channel, transport, at=now, owner=n.lease_owner, claim=n.claims,
                                               lease_seconds=lease_seconds,
                                               template_hash=file.sha256 if file is not None else None)
        except NotSendable as e:
            log.info("cancel  %s %s: %s", n.outcome_id, n.id, e)
            label = "cancelled"
        except LeaseLost:
            log.warning("skip    %s %s: its claim ran out before the send and was taken back", n.outcome_id, n.id)
            label = "lease_lost"
        return self._count(n.channel, label) if count else label

    def _count(self, channel: str, label: str) -> str:
        self.rt.metrics.sends.labels(channel, label).inc()
        return label

    def _fallback(self, n: NotificationRow, outcome: Mapping, reason: str, now: float, label: str,
                  attempt_id: int | None = None, result: SendResult | None = None) -> str:
        """A channel that will not work: the next channel the candidate can be reached on, else failed."""
        return self._fallback_record(n, outcome, reason, now, label, attempt_id, result)()

    def _fallback_record(self, n: NotificationRow, outcome: Mapping, reason: str, now: float, label: str,
                         attempt_id: int | None = None, result: SendResult | None = None) -> Callable[[], str]:
        """_fallback's store change; returns what to do once it is committed (log, alert, count)."""
        store = self.rt.store
        idx = next_channel(n, outcome)
        if idx is not None:
            store.advance_channel(n.id, idx, self.placed(n, outcome, now), f"{n.channel}: {reason}",
                                  attempt_id=attempt_id, result=result, at=now, owner=n.lease_owner, claim=n.claims)

            def advanced() -> str:
                self.rt.metrics.escalations.labels("fallback").inc()
                self.rt.wake()
                log.info("fallback %s %s: %s -> %s (%s)", n.outcome_id, n.id, n.channel, n.channels[idx], reason)
                return self._count(n.channel, label)
            return advanced
        store.mark_failed(n.id, f"{n.channel}: {reason}", at=now, attempt_id=attempt_id, result=result,
                          owner=n.lease_owner, claim=n.claims)

        def failed() -> str:
            log.warning("failed  %s %s on %s, no channel left: %s", n.outcome_id, n.id, n.channel, reason)
            self.rt.alert("failed", f"{n.id} failed on every channel ({', '.join(n.channels)}); "
                                    f"last: {n.channel}: {reason}")
            return self._count(n.channel, label)
        return failed

    def _suppressed(self, n: NotificationRow, outcome: Mapping, to: str, now: float) -> str:
        """The candidate unsubscribed from this channel and address: recorded, then the next channel, else the
        notification ends 'suppressed' (never 'failed': nothing went wrong)."""
        store = self.rt.store
        store.add_event(n.id, "suppressed", at=now, channel=n.channel, detail={"address": to},
                        dedupe_key=f"suppressed:{n.id}:{n.channel_index}")
        idx = next_channel(n, outcome)
        if idx is not None:
            store.advance_channel(n.id, idx, self.placed(n, outcome, now), f"{n.channel}: suppressed (unsubscribed)",
                                  at=now, owner=n.lease_owner, claim=n.claims)
            self.rt.wake()
            log.info("skip    %s %s: %s suppressed -> %s", n.outcome_id, n.id, n.channel, n.channels[idx])
        else:
            store.mark_suppressed(n.id, f"{n.channel}: suppressed (unsubscribed), no channel left", at=now,
                                  owner=n.lease_owner, claim=n.claims)
            log.info("skip    %s %s: %s suppressed, no channel left", n.outcome_id, n.id, n.channel)
        return self._count(n.channel, "suppressed")

    def escalate(self, n: NotificationRow) -> bool:
        """No delivery (or read) in time on the current channel: schedule the next one."""
        store, now = self.rt.store, self.rt.now()
        transport, _ = self.rt.state.transports.get(n.channel)
        if transport is not None and not reports_delivery(transport) and self._assume_delivered(n, transport, now):
            return True  # e.g. killed between mark_sent and the assumed receipt: no receipt can ever come
        row = store.get_outcome(n.outcome_id)
        outcome = row.data() if row is not None else {}
        idx = next_channel(n, outcome)
        idx = n.channel_index + 1 if idx is None else idx  # unreachable next channel: it fails there, never loops
        moved = store.advance_channel(n.id, idx, self.placed(n, outcome, now),
                                      f"escalated: nothing heard on {n.channel} in time", at=now)
        if moved:
            self.rt.metrics.escalations.labels("escalated").inc()
            log.info("escalate %s %s: %s -> %s", n.outcome_id, n.id, n.channel, n.channels[idx])
        return moved

    def _assume_delivered(self, n: NotificationRow, transport: Any, now: float) -> bool:
        """Records the assumed delivery of the accepted attempt on the current channel (False: none found)."""
        detail = self.rt.store.get_notification(n.id)
        accepted = [a for a in (detail.attempts if detail else ()) if a.channel_index == n.channel_index
                    and a.status == ACCEPTED and a.provider_id]
        if not accepted:
            return False
        self.rt.store.record_receipt(accepted[-1].provider_id, "delivered", at=now, channel=n.channel,
                                     detail={"assumed": True, "why": f"{transport.name} reports no receipts"})
        after = self.rt.store.get_notification(n.id)
        return after is not None and after.notification.state != n.state  # moved on: no longer due

    def _window_overridden(self, n: NotificationRow) -> bool:
        detail = self.rt.store.get_notification(n.id)
        return detail is not None and window_overridden(detail.events, detail.attempts)

    def placed(self, n: NotificationRow, outcome: Mapping, t: float) -> float:
        """`t`, moved into the send window of the notification's rule (as the rule stands now), if it has one."""
        try:
            return window_opening(self.rt.pipeline, n.rule_id, outcome, t)
        except Exception:  # never let a window question stop a send
            log.exception("window placement for %s", n.id)
            return t

    def _unanswered(self, n: NotificationRow, attempt: Any, transport: Any, now: float) -> dict[str, Any]:
        """{"unanswered": [...]} for a transport that must know of earlier attempts before resending (aliyun-sms
        looks them up, a DingTalk work notice reads a duplicate-content verdict by them): the attempts on this
        channel that may have reached the provider unheard (a timeout, a broken connection, or this very attempt
        resumed after a crash), each with its key, start and age in real seconds."""
        if not getattr(transport, "needs_unanswered", False):
            return {}
        detail = self.rt.store.get_notification(n.id)
        found = [{"attempt_key": a.attempt_key, "sent_at": _iso(a.started_at),
                  "age": self.rt.clock.real(max(now - a.started_at, 0.0))}
                 for a in (detail.attempts if detail else ())
                 if a.channel_index == n.channel_index and a.started_at < now
                 and ((a.status == RECOVERABLE and a.code in UNANSWERED_CODES) or a.id == attempt.id)]
        return {"unanswered": found} if found else {}

    def _sms_params(self, n: NotificationRow, outcome: Mapping, state: State) -> dict | RenderFailed:
        """{template_code, template_param} for a template-SMS channel, from the template's header and the
        channel's settings; else why the message cannot go on this channel."""
        settings = getattr(state.deployment.config.channels.get(n.channel), "settings", None) or {}
        file = state.deployment.templates.resolve(n.template, _prefs(n, outcome)) if n.template else None
        code, mapping = sms_mapping(file.meta if file is not None else None, settings)
        if not code:
            return RenderFailed(f"no SMS TemplateCode for template {n.template or '(none)'}: add sms_code=SMS_... "
                                f"to its header or template_code to channel {n.channel}", "sms-template-code",
                                Loc(file.path) if file is not None else None, file=file)
        return {"template_code": code, "template_param": template_params(mapping, outcome)}

    def _render(self, n: NotificationRow, outcome: Mapping, state: State) -> Rendered | RenderFailed:
        """The message rendered now, with the templates as they are at send time (the rule chosen at routing
        stays), or why not. Held when the template is gone or no longer serves the outcome's decision: it is never
        sent with another template."""
        if not n.template:
            stored = n.message()
            if stored is None:
                return RenderFailed(f"no message for {n.channel} and no template to render one", "no-message")
            return Rendered(stored)
        templates = state.deployment.templates
        prefs = _prefs(n, outcome)
        file = templates.resolve(n.template, prefs)
        decision = outcome.get("decision")
        if file is None:
            return RenderFailed(f"template {n.template} no longer exists", "template-gone", held=True)
        if file.meta is None or (isinstance(decision, str) and decision not in file.meta.decisions):
            return RenderFailed(f"no longer serves decision {decision}", "template-decision", Loc(file.path),
                                held=True)
        extras = state.pipeline.extras_for(find_rule(state.pipeline, n.rule_id) if n.rule_id else None)
        links_for = getattr(state.pipeline, "links_for", None)
        links = links_for(n.id) if links_for is not None else None
        if links:
            extras = {**extras, "links": {**extras["links"], **links}}
        previous = self._previous(n)
        if previous is not None:
            extras = {**extras, "previous": plain(previous)}
        result = templates.render(n.template, prefs, n.channel, build_context(outcome, extras, trusted=True))
        if result.message is None:
            used = result.template or file
            return RenderFailed(result.error or f"cannot render {n.template} for {n.channel}",
                                result.code or "template-render", Loc(used.path, result.line or 0), file=used)
        message = result.message
        if n.channel == "sms" and not message.body.strip():
            return RenderFailed("the SMS body renders empty", "empty-body", Loc(file.path), file=file)
        if n.channel == "email" and not (message.subject or "").strip():
            return RenderFailed("the e-mail subject renders empty", "empty-subject", Loc(file.path), file=file)
        return Rendered(message, file)

    def _previous(self, n: NotificationRow) -> dict | None:
        """What a template sees as `previous` for a notification of an amended outcome (None for revision 1)."""
        if n.outcome_rev <= 1:
            return None
        store = self.rt.store
        bodies = [c.body for c in store.outcome_history(n.outcome_id) if c.kind in ("received", "amended") and c.body]
        if len(bodies) < 2:
            return None
        try:
            record = json.loads(bodies[-2])
        except ValueError:
            return None
        sent = [(x.channel, x.sent_at) for x in store.notifications_for(n.outcome_id)
                if x.outcome_rev < n.outcome_rev and x.sent_at]
        last = {"channel": sent[-1][0], "sent_at": _iso(sent[-1][1])} if sent else None
        return previous_view(record if isinstance(record, dict) else {}, rev=n.outcome_rev - 1, sent=last)

    def _log_sent(self, n: NotificationRow, outcome: Mapping, transport: Any, env: Envelope, result: SendResult,
                  at: float) -> None:
        tzname = lookup(outcome, "candidate.timezone")
        tz = load_timezone(tzname) if isinstance(tzname, str) else None
        path_for = getattr(transport, "path_for", None)
        where = str(path_for(env)) if callable(path_for) else (result.provider_id or "")
        log.info("sent    %s  %-14s %-30s %-8s %s", _iso(at, tz), n.outcome_id, n.rule_id or "-", n.channel, where)
