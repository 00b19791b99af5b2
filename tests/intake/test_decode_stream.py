"""items_of over a binary file object: the items of the same bytes, JSON lines read line by line (the input is never
held whole)."""
from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.intake import decode
from engine.intake.decode import items_of

NOW = datetime(2026, 11, 20, 10, 0, tzinfo=timezone(timedelta(hours=8)))


def _reference_items(data: bytes, name: str = ""):
    """items_of as it read a file's bytes before it took a file object (the whole input at once): the reference."""
    suffix = Path(name).suffix.lower() if name else ""
    if suffix not in (".jsonl", ".ndjson") and data.lstrip().startswith(b"["):
        items, _, error = decode.split_body(data)
        yield from [decode.Item(data, error=error, where="file")] if error else items
        return
    if suffix == ".csv" or (suffix not in (".jsonl", ".json", ".ndjson") and data.strip()
                            and not data.lstrip().startswith(b"{")):
        yield from decode.csv_items(data.decode("utf-8-sig"))
        return
    for n, line in enumerate(data.split(b"\n"), 1):
        line = line.rstrip(b"\r")
        if line.strip():
            yield decode.parse_text(line, where=f"line {n}")


_piece = st.sampled_from([
    b'{"id": "a", "decision": "reject"}', b'{"id": "b"}', b"not json", b"  ", b"\t", b"\r", b"\x0b", b"", b"[1, 2]",
    b'{"id": "\xe4\xb8\xad"}', b"\xff\xfe", b"\xef\xbb\xbf", b"id,decision", b"x,reject", b'"q,uote"', b"[", b"]",
    b"{", b",", b"\r\n", "张三".encode()])
_inputs = st.lists(st.tuples(_piece, st.sampled_from([b"\n", b"\r\n", b"", b" "])), max_size=12).map(
    lambda parts: b"".join(p + sep for p, sep in parts))
_names = st.sampled_from(["", "-", "<stdin>", "in.jsonl", "in.ndjson", "in.json", "in.csv", "in.txt", "IN.JSONL"])


def _as_tuples(items) -> list:
    """The items' fields, or the error reading them raised (a CSV export that is not UTF-8 raises, as before)."""
    try:
        return [(i.raw, i.record, i.error, i.where) for i in items]
    except UnicodeDecodeError as e:
        return [("raised", str(e))]


class _Trickle(io.RawIOBase):
    """A raw binary input that hands out at most `step` bytes a read (as a pipe may), counting what was taken."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.step, self.taken = data, step, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        got = self.data[self.taken:self.taken + min(self.step, len(buffer))]
        buffer[:len(got)] = got
        self.taken += len(got)
        return len(got)


@settings(max_examples=400, deadline=None)
@given(data=_inputs, name=_names, step=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]))
def test_a_file_object_gives_the_items_of_its_bytes(data: bytes, name: str, step: int) -> None:
    """Every kind of input (JSON lines with blank, CR-LF and unreadable lines; a JSON list; CSV), read a few bytes at
    a time or all at once: the items of the whole bytes, in order, with the same raw text, record, error and line
    number."""
    want = _as_tuples(_reference_items(data, name))
    assert _as_tuples(items_of(io.BufferedReader(_Trickle(data, step), buffer_size=max(step, 2)), name)) == want
    assert _as_tuples(items_of(io.BytesIO(data), name)) == want
    assert _as_tuples(items_of(data, name)) == want


def test_json_lines_are_read_as_they_come() -> None:
    """The first item comes before the input has been read: a long JSON-lines input is never held whole."""
    line = json.dumps({"id": "x", "decision": "reject", "candidate": {"name": "Li"}}).encode()
    data = b"\n".join([line] * 200_000) + b"\n"  # about 12 MB
    raw = _Trickle(data, 1 << 16)
    items = items_of(io.BufferedReader(raw), "in.jsonl")
    first = next(items)
    assert first.record["id"] == "x" and first.where == "line 1"
    assert raw.taken <= 1 << 16
    assert sum(1 for _ in items) == 199_999 and raw.taken == len(data)


@pytest.mark.parametrize("data, name", [(b'[{"id": "a"}, {"id": "b"}]', "in.json"),
                                        (b"id,decision\na,reject\nb,pass\n", "in.csv")])
def test_a_list_or_a_csv_export_is_read_whole(data: bytes, name: str) -> None:
    raw = _Trickle(data, 4)
    assert [i.record["id"] for i in items_of(io.BufferedReader(raw, buffer_size=4), name)] == ["a", "b"]
    assert raw.taken == len(data)
