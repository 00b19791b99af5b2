"""engine.intake.batch: exact raw text per item, statuses, the never-dropped paths, CSV cells."""
from __future__ import annotations

import json

import pytest

from daemon_support import outcome
from engine.config.deployment import load_deployment
from engine.intake.batch import intake
from engine.intake.decode import Item, csv_value, split_body
from engine.pipeline import Pipeline
from engine.store import SQLiteStore


@pytest.fixture
def env(deploy):
    pipe = Pipeline(load_deployment([str(deploy)]), render_channels="all")
    with SQLiteStore(deploy / "herald.db") as store:
        yield pipe, store


def test_split_body_keeps_each_items_exact_text():
    body = b' [ {"id": "a",  "x": [1, 2]} ,\n\t"s" , 3.50,{"id":"b"} ] \n'
    items, is_list, error = split_body(body)
    assert is_list and error is None
    assert [i.raw for i in items] == ['{"id": "a",  "x": [1, 2]}', '"s"', "3.50", '{"id":"b"}']
    assert items[0].record == {"id": "a", "x": [1, 2]} and items[3].where == "item 4"
    assert split_body(b"[]") == ([], True, None)
    for bad in (b"[1, 2", b"[1 2]", b"[1,]", b"[1] x", b'{"a": NaN}', b"[Infinity]", b"\xc3\x28"):
        items, _, error = split_body(bad)
        assert items == [] and error, bad
    items, is_list, error = split_body(b'  {"id": "c"} ')
    assert not is_list and items[0].raw == '  {"id": "c"} '


def test_statuses_and_the_paths_that_never_drop(env, monkeypatch):
    pipe, store = env
    no_address = outcome("s-3")
    no_address["candidate"] = {"name": "No Address"}
    surrogate = '{"id": "s-6", "decision": "reject", "candidate": {"name": "\\ud800"}}'
    got = intake([outcome("s-1"), json.dumps(outcome("s-1")), outcome("s-2", decision="pass"), no_address,
                  outcome("s-4", approved=False), Item("{", error="not JSON: x"), surrogate,
                  outcome("s-8", occurred_at="2026-02-30T10:00:00Z")], pipe, store, "cli")
    assert [(s.id, s.status) for s in got] == [
        ("s-1", "matched"), ("s-1", "duplicate"), ("s-2", "unmatched"), ("s-3", "unmatched"), ("s-4", "held"),
        (None, "invalid"), ("s-6", "invalid"), ("s-8", "invalid")]
    assert got[7].field == "occurred_at"
    assert "rule now matched, but" in got[3].error and got[0].send_at and got[0].notification == "s-1#1"
    assert {o.id for o in store.unmatched()} == {"s-2", "s-3"}

    def broken(*_a, **_k):
        raise OverflowError("date value out of range")

    monkeypatch.setattr(pipe, "plan", broken)
    [s] = intake([outcome("s-7")], pipe, store, "cli")
    assert s.status == "unmatched" and "OverflowError" in s.error and store.get_outcome("s-7") is not None


def test_extreme_times_are_kept_not_refused(env):
    pipe, store = env
    got = intake([outcome("t-1", occurred_at="0001-01-01T00:00:00+01:00"),
                  outcome("t-2", occurred_at="9999-12-31T23:59:59-01:00")], pipe, store, "cli")
    assert all(s.status in ("matched", "unmatched") for s in got)
    assert store.get_outcome("t-1") is not None and store.get_outcome("t-2") is not None


def test_csv_cells():
    assert csv_value("score", "72") == 72 and csv_value("score", "72.5") == 72.5 and csv_value("score", "x") == "x"
    assert csv_value("approved", "FALSE") is False and csv_value("approved", "yes") is True
    assert csv_value("feedback.improvements", "a; b|c") == ["a", "b", "c"]
    assert csv_value("feedback.strengths", '["x, y"]') == ["x, y"]
    assert csv_value("candidate.phone", "+86 138") == "+86 138"
