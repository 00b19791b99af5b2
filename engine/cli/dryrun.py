"""dry-run's presentation: the people's table and messages (PII masked), the summary, and --explain."""
from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from collections.abc import Iterable, Iterator, Mapping
from typing import TypeVar

from engine.model import Plan, RuleSet
from engine.routing.router import Router, lookup

T = TypeVar("T")

_EMAIL = re.compile(r"([A-Za-z0-9._%+-]{1,2})[A-Za-z0-9._%+-]*(@[A-Za-z0-9.-]+\.[A-Za-z]{2,})")
_PHONE = re.compile(r"(\+?\d{3,5})\d{4,}(\d{4})")


def mask_text(text: str) -> str:
    """Hide the middle of every e-mail address and phone number in `text`."""
    text = _EMAIL.sub(lambda m: m.group(1) + "***" + m.group(2), text)
    return _PHONE.sub(lambda m: m.group(1) + "****" + m.group(2), text)


@dataclass
class Summary:
    """Counts by status, rules that matched nothing, late notifications."""

    statuses: Counter = field(default_factory=Counter)
    hits: Counter = field(default_factory=Counter)
    late: list = field(default_factory=list)
    errors: list = field(default_factory=list)
    outside_vocabulary: int = 0  # outcomes accepted with values outside the rule set's vocabulary

    def add(self, plan: Plan) -> None:
        self.statuses[plan.status] += 1
        if plan.warning:
            self.outside_vocabulary += 1
        if plan.rule:
            self.hits[plan.rule] += 1
        if plan.late:
            self.late.append(plan.outcome_id)
        if plan.error and plan.status != "invalid":
            self.errors.append((plan.outcome_id, plan.error))

    def lines(self, ruleset: RuleSet) -> list[str]:
        total = sum(self.statuses.values())
        order = ("matched", "unmatched", "held", "duplicate", "amended", "invalid")
        counts = ", ".join(f"{self.statuses[s]} {s}" for s in order if self.statuses[s])
        out = [f"{total} outcomes: {counts or 'none'}"]
        never = [r.id for r in ruleset.rules if not self.hits[r.id]]
        out.append(f"rules never hit ({len(never)}): {', '.join(never) if never else 'none'}")
        out.append(f"late (past deadline): {len(self.late)}" + (f": {', '.join(map(str, self.late[:10]))}"
                                                                 + (" ..." if len(self.late) > 10 else "")
                                                                 if self.late else ""))
        if ruleset.vocabulary:
            out.append(f"outside the vocabulary: {self.outside_vocabulary}")
        for oid, err in self.errors[:10]:
            out.append(f"problem: {oid}: {err}")
        return out


def _dash(value: object) -> str:
    return "-" if value is None else str(value)


def _cell(value: str, width: int) -> str:
    # East Asian characters take two columns in a terminal.
    w = sum(2 if ord(c) > 0x2E80 else 1 for c in value)
    return value + " " * max(width - w, 0)


def table_row(plan: Plan) -> str:
    send = plan.send_at.strftime("%Y-%m-%d %H:%M %z") if plan.send_at else "-"
    chans = ",".join(plan.channels) or "-"
    return "  ".join([_cell(_dash(plan.outcome_id), 22), _cell(plan.status, 9), _cell(plan.rule or "-", 32),
                      _cell(chans, 22), send])


TABLE_HEADER = "  ".join([_cell("OUTCOME", 22), _cell("STATUS", 9), _cell("RULE", 32), _cell("CHANNELS", 22), "SEND_AT"])


def message_lines(plan: Plan, show_pii: bool) -> list[str]:
    """The rendered messages of one plan, each under a header naming channel and address."""
    if not plan.messages and not plan.error and not plan.warning:
        return []
    hide = (lambda s: s) if show_pii else mask_text
    out = [f"── {_dash(plan.outcome_id)} · {_dash(plan.rule)} · {_dash(plan.template)} ({plan.file or plan.locale or 'no file'})"
           + (f" · skipped {', '.join(plan.skipped_channels)} (no address)" if plan.skipped_channels else "")]
    if plan.error:
        out.append(f"   problem: {plan.error}")
    if plan.warning:
        out.append(f"   warning: {plan.warning}")
    for msg in plan.messages:
        to = _address(plan, msg.channel)
        extra = f" · {msg.sms_chars} chars, {msg.sms_segments} segment(s)" if msg.sms_segments else ""
        out.append(f"   [{msg.channel}] to {hide(to)}{extra}")
        if msg.subject and msg.channel != "sms":
            out.append(f"   subject: {hide(msg.subject)}")
        out.extend("   | " + line for line in hide(msg.body).splitlines())
        if msg.html:
            out.append(f"   (+ HTML part, {len(msg.html)} characters)")
    return out


def _address(plan: Plan, channel: str) -> str:
    from engine.model import CHANNEL_ADDRESS

    path = CHANNEL_ADDRESS.get(channel)
    value = lookup(plan.outcome or {}, path) if path else None
    return str(value) if value else f"the {channel} endpoint"


def explain_lines(router: Router, outcome: Mapping) -> list[str]:
    """Every rule tried, in order, with the first condition that failed."""
    out = [f"rules tried for {outcome.get('id')}:"]
    steps = router.explain(outcome)
    for rule, reason in steps:
        mark = "✓ matched" if reason is None else f"✗ {reason}"
        out.append(f"  {rule.id:<36} {rule.file}:{rule.line}  {mark}")
    if not steps or steps[-1][1] is not None:
        out.append("  no rule matched: the outcome would wait as unmatched for a person")
    return out


def progress(items: Iterable[T], enabled: bool, after: int = 2000) -> Iterable[T]:
    """`items`, counted on stderr by a progress bar once more than `after` have gone by, when `enabled` (stderr is a
    terminal). The input is read as it goes (engine.intake.decode.items_of), so how many there are is not known."""
    return _counted(iter(items), after) if enabled else items


def _counted(items: Iterator[T], after: int) -> Iterator[T]:
    for _, item in zip(range(after), items, strict=False):  # range first: zip stops there, taking no more items
        yield item
    import click

    with click.progressbar(items, label="dry-run", file=sys.stderr) as bar:
        bar.update(after)
        yield from bar
