"""Shared intake (HTTP and `herald ingest`): parse, gate, plan with the one Pipeline, store a batch in one transaction.

Per item: a body that is not JSON, not an object, or breaks the outcome schema is kept as a dead letter
with its raw text exactly as received and reported `invalid` with the field named. A valid one is routed,
rendered and scheduled by the same Pipeline `herald dry-run` uses, then the whole batch goes to the store
in ONE `accept_outcomes` transaction (durable when it returns; idempotent on the id):

- `approved: false` -> stored as `held`, no notification (it is planned on approval);
- no rule, or a rule whose channels the candidate has no address for -> stored as `unmatched`: it waits
  for a person (`herald unmatched`, `herald route`);
- matched -> stored with its notification `<id>#1`;
- an id seen before (in this batch or earlier) -> `duplicate`, nothing changes.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime
from collections.abc import Iterable
from typing import Any

from engine.intake.decode import Item
from engine.intake.gate import HELD, INVALID, judge
from engine.pipeline import MATCHED, UNMATCHED, Pipeline
from engine.store import Accepted, PlannedNotification, Store

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
    dead_letter: int | None = None

    def as_dict(self) -> dict:
        out = {"id": self.id, "status": self.status}
        for k in ("field", "error", "warning", "notification", "send_at", "rule", "dead_letter"):
            v = getattr(self, k)
            if v is not None:
                out[k] = v
        return out


# ------------------------------------------------------------------------------------------- intake

def intake(items: Iterable[Any], pipeline: Pipeline, store: Store, source: str, remote: str | None = None,
           now: datetime | None = None) -> list[ItemStatus]:
    """Gate, plan and store a batch (one transaction); one ItemStatus per item, in order."""
    now = now or pipeline.clock()
    statuses: list[ItemStatus | None] = []
    batch: list[tuple[int, Accepted, ItemStatus]] = []
    for value in items:
        item = Item.of(value)
        status, accepted = _admit(item, pipeline, store, source, remote, now)
        if accepted is None:
            statuses.append(status)
        else:
            batch.append((len(statuses), accepted, status))
            statuses.append(None)
    if batch:
        results = store.accept_outcomes([a for _, a, _ in batch], at=now)
        for (pos, _a, status), result in zip(batch, results, strict=False):
            statuses[pos] = status if result == "accepted" else ItemStatus(status.id, DUPLICATE)
    return statuses  # type: ignore[return-value]


def _invalid(item: Item, store: Store, source: str, remote: str | None, rid: str | None, field: str,
             error: str) -> ItemStatus:
    reason = f"{item.where}: {error}" if item.where else error
    dl = store.dead_letter(source, reason, field, item.raw, remote)
    return ItemStatus(rid, INVALID, field=field, error=error, dead_letter=dl)


def _admit(item: Item, pipeline: Pipeline, store: Store, source: str, remote: str | None,
           now: datetime) -> tuple[ItemStatus, Accepted | None]:
    result = judge(item)
    if result.status == INVALID:
        return _invalid(item, store, source, remote, result.outcome_id, result.field or "", result.error), None
    record = result.outcome
    raw = item.raw.decode("utf-8") if isinstance(item.raw, bytes) else item.raw
    held = record.get("approved", True) is False
    try:
        plan = pipeline.plan(record, status=HELD if held else MATCHED)
    except Exception as e:  # noqa: BLE001 - a valid outcome is never dropped: it waits for a person
        log.error("planning %s failed (%s: %s): stored as unmatched", record["id"], type(e).__name__, e)
        acc = Accepted(id=record["id"], raw=raw, status=HELD if held else UNMATCHED, approved=not held,
                       decision=record.get("decision"), stage=record.get("stage"), role=record.get("role"),
                       reason=record.get("reason"), source=source)
        return ItemStatus(record["id"], acc.status, error=f"could not be planned: {type(e).__name__}: {e}"), acc
    acc = _safe_times(Accepted.from_plan(raw, plan, source=source))
    if acc.notification is None:  # held, unmatched, or a rule matched but nothing can be sent (the plan says)
        return ItemStatus(acc.id, plan.status, rule=plan.rule,
                          error=plan.error if plan.status == UNMATCHED else None), acc
    return ItemStatus(acc.id, MATCHED, rule=plan.rule, warning=plan.error, notification=f"{acc.id}#1",
                      send_at=plan.send_at.isoformat()), acc


def _safe_times(acc: Accepted) -> Accepted:
    """Drops an occurred_at the store could not keep as epoch seconds (e.g. year 1 with a positive offset)."""
    if isinstance(acc.occurred_at, datetime):
        try:
            acc.occurred_at.timestamp()
        except (OverflowError, ValueError, OSError):
            return replace(acc, occurred_at=None)
    return acc


def planned(plan) -> PlannedNotification | None:
    """The notification to queue for a matched plan, or None when it has no channel or no send time."""
    if plan.status != MATCHED or not plan.channels or plan.send_at is None:
        return None
    return PlannedNotification.from_plan(plan)


