"""The impact of a rule change (`herald diff --rules NEW --since 7d`, and the console's page): the outcomes received
in the last days are planned with the rules in use and with the proposed ones, at the same instant, and every
outcome whose rule, template, channel order or send time would differ is counted, with examples. Nothing is
stored or sent: both sides are `Pipeline.plan` of the same body. `proposed_rule_files` builds the proposed rule
set of the console's page from one changed (or added) rule file."""
from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.model import Plan
from engine.pipeline import Pipeline
from engine.store import OutcomeRow, Store

FIELDS = ("rule", "template", "channels", "send_at")
STATUSES = ("matched", "unmatched", "held")
MAX_OUTCOMES = 200_000


@dataclass(frozen=True)
class OutcomeDiff:
    """One outcome that the proposed rules would treat differently: each side's rule, template, channels, time."""

    outcome_id: str
    changed: tuple[str, ...]  # which of FIELDS differ
    old: dict[str, Any]
    new: dict[str, Any]


@dataclass(frozen=True)
class Impact:
    """Over `outcomes` outcomes received since `since`: how many change, per field, per (old rule -> new rule),
    and up to `examples` of them."""

    since: float
    outcomes: int
    changed: int
    by_field: dict[str, int]
    moves: dict[str, int]  # "old rule -> new rule": how many outcomes
    examples: tuple[OutcomeDiff, ...]
    truncated: bool = False  # more outcomes than the budget: only the oldest ones (up to it) were compared


def _side(p: Plan) -> dict[str, Any]:
    return {"rule": p.rule, "template": p.template, "channels": list(p.channels),
            "send_at": p.send_at.isoformat() if p.send_at else None, "status": p.status}


def _plan(pipeline: Pipeline, row: OutcomeRow) -> Plan:
    try:
        return pipeline.plan(row.data())
    except Exception as e:  # noqa: BLE001 - one outcome the rules cannot plan is a difference to show, not a crash
        return Plan(row.id, "unmatched", error=f"{type(e).__name__}: {e}")


def impact(store: Store, current: Pipeline, proposed: Pipeline, since: float, *, examples: int = 10,
           limit: int = MAX_OUTCOMES, progress: Callable[[int], None] | None = None) -> Impact:
    """Compares `current` and `proposed` (pipelines over the two rule sets, with the same fixed `now`) on the
    active outcomes received at or after `since`."""
    counts: Counter = Counter()
    moves: Counter = Counter()
    shown: list[OutcomeDiff] = []
    seen = changed = 0
    after: tuple[float, str] | None = None
    truncated = False
    while True:
        rows = store.outcomes_page(STATUSES, after=after, limit=500, since=since)
        if not rows:
            break
        for row in rows:
            if seen >= limit:
                truncated = True
                break
            seen += 1
            old, new = _side(_plan(current, row)), _side(_plan(proposed, row))
            diff = tuple(f for f in FIELDS if old[f] != new[f])
            if diff:
                changed += 1
                counts.update(diff)
                if old["rule"] != new["rule"]:
                    moves[f"{old['rule'] or '(unmatched)'} -> {new['rule'] or '(unmatched)'}"] += 1
                if len(shown) < examples:
                    shown.append(OutcomeDiff(row.id, diff, old, new))
        if truncated:
            break
        if progress:
            progress(seen)
        after = (rows[-1].received_at, rows[-1].id)
    return Impact(since, seen, changed, {f: counts[f] for f in FIELDS}, dict(moves.most_common()), tuple(shown),
                  truncated)


def impact_text(imp: Impact) -> str:
    """The impact as a short report for a terminal."""
    when = datetime.fromtimestamp(imp.since, UTC).isoformat(timespec="minutes")
    lines = [f"{imp.changed} of {imp.outcomes} outcome(s) received since {when} would be treated differently"
             + (" (only the first ones compared: the budget ran out)" if imp.truncated else "")]
    lines += [f"  {f:<9} {imp.by_field[f]}" for f in FIELDS]
    if imp.moves:
        lines.append("moves between rules:")
        lines += [f"  {n:>6}  {move}" for move, n in imp.moves.items()]
    if imp.examples:
        lines.append("examples:")
    for e in imp.examples:
        lines.append(f"  {e.outcome_id}:")
        lines += [f"    {f}: {e.old[f]} -> {e.new[f]}" for f in e.changed]
    return "\n".join(lines)


MAX_RULES_TEXT = 256 * 1024  # characters of a proposed rule file typed or pasted at the console
RULE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\.ya?ml$")


def proposed_rule_files(current: Sequence[Path], name: str, text: str, workdir: Path) -> list[Path]:
    """The rule files of a proposed rule set: the `current` files (in their order) with the one named `name`
    replaced by `text`, or `text` added as a new file `name` at its place by name. The text is written under
    `workdir` (the caller's temporary directory); nothing else is touched. ValueError for a bad name or text."""
    if not RULE_NAME.match(name):
        raise ValueError("name: a rule file name such as 20-offers.yaml (letters, digits, '.', '_', '-')")
    if len(text) > MAX_RULES_TEXT:
        raise ValueError(f"rules: at most {MAX_RULES_TEXT} characters")
    if not text.strip():
        raise ValueError("rules: paste the changed rule file")
    path = workdir / name
    path.write_text(text, encoding="utf-8")
    files = list(current)
    for i, f in enumerate(files):
        if f.name == name:
            files[i] = path
            return files
    at = next((i for i, f in enumerate(files) if f.name > name), len(files))
    return [*files[:at], path, *files[at:]]
