"""Shared intake (HTTP and `herald ingest`): parse, gate, plan with the one Pipeline, store a batch in one transaction.

Per item: a body that is not JSON, not an object, or breaks the outcome schema is kept as a dead letter
with its raw text exactly as received and reported `invalid` with the field named. A valid one is routed,
rendered and scheduled by the same Pipeline `herald dry-run` uses, then the whole batch goes to the store
in ONE `accept_outcomes` transaction (durable when it returns; idempotent on the id):

- `approved: false` -> stored as `held`, no notification (it is planned on approval);
- no rule, or a rule whose channels the candidate has no address for -> stored as `unmatched`: it waits
  for a person (`herald unmatched`, `herald route`);
- matched -> stored with its notification `<id>#1`;
- an id seen before (in this batch or earlier) with the same content -> `duplicate`, nothing changes;
- an id seen before with different content -> `amended`: a new revision (the earlier one's queued
  notifications cancelled, the new one routed; the answer says what the earlier one already sent).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from collections.abc import Iterable, Sequence
from typing import Any, cast

from engine.intake.decode import Item
from engine.intake.gate import AMENDED, HELD, INVALID, judge
from engine.pipeline import MATCHED, UNMATCHED, Pipeline, previous_view
from engine.model import Plan
from engine.store import Accepted, PlannedNotification, SourceDelivery, Store

log = logging.getLogger("herald.intake")

DUPLICATE = "duplicate"


@dataclass(frozen=True)
class ItemStatus:
    """What became of one item: matched | unmatched | held | duplicate | invalid, with detail."""

    id: str | None
    status: str
    field: str | None = None
    error: str | None = None
    warning: str | None = None
    notification: str | None = None
    send_at: str | None = None
    rule: str | None = None
    locale: str | None = None  # the locale of the template file planned (None: the bare file)
    file: str | None = None  # the template file planned (the send renders with the files of its moment)
    dead_letter: int | None = None
    rev: int | None = None  # amended: the new revision's number
    cancelled: int | None = None  # amended: queued notifications of the earlier revision cancelled
    previously_sent: list[dict] | None = None  # amended: what earlier revisions already sent (notification, channel, sent_at)
    outside_vocabulary: str | None = None  # accepted, but these values are outside the rule set's vocabulary

    def as_dict(self) -> dict:
        out = {"id": self.id, "status": self.status}
        for k in ("field", "error", "warning", "notification", "send_at", "rule", "locale", "file", "dead_letter", "rev",
                  "cancelled", "previously_sent", "outside_vocabulary"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out


# ------------------------------------------------------------------------------------------- intake

def intake(items: Iterable[Any], pipeline: Pipeline, store: Store, source: str, remote: str | None = None,
           now: datetime | None = None, deliveries: Sequence[SourceDelivery | None] = ()) -> list[ItemStatus]:
    """Gate, plan and store a batch (one transaction, split only where an amendment needs the revision it
    amends stored first); one ItemStatus per item, in order.

    `deliveries[i]` is the ATS event item i came from (engine/sources), or None: it is kept with the
    item's status in the same transaction as the item, or afterwards when the item stores nothing (a
    duplicate, invalid), so a source event costs no commit of its own."""
    now = now or pipeline.clock()
    vocab = pipeline.vocabulary  # None: the rule set declares no vocabulary
    statuses: list[ItemStatus | None] = []
    batch: list[tuple[int, Accepted, ItemStatus]] = []
    latest: dict[str, dict] = {}  # id -> content admitted earlier in this batch
    keep = {i: d for i, d in enumerate(deliveries) if d is not None}  # position -> delivery, taken when written
    judged = [(item, judge(item)) for item in map(Item.of, items)]
    # the stored revision of every id, read in one query (not one round trip per item: PostgreSQL's intake)
    stored = store.get_outcomes([r.outcome_id for _, r in judged if r.status != INVALID and r.outcome_id])
    for item, result in judged:
        record, rid = result.outcome, result.outcome_id
        if result.status == INVALID or record is None or rid is None:  # a valid result has both
            statuses.append(_invalid(item, store, source, remote, result.outcome_id, result.field or "",
                                     result.error or "invalid outcome"))
            continue
        found = vocab.findings(record) if vocab is not None else None
        remark, marks = (vocab.describe(found), vocab.marks(found)) if vocab is not None and found else (None, None)
        before = latest.get(rid)
        if before is None:
            row = stored.get(rid)  # as stored before this batch: an id seen earlier in it is in `latest`
            before = row.data() if row is not None else None
        latest[rid] = record
        if before is None:
            status, accepted = _admit(item, record, pipeline, source, marks=marks)
            batch.append((len(statuses), accepted, _remark(status, remark)))
            statuses.append(None)
        elif before == record:
            statuses.append(_remark(ItemStatus(rid, DUPLICATE), remark))
        else:
            _store_batch(batch, statuses, store, now, keep)  # the revision this one amends must be stored first
            batch = []
            statuses.append(_remark(_amend(item, record, pipeline, store, source, now, keep, len(statuses), marks),
                                    remark))
    _store_batch(batch, statuses, store, now, keep)
    filled = cast("list[ItemStatus]", statuses)  # _store_batch filled every None left for the batch
    for pos, d in keep.items():  # items that stored nothing: their deliveries alone
        store.record_delivery(replace(d, status=filled[pos].status), at=now)
    return filled


def _remark(status: ItemStatus, remark: str | None) -> ItemStatus:
    """`status` with the vocabulary's remark, also added to its warning."""
    if remark is None:
        return status
    return replace(status, warning=f"{status.warning}; {remark}" if status.warning else remark,
                   outside_vocabulary=remark)


def _with(keep: dict, pos: int, status: str) -> list[SourceDelivery]:
    """Item `pos`'s pending delivery (if any) with the item's status, taken for this write."""
    return [replace(keep.pop(pos), status=status)] if pos in keep else []


def _store_batch(batch: list, statuses: list, store: Store, now: datetime, keep: dict) -> None:
    if batch:
        deliveries = [d for pos, _a, status in batch for d in _with(keep, pos, status.status)]
        results = store.accept_outcomes([a for _, a, _ in batch], at=now, deliveries=deliveries)
        for (pos, _a, status), result in zip(batch, results, strict=False):
            statuses[pos] = status if result == "accepted" else ItemStatus(status.id, DUPLICATE)


def _amend(item: Item, record: dict, pipeline: Pipeline, store: Store, source: str, now: datetime,
           keep: dict, pos: int, marks: dict | None = None) -> ItemStatus:
    """A new revision of a stored outcome: what the earlier one already sent is reported (the new one still
    goes out, and its template sees `previous`), its queued notifications are cancelled, the new one routed."""
    rid = record["id"]
    row = store.get_outcome(rid)
    if row is None:  # withdrawn from under us: nothing to amend; take it as new
        status, accepted = _admit(item, record, pipeline, source, marks=marks)
        results = store.accept_outcomes([accepted], at=now, deliveries=_with(keep, pos, status.status))
        return status if results == ["accepted"] else ItemStatus(rid, DUPLICATE)
    sent_doc = [{"notification": n.id, "channel": n.channel,
                 "sent_at": datetime.fromtimestamp(n.sent_at, UTC).isoformat()}
                for n in store.notifications_for(rid) if n.sent_at is not None]
    previous = previous_view(row.data(), rev=row.rev, sent=sent_doc[-1] if sent_doc else None)
    status, accepted = _admit(item, record, pipeline, source, previous=previous, marks=marks)
    rev = row.rev + 1
    delivery = replace(keep.pop(pos), status=AMENDED) if pos in keep else None
    cancelled = store.amend(accepted, at=now, delivery=delivery)
    warning = status.warning
    if sent_doc:
        told = "; ".join(f"{d['notification']} on {d['channel']} at {d['sent_at']}" for d in sent_doc)
        warning = "; ".join(filter(None, [f"revision {row.rev} was already sent ({told}): this revision is sent too",
                                          warning]))
    return replace(status, status=AMENDED, warning=warning, rev=rev, cancelled=cancelled or 0,
                   previously_sent=sent_doc or None,
                   notification=f"{rid}#{rev}" if status.notification else None)


def _invalid(item: Item, store: Store, source: str, remote: str | None, rid: str | None, field: str,
             error: str) -> ItemStatus:
    reason = f"{item.where}: {error}" if item.where else error
    dl = store.dead_letter(source, reason, field, item.raw, remote)
    return ItemStatus(rid, INVALID, field=field, error=error, dead_letter=dl)


def _admit(item: Item, record: dict, pipeline: Pipeline, source: str, previous: dict | None = None,
           marks: dict | None = None) -> tuple[ItemStatus, Accepted]:
    """Plan one valid outcome: its answer and what to store (with `marks`, its values outside the vocabulary)."""
    raw = item.raw.decode("utf-8") if isinstance(item.raw, bytes) else item.raw
    held = record.get("approved", True) is False
    try:
        plan = pipeline.plan(record, status=HELD if held else MATCHED, previous=previous)
    except Exception as e:  # noqa: BLE001 - a valid outcome is never dropped: it waits for a person
        log.error("planning %s failed (%s: %s): stored as unmatched", record["id"], type(e).__name__, e)
        acc = Accepted(id=record["id"], raw=raw, status=HELD if held else UNMATCHED, approved=not held,
                       decision=record.get("decision"), stage=record.get("stage"), role=record.get("role"),
                       reason=record.get("reason"), source=source, outside_vocabulary=marks)
        return ItemStatus(record["id"], acc.status, error=f"could not be planned: {type(e).__name__}: {e}"), acc
    acc = replace(_safe_times(Accepted.from_plan(raw, plan, source=source)), outside_vocabulary=marks)
    if acc.notification is None or plan.send_at is None:  # held, unmatched, or nothing can be sent (plan says)
        return ItemStatus(acc.id, plan.status, rule=plan.rule, locale=plan.locale, file=plan.file,
                          error=plan.error if plan.status == UNMATCHED else None), acc
    return ItemStatus(acc.id, MATCHED, rule=plan.rule, locale=plan.locale, file=plan.file, warning=plan.error,
                      notification=f"{acc.id}#1", send_at=plan.send_at.isoformat()), acc


def _safe_times(acc: Accepted) -> Accepted:
    """Drops an occurred_at the store could not keep as epoch seconds (e.g. year 1 with a positive offset)."""
    if isinstance(acc.occurred_at, datetime):
        try:
            acc.occurred_at.timestamp()
        except (OverflowError, ValueError, OSError):
            return replace(acc, occurred_at=None)
    return acc


def planned(plan: Plan) -> PlannedNotification | None:
    """The notification to queue for a matched plan, or None when it has no channel or no send time."""
    if plan.status != MATCHED or not plan.channels or plan.send_at is None:
        return None
    return PlannedNotification.from_plan(plan)


