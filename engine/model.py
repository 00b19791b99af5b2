"""The frozen data model: windows, timing, rules, rule sets, and what an outcome became (a plan)."""
from __future__ import annotations

from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar
from collections.abc import Callable, Mapping

from engine.errors import Loc

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DECISIONS = ("pass", "reject", "offer", "hold")
CHANNEL_ADDRESS = {  # the candidate field a channel needs; a channel not listed needs none
    "dingtalk": "candidate.dingtalk_userid",
    "sms": "candidate.phone",
    "email": "candidate.email",
}


_C = TypeVar("_C")

def quick_init(cls: type[_C]) -> type[_C]:
    """Give a frozen dataclass an __init__ that fills the instance's dict in one call.

    Same signature, defaults and resulting instance as the generated one, which sets field after
    field through object.__setattr__ (twice as slow for the wide classes made once per outcome).
    Only for plain frozen dataclasses: no default factories, no __post_init__, no slots."""
    dyn: Any = cls  # dataclasses' own attribute and a replaced __init__: beyond static typing
    params = list(fields(dyn))
    if (not dyn.__dataclass_params__.frozen or hasattr(cls, "__post_init__") or "__slots__" in cls.__dict__
            or any(not f.init or f.default_factory is not MISSING or f.kw_only for f in params)):
        raise TypeError(f"quick_init does not apply to {cls.__name__}")
    scope: dict = {}
    sig = []
    for f in params:
        if f.default is MISSING:
            sig.append(f.name)
        else:
            scope[f"_d_{f.name}"] = f.default
            sig.append(f"{f.name}=_d_{f.name}")
    body = ", ".join(f"{f.name}={f.name}" for f in params)
    src = f"def __init__(self, {', '.join(sig)}):\n    self.__dict__.update({body})\n"
    exec(src, scope)  # noqa: S102 - field names only
    init = scope["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__doc__ = dyn.__init__.__doc__
    dyn.__init__ = init
    return cls


@dataclass(frozen=True)
class Window:
    """A named send window: weekdays (0=mon..6=sun), minute ranges [start, end), optional holiday calendars.

    holidays: a calendar code (CN, or a subdivision: DE-BE), a tuple of them, or None. holidays_from
    "candidate": the candidate's country/subdivision choose the calendar (engine.schedule.timing.for_candidate),
    `holidays` being the default for candidates without one."""

    name: str
    days: frozenset
    ranges: tuple  # ((start_minute, end_minute), ...), end exclusive, 0 <= start < end <= 1440
    holidays: str | tuple | None = None
    holidays_from: str | None = None
    loc: Loc | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Timing:
    """When to send: delay after the outcome (or approval), window, deadline, escalation."""

    delay: timedelta = timedelta(0)
    window: str | None = None
    deadline: timedelta | None = None
    escalate_after: timedelta | None = None


@dataclass(frozen=True)
class Variant:
    """One wording under comparison: a template and its weight."""

    template: str
    weight: float = 1.0


@dataclass(frozen=True)
class Rule:
    """One rule after defaults are merged; `predicate` is the compiled `when` (None: always true)."""

    id: str
    template: str
    channels: tuple
    timing: Timing
    match: tuple = ()  # ((field_path, (allowed values...)), ...)
    when: str | None = None
    variants: tuple = ()  # (Variant, ...)
    locale: str = "zh-CN"
    timezone: str = "Asia/Shanghai"
    priority: int = 0
    description: str = ""
    file: str = ""
    line: int = 0
    column: int = 0
    order: int = 0  # position in the whole set: files by name, then position in the file
    company: tuple = ()  # ((key, value), ...): the rule file's `company:`, merged over herald.yaml's
    predicate: Callable[[Mapping[str, Any]], bool] | None = field(default=None, compare=False, repr=False)

    @property
    def templates(self) -> tuple:
        """Every template this rule may render: its variants', else its own."""
        return tuple(v.template for v in self.variants) or (self.template,)

    def decisions(self) -> tuple:
        """The decisions this rule can match (all of them when it does not pin `decision`)."""
        for path, values in self.match:
            if path == "decision":
                return tuple(values)
        return DECISIONS


@dataclass(frozen=True)
class RuleSet:
    """A validated, ordered rule set: rules in evaluation order, windows by name, a content hash."""

    rules: tuple
    windows: Mapping[str, Window]
    version: str
    files: tuple = ()
    disabled: tuple = ()  # ids of rules written with `enabled: false`: validated, never routed
    sources: Mapping[str, str] = field(default_factory=dict)  # rule files and templates -> content hash
    # the merged `vocabulary:` sections (engine.rules.vocabulary.Vocabulary: field path -> frozenset of
    # values; empty and falsy when no rule file declares one)
    vocabulary: Any = None


@quick_init
@dataclass(frozen=True)
class Message:
    """One rendered message for one channel."""

    channel: str
    body: str
    subject: str | None = None
    html: str | None = None
    sms_segments: int | None = None
    sms_chars: int | None = None


@quick_init
@dataclass(frozen=True)
class Plan:
    """What one outcome became: status, rule, template, channel order, schedule, rendered messages."""

    outcome_id: str | None
    status: str  # matched | unmatched | held | duplicate | invalid
    rule: str | None = None
    rule_version: str | None = None
    template: str | None = None
    variant: str | None = None
    locale: str | None = None
    file: str | None = None  # the template file used (engine.render.locales chose it)
    channels: tuple = ()
    skipped_channels: tuple = ()  # channels of the rule left out for want of an address
    send_at: datetime | None = None
    deadline_at: datetime | None = None
    escalations: tuple = ()  # (datetime when channel i+1 would be tried, ...)
    late: bool = False
    messages: tuple = ()  # (Message, ...)
    error: str | None = None
    warning: str | None = None  # accepted with a remark: values outside the rule set's vocabulary
    outcome: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)


# ----------------------------------------------------------------- a send's outcome (channels -> store)

ACCEPTED = "accepted"        # the provider took it; provider_id identifies it for receipts
RECOVERABLE = "recoverable"  # try the same channel again later (timeouts, 5xx, rate limits)
PERMANENT = "permanent"      # this channel will not work for this message: go to the next channel


@dataclass(frozen=True)
class SendResult:
    """What happened: accepted (with the provider's id), a recoverable or a permanent failure."""

    status: str
    provider_id: str | None = None
    error: str | None = None     # human-readable, never containing secrets
    code: str | None = None      # the provider's error code, when it gave one
    retry_after: float | None = None

    @property
    def ok(self) -> bool:
        return self.status == ACCEPTED
