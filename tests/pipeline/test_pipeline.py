"""Tests for engine.pipeline: the jsonl line writer against SPEC's JSON object, and rendering per channel."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone, UTC
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.model import Plan
from engine.pipeline import plan_json, plan_line

SH = ZoneInfo("Asia/Shanghai")
texts = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
instants = st.one_of(st.none(), st.datetimes(datetime(2000, 1, 1), datetime(2100, 1, 1),
                                             timezones=st.sampled_from([SH, UTC,
                                                                        timezone(timedelta(hours=-3, minutes=-30))])))
channels = st.lists(st.sampled_from(["dingtalk", "sms", "email", "webhook", "通道\"x"]), max_size=4).map(tuple)


@st.composite
def plans(draw) -> Plan:
    status = draw(st.sampled_from(["matched", "unmatched", "held", "duplicate", "invalid"]))
    routed = draw(st.booleans())
    return Plan(
        outcome_id=draw(st.one_of(texts, st.none())), status=status,
        rule=draw(texts) if routed else None, rule_version="v1",
        template=draw(st.one_of(texts, st.none())) if routed else None,
        variant=draw(st.one_of(st.none(), texts)), locale=draw(st.one_of(st.none(), st.just("zh-CN"), texts)),
        channels=draw(channels), skipped_channels=draw(channels), send_at=draw(instants),
        deadline_at=draw(instants), late=draw(st.booleans()),
        escalations=tuple(draw(st.lists(instants.filter(lambda t: t is not None), max_size=3))),
        error=draw(st.one_of(st.none(), st.just(""), texts)))


@settings(max_examples=400, deadline=None)
@given(plan=plans())
def test_plan_line_is_json_dumps_of_plan_json(plan):
    line = plan_line(plan)
    assert line == json.dumps(plan_json(plan), ensure_ascii=False)
    assert json.loads(line) == plan_json(plan)


def test_plan_line_keeps_spec_key_order_and_unicode():
    t = datetime(2026, 11, 20, 12, 30, tzinfo=SH)
    plan = Plan("ats-1", "matched", rule="r1", template="reject/通用", locale="zh-CN", channels=("dingtalk", "email"),
                send_at=t, deadline_at=t + timedelta(days=3), variant="reject/b", skipped_channels=("sms",))
    assert plan_line(plan) == (
        '{"outcome": "ats-1", "status": "matched", "rule": "r1", "template": "reject/通用", "locale": "zh-CN", '
        '"channels": ["dingtalk", "email"], "send_at": "2026-11-20T12:30:00+08:00", "variant": "reject/b", '
        '"skipped_channels": ["sms"], "deadline": "2026-11-23T12:30:00+08:00", "late": false}')
    assert plan_line(Plan(None, "invalid", error='not JSON: "x"')) == \
        '{"outcome": null, "status": "invalid", "error": "not JSON: \\"x\\""}'
