"""The gate: schema check compiled once, the offending field named, dedup by id, held when not approved."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone, UTC
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.intake.gate import DUPLICATE, HELD, INVALID, OK, Gate, check_record, parse_line
from engine.model import Timing
from engine.rules.schemas import sample_outcome
from engine.schedule.timing import schedule


@pytest.mark.parametrize("change,field", [
    ({"decision": "maybe"}, "decision"),
    ({"score": "high"}, "score"),
    ({"extra": 1}, "extra"),
    ({"occurred_at": "2026-02-30T10:00:00Z"}, "occurred_at"),      # the pattern fits, the date does not exist
    ({"occurred_at": "0000-00-00T00:00Z"}, "occurred_at"),
    ({"occurred_at": "2026-11-20T10:00:00"}, "occurred_at"),       # no offset
    ({"candidate": {"name": "x", "email": "a b@example.com"}}, "candidate.email"),
    ({"candidate": {"name": "x", "phone": "call me"}}, "candidate.phone"),
    ({"candidate": {"email": "x@example.com"}}, "candidate.name"),
    ({"approved": "yes"}, "approved"),
])
def test_invalid_records_name_the_field(change, field):
    result = check_record(sample_outcome(**change))
    assert (result.status, result.field) == (INVALID, field)
    assert field in result.error


def test_missing_required_top_level_field():
    record = sample_outcome()
    del record["candidate"]
    assert check_record(record).field == "candidate"


@pytest.mark.parametrize("line,error", [
    ("{not json", "not JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('"text"', "must be a JSON object"),
])
def test_unreadable_lines(line, error):
    result = parse_line(line)
    assert result.status == INVALID and result.outcome_id is None and error in result.error


def test_valid_then_duplicate_then_held():
    gate = Gate()
    first = sample_outcome(id="a")
    assert gate.line(json.dumps(first)).status == OK
    assert gate.line(json.dumps(first)).status == DUPLICATE
    assert gate.record(sample_outcome(id="b", approved=False)).status == HELD
    assert gate.record(sample_outcome(id="c", approved=False)).outcome_id == "c"


def test_an_invalid_record_keeps_its_id_when_one_can_be_read():
    assert check_record(sample_outcome(id="x-1", decision="nope")).outcome_id == "x-1"


def test_schedule_at_the_end_of_the_calendar_is_an_error_not_a_crash():
    late = datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=-1)))
    sched = schedule(Timing(delay=timedelta(hours=2)), {}, late, ZoneInfo("Asia/Shanghai"), datetime.now(UTC))
    assert sched.send_at is None and "out of range" in sched.error


def _outcome_of(fn, text):
    try:
        return ("ok", fn(text))
    except (ValueError, RecursionError) as e:
        return ("error", type(e).__name__, str(e))


def _pairs_text(pairs) -> str:
    """An object written from (key, value) pairs, a key possibly repeated; spaces around the colon vary."""
    return "{" + ", ".join(f"{json.dumps(k)}{sp}:{json.dumps(v)}" for (k, v), sp in pairs) + "}"


_json_texts = st.one_of(
    st.text(max_size=40),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
                 lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
                 max_leaves=8).map(json.dumps),
    st.lists(st.tuples(st.tuples(st.sampled_from(["a", "b", 'c"', "d:"]), st.sampled_from([1, "x", 'q":', None])),
                       st.sampled_from(["", " ", "\n"])), max_size=4).map(_pairs_text),
)


def _no_constant(name):
    raise ValueError(f"{name} is not a JSON number")


def _unique(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError("duplicate key")
        out[k] = v
    return out


def _reference(text):
    """json.loads with NaN/Infinity and repeated keys refused: what every way in must decode to."""
    return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique)


@settings(max_examples=500, deadline=None)
@given(text=_json_texts, before=st.sampled_from(["", " ", "\n", "\ufeff"]),
       after=st.sampled_from(["", " ", "\t\n", "x", "{}", " 1"]))
def test_the_one_decoder_is_json_loads_without_constants_or_repeated_keys(text, before, after):
    """decode_json gives json.loads's value, or an error exactly where the strict reference has one (which
    error comes first in a text with two may differ)."""
    from engine.intake.decode import decode_json

    line = before + text + after
    mine, ref = _outcome_of(decode_json, line), _outcome_of(_reference, line)
    assert mine[0] == ref[0]
    if mine[0] == "ok":
        assert repr(mine) == repr(ref)


@pytest.mark.parametrize("text", ['{"a": NaN}', '{"a": Infinity}', '{"a": -Infinity}', '[NaN]',
                                  '{"a": 1, "a": 2}', '{"a": {"b": 1, "b" : 1}}', '[{"x": 1, "x": 1}]'])
def test_constants_and_repeated_keys_are_refused(text):
    result = parse_line(text)
    assert result.status == INVALID and result.error.startswith("not JSON")


def test_a_stream_keeps_each_ids_text_not_its_record():
    """A long dry-run keeps one string per id (no tree of dicts for the cyclic GC to walk again and again)."""
    import gc

    gate = Gate()
    for n in range(50):
        gate.line(json.dumps(sample_outcome(id=f"o{n}")))
    assert len(gate.seen) == 50 and not any(gc.is_tracked(v) for v in gate.seen.values())


_same_id_lines = st.lists(
    st.builds(lambda oid, decision, score, pad, approved: (
        f'{{"id": {json.dumps(oid)},{pad}"decision": "{decision}", "candidate": {{"name": "Li"}}'
        + ("" if score is None else f', "score": {score}')
        + ("" if approved is None else f', "approved": {json.dumps(approved)}') + "}"),
        oid=st.sampled_from(["a", "b"]), decision=st.sampled_from(["reject", "pass"]),
        score=st.sampled_from([None, "1", "1.0", "0", "-0.0", "2"]), pad=st.sampled_from([" ", "  ", "\t"]),
        approved=st.sampled_from([None, True, False])),
    min_size=1, max_size=10)


@given(lines=_same_id_lines)
@settings(max_examples=300)
def test_remembering_text_gives_the_verdicts_of_remembering_records(lines):
    """Gate.line (the raw text remembered) against Gate.admit without it (the record remembered): the same
    status, outcome and previous revision, line by line (1 and 1.0 are the same content, spacing is not content)."""
    by_text, by_record = Gate(), Gate()
    for line in lines:
        a, b = by_text.line(line), by_record.admit(parse_line(line))
        assert (a.status, a.outcome_id, a.outcome, a.previous) == (b.status, b.outcome_id, b.outcome, b.previous)


def test_check_record_uses_the_compiled_outcome_check_for_either_kind_of_record():
    """check_record looks its predicate up once per kind (printable or not): the one fast_check compiled."""
    from engine.intake import gate
    from engine.rules.schemas import fast_check

    for printable in (False, True):
        assert gate.check_record(sample_outcome(), printable).status == gate.OK
        assert gate._CHECKS[printable] is fast_check("outcome", printable)


@given(lines=_same_id_lines)
@settings(max_examples=200)
def test_check_in_is_admit_for_an_ok_outcome(lines):
    """Gate.check_in (an ok outcome's verdict in the stream, None while it stays ok) against Gate.admit."""
    from engine.intake.gate import judge_text

    by_admit, by_check_in = Gate(), Gate()
    for line in lines:
        result = judge_text(line)
        want = by_admit.admit(result, line)
        got = by_check_in.check_in(result.outcome_id, result.outcome, line) if result.status == OK else result
        if got is None:
            assert want is result
        else:
            assert (got.status, got.outcome_id, got.outcome, got.previous) == \
                (want.status, want.outcome_id, want.outcome, want.previous)


@given(lines=_same_id_lines, as_bytes=st.booleans())
@settings(max_examples=100)
def test_judged_item_is_judge_without_the_ok_verdict(lines, as_bytes):
    """judged_item (what run_items goes on with): (the record, None) where judge is ok, else judge's verdict."""
    from engine.intake.decode import parse_text
    from engine.intake.gate import judge, judged_item

    for line in [*lines, "not json", "[1]", '{"id": "\\u0007"}', '{"id": "x", "decision": "reject"}']:
        item = parse_text(line.encode() if as_bytes else line)
        want = judge(item)
        record, problem = judged_item(item)
        if problem is None:
            assert want.status == OK and (want.outcome, want.outcome_id) == (record, record["id"])
        else:
            assert problem == want


def test_a_candidate_zone_found_once_is_not_looked_up_again_and_an_unknown_one_never_passes():
    """The gate remembers the candidate.timezone values load_timezone found (_ZONES): a name it refused is never
    kept, so it is refused every time, with the suggestion."""
    from engine.intake import gate

    for _ in range(2):
        assert check_record(sample_outcome(candidate={"name": "x", "timezone": "Asia/Shanghai"})).status == OK
        bad = check_record(sample_outcome(candidate={"name": "x", "timezone": "asia/shanghai"}))
        assert bad.status == INVALID and bad.field == "candidate.timezone" and "Asia/Shanghai" in bad.error
    assert "Asia/Shanghai" in gate._ZONES and "asia/shanghai" not in gate._ZONES


@pytest.mark.parametrize("text", ['{"id": "a", "decision": "pass", "candidate": {"name": "x"}}', '{"a": 1, "a": 2}',
                                  '{"a": NaN}', '["\\ud800"]', '{"id": "\\u0085"}', "[1] x", "{"])
def test_without_jiter_the_exact_path_alone_gives_the_same_values_and_verdicts(text, monkeypatch):
    """An environment installed before herald required jiter (decode.JITER false) decodes and judges by json's C
    scanner alone, without trying jiter on each line: the same value, verdict or error."""
    from engine.intake import decode, gate

    with_jiter = (decode.parse_text(text.encode("utf-8", "surrogatepass")), gate.judged_text(text))
    monkeypatch.setattr(decode, "JITER", False)
    monkeypatch.setattr(gate, "JITER", False)
    monkeypatch.setattr(decode, "_from_json", None)  # (were it asked, it would raise)
    without = (decode.parse_text(text.encode("utf-8", "surrogatepass")), gate.judged_text(text))
    assert repr(with_jiter) == repr(without)
