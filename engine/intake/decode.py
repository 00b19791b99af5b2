"""Decoding what comes in: the one JSON decoder, HTTP bodies (one outcome or a list), JSON-lines and CSV files.

Every way in (dry-run, `herald test`, `ingest`, `post`, HTTP) decodes with this module, so the same text
is the same value, or the same error, everywhere. jiter (Rust) decodes first; wherever it refuses a text,
json's C scanner decides, so jiter's only effect is speed (tests/intake/test_decode_jiter.py)."""
from __future__ import annotations

import csv
import io
import json
import re
from itertools import chain
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, BinaryIO

from engine.model import quick_init

try:
    from jiter import from_json as _from_json  # type: ignore[import-not-found, unused-ignore]  # mypy without jiter
except ImportError:  # an environment installed before herald required jiter: json's C scanner alone (same values)
    _from_json = None  # type: ignore[assignment, unused-ignore]  # then None: jiter_json raises, the exact path decodes
JITER = _from_json is not None  # whether the fast path is there at all (else not tried: an exception a line costs)

_WS = re.compile(r"[ \t\n\r]*")
_NOT_PARSED = object()


def _skip_ws(text: str, i: int) -> int:
    """The index of the first non-whitespace character at or after i (JSON's four whitespace characters)."""
    m = _WS.match(text, i)
    return m.end() if m else i


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _refuse_pairs(pairs: list) -> dict:
    """An object from its pairs (the C scanner calls this for each one), a ValueError for a repeated key.

    dict(pairs) is built in C; only when it holds fewer keys than there were pairs is the repeat looked for."""
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set = set()
        for key, _ in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {json.dumps(key, ensure_ascii=False)[:80]} in an object")
            seen.add(key)
    return out


_DECODER = json.JSONDecoder(parse_constant=_no_constants, object_pairs_hook=_refuse_pairs)
_scan = _DECODER.scan_once  # type: ignore[attr-defined]  # the C scanner, without decode()'s two Python wrappers


def jiter_json(data: bytes) -> Any:
    """decode_json's value for the UTF-8 JSON text `data`, by jiter (about 0.7 of the C scanner's cost with its
    repeated-key hook): raises, with anything, wherever jiter refuses the text (a lone surrogate, NaN, a
    repeated key, deeper than 200 levels, not UTF-8, not JSON, jiter missing), and then decode_json's exact path
    must decide. Where it returns, the value equals decode_json's in value and type, and no string in it holds
    a surrogate (jiter's strings are UTF-8)."""
    return _from_json(data, allow_inf_nan=False, catch_duplicate_keys=True)  # type: ignore[misc, unused-ignore]  # maybe None


def decode_json(text: str) -> Any:
    """The one JSON decoder of every way in: json.loads, except that NaN, Infinity and -Infinity and a key
    repeated in one object are errors (ValueError), never a value."""
    if JITER:
        try:
            return jiter_json(text.encode())
        except Exception:  # noqa: BLE001, S110 - refused by jiter (or a surrogate in the str): the exact path decides
            pass
    return _decode_exactly(text)


def _decode_exactly(text: str) -> Any:
    """decode_json by json's C scanner, with the repeated-key hook: the value, or the error every way in gives."""
    try:
        value, end = _scan(text, 0)
        whole = end == len(text) or text[end:].isspace()
    except StopIteration:
        whole = False
    if not whole:
        value = _DECODER.decode(text)  # leading space, or an error: decode() says which
    return value


@quick_init
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


# ------------------------------------------------------------------------------------------ parsing

def parse_text(raw: str | bytes, where: str | None = None) -> Item:
    """One JSON document (an outcome) to an Item; bytes that are not UTF-8 or not JSON give an Item with `error`."""
    if JITER and raw.__class__ is bytes:
        try:
            return Item(raw, jiter_json(raw), None, where)  # (jiter refuses what is not UTF-8)
        except Exception:  # noqa: BLE001, S110 - refused: decoded below, as always
            pass
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as e:
        return Item(raw, error=f"not UTF-8: {e.reason} at byte {e.start}", where=where)
    try:  # (bytes jiter refused are not asked again)
        value = _decode_exactly(text) if raw.__class__ is bytes else decode_json(text)
        return Item(raw, value, None, where)  # (positional: cheaper, once per outcome)
    except (ValueError, RecursionError) as e:
        return Item(raw, error=f"not JSON: {e}", where=where)


def split_body(body: bytes) -> tuple[list[Item], bool, str | None]:
    """An HTTP body to (items, was_a_list, error): a list keeps each element's exact text as its raw body."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return [], False, f"not UTF-8: {e.reason} at byte {e.start}"
    start = _skip_ws(text, 0)
    if not text.startswith("[", start):
        item = parse_text(text)
        return ([] if item.error else [item]), False, item.error
    try:
        return _split_array(text, start), True, None
    except (ValueError, RecursionError) as e:
        return [], True, f"not JSON: {e}"


def _split_array(text: str, i: int) -> list[Item]:
    items: list[Item] = []
    i = _skip_ws(text, i + 1)
    if text.startswith("]", i):
        i += 1
    else:
        while True:
            obj, j = _DECODER.raw_decode(text, i)  # a repeated key raises here
            items.append(Item(text[i:j], obj, where=f"item {len(items) + 1}"))
            i = _skip_ws(text, j)
            if text.startswith(",", i):
                i = _skip_ws(text, i + 1)
                continue
            if text.startswith("]", i):
                i += 1
                break
            raise ValueError(f"expected ',' or ']' at char {i}")
    if _skip_ws(text, i) != len(text):
        raise ValueError(f"extra data after the list at char {i}")
    return items


# ------------------------------------------------------------------------------------- files to ingest

def read_items(path: str | Path) -> Iterator[Item]:
    """Items of a JSON-lines file, or of a CSV export with a header row (by extension, else by content), made as
    they are reached (items_of): the file is opened now (a missing one fails here) and closed after its last item."""
    p = Path(path)
    return _closing(open(p, "rb"), p.name)  # the generator closes it


def _closing(fh: BinaryIO, name: str) -> Iterator[Item]:
    with fh:
        yield from items_of(fh, name)


_LIST, _CSV, _LINES = "list", "csv", "lines"


def _kind(head: bytes, name: str) -> str:
    """What an input is, from its first bytes (whitespace aside) and its name: one JSON list of outcomes (unless
    named .jsonl or .ndjson), CSV with a header row (a .csv name, or content that starts like neither a JSON list
    nor an object, unless named as JSON), else JSON lines."""
    suffix = Path(name).suffix.lower() if name else ""
    start = head.lstrip()
    if suffix not in (".jsonl", ".ndjson") and start.startswith(b"["):
        return _LIST
    if suffix == ".csv" or (suffix not in (".jsonl", ".json", ".ndjson") and start and not start.startswith(b"{")):
        return _CSV
    return _LINES


def items_of(data: bytes | BinaryIO, name: str = "") -> Iterator[Item]:
    """Items of a file, given as its bytes or as a binary file object: JSON lines (always for a .jsonl or .ndjson
    name), one JSON list, or CSV with a header row (a .csv name, or content that does not start like JSON). Every
    way in (dry-run, ingest, post) reads files with this.

    JSON lines are read from a file object line by line, each item made as its line is reached: the input is never
    held whole (a list or a CSV export is read whole: it is one document)."""
    source: BinaryIO = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    head = b""
    while not head.lstrip():  # whole lines, up to the first that is not blank (or the end): how the input starts
        line = source.readline()
        if not line:
            break
        head += line
    kind = _kind(head, name)
    if kind == _LIST:
        whole = head + source.read()
        items, _, error = split_body(whole)
        yield from ([Item(whole, error=error, where="file")] if error else items)
    elif kind == _CSV:
        yield from csv_items((head + source.read()).decode("utf-8-sig"))
    else:
        yield from _line_items(chain(io.BytesIO(head), source))


def _line_items(lines: Iterable[bytes]) -> Iterator[Item]:
    """The items of JSON lines (each with its newline, the last one perhaps without): one per line that is not blank
    (ASCII whitespace), its carriage returns before the newline dropped, `where` its line number. (A binary file's
    lines are found with memchr: a fifth of the cost of bytes.split.)"""
    for n, line in enumerate(lines, 1):
        line = line.rstrip(b"\r\n")  # (only the last byte can be a newline)
        if line and not line.isspace():  # line.strip(), without a copy of the line
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
