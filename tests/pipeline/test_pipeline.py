"""Tests for engine.pipeline: the jsonl line writer against SPEC's JSON object, and rendering per channel."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone, UTC
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.model import Plan
from engine.pipeline import plan_json, plan_line
from engine.schedule.timing import parse_instant

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


SCHEDULED_RULES = """\
version: 1
windows:
  office: {days: [mon, tue, wed, thu, fri], hours: "09:00-18:00", holidays: {from: candidate, default: CN}}
  evenings: {days: [mon, tue, wed, thu, fri, sat, sun], hours: ["10:00-12:00", "19:00-21:00"]}
defaults:
  channels: [dingtalk, sms, email]
  timezone: Asia/Shanghai
  locale: zh-CN
rules:
  - id: office
    match: {decision: reject}
    template: any/generic
    timing: {delay: 30m, window: office, deadline: 24h, escalate_after: 2h}
  - id: evenings
    match: {decision: pass}
    template: any/generic
    timing: {delay: 1h, window: evenings, deadline: 3d, escalate_after: 90m}
  - id: evenings-too
    match: {decision: offer}
    template: any/generic
    timing: {delay: 1h, window: evenings, deadline: 3d, escalate_after: 90m}
  - id: evenings-ny
    match: {decision: hold}
    template: any/generic
    timezone: America/New_York
    timing: {delay: 1h, window: evenings, deadline: 3d, escalate_after: 90m}
"""
SCHEDULED_TEMPLATE = """{# herald: decisions=[reject, pass, offer, hold] #}
{% block subject %}Result{% endblock %}
{% block dingtalk %}Hi {{ candidate.name }}{% endblock %}
{% block sms %}Hi {{ candidate.name }}{% endblock %}
{% block email %}Hi {{ candidate.name }}{% endblock %}
"""


@settings(max_examples=40, deadline=None)
@given(people=st.lists(st.tuples(
    st.sampled_from(["reject", "pass", "offer", "hold"]),
    st.sampled_from([None, "Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe"]),
    st.sampled_from([None, ("DE", "BE"), ("DE", "BY"), ("US", None), ("CN", None)]),
    st.integers(0, 60 * 24 * 40)), min_size=1, max_size=12))
def test_kept_schedulers_plan_as_a_fresh_pipeline_does(deployment_root, people):
    """One Pipeline keeps a Scheduler per (rule, time zone, calendar) across outcomes; each plan equals the plan
    of a pipeline made for that outcome alone, whatever zones and calendars came before (render "all": escalations)."""
    from engine.pipeline import Pipeline

    dep = deployment_root
    now = datetime(2026, 9, 28, 8, 0, tzinfo=UTC)
    lines = []
    for n, (decision, zone, place, minutes) in enumerate(people):
        cand = {"name": "Ann", "email": "ann@example.com", "phone": "+8613800000000", "dingtalk_userid": "d"}
        if zone:
            cand["timezone"] = zone
        if place:
            cand["country"] = place[0]
            if place[1]:
                cand["subdivision"] = place[1]
        occurred = (now + timedelta(minutes=minutes)).isoformat()
        lines.append(json.dumps({"id": f"o{n}", "occurred_at": occurred, "decision": decision, "candidate": cand}))
    kept = [plan_line(p) for p in Pipeline(dep, now=now).run_lines(lines)]
    fresh = [plan_line(next(Pipeline(dep, now=now).run_lines([line]))) for line in lines]
    assert kept == fresh



def test_rules_of_equal_timing_and_zone_share_their_schedulers(deployment_root):
    """A Scheduler depends on the timing, the windows and the zone only: rules of equal timing share one per
    candidate zone; without a candidate zone each rule's own zone counts."""
    from engine.pipeline import Pipeline

    pipe = Pipeline(deployment_root, now=datetime(2026, 9, 28, 8, 0, tzinfo=UTC))
    rules = {r.id: r for r in deployment_root.ruleset.rules}

    def outcome(decision, zone=None):
        return {"id": "o", "decision": decision, "candidate": {"timezone": zone} if zone else {}}

    berlin = pipe.scheduler(rules["evenings"], outcome("pass", "Europe/Berlin"))
    assert pipe.scheduler(rules["evenings-too"], outcome("offer", "Europe/Berlin")) is berlin
    assert pipe.scheduler(rules["evenings-ny"], outcome("hold", "Europe/Berlin")) is berlin
    shanghai = pipe.scheduler(rules["evenings"], outcome("pass"))
    new_york = pipe.scheduler(rules["evenings-ny"], outcome("hold"))
    assert pipe.scheduler(rules["evenings-too"], outcome("offer")) is shanghai
    assert (shanghai.tz, new_york.tz) == (ZoneInfo("Asia/Shanghai"), ZoneInfo("America/New_York"))
    assert pipe.scheduler(rules["office"], outcome("reject", "Europe/Berlin")) is not berlin  # another timing
    for decision, zone in [("offer", None), ("hold", None), ("offer", "Europe/Berlin"), ("hold", "Asia/Shanghai")]:
        plan = pipe.plan(dict(outcome(decision, zone), occurred_at="2026-09-28T10:00:00+08:00"))
        assert plan.send_at.tzinfo == ZoneInfo(zone or ("America/New_York" if decision == "hold" else "Asia/Shanghai"))


addresses = st.fixed_dictionaries({}, optional={"email": st.sampled_from(["ann@example.com", ""]),
                                                "phone": st.sampled_from(["+8613800000000", ""]),
                                                "dingtalk_userid": st.sampled_from(["d", "", None])})


@settings(max_examples=60, deadline=None)
@given(people=st.lists(st.tuples(
    st.sampled_from(["reject", "pass"]), addresses,
    st.sampled_from([None, "", " ", "en", "en-US", "zh-CN", 5]),
    st.sampled_from([None, "Asia/Shanghai", "Europe/Berlin", 7]),
    st.booleans()), min_size=1, max_size=12))
def test_plan_reads_the_candidate_as_the_plain_functions_do(deployment_root, people):
    """Pipeline.plan reads the candidate once for channels, locale and time zone, and keeps per rule what does
    not depend on it; each plan equals what reachable_channels, locale_prefs, extras_for and scheduler() give."""
    from engine.pipeline import Pipeline, locale_prefs, reachable_channels

    now = datetime(2026, 9, 28, 8, 0, tzinfo=UTC)
    pipe = Pipeline(deployment_root, now=now, render_channels="all")
    for n, (decision, cand, loc, zone, as_dict) in enumerate(people):
        cand = dict(cand, name="Ann")
        if loc is not None:
            cand["locale"] = loc
        if zone is not None:
            cand["timezone"] = zone
        outcome = {"id": f"o{n}", "occurred_at": "2026-09-28T10:00:00+08:00", "decision": decision,
                   "candidate": cand if as_dict else [cand]}
        plan = pipe.plan(outcome)
        rule, template = pipe.route(outcome)
        channels, skipped = reachable_channels(rule, outcome)
        chosen = deployment_root.templates.resolve(template, locale_prefs(rule, outcome))
        assert (plan.channels, plan.skipped_channels) == (channels, skipped)
        assert (plan.outcome_id, plan.rule, plan.rule_version, plan.template, plan.variant, plan.warning) == \
            (f"o{n}", rule.id, pipe.router.ruleset.version, template, None, None)
        assert plan.outcome is outcome and plan.status in ("matched", "unmatched")
        assert (plan.locale, plan.file) == (chosen.locale, chosen.path)
        if channels:
            sched = pipe.scheduler(rule, outcome)(parse_instant(outcome["occurred_at"]), now, None, len(channels))
            assert (plan.late, plan.error) == (sched.late, sched.error)
            assert (plan.send_at, plan.deadline_at, plan.escalations) == \
                (sched.send_at, sched.deadline_at, tuple(sched.escalations))
            assert plan.send_at.tzinfo == sched.send_at.tzinfo
            assert [m.body for m in plan.messages] == [
                deployment_root.templates.render(template, locale_prefs(rule, outcome), ch, outcome,
                                                 extras=pipe.extras_for(rule)).message.body for ch in channels]


def test_an_instant_written_again_is_written_as_isoformat_writes_it():
    """plan_line remembers the text of an instant object it wrote (the scheduler shares one opening among many
    outcomes): the same object, equal instants in other zones, and more instants than it keeps are all exact."""
    from engine.pipeline import _ISO_LIMIT

    shared = datetime(2026, 11, 23, 9, 0, tzinfo=SH)
    for n in range(_ISO_LIMIT * 2 + 3):
        t = [shared, shared.astimezone(UTC), (shared + timedelta(minutes=n)).astimezone(ZoneInfo("Europe/Berlin"))][n % 3]
        plan = Plan(f"o{n}", "matched", rule="r", template="t", locale=None, channels=("email",), send_at=t)
        assert plan_line(plan) == json.dumps(plan_json(plan), ensure_ascii=False)


@pytest.fixture(scope="module")
def deployment_root(tmp_path_factory):
    from engine.config.deployment import load_deployment

    root = tmp_path_factory.mktemp("scheduled")
    (root / "rules").mkdir()
    (root / "templates" / "any").mkdir(parents=True)
    (root / "rules" / "10.yaml").write_text(SCHEDULED_RULES, encoding="utf-8")
    (root / "templates" / "any" / "generic.j2").write_text(SCHEDULED_TEMPLATE, encoding="utf-8")
    for locale, hello in (("zh-CN", "您好"), ("en", "Hello")):  # the rule's locale, a candidate's, the bare file
        (root / "templates" / "any" / f"generic.{locale}.j2").write_text(SCHEDULED_TEMPLATE.replace("Hi", hello),
                                                                         encoding="utf-8")
    dep = load_deployment([str(root)])
    assert dep.ok, [d.format() for d in dep.diagnostics]
    return dep


@settings(max_examples=150, deadline=None)
@given(batch=st.lists(st.tuples(st.sampled_from(["matched", "amended", "unmatched"]), st.sampled_from(["r1", "规则\"2"]),
                                st.sampled_from([("dingtalk",), ("sms", "email"), ()]), st.sampled_from([None, "t.zh-CN.j2"]),
                                texts, instants, instants), min_size=1, max_size=20))
def test_plan_line_pieces_kept_per_rule_and_template_stay_exact(batch):
    """plan_line writes the fields a rule and template fix once per distinct set (pipeline._pieces): plans that
    share them, with their own ids and times, are each written as json.dumps writes them."""
    for status, rule, chans, file, oid, send_at, deadline in batch:
        plan = Plan(oid, status, rule=rule, template="reject/x", locale="zh-CN", channels=chans, file=file,
                    send_at=send_at, deadline_at=deadline, skipped_channels=chans[1:])
        assert plan_line(plan) == json.dumps(plan_json(plan), ensure_ascii=False)


def test_plan_fields_keep_the_order_pipeline_plan_passes_them_in():
    """Pipeline.plan builds its Plan positionally (cheaper per outcome): a field added or moved must be added there."""
    from dataclasses import fields

    assert [f.name for f in fields(Plan)] == [
        "outcome_id", "status", "rule", "rule_version", "template", "variant", "locale", "file", "channels",
        "skipped_channels", "send_at", "deadline_at", "escalations", "late", "messages", "error", "warning", "outcome"]


zones = st.sampled_from([UTC, SH, ZoneInfo("Europe/Berlin"), ZoneInfo("America/St_Johns"), ZoneInfo("Asia/Kathmandu"),
                         ZoneInfo("Africa/Monrovia"),  # +00:44:30 before 1972: an offset with seconds
                         timezone(timedelta(hours=-3, minutes=-30)), timezone(timedelta(seconds=3723, microseconds=5)),
                         timezone(timedelta(0))])


@settings(max_examples=600, deadline=None)
@given(t=st.datetimes(datetime(1, 1, 2), datetime(9999, 12, 30), timezones=st.one_of(st.none(), zones)),
       whole=st.booleans())
def test_isoformat_from_pieces_is_isoformat(t, whole):
    """pipeline.isoformat writes an instant from its date, time of day and offset, each written once: the same
    text as datetime.isoformat, in any zone (offsets with seconds, folds) and for naive instants."""
    from engine.pipeline import isoformat

    if whole:
        t = t.replace(microsecond=0)
    assert isoformat(t) == t.isoformat()
    assert isoformat(t.replace(fold=1)) == t.replace(fold=1).isoformat()


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Africa/Monrovia"])
def test_isoformat_on_and_around_days_the_offset_changes_is_isoformat(zone):
    """The offset pipeline.isoformat keeps per zone and local date (where it holds all day): every quarter hour of
    the days around a change of offset, both folds, twice (the second time from what the first kept)."""
    from engine.pipeline import isoformat

    tz = ZoneInfo(zone)
    for year in (1971, 2026):
        for month, day in ((3, 29), (10, 25), (3, 8), (11, 1), (4, 5), (10, 4), (1, 1)):
            start = datetime(year, month, day) - timedelta(days=2)
            for k in range(4 * 96):
                for fold in (0, 1):
                    t = (start + k * timedelta(minutes=15)).replace(tzinfo=tz, fold=fold)
                    assert isoformat(t) == t.isoformat()
                    assert isoformat(t) == t.isoformat()
    monrovia = datetime(1972, 1, 7, 0, 0, tzinfo=ZoneInfo("Africa/Monrovia"))  # -00:44:30 -> +00:00
    for k in range(-200, 200):
        t = monrovia + k * timedelta(minutes=7)
        assert isoformat(t) == t.isoformat()


def test_isoformat_of_an_instant_in_a_zone_of_another_kind_is_isoformat():
    """A tzinfo of the caller's own class (unhashable here, with a fold-dependent offset) is written by isoformat
    itself, each time: only timezone and ZoneInfo offsets are kept per date."""
    from datetime import tzinfo

    from engine.pipeline import isoformat

    class Odd(tzinfo):
        __hash__ = None  # type: ignore[assignment]

        def utcoffset(self, dt):
            return timedelta(hours=1 + dt.fold, seconds=dt.minute)

        def dst(self, dt):
            return None

    for minute in (0, 7, 59):
        for fold in (0, 1):
            t = datetime(2026, 3, 29, 2, minute, tzinfo=Odd(), fold=fold)
            assert isoformat(t) == t.isoformat()
            assert isoformat(t) == t.isoformat()


@pytest.mark.parametrize("where", ["name", "key", "list"])
def test_a_raw_lone_surrogate_is_refused_as_the_escaped_one_is(deployment_root, where):
    """herald as a library: a record given as a value (Pipeline.run_records, Gate.record) or as a Python str holding
    the surrogate itself gets the verdict its \\u-escaped JSON text gets; a proper pair (an emoji) passes."""
    from engine.intake.gate import Gate
    from engine.pipeline import Pipeline

    def record(text: str) -> dict:
        rec = {"id": "s-1", "decision": "reject", "candidate": {"name": "Ann", "email": "ann@example.com"}}
        if where == "name":
            rec["candidate"]["name"] = f"Ann{text}"
        elif where == "key":
            rec["attributes"] = {f"k{text}": 1}
        else:
            rec["attributes"] = {"tags": ["a", [f"b{text}"]]}
        return rec

    now = datetime(2026, 9, 28, 8, 0, tzinfo=UTC)
    for lone in ("\ud800", "\udfff"):
        escaped = next(Pipeline(deployment_root, now=now).run_lines([json.dumps(record(lone))]))
        assert escaped.status == "invalid" and "unpaired UTF-16 surrogate" in (escaped.error or "")
        as_value = next(Pipeline(deployment_root, now=now).run_records([record(lone)]))
        as_str = next(Pipeline(deployment_root, now=now).run_lines([json.dumps(record(lone), ensure_ascii=False)]))
        assert (as_value.status, as_value.error) == (as_str.status, as_str.error) == (escaped.status, escaped.error)
        assert Gate().record(record(lone)).error == escaped.error
    pair = next(Pipeline(deployment_root, now=now).run_records([record("\U0001f600")]))
    assert pair.status == "matched", pair.error


_stream = st.lists(st.one_of(
    st.builds(lambda oid, decision, approved, pad: (
        f'{{"id": "{oid}",{pad}"decision": "{decision}", "occurred_at": "2026-09-28T10:00:00+08:00", '
        f'"candidate": {{"name": "Ann", "email": "ann@example.com"}}'
        + ("" if approved is None else f', "approved": {json.dumps(approved)}') + "}"),
        oid=st.sampled_from(["a", "b", "c"]), decision=st.sampled_from(["reject", "pass", "maybe"]),
        approved=st.sampled_from([None, True, False]), pad=st.sampled_from([" ", "  "])),
    st.sampled_from(["", "  ", "{", "[]", '{"id": "a", "id": "a"}', '{"id": "\\u0007", "decision": "pass"}'])),
    min_size=1, max_size=12)


@settings(max_examples=60, deadline=None)
@given(lines=_stream)
def test_run_lines_plans_as_each_line_admitted_through_the_gate(deployment_root, lines):
    """run_lines goes on with an ok record itself (Gate.check_in, no ok verdict made): the same plans, line for
    line, as the plain way in, Pipeline.admit(gate, judge(parse_text(line)), line), with duplicates, amendments,
    held, invalid and undecodable lines mixed."""
    from engine.intake.decode import parse_text
    from engine.intake.gate import Gate, judge
    from engine.pipeline import Pipeline

    now = datetime(2026, 9, 28, 8, 0, tzinfo=UTC)
    pipe = Pipeline(deployment_root, now=now, render_channels="all")
    got = list(pipe.run_lines(lines))
    gate = Gate()
    want = [pipe.admit(gate, judge(parse_text(line)), line) for line in lines if line.strip()]
    assert [(plan_line(p), p.messages, p.outcome) for p in got] == [(plan_line(p), p.messages, p.outcome) for p in want]


@settings(max_examples=60, deadline=None)
@given(lines=_stream, crlf=st.booleans())
def test_run_items_plans_as_each_item_admitted_and_as_run_lines(deployment_root, lines, crlf):
    """run_items (what dry-run reads files with) goes on with an ok outcome as run_lines does: the same plans as
    Pipeline.admit(gate, judge(item), item.raw) item for item, and as run_lines over the same text."""
    import io

    from engine.intake.decode import items_of
    from engine.intake.gate import Gate, judge
    from engine.pipeline import Pipeline

    now = datetime(2026, 9, 28, 8, 0, tzinfo=UTC)
    data = ("\r\n" if crlf else "\n").join(lines).encode()
    pipe = Pipeline(deployment_root, now=now, render_channels="all")
    got = list(pipe.run_items(items_of(io.BytesIO(data), "in.jsonl")))
    gate = Gate()
    want = [pipe.admit(gate, judge(item), item.raw) for item in items_of(data, "in.jsonl")]
    by_lines = list(pipe.run_lines(lines))

    def seen(plans: list) -> list:
        return [(plan_line(p), p.messages, p.outcome) for p in plans]
    assert seen(got) == seen(want) == seen(by_lines)
