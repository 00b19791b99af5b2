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

import csv
import io
import json
import logging
import re
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Iterator, Sequence

from engine.intake.gate import HELD, INVALID, check_record
from engine.pipeline import MATCHED, UNMATCHED, Pipeline
from engine.store import Accepted, PlannedNotification, Store

log = logging.getLogger("herald.intake")

DUPLICATE = "duplicate"
_WS = re.compile(r"[ \t\n\r]*")
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
_NOT_PARSED = object()


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


_DECODER = json.JSONDecoder(parse_constant=_no_constants)


@dataclass(frozen=True)
class Item:
    """One input: its raw text exactly as received, and the parsed record (or why it could not be parsed)."""

    raw: str | bytes
    record: Any = _NOT_PARSED
    error: str | None = None  # not JSON: why
    where: str | None = None  # "item 3", "line 12", "CSV line 4": for messages and dead letters

    @classmethod
    def of(cls, value: Any) -> Item:
        """An Item from an Item, raw JSON text/bytes, or an already parsed record."""
        if isinstance(value, Item):
            return value
        if isinstance(value, (str, bytes, bytearray)):
            return parse_text(bytes(value) if isinstance(value, bytearray) else value)
        return cls(json.dumps(value, ensure_ascii=False), value)


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


# ------------------------------------------------------------------------------------------ parsing

def parse_text(raw: str | bytes, where: str | None = None) -> Item:
    """One JSON document (an outcome) to an Item; bytes that are not UTF-8 or not JSON give an Item with `error`."""
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as e:
        return Item(raw, error=f"not UTF-8: {e.reason} at byte {e.start}", where=where)
    try:
        return Item(raw, _DECODER.decode(text), where=where)
    except (ValueError, RecursionError) as e:
        return Item(raw, error=f"not JSON: {e}", where=where)


def split_body(body: bytes) -> tuple[list[Item], bool, str | None]:
    """An HTTP body to (items, was_a_list, error): a list keeps each element's exact text as its raw body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return [], False, f"not UTF-8: {e.reason} at byte {e.start}"
    start = _WS.match(text, 0).end()
    if not text.startswith("[", start):
        item = parse_text(text)
        return ([] if item.error else [item]), False, item.error
    try:
        return _split_array(text, start), True, None
    except (ValueError, RecursionError) as e:
        return [], True, f"not JSON: {e}"


def _split_array(text: str, i: int) -> list[Item]:
    items: list[Item] = []
    i = _WS.match(text, i + 1).end()
    if text.startswith("]", i):
        i += 1
    else:
        while True:
            obj, j = _DECODER.raw_decode(text, i)
            items.append(Item(text[i:j], obj, where=f"item {len(items) + 1}"))
            i = _WS.match(text, j).end()
            if text.startswith(",", i):
                i = _WS.match(text, i + 1).end()
                continue
            if text.startswith("]", i):
                i += 1
                break
            raise ValueError(f"expected ',' or ']' at char {i}")
    if _WS.match(text, i).end() != len(text):
        raise ValueError(f"extra data after the list at char {i}")
    return items


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
    if item.error is not None:
        return _invalid(item, store, source, remote, None, "", item.error), None
    record = item.record
    if not isinstance(record, dict):
        return _invalid(item, store, source, remote, None, "", "an outcome must be a JSON object"), None
    result = check_record(record)
    if result.status == INVALID:
        return _invalid(item, store, source, remote, result.outcome_id, result.field or "", result.error), None
    raw = item.raw.decode("utf-8") if isinstance(item.raw, bytes) else item.raw
    if _SURROGATE.search(raw) and _has_lone_surrogate(record):
        return _invalid(item, store, source, remote, result.outcome_id, "",
                        "a string holds an unpaired UTF-16 surrogate (\\ud800-\\udfff)"), None
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
    if plan.status == MATCHED and acc.notification is None:  # a rule matched but nothing can be sent
        why = plan.error or "no send time"
        return (ItemStatus(acc.id, UNMATCHED, rule=plan.rule, error=f"rule {plan.rule} matched, but {why}"),
                replace(acc, status=UNMATCHED))
    if acc.notification is None:
        return ItemStatus(acc.id, plan.status, rule=plan.rule), acc
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


def _has_lone_surrogate(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def planned(plan) -> PlannedNotification | None:
    """The notification to queue for a matched plan, or None when it has no channel or no send time."""
    if plan.status != MATCHED or not plan.channels or plan.send_at is None:
        return None
    return PlannedNotification.from_plan(plan)


# ------------------------------------------------------------------------------------- files to ingest

def read_items(path: str | Path) -> Iterator[Item]:
    """Items of a JSON-lines file, or of a CSV export with a header row (by extension, else by content)."""
    p = Path(path)
    with open(p, "rb") as fh:
        data = fh.read()
    if data.lstrip().startswith(b"["):  # one JSON list of outcomes
        items, _, error = split_body(data)
        yield from ([Item(data, error=error, where="file")] if error else items)
        return
    if p.suffix.lower() == ".csv" or (p.suffix.lower() not in (".jsonl", ".json", ".ndjson")
                                      and not data.lstrip().startswith(b"{")):
        yield from csv_items(data.decode("utf-8-sig"))
        return
    for n, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if line.strip():
            yield parse_text(line, where=f"line {n}")


_BOOL = {"true": True, "yes": True, "1": True, "y": True, "false": False, "no": False, "0": False, "n": False}
_ARRAY_FIELDS = ("feedback.strengths", "feedback.improvements")


def csv_value(column: str, cell: str) -> Any:
    """A CSV cell as the outcome field `column` wants it: numbers for score, booleans for approved, lists."""
    if column == "score":
        try:
            number = float(cell)
        except ValueError:
            return cell  # the gate names the field
        return int(number) if number.is_integer() and "." not in cell and "e" not in cell.lower() else number
    if column == "approved":
        return _BOOL.get(cell.strip().lower(), cell)
    if column in _ARRAY_FIELDS:
        if cell.lstrip().startswith("["):
            try:
                return json.loads(cell)
            except ValueError:
                return cell
        return [part.strip() for part in re.split(r"[|;；]", cell) if part.strip()]
    return cell


def csv_items(text: str) -> Iterator[Item]:
    """Rows of a CSV export with a header row; dotted column names (candidate.email) become nested fields."""
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        return
    columns = [h.strip() for h in header]
    for cells in reader:
        if not any(c.strip() for c in cells):
            continue
        where = f"CSV line {reader.line_num}"
        if len(cells) > len(columns):
            yield Item(_csv_line(cells), error=f"{len(cells)} cells for {len(columns)} columns", where=where)
            continue
        record: dict = {}
        for column, cell in zip(columns, cells, strict=False):
            if cell == "" or not column:
                continue
            node = record
            parts = column.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {}) if isinstance(node.get(part, {}), dict) else {}
            node[parts[-1]] = csv_value(column, cell)
        yield Item(json.dumps(record, ensure_ascii=False), record, where=where)


def _csv_line(cells: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(cells)
    return out.getvalue().rstrip("\r\n")
