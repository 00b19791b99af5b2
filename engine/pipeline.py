"""The stages an outcome goes through (intake, gate, route, render, schedule), shared by dry-run and the daemon."""
from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone, tzinfo, UTC
from zoneinfo import ZoneInfo
from typing import Any
from collections.abc import Callable, Iterable, Iterator, Mapping

from engine.config.deployment import Deployment
from engine.intake.decode import Item
from engine.intake.gate import AMENDED, DUPLICATE, HELD, INVALID, OK, Gate, GateResult, check_record, judged_item, judged_text
from engine.model import CHANNEL_ADDRESS, Message, Plan, Rule
from engine.render.locales import candidate_locale, locale_of, preferences
from engine.render.sandbox import plain
from engine.render.templates import TemplateFile, TemplateStore
from engine.routing.router import Router, choose_variant
from engine.rules.schemas import TEMPLATE_EXTRAS
from engine.schedule.timing import Scheduler, load_timezone, parse_instant, parse_instant_text, steady_offset, windows_for

MATCHED = "matched"
UNMATCHED = "unmatched"


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- stage: route -------------------------------------------------------------------------------

_ADDRESS_KEYS = {ch: path.split(".")[-1] for ch, path in CHANNEL_ADDRESS.items()}
assert all(path.startswith("candidate.") and path.count(".") == 1 for path in CHANNEL_ADDRESS.values())


def reachable_channels(rule: Rule, outcome: Mapping[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The rule's channels the candidate has an address for (in order), and those left out."""
    cand = outcome.get("candidate")
    if cand.__class__ is not dict:
        cand = {}
    keep: list[str] = []
    skip: list[str] = []
    for ch in rule.channels:
        key = _ADDRESS_KEYS.get(ch)
        (keep if key is None or cand.get(key) else skip).append(ch)
    return tuple(keep), tuple(skip)


def locale_prefs(rule: Rule, outcome: Mapping[str, Any]) -> tuple[str | None, ...]:
    """Locales to try for the template (engine.render.locales): the candidate's and its parents, the bare
    file, then the rule's locale; without a candidate locale, the rule's locale, then the bare file."""
    return preferences(candidate_locale(outcome), rule.locale)


# --- stage: render ------------------------------------------------------------------------------

def render_messages(templates: TemplateStore, template: str, prefs: tuple[str | None, ...], channels: Iterable[str],
                    outcome: Mapping[str, Any], extras: Mapping[str, Any],
                    main_only: bool = False) -> tuple[tuple[Message, ...], TemplateFile | None, str | None]:
    """Render `template` for each channel: (messages, the file used, first error)."""
    messages: list[Message] = []
    file: TemplateFile | None = None
    error: str | None = None
    for ch in channels:  # the template sees build_context(outcome, extras, trusted=True); render merges them
        used, message, failed = templates.render_message(template, prefs, ch, outcome, main_only, extras)  # + `channel`
        file = file or used
        if message is not None:
            messages.append(message)
        elif error is None and failed is not None:  # (a render without its message has its failure)
            error = f"{ch}: {failed.error}"
    return tuple(messages), file, error


# --- revisions ----------------------------------------------------------------------------------

def previous_view(record: Mapping[str, Any], rev: int | None = None,
                  sent: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """What a template sees as `previous` when an outcome is amended: the earlier revision's decision, stage,
    role and reason, its revision number, and what of it was already sent (channel, sent_at; else None)."""
    return {"decision": record.get("decision"), "stage": record.get("stage"), "role": record.get("role"),
            "reason": record.get("reason"), "rev": rev,
            "sent_at": (sent or {}).get("sent_at"), "channel": (sent or {}).get("channel")}


# --- stage: schedule ----------------------------------------------------------------------------

def rule_sender(rule: Rule | None) -> str | None:
    """The e-mail From of `rule`'s messages when its rule file's `company:` sets `sender` (else the channel's)."""
    return dict(rule.company).get("sender") if rule is not None else None


_UTC = ZoneInfo("UTC")


def timezone_for(rule: Rule, outcome: Mapping[str, Any]) -> ZoneInfo:
    """The candidate's time zone when it is a real one, else the rule's (UTC when neither is: the loader
    refuses a rule's unknown zone, so only a rule built by hand gets there)."""
    cand = outcome.get("candidate")
    name = cand.get("timezone") if cand.__class__ is dict else None
    tz = load_timezone(name) if name.__class__ is str else None
    return tz or load_timezone(rule.timezone) or _UTC


@dataclass
class Pipeline:
    """The stages wired together over one deployment; `dry-run` and `serve` both drive this."""

    deployment: Deployment
    now: datetime | None = None            # a fixed clock (--now); None: the real time
    # "all": every channel's message and the escalation times (text dry-run, test, the daemon);
    # "first": the first channel's main block only, no escalation preview (jsonl dry-run: it prints
    # neither, and still catches an outcome whose data breaks the template).
    render_channels: str = "all"
    extras: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.deployment.ruleset is None:
            raise ValueError("the deployment has errors; validate it first")
        self.router = Router(self.deployment.ruleset)
        # the rule set's vocabulary, None when it declares none; its gate check (a warning naming the values
        # outside it, or None) as outside_vocabulary
        self.vocabulary = self.deployment.ruleset.vocabulary or None
        self.outside_vocabulary = self.vocabulary.outside if self.vocabulary is not None else None
        self.windows = self.deployment.ruleset.windows
        # (timing, zone, id(window)) -> (window, its Scheduler); the entry holds the window, so its id stays its
        # while it is kept (a Scheduler depends on the timing, the windows and the zone only)
        self._schedulers: dict[tuple, tuple] = {}
        company = dict(TEMPLATE_EXTRAS["company"])
        company.update(self.deployment.config.company or {})
        self.base_extras = plain({"company": company, "links": dict(TEMPLATE_EXTRAS["links"]), **self.extras})
        # id(rule) -> (rule, the address keys of its channels, its extras): what plan() needs of a rule, made once
        # (the last: candidate.timezone -> Scheduler, for a rule whose window does not depend on the candidate)
        self._rules: dict[int, tuple[Rule, tuple[str, ...], dict[str, Any], dict[str | None, Scheduler]]] = {}
        self._by_timing: dict[tuple, dict[str | None, Scheduler]] = {}  # (timing, rule's zone) -> the last of those

    def extras_for(self, rule: Rule | None) -> dict[str, Any]:
        """What templates see for `rule`'s outcomes: the rule file's `company:` over herald.yaml's (dry-run and
        send time both call this)."""
        if rule is None or not rule.company:
            return self.base_extras
        return {**self.base_extras, "company": {**self.base_extras["company"], **dict(rule.company)}}

    def clock(self) -> datetime:
        return self.now or utcnow()

    # The stages as one call each.
    def gate(self) -> Gate:
        return Gate()

    def route(self, outcome: Mapping[str, Any]) -> tuple[Rule | None, str | None]:
        rule = self.router.route(outcome)
        if rule is None:
            return None, None
        if not rule.variants:  # (choose_variant's answer then, without its call)
            return rule, rule.template
        return rule, choose_variant(rule, str(outcome.get("id", "")))

    def plan(self, outcome: Mapping[str, Any], approved_at: datetime | None = None, status: str = MATCHED,
             links: Mapping[str, Any] | None = None, previous: Mapping[str, Any] | None = None) -> Plan:
        """Route, render and schedule one admitted outcome; `previous` (see previous_view) is what templates
        see of the revision this one amends."""
        oid = outcome.get("id")
        rule, template = self.route(outcome)  # (a method: a pinned pipeline routes to its own rule)
        version = self.router.ruleset.version
        if rule is None or template is None:
            return Plan(oid, UNMATCHED if status == MATCHED else status, rule_version=version, outcome=outcome)
        parts = self._rules.get(id(rule))
        if parts is None or parts[0] is not rule:
            parts = self._rule_parts(rule)
        cand = outcome.get("candidate")
        if cand.__class__ is not dict:
            cand = {}
        for key in parts[1]:  # the usual case, every address there: the rule's channels as they are
            if not cand.get(key):
                channels, skipped = reachable_channels(rule, outcome)
                break
        else:
            channels, skipped = rule.channels, ()
        prefs = preferences(locale_of(cand), rule.locale)  # locale_prefs(rule, outcome), the candidate read once
        variant = template if rule.variants else None
        templates = self.deployment.templates
        if status == HELD:
            chosen = templates.resolve(template, prefs)
            return Plan(oid, status, rule=rule.id, rule_version=version, template=template, variant=variant,
                        locale=chosen.locale if chosen else None, file=chosen.path if chosen else None,
                        channels=channels,
                        skipped_channels=skipped, outcome=outcome)
        now = self.clock()
        full = self.render_channels == "all"
        extras = parts[2]
        if links:
            extras = {**extras, "links": {**extras["links"], **links}}
        if previous is not None:
            extras = {**extras, "previous": plain(previous)}
        messages, chosen, error = render_messages(templates, template, prefs,
                                                  channels if full else channels[:1], outcome, extras,
                                                  main_only=not full)
        if chosen is None:
            chosen = templates.resolve(template, prefs)
        occurred = outcome.get("occurred_at")
        occurred = (parse_instant_text(occurred) if occurred.__class__ is str else parse_instant(occurred)) \
            if occurred else None
        zone = cand.get("timezone")  # the scheduler kept per rule and candidate zone, else scheduler() finds it
        scheduler = parts[3].get(zone) if zone is None or zone.__class__ is str else None
        if scheduler is None:
            scheduler = self.scheduler(rule, outcome)
        send_at, deadline_at, late, escalations, why_not = scheduler.times(
            occurred or now, now, approved_at, max(len(channels), 1) if full else 1)
        if status == MATCHED and (not channels or send_at is None):
            # nothing can be sent: the outcome waits for a person, in dry-run as in the daemon
            why = "the candidate has no address for any of the rule's channels" if not channels else \
                (why_not or "no send time")
            status, error = UNMATCHED, f"rule {rule.id} matched, but {why}"
        # every field in Plan's order (rule .. late, messages, error, warning, outcome): a call with 17 keywords
        # costs about 5,000 instructions more per outcome than this one
        return Plan(oid, status, rule.id, version, template, variant, chosen.locale if chosen else None,
                    chosen.path if chosen else None, channels, skipped, send_at, deadline_at,
                    escalations, late, messages, error or why_not, None, outcome)

    def _rule_parts(self, rule: Rule) -> tuple[Rule, tuple[str, ...], dict[str, Any], dict[str | None, Scheduler]]:
        """What plan() needs of `rule` whatever the outcome: the candidate fields its channels address (see
        reachable_channels), its extras (extras_for), and its schedulers by candidate time zone where the
        window does not depend on the candidate (scheduler() fills it in); kept per rule."""
        if len(self._rules) >= 4096:
            self._rules.clear()
        keys = tuple(key for key in map(_ADDRESS_KEYS.get, rule.channels) if key is not None)
        # schedulers by candidate zone, shared by the rules of equal timing and time zone (a Scheduler depends on
        # nothing else): a thousand rules on the default timing meet each candidate zone once, not once each
        shared = (rule.timing, rule.timezone)
        by_zone = self._by_timing.get(shared)
        if by_zone is None:
            if len(self._by_timing) >= 4096:
                self._by_timing.clear()
            by_zone = self._by_timing[shared] = {}
        got = self._rules[id(rule)] = (rule, keys, self.extras_for(rule), by_zone)
        return got

    def scheduler(self, rule: Rule, outcome: Mapping) -> Scheduler:
        """What schedules `rule`'s message to this candidate (engine.schedule.timing.Scheduler): one per timing,
        time zone (the candidate's, else the rule's) and window (a `holidays: candidate` window takes the
        candidate's calendar), made once and shared by the rules of equal timing."""
        cand = outcome.get("candidate")
        zone = cand.get("timezone") if cand.__class__ is dict else None
        plain_zone = zone is None or zone.__class__ is str
        parts = self._rules.get(id(rule))
        if parts is None or parts[0] is not rule:
            parts = self._rule_parts(rule)
        if plain_zone:  # found by the rule and the candidate's zone alone when the window's calendar is not theirs
            known = parts[3].get(zone)
            if known is not None:
                return known
        tz = timezone_for(rule, outcome)
        name = rule.timing.window
        windows = windows_for(self.windows, name, outcome)  # holidays: candidate
        window = windows.get(name) if name is not None else None
        key = (rule.timing, tz, id(window))
        kept = self._schedulers.get(key)
        if kept is None:
            if len(self._schedulers) >= 4096:
                self._schedulers.clear()
            kept = self._schedulers[key] = (window, Scheduler(rule.timing, windows, tz))
        if windows is self.windows and plain_zone:
            # the scheduler depends on the rule and the candidate's time zone only: found by those next time
            by_zone = parts[3]
            if len(by_zone) >= 1024:
                by_zone.clear()
            by_zone[zone] = kept[1]
        return kept[1]

    def admit(self, gate: Gate, result: GateResult, raw: str | bytes | None = None) -> Plan:
        """The plan for one gate verdict, with the vocabulary's warning when it has one (`raw`: the text its
        outcome was decoded from, see Gate.admit)."""
        result = gate.admit(result, raw)
        if self.outside_vocabulary is not None and result.outcome is not None:
            warning = self.outside_vocabulary(result.outcome)
            if warning is not None:
                return replace(self._admitted(result), warning=warning)
        return self._admitted(result)

    def _admitted(self, result: GateResult) -> Plan:
        outcome = result.outcome
        if result.status == OK and outcome is not None:  # the usual verdict first
            return self.plan(outcome)
        if result.status == INVALID:
            return Plan(result.outcome_id, INVALID, error=result.error)
        if result.status == DUPLICATE:
            return Plan(result.outcome_id, DUPLICATE, outcome=result.outcome)
        if result.outcome is None:  # (the gate passes an outcome with every other verdict)
            return Plan(result.outcome_id, INVALID, error=result.error)
        if result.status == AMENDED:
            held = result.outcome.get("approved", True) is False
            plan = self.plan(result.outcome, status=HELD if held else MATCHED,
                             previous=previous_view(result.previous or {}))
            return replace(plan, status=AMENDED)
        return self.plan(result.outcome, status=HELD if result.status == HELD else MATCHED)

    def run_lines(self, lines: Iterable[str]) -> Iterator[Plan]:
        """Intake of JSON lines through every stage, one plan per non-blank line, in input order."""
        # judge(parse_text(line)), no Item made
        return self._run((*judged_text(line), line) for line in lines if line.strip())

    def run_items(self, items: Iterable[Item]) -> Iterator[Plan]:
        """Intake of decoded items (engine.intake.decode: files, bodies) through every stage, in order."""
        return self._run((*judged_item(item), item.raw) for item in items)

    def _run(self, judged: Iterable[tuple[Any, GateResult | None, str | bytes]]) -> Iterator[Plan]:
        """The plans of (record, the stateless gate's verdict when not ok, raw text) in order: an ok record goes on
        through check_in and plan without an ok verdict made (admit's way, the usual case spared a GateResult)."""
        gate = self.gate()
        admit, check_in, plan = self.admit, gate.check_in, self.plan
        plain = self.outside_vocabulary is None
        for record, problem, raw in judged:
            if problem is None and plain:
                other = check_in(record["id"], record, raw)
                yield plan(record) if other is None else self._admitted(other)
            else:
                yield admit(gate, problem or GateResult(OK, record, record["id"]), raw)

    def run_records(self, records: Iterable[Any]) -> Iterator[Plan]:
        gate = self.gate()
        for record in records:
            if not isinstance(record, dict):
                yield Plan(None, INVALID, error="an outcome must be a JSON object")
                continue
            yield self.admit(gate, check_record(record))


def plan_json(plan: Plan) -> dict[str, Any]:
    """A plan as SPEC's dry-run JSON object (keys scripts rely on first; extra detail after)."""
    out: dict[str, Any] = {"outcome": plan.outcome_id, "status": plan.status}
    if plan.status == INVALID:
        out["error"] = plan.error
        return out
    if plan.rule is not None:
        out.update({"rule": plan.rule, "template": plan.template, "locale": plan.locale,
                    "channels": list(plan.channels)})
        if plan.send_at is not None:
            out["send_at"] = plan.send_at.isoformat()
        if plan.file is not None:
            out["file"] = plan.file
        if plan.variant:
            out["variant"] = plan.variant
        if plan.skipped_channels:
            out["skipped_channels"] = list(plan.skipped_channels)
        if plan.deadline_at is not None:
            out["deadline"] = plan.deadline_at.isoformat()
            out["late"] = plan.late
        if plan.escalations:
            out["escalations"] = [e.isoformat() for e in plan.escalations]
        if plan.error:
            out["error"] = plan.error
    if plan.warning:
        out["warning"] = plan.warning
    return out


_encode: Callable[[Any], str] = json.JSONEncoder(ensure_ascii=False, check_circular=False).encode
# a str as JSON text, non-ASCII kept (ensure_ascii=False)
_text: Callable[[str], str] = json.encoder.encode_basestring


_PIECES: dict[tuple, tuple[str, str]] = {}  # what a routed plan's line holds besides its id and times
_PIECES_LIMIT = 4096  # distinct (rule, template, locale, channels, ...) before the memo starts over


def _pieces(key: tuple) -> tuple[str, str]:
    """The JSON text of a routed plan's fields that do not vary per outcome: the part from "status" to
    "channels", and the part from "file" to "skipped_channels" (plan_line places them around send_at)."""
    status, rule, template, locale, channels, file, variant, skipped = key
    head = "".join([', "status": ', _text(status), ', "rule": ', _text(rule), ', "template": ', _text(template),
                    ', "locale": ', "null" if locale is None else _text(locale),
                    ', "channels": [', ", ".join(map(_text, channels)), "]"])
    tail: list[str] = []
    if file is not None:
        tail += ', "file": ', _text(file)
    if variant:
        tail += ', "variant": ', _text(variant)
    if skipped:
        tail += ', "skipped_channels": [', ", ".join(map(_text, skipped)), "]"
    if len(_PIECES) >= _PIECES_LIMIT:
        _PIECES.clear()
    got = _PIECES[key] = (head, "".join(tail))
    return got


_ISO: dict[int, tuple[datetime, str]] = {}  # id(instant) -> (the instant, its isoformat()): see _iso
_ISO_LIMIT = 4096


def _iso(t: datetime) -> str:
    """t.isoformat(), remembered for the instant object itself: the scheduler hands the same object to every
    outcome that waits for the same opening of a window (the per-stretch cache of next_open), and writing a
    zone-aware instant costs more than the rest of the line. The entry holds the instant, so its id stays its."""
    got = _ISO.get(id(t))
    if got is not None and got[0] is t:
        return got[1]
    if len(_ISO) >= _ISO_LIMIT:
        _ISO.clear()
    text = isoformat(t)
    _ISO[id(t)] = (t, text)
    return text


_TIMES: dict[int, str] = {}    # second of the day -> "HH:MM:SS"
_OFFSETS: dict[timedelta, str] = {}  # utcoffset() -> "+HH:MM" (as isoformat writes it)
# zone -> {toordinal(): ("YYYY-MM-DDT", the offset as isoformat writes it) for every wall time of that local date,
# or None where the offset changes near it (steady_offset)}: a ZoneInfo's utcoffset() costs more than the rest
_ZONE_DAYS: dict[tzinfo, dict[int, tuple[str, str] | None]] = {}


def isoformat(t: datetime) -> str:
    """t.isoformat(), from pieces written once: the date and the offset per zone and local date where the offset
    holds all day (_ZONE_DAYS; a ZoneInfo's utcoffset() is not asked), the time of day per second (datetime.isoformat
    formats all three from scratch, several times the cost of the rest of a dry-run line). Instants with a
    fraction of a second, and naive ones, go to isoformat itself."""
    tz = t.tzinfo
    if tz is None or t.microsecond:
        return t.isoformat()
    try:
        days = _ZONE_DAYS.get(tz)
    except TypeError:  # a tzinfo of some other class that cannot be hashed (never one kept there)
        days = None
    got = days.get(t.toordinal()) if days is not None else None
    if got is None:
        got = _day_parts(t)
        if got is None:
            return t.isoformat()
    head, zone = got
    second = (t.hour * 60 + t.minute) * 60 + t.second
    clock = _TIMES.get(second)
    if clock is None:
        clock = _TIMES[second] = t.time().isoformat()
    return head + clock + zone


def _day_parts(t: datetime) -> tuple[str, str] | None:
    """("YYYY-MM-DDT", offset text) of aware, whole-second `t` (None: its tzinfo gives no offset), kept in
    _ZONE_DAYS for its zone and local date when that offset holds all day: always for a fixed-offset
    timezone, for a ZoneInfo when no change of offset falls near the date (steady_offset)."""
    off = t.utcoffset()
    if off is None:
        return None
    zone = _OFFSETS.get(off)
    if zone is None:
        if len(_OFFSETS) >= 1024:
            _OFFSETS.clear()
        zone = _OFFSETS[off] = t.isoformat()[len(t.date().isoformat()) + 1 + len(t.time().isoformat()):]
    got = (t.date().isoformat() + "T", zone)
    tz, n = t.tzinfo, t.toordinal()
    if type(tz) is timezone or type(tz) is ZoneInfo:
        days = _ZONE_DAYS.get(tz)
        if days is None:
            if len(_ZONE_DAYS) >= 256:
                _ZONE_DAYS.clear()
            days = _ZONE_DAYS[tz] = {}
        if n not in days:
            if len(days) >= 4096:
                days.clear()
            days[n] = got if type(tz) is timezone or steady_offset(tz, n) == off else None
    return got


def plan_line(plan: Plan) -> str:
    """plan_json(plan) as one line of JSON text, exactly as json.dumps(..., ensure_ascii=False) writes it.

    The common case (a routed plan without error) is written directly: the text of the fields a rule,
    template and file fix is made once per distinct set of them (_pieces), the id and times per plan;
    the rest goes through the encoder."""
    if (plan.rule is None or plan.template is None or plan.status == INVALID or plan.error or plan.warning
            or plan.outcome_id.__class__ is not str):
        return _encode(plan_json(plan))
    key = (plan.status, plan.rule, plan.template, plan.locale, plan.channels, plan.file, plan.variant,
           plan.skipped_channels)
    head, tail = _PIECES.get(key) or _pieces(key)
    out = ['{"outcome": ', _text(plan.outcome_id), head]
    if plan.send_at is not None:
        out += ', "send_at": "', _iso(plan.send_at), '"'
    out.append(tail)
    if plan.deadline_at is not None:
        out += ', "deadline": "', isoformat(plan.deadline_at), '", "late": ', "true" if plan.late else "false"
    if plan.escalations:
        out += ', "escalations": [', ", ".join(f'"{e.isoformat()}"' for e in plan.escalations), "]"
    out.append("}")
    return "".join(out)


__all__ = ["AMENDED", "DUPLICATE", "HELD", "INVALID", "MATCHED", "OK", "UNMATCHED", "Message", "Pipeline", "plan_json", "plan_line"]
